"""What to adopt, restore, remove and cull: pure functions of what Docker and the proxy report.

Nothing here does I/O or reads a clock; callers pass `now` (durations on the monotonic clock,
wall-clock moments timezone-aware), so every rule is unit-tested in milliseconds. pool.py
carries the plans out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.lifecycle import HOLDS_A_CONTAINER
from orchestrator.model import (
    ROUTE_HANDED_OUT,
    ROUTE_POOLED,
    ROUTE_REMOVING,
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
    keep: str | None = None  # the visitor's resume key digest, from the route


@dataclass
class ReconcilePlan:
    adopt: list[Adoption] = field(default_factory=list)
    remove_containers: list[ContainerRecord] = field(default_factory=list)  # nobody tracks them
    discard: list[str] = field(default_factory=list)  # path ids of tracked slots to remove
    forget: list[str] = field(default_factory=list)  # path ids whose container is gone
    add_routes: list[str] = field(default_factory=list)  # path ids of tracked slots
    delete_routes: list[str] = field(default_factory=list)  # path ids

    @property
    def empty(self) -> bool:
        return not (
            self.adopt
            or self.remove_containers
            or self.discard
            or self.forget
            or self.add_routes
            or self.delete_routes
        )


# Slots whose own task (the spawn, the hand-out, the removal) is working on them: reconcile leaves
# them alone.
_OWNED_BY_A_TASK = (SlotState.STARTING, SlotState.CLAIMED, SlotState.REMOVING)


def plan_reconcile(
    known: Mapping[str, Slot],
    containers: Iterable[ContainerRecord],
    routes: Mapping[str, RouteRecord],
    routes_kept: bool = False,
) -> ReconcilePlan:
    """Bring tracked slots, Docker's containers and the proxy's routes back into agreement.

    Docker is the truth: a route without a running container goes, a dead container goes, a
    running container we do not track is adopted (as in use unless its route says it was never
    handed out, or it has no route although the proxy kept every route: `routes_kept`) or, if its
    route says a removal had begun, removed; a tracked slot that lost its route gets it back.
    Slots being started, handed out or removed belong to the task doing that and are left alone.
    """
    plan = ReconcilePlan()
    running: dict[str, ContainerRecord] = {}
    seen: set[str] = set()
    for container in containers:
        seen.add(container.path_id)
        slot = known.get(container.path_id)
        owned = slot is not None and slot.state in _OWNED_BY_A_TASK
        route = routes.get(container.path_id)
        if owned:
            if container.running:
                running[container.path_id] = container
            continue
        if not container.running:
            if slot is not None:
                plan.discard.append(container.path_id)
            else:
                plan.remove_containers.append(container)
            continue
        running[container.path_id] = container
        if slot is None:
            if route is not None and route.state == ROUTE_REMOVING:
                plan.remove_containers.append(container)  # a removal a stop interrupted
            else:
                plan.adopt.append(_adoption(container, route, routes_kept))
        elif route is None or route.target != slot.target or route.state != _route_state(slot):
            plan.add_routes.append(container.path_id)

    for path_id in routes:
        slot = known.get(path_id)
        if path_id not in running and not (slot and slot.state in _OWNED_BY_A_TASK):
            plan.delete_routes.append(path_id)

    for path_id, slot in known.items():
        if path_id not in seen and slot.state in (SlotState.READY, SlotState.IN_USE):
            plan.forget.append(path_id)
    return plan


def _route_state(slot: Slot) -> str:
    """What a tracked slot's route must say (a hand-out whose write timed out may have left
    `handed_out` on a notebook that went back to the pool)."""
    return ROUTE_HANDED_OUT if slot.state is SlotState.IN_USE else ROUTE_POOLED


def _adoption(container: ContainerRecord, route: RouteRecord | None, routes_kept: bool) -> Adoption:
    if route is not None and route.state == ROUTE_POOLED:
        return Adoption(container, SlotState.STARTING, None)
    if route is None and routes_kept:
        # A hand-out writes its route before the redirect, and the proxy lost none since: this
        # container (started by a process killed before it routed it) was never given to anyone.
        return Adoption(container, SlotState.STARTING, None)
    if route is not None and route.state == ROUTE_HANDED_OUT:
        return Adoption(container, SlotState.IN_USE, route.handed_out_at, route.keep)
    # No record survived: it may have been handed out, so it must never be handed out again.
    return Adoption(container, SlotState.IN_USE, None)


# ----- culling, on the monotonic clock -----


def observed_at(moment: datetime, wall_now: datetime, mono_now: float, floor: float) -> float:
    """The monotonic time of a wall-clock `moment` (the proxy's or Jupyter's) read at `wall_now`.

    Its age is taken from the wall clock but kept between 0 and `mono_now - floor` (`floor`: the
    last time this value was read, or the hand-out): a clock step can then move it by at most one
    cull period, never make a whole room look idle at once.
    """
    age = (wall_now - moment).total_seconds()
    return mono_now - max(0.0, min(age, mono_now - floor))


@dataclass(frozen=True)
class Usage:
    """What the culler knows of one handed-out notebook; times are monotonic seconds."""

    path_id: str
    handed_out: float
    last_active: float  # the latest sign of use: a request, the notebook's own activity
    busy: bool = False  # a kernel is executing
    answered: bool = True  # False: the notebook server did not answer, so busy is unknown

    def idle(self, now: float) -> float:
        """Seconds since the last sign of use: what the culler holds against cull_timeout, and
        the one idle time the admin page shows."""
        return max(now - self.last_active, 0.0)

    def age(self, now: float) -> float:
        """Seconds since the hand-out: what the culler holds against cull_max."""
        return max(now - self.handed_out, 0.0)


def usage_of(slot: Slot) -> Usage:
    handed_out = slot.handed_out_mono if slot.handed_out_mono is not None else slot.created_mono
    last = max(handed_out, slot.last_active_mono or handed_out)
    return Usage(slot.path_id, handed_out, last, slot.busy, slot.answered)


def cull_reason(usage: Usage, now: float, cull_timeout: float, cull_max: float) -> str | None:
    """Why this notebook is culled now ('max_age', 'idle'), or None.

    cull_max counts from the hand-out (a pool may be started hours before the room arrives) and
    applies whatever the activity, so a runaway notebook cannot hold a seat forever. A busy kernel
    means not idle, whatever the proxy says: a long computation sends no traffic. A notebook that
    does not answer is overloaded, not dead (a dead one stops its container), so not idle either.
    """
    if cull_max and usage.age(now) > cull_max:
        return "max_age"
    if usage.busy or not usage.answered:
        return None
    return "idle" if usage.idle(now) > cull_timeout else None


def select_for_cull(
    usages: Iterable[Usage], now: float, cull_timeout: float, cull_max: float
) -> list[tuple[str, str]]:
    """The (path id, reason) of each notebook to cull now."""
    chosen = []
    for usage in usages:
        reason = cull_reason(usage, now, cull_timeout, cull_max)
        if reason:
            chosen.append((usage.path_id, reason))
    return chosen


def cull_in(usage: Usage, now: float, cull_timeout: float, cull_max: float) -> float | None:
    """Seconds until the culler takes it if it stays as it is (None: not while a kernel is busy)."""
    left = None
    if not usage.busy and usage.answered:
        left = max(cull_timeout - usage.idle(now), 0.0)
    if cull_max:
        by_age = max(cull_max - usage.age(now), 0.0)
        left = by_age if left is None else min(left, by_age)
    return left


def select_for_refresh(
    slots: Iterable[Slot], now: float, max_age: float, at_most: int, image_id: str = ""
) -> list[tuple[str, str]]:
    """Warm notebooks nobody took that are due for replacement, with why: those of an image the
    pool's image name no longer points to ('new_image': the workshop's material changed) first,
    then those older than `max_age` ('refreshed'); the oldest first, `at_most` a pass, so the
    pool stays warm while it turns over. Notebooks in use keep their image until their visitor
    leaves."""
    due = []
    for slot in slots:
        if slot.state is not SlotState.READY:
            continue
        if image_id and slot.image_id and slot.image_id != image_id:
            due.append((0, slot.created_mono, slot.path_id, "new_image"))
        elif max_age and now - slot.created_mono > max_age:
            due.append((1, slot.created_mono, slot.path_id, "refreshed"))
    due.sort()
    return [(path_id, why) for _, _, path_id, why in due[:at_most]]


def select_surplus(slots: Iterable[Slot], pool_size: int) -> list[str]:
    """Warm notebooks beyond pool_size (left by a create that timed out after Docker made the
    container, then adopted): the oldest go. Notebooks in use are never surplus."""
    held = [slot for slot in slots if slot.state in HOLDS_A_CONTAINER]
    extra = len(held) - pool_size
    ready = sorted(
        (slot for slot in held if slot.state is SlotState.READY), key=lambda s: s.created_mono
    )
    return [slot.path_id for slot in ready[: max(extra, 0)]]


def spawn_count(slots: Iterable[Slot], pool_size: int, max_boots: int) -> int:
    """How many containers to start now so that the pool comes to hold pool_size (tmpnb's
    capacity), with at most max_boots of them booting at once.

    A slot being removed still holds its container (and its memory) until Docker confirms it is
    gone, so it counts: a removal that keeps failing cannot make the pool grow past pool_size.
    Boots are CPU-bound: 50 started at once on 2 cores each took 50 times as long, past
    ready_timeout, so that they were replaced and the pool never filled (docs/performance.md);
    a few at a time, each is ready in seconds and the next starts when one is done.
    """
    slots = list(slots)
    alive = sum(1 for slot in slots if slot.state in HOLDS_A_CONTAINER)
    booting = sum(1 for slot in slots if slot.state is SlotState.STARTING)
    return max(0, min(pool_size - alive, max_boots - booting))


def weights_due_in(
    now: float, first_pending: float, last_added: float, quiet: float, longest: float
) -> float:
    """Seconds until the visitors' CPU weights waiting since `first_pending` (the latest added at
    `last_added`) are to be written: once hand-outs have been quiet for `quiet` seconds, and never
    later than `longest` after the first. A room's burst of hand-outs is thus not slowed by a
    Docker update per visitor (each costs the engine and runc several milliseconds of CPU, on the
    cores the room's requests need); until then every visitor's notebook weighs what a warm one
    does, which is what the others of the burst weigh too, and the pool does not refill
    during a burst (handed-out notebooks still count toward its capacity)."""
    return max(0.0, min(last_added + quiet, first_pending + longest) - now)


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
    """How many live notebooks were handed (or are being handed) to this client address."""
    taken = (SlotState.CLAIMED, SlotState.IN_USE)
    return sum(1 for slot in slots if slot.state in taken and slot.client == address)
