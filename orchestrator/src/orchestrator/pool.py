"""The warm pool: start containers, wait until they answer, hand them out, cull and heal.

`pool_size` is tmpnb's capacity: the pool holds that many containers, handed out or not, and
keeps every one that is not handed out booted and ready. A container freed by culling, death or
draining is replaced in the background. Three loops run beside the visitors' requests: refill
(start what is missing), reconcile (agree with Docker and the proxy) and cull.

Every container's life follows lifecycle.py's table, and each slot has one owner at a time: its
boot task while STARTING, the visitor's request while CLAIMED, its removal task while REMOVING.
An owner steps the slot before its first await, so nobody else acts on it meanwhile. Whatever
fails, an owner ends its slot in a state the table allows and the loops go on: a failure is one
`event=error` line and one count in `tmpnb_errors_total`, never a stuck slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import string
import time
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import backoff, keep, schedule
from orchestrator.bookings import Bookings
from orchestrator.config import Config
from orchestrator.container_spec import container_spec
from orchestrator.decisions import (
    Adoption,
    in_use_by,
    observed_at,
    plan_reconcile,
    select_for_cull,
    select_for_refresh,
    select_surplus,
    spawn_count,
    usage_of,
)
from orchestrator.docker_backend import DockerBackend, DockerError
from orchestrator.events import event_logger
from orchestrator.lifecycle import HOLDS_A_CONTAINER, Slots, Step
from orchestrator.metrics import Metrics
from orchestrator.model import (
    ROUTE_CONTAINER,
    ROUTE_HANDED_OUT,
    ROUTE_HANDED_OUT_AT,
    ROUTE_KEEP,
    ROUTE_POOLED,
    ROUTE_REMOVING,
    ROUTE_STATE,
    Slot,
    SlotState,
)
from orchestrator.ports import HostPorts
from orchestrator.probes import NotebookProbe, Seen
from orchestrator.proxy import ProxyClient, ProxyError
from orchestrator.saving import WorkSaver
from orchestrator.snapshot import (
    BookingPlan,
    PoolCounts,
    PoolSnapshot,
    SavedStats,
    notebook_rows,
    pool_counts,
    short_image_id,
)
from orchestrator.timeutil import isoformat, utcnow
from orchestrator.weights import VisitorWeights

_PATH_ALPHABET = string.ascii_lowercase + string.digits
# The same proxy and Docker failures every background step handles; anything else is a bug,
# logged with its traceback, and the loop goes on.
_EXPECTED = (DockerError, ProxyError)


SWEEP_PERIOD = 60  # seconds between looks for saved work whose time is up


class NotReady(Exception):
    """A container did not answer through the proxy before its deadline."""


class HandOutFailed(Exception):
    """The proxy did not record a hand-out: nobody was redirected, the notebook stays offered."""


class Pool:
    def __init__(
        self,
        config: Config,
        docker: DockerBackend,
        proxy: ProxyClient,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        probe: NotebookProbe | None = None,
        notebook_user: str | None = None,
        sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.pool_name = config.effective_pool_name
        self._log = event_logger(pool=self.pool_name)  # every event line names the pool
        self.docker = docker
        self.proxy = proxy
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self._sleep = sleep  # tests run the pool on a virtual clock
        self.probe = probe or NotebookProbe(config.proxy_public_url)
        self.notebook_user = notebook_user  # for the in-memory home's owner
        self.slots = Slots()
        self.image_id = ""  # what config.image points to, as last seen (reconcile reads it)
        self._ready: deque[str] = deque()
        self._wake_refill = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self._failures = 0  # consecutive failed spawns, for back-off
        # Path ids of spawns that failed before the container's id was known: if Docker made the
        # container after all (a lost answer), this process knows nobody ever had it.
        self._abandoned: set[str] = set()
        self._ports = HostPorts(config, docker, self.pool_name)
        self._weights = VisitorWeights(
            config, docker, self.slots, monotonic=monotonic, sleep=sleep,
            guarded=self._guarded, background=self._background,
        )  # fmt: skip
        # Where the proxy's marker route points: this service, which answers it with a 404.
        own_ip = "127.0.0.1" if config.ip in ("", "0.0.0.0", "::") else config.ip  # noqa: S104
        self._own_url = f"http://{own_ip}:{config.port}"
        # Workshops booked ahead (schedule.py): from the configuration, and added at run time.
        self.bookings = Bookings(list(config.bookings), config.state_dir)
        self.boot_rate = schedule.BootRate()
        # Visitors' work kept at the cull (keep.py), under state_dir; None: nothing is kept.
        self.saved: keep.SavedWork | None = None
        if config.state_dir and config.keep_hours > 0:
            self.saved = keep.SavedWork(
                Path(config.state_dir) / "saved", config.keep_max_bytes, config.keep_seconds
            )
        self._saver = WorkSaver(
            config, docker, metrics, self.saved, pool_name=self.pool_name, monotonic=monotonic,
            error=self._error,
        )  # fmt: skip
        self._capacity = config.pool_size
        self.metrics.capacity.set(self._capacity)

    @property
    def capacity(self) -> int:
        """How many notebooks the pool holds now, handed out or not: pool_size, or more while a
        booked workshop is on (as planned at the last pass, see plan_capacity)."""
        return self._capacity

    def plan_capacity(self) -> int:
        """Look at the bookings again; a new capacity wakes the refill (grow) or the next
        reconcile pass removes the surplus warm notebooks (shrink, never one in use)."""
        planned = schedule.planned_capacity(
            self.bookings.all(),
            self.clock(),
            self.config.pool_size,
            self.boot_rate.seconds_per_notebook,
        )
        if planned != self._capacity:
            self._log(
                "capacity",
                capacity=planned,
                was=self._capacity,
                seconds_per_notebook=f"{self.boot_rate.seconds_per_notebook:.2f}",
            )
            self._capacity = planned
            self.metrics.capacity.set(planned)
            self._wake_refill.set()
        return planned

    async def book(self, item: schedule.Booking) -> None:
        """Book a workshop at run time (admin API and page), if this server has the memory for
        it: every notebook may use mem_limit. DockerError when the engine cannot say."""
        memory = await self.docker.memory_total()
        needed = item.capacity * self.config.mem_limit_bytes
        if needed > memory:
            raise schedule.BookingError(
                f"capacity {item.capacity} x mem_limit {self.config.mem_limit} = "
                f"{needed / 1024**3:.1f} GiB, more than this server's {memory / 1024**3:.1f} GiB"
            )
        self.bookings.add(item)
        self._log("booked", booking=str(item))
        self.plan_capacity()

    def clear_bookings(self) -> None:
        """Forget the workshops booked at run time (the configuration's stay)."""
        self.bookings.clear_added()
        self.plan_capacity()

    # ----- what the admin page and the stats API read (snapshot.py) -----

    def counts(self) -> PoolCounts:
        """How many notebooks are in each state, and the capacity: from memory, cheap enough for
        every poll of /api/stats."""
        return pool_counts(self.slots, self._capacity)

    def booking_plan(self, now: datetime | None = None) -> BookingPlan:
        """The workshops booked, and the capacity they plan (as of the last pass)."""
        return BookingPlan(
            time=now or self.clock(),
            capacity=self._capacity,
            pool_size=self.config.pool_size,
            seconds_per_notebook=self.boot_rate.seconds_per_notebook,
            configured=tuple(self.bookings.configured),
            added=tuple(self.bookings.added),
        )

    async def snapshot(self, waiting: int) -> PoolSnapshot:
        """Everything the admin page shows, as plain values: the counts, each notebook in use
        with its idle time as the culler measures it, the bookings, the saved work, and whether
        the proxy's API answers now. `waiting`: the length of the visitors' waiting line, which
        the web layer keeps."""
        now = self.clock()
        proxy_answered = True
        try:
            await self.proxy.check()
        except ProxyError:
            proxy_answered = False  # still show what is known; say the proxy is down
        saved = None
        if self.saved is not None:
            count, size, oldest = await asyncio.to_thread(self.saved.stats)
            saved = SavedStats(
                count=count,
                bytes=size,
                oldest_at=datetime.fromtimestamp(oldest, UTC) if oldest else None,
                cap_bytes=self.saved.cap_bytes,
                keep_hours=self.config.keep_hours,
            )
        rows = notebook_rows(
            self.slots, self.monotonic(), self.config.cull_timeout, self.config.cull_max
        )
        return PoolSnapshot(
            time=now,
            pool_name=self.pool_name,
            counts=self.counts(),
            waiting=waiting,
            notebooks=tuple(rows),
            proxy_answered=proxy_answered,
            saved=saved,
            bookings=self.booking_plan(now),
            image_id=short_image_id(self.image_id),
        )

    # ----- lifecycle -----

    async def start(self, *, periodic: bool = True) -> None:
        """Adopt what a previous run left, then keep the pool full, healthy and culled.

        `periodic=False` leaves reconcile and cull to the caller (unit tests drive them)."""
        if self.config.state_dir:  # with the feature off, saved work is removed
            store = self.saved or keep.SavedWork(Path(self.config.state_dir) / "saved", 0, 0)
            await asyncio.to_thread(store.prepare)
        await self._guarded("reconcile", self.reconcile_once)
        self._loops = [asyncio.create_task(self._refill_loop(), name="refill")]
        if periodic and self.saved is not None:
            self._loops.append(
                asyncio.create_task(
                    self._every(min(SWEEP_PERIOD, self.saved.keep_seconds / 4), self.sweep_saved),
                    name="sweep",
                )
            )
        if periodic:
            self._loops += [
                asyncio.create_task(
                    self._every(self.config.reconcile_period, self.reconcile_once),
                    name="reconcile",
                ),
                asyncio.create_task(
                    self._every(self.config.cull_period, self.cull_once), name="cull"
                ),
            ]
        self._wake_refill.set()

    async def stop(self) -> None:
        """Stop every loop and task; containers stay for the next start to adopt (a removal
        cut short is finished by it: the route says `removing`)."""
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)

    # ----- what visitors and the API see -----

    @property
    def available(self) -> int:
        return self.slots.count(SlotState.READY)

    def is_live(self, path_id: str) -> bool:
        slot = self.slots.get(path_id)
        return slot is not None and slot.state not in (SlotState.REMOVING, SlotState.GONE)

    def in_use_by(self, address: str) -> int:
        return in_use_by(self.slots.values(), address)

    async def hand_out(self, client: str | None = None, keep_as: str | None = None) -> Slot | None:
        """A ready container for one visitor (at address `client`), or None when none is ready.
        `keep_as`: the digest of the visitor's resume key, under which their work is kept when
        the notebook is culled.

        The hand-out is written into the container's route before the visitor is redirected, so
        it survives a restart of the orchestrator (see model.py). If the proxy does not take it,
        nobody was redirected: the container goes back to the front of the pool, and the visitor
        is told to retry (HandOutFailed), so a proxy blip costs one retry, never the pool.
        """
        while self._ready:
            path_id = self._ready.popleft()  # no await before the claim: nobody gets it twice
            slot = self.slots.get(path_id)
            if slot is None or not self.slots.step(slot, Step.CLAIM):
                continue
            slot.client, slot.keep = client, keep_as
            slot.handed_out_at, slot.handed_out_mono = self.clock(), self.monotonic()
            self._update_gauges()
            try:
                await self.proxy.add_route(path_id, slot.target or "", self._route_data(slot))
            except BaseException as error:
                slot.client = slot.handed_out_at = slot.handed_out_mono = slot.keep = None
                if self.slots.step(slot, Step.RELEASED):
                    self._ready.appendleft(path_id)
                self._update_gauges()
                if isinstance(error, ProxyError):
                    self._error("handout_route", error, path=path_id)
                    raise HandOutFailed(str(error)) from None
                raise
            if not self.slots.step(slot, Step.HANDED_OUT):  # pragma: no cover (one owner)
                continue
            slot.last_active_mono = slot.handed_out_mono
            self._update_gauges()
            self.metrics.handed_out.inc()
            self._log("handed-out", path=path_id, container=_short(slot))
            self._weights.give(slot)  # after the redirect, and after the room's burst
            return slot
        self.metrics.full.inc()
        return None

    async def drain(self) -> int:
        """Remove every container that is not handed out; fresh ones replace them."""
        idle = [
            slot
            for slot in list(self.slots.values())
            if slot.state in (SlotState.READY, SlotState.STARTING)
        ]
        removals = [self._begin_removal(slot, "drained") for slot in idle]
        pending = [task for task in removals if task is not None]
        if pending:  # answer once they are gone, or in a minute while Docker keeps refusing
            await asyncio.wait(pending, timeout=60)
        self._wake_refill.set()
        return len(idle)

    # ----- starting containers -----

    async def _refill_loop(self) -> None:
        while True:
            await self._wake_refill.wait()
            self._wake_refill.clear()
            if self._failures:  # spawns keep failing: do not hammer Docker
                await self._sleep(min(0.5 * 2 ** min(self._failures, 6), 30))
            wanted = spawn_count(self.slots.values(), self._capacity, self.config.boots_at_once)
            for _ in range(wanted):  # each boot's end wakes this loop for the next ones
                self._new_slot()

    def _new_slot(self) -> None:
        path_id = "".join(secrets.choice(_PATH_ALPHABET) for _ in range(self.config.user_length))
        # >= 128 bits: 32 random bytes, URL-safe.
        token = secrets.token_urlsafe(32) if self.config.use_tokens else ""
        slot = Slot(
            path_id=path_id,
            state=SlotState.STARTING,
            created=self.clock(),
            created_mono=self.monotonic(),
            token=token,
        )
        self.slots.add(slot)
        self._update_gauges()
        self._background(self._boot(slot, create=True))

    async def _boot(self, slot: Slot, *, create: bool) -> None:
        """Own a STARTING slot until it is READY or removed: create its container (unless it was
        adopted), route it, wait until it answers. Any failure removes it; a drain while it
        boots (the slot turned REMOVING) is finished here, where the container's id is known."""
        started = self.monotonic()
        # Boots sharing the machine with this one, for the measured refill rate.
        in_flight = self.slots.count(SlotState.STARTING)
        reason = "drained"
        try:
            if create:
                port = await self._ports.reserve(slot, self.slots)
                spec = container_spec(self.config, self.pool_name, slot, port, self.notebook_user)
                record = await self.docker.create_and_start(spec)
                slot.container_id, slot.target = record.id, record.target
                slot.image_id = record.image_id
                self.metrics.spawned.inc()
                self._log("spawned", path=slot.path_id, container=_short(slot))
                if not record.target:
                    raise DockerError(f"container {record.id[:12]} has no address on its network")
            if slot.state is SlotState.STARTING:
                await self.proxy.add_route(slot.path_id, slot.target or "", self._route_data(slot))
                await self._wait_ready(slot)
            if self.slots.step(slot, Step.BOOTED):
                self._ready.append(slot.path_id)
                self._update_gauges()
                self._failures = 0
                if create:
                    self.metrics.spawn_seconds.observe(self.monotonic() - started)
                    self.boot_rate.observe(self.monotonic() - started, in_flight)
                self._log("ready", path=slot.path_id, container=_short(slot))
                return
        except asyncio.CancelledError:
            raise  # stopping: the container stays, and the next start adopts it
        except (*_EXPECTED, NotReady) as error:
            self._failures += 1
            reason = "spawn_failed" if create else "not_ready"
            self._error("spawn" if create else "adopt", error, path=slot.path_id)
        except Exception:
            self._failures += 1
            reason = "spawn_failed"
            self._bug("spawn", path=slot.path_id)
        finally:
            self._wake_refill.set()
        self.slots.step(slot, Step.REMOVE)  # a no-op if a drain already did
        await self._remove(slot, slot.removal_reason or reason)

    async def _wait_ready(self, slot: Slot) -> None:
        """Until the notebook answers through the proxy, or the slot is no longer STARTING."""
        deadline = self.monotonic() + self.config.ready_timeout
        delays = backoff.delays(first=0.1, cap=1.0, factor=1.5)
        while slot.state is SlotState.STARTING:
            if await self.probe.ready(slot):
                return
            delay = next(delays)
            if self.monotonic() + delay > deadline:
                raise NotReady(f"no answer through the proxy within {self.config.ready_timeout:g}s")
            await self._sleep(delay)

    # ----- removing containers -----

    def _begin_removal(self, slot: Slot, reason: str) -> asyncio.Task[None] | None:
        """Step the slot to REMOVING now; return the task that removes it, or None when another
        owner finishes it (its boot task) or it was already going."""
        was = slot.state
        if not self.slots.step(slot, Step.REMOVE):
            return None
        slot.removal_reason = reason
        with contextlib.suppress(ValueError):
            self._ready.remove(slot.path_id)
        self._update_gauges()
        if was is SlotState.STARTING:
            return None  # its boot task sees REMOVING and removes what it made
        return self._background(self._remove(slot, reason))

    async def _remove(self, slot: Slot, reason: str) -> None:
        """Remove a REMOVING slot's container, then its route; forget it once Docker confirms.

        The order keeps the record of a hand-out alive until its container is gone: the route
        first says `removing` (a restart part-way finishes the removal), the container goes
        (retried until Docker confirms), and only then the route. So whatever fails or stops in
        between, a container that was handed out is never offered again.
        """
        if slot.container_id and slot.handed_out_at is not None:
            try:
                await self.proxy.add_route(
                    slot.path_id, slot.target or "", self._route_data(slot, ROUTE_REMOVING)
                )
            except ProxyError as error:  # its route still says handed_out: still never offered
                self._error("mark_removing", error, path=slot.path_id)
        if not slot.container_id:
            self._abandoned.add(slot.path_id)
        if reason == "culled":
            await self._saver.keep_work(slot)
        if slot.container_id:
            delays = backoff.delays(first=0.5, cap=30.0)
            while True:
                try:
                    await self.docker.remove(slot.container_id)
                    break
                except DockerError as error:
                    self._error("remove", error, path=slot.path_id)
                await self._sleep(next(delays))
        try:
            await self.proxy.delete_route(slot.path_id)
        except ProxyError as error:
            self._error("delete_route", error, path=slot.path_id)  # reconcile deletes it later
        self.slots.step(slot, Step.REMOVED)
        self.slots.drop(slot)
        self.metrics.removed.labels(reason).inc()
        self._log("removed", path=slot.path_id, container=_short(slot), reason=reason)
        self._update_gauges()
        self._wake_refill.set()

    # ----- visitors' work (saving.py) -----

    async def keep_all(self) -> int:
        """Save the work of every notebook in use, and leave the notebooks as they are: the node
        is shutting down, and its containers will not come back (app.py calls this after stop(),
        so nothing else acts on a slot meanwhile). Returns how many were saved in time."""
        in_use = [s for s in self.slots.values() if s.state is SlotState.IN_USE and s.keep]
        return await self._saver.keep_all(in_use)

    async def restore_work(self, slot: Slot, key_digest: str) -> bool:
        """Unpack the visitor's saved work into the notebook just handed to them (before their
        redirect); False when it could not be done (WorkSaver.restore_work)."""
        return await self._saver.restore_work(slot, key_digest)

    async def sweep_saved(self) -> None:
        """Remove saved work whose time is up, and publish what is kept."""
        await self._saver.sweep()

    # ----- healing -----

    async def reconcile_once(self) -> None:
        """Agree with Docker and the proxy: adopt, restore routes, remove the dead.

        Each step is tried on its own: one container Docker refuses to remove does not keep
        everyone else's route from being restored.
        """
        self.plan_capacity()
        current = await self._guarded("image", self.docker.image_id, self.config.image)
        if isinstance(current, str) and current != self.image_id:
            if self.image_id:
                self._log("new-image", image=self.config.image, id=current)
            self.image_id = current
        containers = await self.docker.list_pool(self.pool_name)
        routes, routes_kept = await self.proxy.listing()
        plan = plan_reconcile(self.slots, containers, routes, routes_kept)
        failed = False
        for container in plan.remove_containers:
            failed |= not await self._guarded(
                "reconcile_remove", self._remove_untracked, container.id, container.path_id,
                container.status,
            )  # fmt: skip
        for path_id in plan.discard:
            slot = self.slots.get(path_id)
            if slot is not None:
                self._begin_removal(slot, "dead")
        for path_id in plan.forget:
            slot = self.slots.get(path_id)
            if slot is not None and await self._guarded(
                "reconcile_forget", self._container_gone, slot
            ):
                self._begin_removal(slot, "vanished")
        for path_id in plan.delete_routes:
            if path_id not in self.slots:  # a slot may have appeared since the listing
                if await self._guarded("reconcile_route", self.proxy.delete_route, path_id):
                    self._log("route-deleted", path=path_id)
                else:
                    failed = True
        for path_id in plan.add_routes:
            slot = self.slots.get(path_id)
            if slot is not None and slot.state in (SlotState.READY, SlotState.IN_USE):
                if await self._guarded(
                    "reconcile_route",
                    self.proxy.add_route,
                    path_id,
                    slot.target or "",
                    self._route_data(slot),
                ):
                    self.metrics.routes_restored.inc()
                    self._log("route-restored", path=path_id, target=slot.target)
                else:
                    failed = True
        for adoption in plan.adopt:
            held = sum(1 for slot in self.slots.values() if slot.state in HOLDS_A_CONTAINER)
            abandoned = adoption.container.path_id in self._abandoned
            full = held >= self._capacity
            if abandoned or (adoption.state is SlotState.STARTING and full):
                # Never handed out, and the pool is full (a create that timed out after Docker
                # made the container, then was retried): a surplus, not a seat.
                container = adoption.container
                failed |= not await self._guarded(
                    "reconcile_remove", self._remove_untracked, container.id, container.path_id,
                    "surplus",
                )  # fmt: skip
                continue
            failed |= not await self._guarded("adopt", self._adopt, adoption)
        for path_id in select_surplus(self.slots.values(), self._capacity):
            self._begin_removal(self.slots[path_id], "surplus")
        self._refresh(0)  # those of an image the name no longer points to, a few a pass
        if not routes_kept and not failed:
            # Last, and only when every step took: every route is in place before the marker
            # says the proxy holds them all.
            await self.proxy.mark_routes_kept(self._own_url)
        self._update_gauges()
        if not plan.empty:
            self._wake_refill.set()

    async def _remove_untracked(self, container_id: str, path_id: str, status: str) -> None:
        """A container of the pool that no slot holds: dead, a removal cut short, a surplus."""
        await self.docker.remove(container_id)
        self._abandoned.discard(path_id)
        if path_id not in self.slots:
            await self.proxy.delete_route(path_id)
        reason = "surplus" if status == "surplus" else "dead"
        self.metrics.removed.labels(reason).inc()
        self._log(
            "removed", path=path_id, container=container_id[:12],
            reason=reason, status=status,
        )  # fmt: skip

    async def _container_gone(self, slot: Slot) -> bool:
        if slot.container_id is None:
            return True
        record = await self.docker.inspect(slot.container_id)
        return record is None or not record.running

    async def _adopt(self, adoption: Adoption) -> None:
        record = await self.docker.inspect(adoption.container.id)
        if record is None or not record.running or not record.target:
            return
        if record.path_id in self.slots:
            return  # adopted meanwhile
        in_use = adoption.state is SlotState.IN_USE
        now_wall, now_mono = self.clock(), self.monotonic()
        handed_out_at = (adoption.handed_out_at or now_wall) if in_use else None
        slot = Slot(
            path_id=record.path_id,
            state=adoption.state,
            created=record.created,
            created_mono=observed_at(record.created, now_wall, now_mono, -math.inf),
            token=record.token,
            container_id=record.id,
            target=record.target,
            handed_out_at=handed_out_at,
            image_id=record.image_id,
            keep=adoption.keep if in_use else None,
        )
        if handed_out_at is not None:
            slot.handed_out_mono = observed_at(handed_out_at, now_wall, now_mono, -math.inf)
            slot.last_active_mono = slot.handed_out_mono
        self.slots.add(slot)
        self.metrics.adopted.inc()
        self._log(
            "adopted",
            path=slot.path_id,
            container=_short(slot),
            state=slot.state.value,
        )
        if in_use:
            await self.proxy.add_route(slot.path_id, slot.target or "", self._route_data(slot))
            self._weights.give(slot)
        else:
            self._background(self._boot(slot, create=False))

    # ----- culling -----

    def _refresh(self, max_age: float) -> None:
        """Replace a few warm notebooks due for it (decisions.select_for_refresh)."""
        for path_id, why in select_for_refresh(
            self.slots.values(),
            self.monotonic(),
            max_age,
            at_most=max(1, self._capacity // 10),
            image_id=self.image_id,
        ):
            self._begin_removal(self.slots[path_id], why)

    async def cull_once(self) -> None:
        """Cull the notebooks idle for cull_timeout or handed out longer than cull_max, and
        replace warm ones older than warm_max_age (a few a pass, oldest first)."""
        config = self.config
        self._refresh(config.warm_max_age)
        in_use = [slot for slot in self.slots.values() if slot.state is SlotState.IN_USE]
        if not in_use:
            return
        routes = await self.proxy.routes()
        limit = asyncio.Semaphore(8)

        async def look(slot: Slot) -> None:
            async with limit:
                seen = await self.probe.seen(slot)
            route = routes.get(slot.path_id)
            self._observe(slot, route.last_activity if route else None, seen)

        await asyncio.gather(*(look(slot) for slot in in_use))
        now = self.monotonic()
        usages = [usage_of(slot) for slot in in_use if slot.state is SlotState.IN_USE]
        for path_id, reason in select_for_cull(usages, now, config.cull_timeout, config.cull_max):
            slot = self.slots.get(path_id)
            if slot is not None and slot.state is SlotState.IN_USE:
                self.metrics.culled.labels(reason).inc()
                self._log(
                    "culled", path=path_id, container=_short(slot),
                    reason=reason,
                )  # fmt: skip
                self._begin_removal(slot, "culled")

    def _observe(self, slot: Slot, proxy_last: datetime | None, seen: Seen) -> None:
        """Fold one look at a notebook into its monotonic last-activity (decisions.observed_at)."""
        wall_now, mono_now = self.clock(), self.monotonic()
        floor = slot.last_looked_mono or slot.handed_out_mono or slot.created_mono
        fresh = (proxy_last, seen.last_activity)
        for before, value in zip(slot.seen_activity, fresh, strict=True):
            if value is not None and value != before:
                moment = observed_at(value, wall_now, mono_now, floor)
                slot.last_active_mono = max(slot.last_active_mono or moment, moment)
        slot.seen_activity = fresh
        slot.busy, slot.answered = seen.busy, seen.answered
        slot.last_looked_mono = mono_now

    # ----- helpers -----

    def _route_data(self, slot: Slot, state: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {ROUTE_CONTAINER: slot.container_id, ROUTE_STATE: ROUTE_POOLED}
        if slot.handed_out_at is not None:
            data[ROUTE_STATE] = ROUTE_HANDED_OUT
            data[ROUTE_HANDED_OUT_AT] = isoformat(slot.handed_out_at)
            if slot.keep:
                data[ROUTE_KEEP] = slot.keep
        if state is not None:
            data[ROUTE_STATE] = state
        return data

    async def _every(self, period: float, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `action` now and then every `period` seconds; a failure is logged, not fatal, and
        each pass that completed is counted (tmpnb_passes_total)."""
        while True:
            if await self._guarded(action.__name__, action):
                self.metrics.passes.labels(action.__name__).inc()
            await self._sleep(period)

    async def _guarded(self, kind: str, action: Callable[..., Any], *args: Any) -> Any:
        """Run one step; a failure is logged and counted, and gives False instead of raising."""
        try:
            result = await action(*args)
        except asyncio.CancelledError:
            raise
        except _EXPECTED as error:
            self._error(kind, error)
            return False
        except Exception:  # a bug must not stop healing; log it loudly and go on
            self._bug(kind)
            return False
        return True if result is None else result

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task's unexpected exception is a logged, counted bug, never asyncio's
        "Task exception was never retrieved"."""
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self.metrics.errors.labels("bug").inc()
            logging.getLogger("tmpnb").error(
                "event=error kind=bug where=%s",
                getattr(task.get_coro(), "__name__", task.get_name()),
                exc_info=error,
            )

    def _error(self, kind: str, error: Exception, **fields: Any) -> None:
        self.metrics.errors.labels(kind).inc()
        self._log("error", logging.WARNING, kind=kind, error=error, **fields)

    def _bug(self, where: str, **fields: Any) -> None:
        """An exception nothing expected: kind=bug in the log (with its traceback) and metrics."""
        self.metrics.errors.labels("bug").inc()
        details = " ".join(f"{key}={value}" for key, value in fields.items())
        logging.getLogger("tmpnb").exception("event=error kind=bug where=%s %s", where, details)

    def _update_gauges(self) -> None:
        count = self.slots.count
        self.metrics.available.set(count(SlotState.READY))
        self.metrics.in_use.set(count(SlotState.IN_USE) + count(SlotState.CLAIMED))
        self.metrics.starting.set(count(SlotState.STARTING))


def _short(slot: Slot) -> str | None:
    return slot.container_id[:12] if slot.container_id else None
