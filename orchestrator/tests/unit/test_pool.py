"""The pool under faults: random schedules of visitors, culls, drains, restarts and failures.

Each schedule runs the real `Pool` against the stand-ins of fakes.py on a virtual clock, with
failures injected into any Docker or proxy call (before it takes effect, or after: a lost answer)
and the orchestrator stopped and restarted at random points, which cancels its tasks wherever
they are waiting. After every step the safety invariants must hold; once the faults stop and the
pool has settled, the liveness ones must too:

- safety: no container is handed to two visitors; a container once handed out is never offered
  again; a hand-out is recorded in its route before the visitor is redirected.
- liveness: no slot is stuck (every slot is ready or in use), the pool holds its capacity
  (pool_size, or a booked workshop's while it is on), nothing
  leaked (Docker's running containers of the pool are exactly the slots), and every slot has its
  route, saying what the slot is.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta

import pytest
from fakes import Clock, Faults, World, make_config, settle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import keep, schedule
from orchestrator.model import ROUTE_HANDED_OUT, ROUTE_POOLED, ROUTE_STATE, SlotState
from orchestrator.pool import HandOutFailed, Pool
from orchestrator.weights import WEIGHTS_LATEST_SECONDS, WEIGHTS_QUIET_SECONDS


def check_safety(pool: Pool, world: World) -> None:
    assert len(world.handed) == len(set(world.handed)), "a container was handed out twice"
    handed = set(world.handed)
    for slot in pool.slots.values():
        if slot.state in (SlotState.READY, SlotState.CLAIMED):
            assert slot.container_id not in handed, f"{slot.path_id} offered after its hand-out"


def check_settled(pool: Pool, world: World, exact: bool = True) -> None:
    check_safety(pool, world)
    states = [slot.state for slot in pool.slots.values()]
    for state in SlotState:  # the counts the hand-out reads agree with the slots themselves
        assert pool.slots.count(state) == states.count(state), f"{state} miscounted"
    assert set(states) <= {SlotState.READY, SlotState.IN_USE}, f"stuck slots: {states}"
    if exact:
        assert len(pool.slots) == pool.capacity, "the pool does not hold its capacity"
    else:
        # Beyond the capacity only notebooks in use: adopted as possibly in use with no record
        # left (never offered; freed when idle), or handed out while a booking was on.
        assert len(pool.slots) >= pool.capacity, "the pool holds less than its capacity"
        if len(pool.slots) > pool.capacity:
            assert SlotState.READY not in states, "a warm notebook beyond the capacity"
    running = {cid for cid, c in world.docker.running().items()}
    tracked = {slot.container_id for slot in pool.slots.values()}
    assert running == tracked, f"leaked {running - tracked}, missing {tracked - running}"
    assert not set(world.docker.containers) - running, "a stopped container was left behind"
    routes = world.proxy.pool_routes()
    assert set(routes) == set(pool.slots), "routes and slots disagree"
    for path_id, slot in pool.slots.items():
        want = ROUTE_HANDED_OUT if slot.state is SlotState.IN_USE else ROUTE_POOLED
        assert routes[path_id].state == want, f"{path_id}'s route says {routes[path_id].state}"
        assert routes[path_id].target == slot.target


# Three browsers come and go all day, so work kept under one key is merged across notebooks.
KEYS = [keep.key_digest(keep.new_key()) for _ in range(3)]


async def visit(pool: Pool, world: World) -> None:
    digest = world.faults.rng.choice(KEYS)
    try:
        slot = await pool.hand_out("198.51.100.7", keep_as=digest)
    except HandOutFailed:
        return
    if slot is None:
        return
    route = world.proxy.table[f"/user/{slot.path_id}"]
    assert route[ROUTE_STATE] == ROUTE_HANDED_OUT, "redirected before the hand-out was recorded"
    world.handed.append(slot.container_id)
    # The visitor writes a file, after the hand-out: theirs to keep.
    written = world.clock.wall().timestamp() + 1
    world.docker.containers[slot.container_id].home[f"work-{slot.path_id}.txt"] = (b"x", written)


def work_in_use(pool: Pool, world: World) -> dict[str, set[str]]:
    """The files of every notebook in use, by the key its work is kept under."""
    work: dict[str, set[str]] = {}
    for slot in pool.slots.values():
        container = world.docker.containers.get(slot.container_id or "")
        if slot.state is SlotState.IN_USE and slot.keep and container is not None:
            work.setdefault(slot.keep, set()).update(container.home)
    return work


def check_kept(pool: Pool, work: dict[str, set[str]]) -> None:
    """Every file of the notebooks culled (without faults) is in its visitor's saved work."""
    for digest, names in work.items():
        if not names:
            continue  # nothing made (a hand-out whose answer was lost): nothing to keep
        saved = pool.saved.lookup(digest)
        assert saved is not None and names <= set(saved.files), f"work lost: {names}"


ACTIONS = st.sampled_from(
    [
        "visit", "visits", "cull_idle", "cull", "drain", "reconcile", "restart", "kill",
        "proxy_restart", "wait", "clock_step", "book", "unbook",
    ]
)  # fmt: skip


async def run_schedule(actions: list[str], seed: int, rate: float, state_dir: str) -> None:
    faults = Faults(rate=rate)
    faults.rng.seed(seed)
    # Fewer boots at once than the capacity: a refill that is not woken when a boot ends shows.
    config = make_config(
        pool_size=4, cull_timeout=600, cull_period=60, state_dir=state_dir, max_boots=2
    )
    world = World(faults, config=config)
    pool = world.pool()
    await pool.start(periodic=False)
    try:
        for action in actions:
            if action == "visit":
                await visit(pool, world)
            elif action == "visits":
                await asyncio.gather(*(visit(pool, world) for _ in range(3)))
            elif action == "cull_idle":
                world.clock.advance(700)  # everyone in use is idle past cull_timeout
                await pool._guarded("cull", pool.cull_once)
            elif action == "cull":
                await pool._guarded("cull", pool.cull_once)
            elif action == "drain":
                await pool._guarded("drain", pool.drain)
            elif action == "reconcile":
                await pool._guarded("reconcile", pool.reconcile_once)
            elif action == "restart":  # SIGTERM or kill -9: every task stops where it waits
                await pool.stop()
                pool = world.pool()
                await pool.start(periodic=False)
            elif action == "kill" and world.docker.running():
                world.docker.kill(faults.rng.choice(sorted(world.docker.running())))
            elif action == "proxy_restart":
                world.proxy.restart()
            elif action == "clock_step":
                world.clock.step_wall(faults.rng.choice((-3600, 3600)))
            elif action == "book":  # a workshop booked at run time, on now, for half an hour
                now = world.clock.wall()
                end = now + timedelta(minutes=30)
                pool.bookings.add(schedule.Booking(now, end, faults.rng.randint(5, 8)))
                pool.plan_capacity()
            elif action == "unbook":
                pool.bookings.clear_added()
                pool.plan_capacity()
            else:
                for _ in range(faults.rng.randint(1, 30)):
                    await asyncio.sleep(0)
            check_safety(pool, world)
        faults.active = False
        await settle(pool, world)
        check_settled(pool, world, exact=False)
        work = work_in_use(pool, world)
        world.clock.advance(700)  # the day ends: everyone left is idle past cull_timeout
        await pool._guarded("cull", pool.cull_once)
        await settle(pool, world)
        check_settled(pool, world)
        check_kept(pool, work)
    finally:
        await pool.stop()


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    actions=st.lists(ACTIONS, min_size=1, max_size=25),
    seed=st.integers(0, 2**32 - 1),
    rate=st.sampled_from([0.0, 0.1, 0.3, 0.6]),
)
def test_random_schedules_with_faults_keep_every_invariant(actions, seed, rate):
    with tempfile.TemporaryDirectory() as state_dir:  # bookings outlive the restarts
        asyncio.run(run_schedule(actions, seed, rate, state_dir))


# ----- the numbered failures of the pool's issue, each as a case that failed before its fix -----


def run(coroutine):
    return asyncio.run(coroutine)


async def started_world(faults: Faults | None = None, **options) -> tuple[World, Pool]:
    options = {"pool_size": 2, "cull_timeout": 600, "cull_period": 60, **options}
    world = World(faults or Faults(), config=make_config(**options))
    pool = world.pool()
    await pool.start(periodic=False)
    await settle(pool, world)
    check_settled(pool, world)
    return world, pool


def test_a_fill_boots_at_most_max_boots_at_once_and_completes():
    async def scenario():
        world = World(Faults(), config=make_config(pool_size=7, max_boots=2))
        pool = world.pool()
        await pool.start(periodic=False)
        most = 0
        for _ in range(400):
            most = max(most, pool.slots.count(SlotState.STARTING))
            if pool.slots.count(SlotState.READY) == 7:
                break
            await asyncio.sleep(0)
        assert most == 2
        await settle(pool, world)
        check_settled(pool, world)
        await pool.stop()

    run(scenario())


def test_a_culled_notebook_whose_removal_fails_is_never_handed_out_again():
    async def scenario():
        world, pool = await started_world()
        slot = await pool.hand_out("a")
        world.handed.append(slot.container_id)
        world.faults.plan["docker.remove"] = ["before"] * 1000
        world.clock.advance(700)
        await pool.cull_once()
        for _ in range(20):  # its removal is failing and retrying
            await asyncio.sleep(0)
            await pool._guarded("reconcile", pool.reconcile_once)
            for _ in range(2):
                other = await pool.hand_out("b")
                if other is not None:
                    assert other.container_id != slot.container_id
                    world.handed.append(other.container_id)
        assert world.proxy.table[f"/user/{slot.path_id}"][ROUTE_STATE] == "removing"
        assert pool.slots[slot.path_id].state is SlotState.REMOVING
        world.faults.plan.clear()  # Docker answers again
        await settle(pool, world)
        assert slot.container_id not in world.docker.containers
        check_settled(pool, world)
        await pool.stop()

    run(scenario())


def test_a_stop_in_the_middle_of_a_cull_finishes_the_removal_after_the_restart():
    async def scenario():
        world, pool = await started_world()
        slot = await pool.hand_out("a")
        world.handed.append(slot.container_id)
        world.faults.plan["docker.remove"] = ["before"] * 3
        world.clock.advance(700)
        await pool.cull_once()
        route = f"/user/{slot.path_id}"
        for _ in range(50):  # until the removal has begun: the route says so
            if world.proxy.table[route][ROUTE_STATE] == "removing":
                break
            await asyncio.sleep(0)
        assert world.proxy.table[route][ROUTE_STATE] == "removing"
        await pool.stop()  # SIGTERM while the removal waits to retry
        assert slot.container_id in world.docker.containers
        pool = world.pool()
        await pool.start(periodic=False)
        for _ in range(3):
            assert slot.path_id not in pool.slots or pool.slots[slot.path_id].state in (
                SlotState.REMOVING,
                SlotState.IN_USE,
            )
            other = await pool.hand_out("b")
            if other is not None:
                assert other.container_id != slot.container_id
                world.handed.append(other.container_id)
        await settle(pool, world)
        assert slot.container_id not in world.docker.containers
        check_settled(pool, world)
        await pool.stop()

    run(scenario())


def test_spawns_caught_by_an_engine_restart_do_not_stay_starting():
    async def scenario():
        faults = Faults()
        faults.plan["docker.create_and_start"] = ["before", "after", "before"]
        _, pool = await started_world(faults)
        assert pool.metrics.errors.labels("spawn")._value.get() >= 3
        await pool.stop()

    run(scenario())


def test_one_failing_removal_does_not_stop_the_routes_of_everyone_else_coming_back():
    async def scenario():
        world, pool = await started_world(pool_size=3)
        await pool.stop()
        dead = next(iter(world.docker.running()))
        world.docker.kill(dead)  # died while the orchestrator was down
        world.proxy.restart()  # and the proxy lost every route
        world.faults.plan["docker.remove"] = ["before"]  # Docker refuses to remove the dead one
        pool = world.pool()
        await pool.start(periodic=False)  # its first reconcile pass meets all of that
        alive = {c.labels["tmpnb.path"] for c in world.docker.running().values()}
        assert len(alive) == 2
        routed = {path.rsplit("/", 1)[1] for path in world.proxy.table if "/user/" in path}
        assert alive <= routed, "the failed removal kept the others' routes from coming back"
        await settle(pool, world)
        check_settled(pool, world, exact=False)
        await pool.stop()

    run(scenario())


def test_a_proxy_blip_costs_one_retry_and_no_warm_notebook():
    async def scenario():
        world, pool = await started_world(pool_size=3)
        before = set(world.docker.containers)
        world.faults.plan["proxy.add_route"] = ["before", "before", "before"]
        for _ in range(3):
            with pytest.raises(HandOutFailed):
                await pool.hand_out("a")
        assert set(world.docker.containers) == before
        assert pool.available == 3
        slot = await pool.hand_out("a")
        assert slot is not None and slot.container_id in before
        await pool.stop()

    run(scenario())


def test_drain_takes_warm_notebooks_out_of_the_pool_before_it_waits():
    async def scenario():
        _, pool = await started_world(pool_size=2)
        drain = asyncio.ensure_future(pool.drain())
        await asyncio.sleep(0)  # the drain began; its removals wait on Docker
        assert await pool.hand_out("a") is None
        await drain
        await pool.stop()

    run(scenario())


# ----- a workshop's day on the virtual clock -----


def test_a_workshop_day_culls_nobody_early_and_the_idle_on_time():
    async def scenario():
        # Defaults: cull_timeout 1 h, cull_max 4 h; provisioned at 09:00 the day before.
        world = World(Faults(), config=make_config(pool_size=3, cull_period=600))
        pool = world.pool()
        await pool.start(periodic=False)
        await settle(pool, world)
        world.clock.advance(29 * 3600)  # the workshop starts at 14:00 the next day
        await pool.cull_once()  # warm ones older than warm_max_age are replaced
        await settle(pool, world)
        worker, luncher = await pool.hand_out("a"), await pool.hand_out("b")
        assert worker and luncher
        kept = {worker.path_id, luncher.path_id}

        async def minutes(count: int, active: set[str]) -> None:
            for _ in range(count // 10):
                world.clock.advance(600)
                for path_id in active:
                    world.probe.activity[path_id] = world.clock.wall()
                await pool.cull_once()
                assert kept <= set(pool.slots), "culled early"

        await minutes(120, kept)  # morning work: both active
        world.clock.step_wall(3600)  # NTP steps the clock an hour ahead at noon
        await pool.cull_once()
        assert kept <= set(pool.slots), "a clock step culled the room"
        world.probe.busy.add(worker.path_id)  # a long computation over lunch
        await minutes(50, set())  # 50 min of lunch: nobody idle an hour yet
        assert luncher.path_id in pool.slots
        await minutes(20, set())  # 70 min: the one who left is culled, the computation stays
        assert luncher.path_id not in pool.slots or pool.slots[luncher.path_id].state in (
            SlotState.REMOVING,
        )
        assert pool.slots[worker.path_id].state is SlotState.IN_USE
        world.probe.busy.clear()
        world.clock.advance(4 * 3600 - 3 * 3600)  # 4 h after the hand-out: cull_max
        await pool.cull_once()
        assert worker.path_id not in pool.slots or pool.slots[worker.path_id].state is (
            SlotState.REMOVING
        )
        await pool.stop()

    run(scenario())


def test_warm_notebooks_are_replaced_a_few_at_a_time_once_stale():
    async def scenario():
        world, pool = await started_world(pool_size=10, warm_max_age=3600)
        first = set(world.docker.containers)
        world.clock.advance(3601)
        await pool.cull_once()
        going = [s for s in pool.slots.values() if s.removal_reason == "refreshed"]
        assert len(going) == 1  # one a pass (pool_size // 10), so the pool stays warm
        await settle(pool, world)
        assert len(set(world.docker.containers) & first) == 9
        check_settled(pool, world)
        await pool.stop()

    run(scenario())


def test_adopted_hand_out_times_survive_a_restart_for_cull_max():
    async def scenario():
        world, pool = await started_world(pool_size=1, cull_max=7200)
        slot = await pool.hand_out("a")
        world.clock.advance(3600)
        await pool.stop()
        pool = world.pool()
        await pool.start(periodic=False)
        adopted = pool.slots[slot.path_id]
        assert adopted.state is SlotState.IN_USE
        assert adopted.handed_out_at == slot.handed_out_at
        world.probe.busy.add(slot.path_id)
        world.clock.advance(3500)
        await pool.cull_once()
        assert pool.slots[slot.path_id].state is SlotState.IN_USE
        world.clock.advance(200)
        await pool.cull_once()
        assert slot.path_id not in pool.slots or pool.slots[slot.path_id].state is (
            SlotState.REMOVING
        )
        await pool.stop()

    run(scenario())


def test_the_clock_under_test_moves_only_when_told():
    clock = Clock()
    before = clock.wall()
    clock.step_wall(60)
    assert clock.wall() - before == timedelta(seconds=60) and clock.mono() == 1000.0


def test_an_unexpected_error_in_a_spawn_is_logged_and_the_slot_is_not_stuck(caplog):
    async def scenario():
        world = World(Faults(), config=make_config(pool_size=2))
        create = world.docker.create_and_start
        calls = []

        async def broken_once(spec):
            calls.append(spec)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return await create(spec)

        world.docker.create_and_start = broken_once
        pool = world.pool()
        await pool.start(periodic=False)
        await settle(pool, world)
        check_settled(pool, world)
        assert pool.metrics.errors.labels("bug")._value.get() == 1
        await pool.stop()

    run(scenario())
    assert "RuntimeError: a bug" in caplog.text


def test_every_docker_failure_is_one_typed_error_with_a_time_out():
    import time

    import requests

    from orchestrator.docker_backend import DockerBackend, DockerError

    backend = DockerBackend(
        max_workers=1, version="auto", container_port=8888, container_ip="127.0.0.1",
        network=None, host_network=False, timeout=0.2,
    )  # fmt: skip

    def refused():
        raise requests.exceptions.ConnectionError("Connection aborted: the engine restarted")

    async def scenario():
        with pytest.raises(DockerError, match="engine restarted"):
            await backend._run("list containers", refused)
        with pytest.raises(DockerError, match=r"no answer from Docker in 0\.2s"):
            await backend._run("start", time.sleep, 1)

    try:
        run(scenario())
    finally:
        backend.close()


def test_a_rebuilt_image_reaches_new_visitors_and_working_ones_keep_theirs():
    async def scenario():
        world, pool = await started_world(pool_size=10)
        working = await pool.hand_out("a")
        world.handed.append(working.container_id)
        world.docker.image = "sha256:" + "b" * 64  # site.yml rebuilt the workshop image
        await settle(pool, world, rounds=200)
        images = {slot.image_id for slot in pool.slots.values() if slot.state is SlotState.READY}
        assert images == {world.docker.image}, "a warm notebook still runs the old material"
        assert pool.slots[working.path_id].state is SlotState.IN_USE
        assert pool.slots[working.path_id].image_id == "sha256:" + "a" * 64
        check_settled(pool, world)
        await pool.stop()

    run(scenario())


def test_a_booked_workshop_grows_the_pool_in_time_and_shrinks_it_after_without_touching_anyone():
    """Booked for 10:00-12:00 with 6 seats on a pool of 2: the pool is full before 10:00 (its lead
    time, from the measured boot rate), and after 12:00 only warm notebooks go."""

    async def scenario():
        clock = Clock()  # 09:00
        start, end = clock.wall() + timedelta(hours=1), clock.wall() + timedelta(hours=3)
        booked = f"{start.isoformat()}/{end.isoformat()}=6"
        world = World(Faults(), clock=clock, config=make_config(pool_size=2, schedule=booked))
        pool = world.pool()
        await pool.start(periodic=False)
        await settle(pool, world)
        assert pool.capacity == 2
        check_settled(pool, world)
        lead = schedule.lead_time(6, pool.boot_rate.seconds_per_notebook)
        clock.advance((start - clock.wall() - lead).total_seconds() - 1)
        await pool.reconcile_once()
        assert pool.capacity == 2, "grew before its lead time"
        clock.advance(2)
        await settle(pool, world)
        assert pool.capacity == 6
        assert clock.wall() < start
        check_settled(pool, world)
        visitors = [await pool.hand_out(f"192.0.2.{n}") for n in range(4)]
        world.handed += [slot.container_id for slot in visitors]
        clock.advance((end - clock.wall()).total_seconds())
        await settle(pool, world)
        assert pool.capacity == 2
        assert all(pool.slots[slot.path_id].state is SlotState.IN_USE for slot in visitors)
        assert len(pool.slots) == 4, "warm notebooks beyond the capacity were kept"
        check_settled(pool, world, exact=False)
        await pool.stop()

    run(scenario())


def test_bookings_added_at_run_time_outlive_a_restart(tmp_path):
    async def scenario():
        world = World(Faults(), config=make_config(pool_size=1, state_dir=str(tmp_path)))
        pool = world.pool()
        await pool.start(periodic=False)
        now = world.clock.wall()
        pool.bookings.add(schedule.Booking(now, now + timedelta(hours=1), 3))
        await pool.stop()
        pool = world.pool()  # a restart in the middle of the workshop
        await pool.start(periodic=False)
        await settle(pool, world)
        assert pool.capacity == 3
        check_settled(pool, world)
        await pool.stop()

    run(scenario())


class ManualClock(Clock):
    """A clock whose sleepers wake only when the test moves time past their deadline, so what a
    task does "meanwhile" can be seen."""

    def __init__(self) -> None:
        super().__init__()
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.mono_now + max(seconds, 0.0), wake))
        await wake

    async def move(self, seconds: float) -> None:
        self.advance(seconds)
        for deadline, wake in list(self.sleepers):
            if deadline <= self.mono_now and not wake.done():
                wake.set_result(None)
        self.sleepers = [(d, w) for d, w in self.sleepers if not w.done()]
        for _ in range(50):
            await asyncio.sleep(0)


def test_a_burst_of_hand_outs_waits_for_no_docker_update_and_every_visitor_gets_the_weight():
    """A room's hand-outs make no Docker call while they come: the visitors' weights are written
    once the burst pauses (WEIGHTS_QUIET_SECONDS), one call each, or at the latest
    WEIGHTS_LATEST_SECONDS after the first hand-out of a stream that never pauses."""

    async def scenario():
        clock = ManualClock()
        world = World(Faults(), clock=clock, config=make_config(pool_size=40, cpu_shares=512))
        pool = world.pool()
        await pool.start(periodic=False)
        await settle(pool, world)
        world.docker.calls.clear()
        burst = [await pool.hand_out("192.0.2.1") for _ in range(3)]  # the same moment
        await clock.move(WEIGHTS_QUIET_SECONDS / 2)
        assert "set_cpu_shares" not in world.docker.calls
        await clock.move(WEIGHTS_QUIET_SECONDS / 2)  # the burst has paused: now
        assert world.docker.calls.count("set_cpu_shares") == 3
        # A stream with no pause of WEIGHTS_QUIET_SECONDS: written only once the first of it
        # has waited WEIGHTS_LATEST_SECONDS.
        stream, waited = [], 0.0
        step = WEIGHTS_QUIET_SECONDS * 0.6
        while world.docker.calls.count("set_cpu_shares") == 3:
            assert waited < WEIGHTS_LATEST_SECONDS, "the stream's weights were never written"
            stream.append(await pool.hand_out("192.0.2.1"))
            await clock.move(step)
            waited += step
        assert waited >= WEIGHTS_LATEST_SECONDS - step
        await clock.move(WEIGHTS_QUIET_SECONDS)
        await settle(pool, world)
        shares = {world.docker.containers[slot.container_id].cpu_shares for slot in burst + stream}
        assert shares == {512}
        assert world.docker.calls.count("set_cpu_shares") == len(burst + stream)  # one each
        await pool.stop()

    run(scenario())


def test_visitors_weigh_more_than_the_pool_on_the_cpu_and_a_refused_update_keeps_the_notebook():
    """Warm and booting notebooks weigh an eighth of a visitor's on the CPU, so a room arriving
    while the pool refills gets the CPU first; the hand-out raises the visitor's notebook."""

    async def scenario():
        world, pool = await started_world(pool_size=3, cpu_shares=512)
        assert {c.cpu_shares for c in world.docker.containers.values()} == {64}
        slot = await pool.hand_out("192.0.2.1")
        await settle(pool, world)
        assert world.docker.containers[slot.container_id].cpu_shares == 512
        warm = [s for s in pool.slots.values() if s.state is SlotState.READY]
        assert {world.docker.containers[s.container_id].cpu_shares for s in warm} == {64}
        world.faults.plan["docker.set_cpu_shares"] = ["before"]
        other = await pool.hand_out("192.0.2.2")
        await settle(pool, world)
        assert pool.slots[other.path_id].state is SlotState.IN_USE  # a working notebook still
        assert world.docker.containers[other.container_id].cpu_shares == 64
        assert pool.metrics.errors.labels("cpu_shares")._value.get() == 1
        await pool.stop()

    run(scenario())


def test_a_clean_shutdown_keeps_the_work_of_every_notebook_in_use(tmp_path):
    async def scenario():
        world, pool = await started_world(pool_size=3, state_dir=str(tmp_path))
        keys = KEYS[:2]
        slots = [await pool.hand_out("198.51.100.7", keep_as=digest) for digest in keys]
        later = world.clock.wall().timestamp() + 5
        for number, slot in enumerate(slots):
            world.docker.containers[slot.container_id].home[f"mine-{number}.txt"] = (b"x", later)
        await pool.stop()
        assert await pool.keep_all() == 2
        for number, digest in enumerate(keys):
            assert pool.saved.lookup(digest).files == {f"mine-{number}.txt": 1}
        # Saved, not removed: the machine's shutdown takes the containers, not the orchestrator.
        assert {slot.container_id for slot in slots} <= set(world.docker.containers)

    run(scenario())
