"""What to adopt, restore, remove and cull: pure functions of what Docker and the proxy report.

Nothing here does I/O or reads the clock; callers pass `now` (timezone-aware), so every rule is
unit-tested in milliseconds. pool.py carries the plans out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.model import (
    ROUTE_HANDED_OUT,
    ROUTE_POOLED,
    ContainerRecord,
    RouteRecord,
    Slot,
    SlotState,
)


@dataclass(frozen=True)
class Adoption:
    """A running container of our pool that this process does not track yet."""

    container: ContainerRecord
    state: SlotState  # STARTING: check readiness, then offer it; IN_USE: a visitor may own it
    handed_out_at: datetime | None


@dataclass
class ReconcilePlan:
    adopt: list[Adoption] = field(default_factory=list)
    remove_containers: list[ContainerRecord] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # path ids whose container is gone
    add_routes: list[str] = field(default_factory=list)  # path ids of tracked slots
    delete_routes: list[str] = field(default_factory=list)  # path ids

    @property
    def empty(self) -> bool:
        return not (
            self.adopt
            or self.remove_containers
            or self.forget
            or self.add_routes
            or self.delete_routes
        )


def plan_reconcile(
    known: Mapping[str, Slot],
    containers: Iterable[ContainerRecord],
    routes: Mapping[str, RouteRecord],
    routes_kept: bool = False,
) -> ReconcilePlan:
    """Bring tracked slots, Docker's containers and the proxy's routes back into agreement.

    Docker is the truth: a route without a running container goes, a dead container goes, a
    running container we do not track is adopted (as in use unless its route says it was never
    handed out, or it has no route although the proxy kept every route: `routes_kept`), and a
    tracked slot that lost its route gets it back. Slots being started or removed belong to the
    task doing that and are left alone.
    """
    plan = ReconcilePlan()
    running: dict[str, ContainerRecord] = {}
    seen: set[str] = set()
    for container in containers:
        seen.add(container.path_id)
        slot = known.get(container.path_id)
        busy = slot is not None and slot.state in (SlotState.STARTING, SlotState.REMOVING)
        if not container.running:
            if busy:
                continue  # its spawner (or remover) is still working on it
            plan.remove_containers.append(container)
            if slot is not None:
                plan.forget.append(container.path_id)
            continue
        running[container.path_id] = container
        if slot is None:
            plan.adopt.append(_adoption(container, routes.get(container.path_id), routes_kept))
        elif slot.state in (SlotState.READY, SlotState.IN_USE):
            route = routes.get(container.path_id)
            if route is None or route.target != slot.target:
                plan.add_routes.append(container.path_id)

    for path_id in routes:
        slot = known.get(path_id)
        if path_id not in running and not (slot and slot.state is SlotState.STARTING):
            plan.delete_routes.append(path_id)

    for path_id, slot in known.items():
        if path_id not in seen and slot.state in (SlotState.READY, SlotState.IN_USE):
            plan.forget.append(path_id)
    return plan


def _adoption(container: ContainerRecord, route: RouteRecord | None, routes_kept: bool) -> Adoption:
    if route is not None and route.state == ROUTE_POOLED:
        return Adoption(container, SlotState.STARTING, None)
    if route is None and routes_kept:
        # A hand-out writes its route before the redirect, and the proxy lost none since: this
        # container (started by a process killed before it routed it) was never given to anyone.
        return Adoption(container, SlotState.STARTING, None)
    if route is not None and route.state == ROUTE_HANDED_OUT:
        return Adoption(container, SlotState.IN_USE, route.handed_out_at)
    # No record survived: it may have been handed out, so it must never be handed out again.
    return Adoption(container, SlotState.IN_USE, None)


@dataclass(frozen=True)
class Activity:
    """What is known about the use of one handed-out container."""

    path_id: str
    created: datetime
    handed_out_at: datetime | None = None
    proxy_last_activity: datetime | None = None  # last request through the proxy
    notebook_last_activity: datetime | None = None  # the notebook server's own /api/status
    busy: bool = False  # a kernel is executing
    answered: bool = True  # False: the notebook server did not answer, so busy is unknown


def select_for_cull(
    activities: Iterable[Activity],
    now: datetime,
    cull_timeout: timedelta,
    cull_max: timedelta | None,
) -> list[tuple[str, str]]:
    """The (path id, reason) of each container to cull: idle too long, or older than cull_max.

    A busy kernel means not idle, whatever the proxy says: a long computation sends no traffic.
    A notebook server that does not answer is overloaded, not dead (a dead one stops its
    container), so it is not called idle either. cull_max applies regardless, so a runaway
    container cannot hold a seat forever.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    chosen = []
    for activity in activities:
        if cull_max is not None and now - activity.created > cull_max:
            chosen.append((activity.path_id, "max_age"))
            continue
        if activity.busy or not activity.answered:
            continue
        moments = [
            moment
            for moment in (
                activity.handed_out_at,
                activity.proxy_last_activity,
                activity.notebook_last_activity,
            )
            if moment is not None
        ]
        last = max(moments, default=activity.created)
        if now - last > cull_timeout:
            chosen.append((activity.path_id, "idle"))
    return chosen


def spawn_count(slots: Iterable[Slot], pool_size: int) -> int:
    """How many containers to start so that the pool holds pool_size (tmpnb's capacity)."""
    alive = sum(1 for slot in slots if slot.state is not SlotState.REMOVING)
    return max(0, pool_size - alive)


def client_address(peer: str, forwarded_for: Iterable[str], trusted_hops: int) -> str:
    """The visitor's address, as the outermost of `trusted_hops` proxies saw it.

    Each proxy appends the address that connected to it to X-Forwarded-For, so the last
    `trusted_hops` addresses of the chain (the header's entries, then `peer`, who connected to
    us) are our own proxies' views; the one before them is the visitor. Entries further left
    are whatever the visitor sent and are ignored, so they cannot choose their address.
    A request with fewer entries than expected did not pass every proxy: its leftmost is used.
    """
    chain = [part.strip() for header in forwarded_for for part in header.split(",")]
    chain = [address for address in chain if address]
    chain.append(peer)
    return chain[max(len(chain) - 1 - trusted_hops, 0)]


def in_use_by(slots: Iterable[Slot], address: str) -> int:
    """How many live notebooks were handed to this client address."""
    return sum(1 for slot in slots if slot.state is SlotState.IN_USE and slot.client == address)
