"""The decision logic: what to adopt, restore, remove and cull. Pure, with a fixed clock."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.decisions import (
    Usage,
    client_address,
    cull_in,
    in_use_by,
    observed_at,
    plan_reconcile,
    select_for_cull,
    select_for_refresh,
    select_surplus,
    spawn_count,
    weights_due_in,
)
from orchestrator.model import ContainerRecord, RouteRecord, Slot, SlotState

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def container(path_id, status="running", target=None):
    return ContainerRecord(
        id=f"c-{path_id}", path_id=path_id, status=status, created=NOW - HOUR,
        target=target or f"http://10.0.0.1:{path_id}",
    )  # fmt: skip


def route(path_id, state="pooled", target=None, handed_out_at=None):
    return RouteRecord(
        path_id=path_id, target=target or f"http://10.0.0.1:{path_id}", state=state,
        handed_out_at=handed_out_at,
    )  # fmt: skip


def slot(path_id, state, created_mono=0.0):
    return Slot(
        path_id=path_id, state=state, created=NOW - HOUR, created_mono=created_mono,
        target=f"http://10.0.0.1:{path_id}",
    )  # fmt: skip


class TestAdoptionAtStart:
    def test_a_container_whose_route_says_pooled_is_checked_then_offered(self):
        plan = plan_reconcile({}, [container("a")], {"a": route("a")})
        assert [(a.container.path_id, a.state) for a in plan.adopt] == [("a", SlotState.STARTING)]

    def test_a_handed_out_container_stays_handed_out_with_its_time(self):
        at = NOW - timedelta(minutes=5)
        plan = plan_reconcile(
            {}, [container("a")], {"a": route("a", "handed_out", handed_out_at=at)}
        )
        assert [(a.state, a.handed_out_at) for a in plan.adopt] == [(SlotState.IN_USE, at)]

    def test_without_any_record_a_container_is_treated_as_in_use(self):
        plan = plan_reconcile({}, [container("a")], {})
        assert [a.state for a in plan.adopt] == [SlotState.IN_USE]

    def test_without_a_route_while_the_proxy_kept_every_route_it_was_never_handed_out(self):
        # Started by a process killed before it routed it: checked, then offered, not held.
        plan = plan_reconcile({}, [container("a")], {}, routes_kept=True)
        assert [a.state for a in plan.adopt] == [SlotState.STARTING]

    def test_a_handed_out_route_wins_whether_or_not_the_proxy_kept_every_route(self):
        routes = {"a": route("a", "handed_out", handed_out_at=NOW)}
        plan = plan_reconcile({}, [container("a")], routes, routes_kept=True)
        assert [a.state for a in plan.adopt] == [SlotState.IN_USE]

    def test_dead_containers_are_removed_with_their_routes(self):
        plan = plan_reconcile({}, [container("a", "exited")], {"a": route("a")})
        assert [c.path_id for c in plan.remove_containers] == ["a"]
        assert plan.delete_routes == ["a"]
        assert not plan.adopt

    def test_routes_to_no_container_are_deleted(self):
        plan = plan_reconcile({}, [], {"gone": route("gone")})
        assert plan.delete_routes == ["gone"]


class TestContinuousReconcile:
    def test_nothing_to_do_when_everything_agrees(self):
        known = {"a": slot("a", SlotState.READY), "b": slot("b", SlotState.IN_USE)}
        routes = {"a": route("a"), "b": route("b", "handed_out")}
        plan = plan_reconcile(known, [container("a"), container("b")], routes)
        assert plan.empty

    def test_a_route_that_says_the_wrong_state_is_rewritten(self):
        # A hand-out whose write timed out after the proxy took it: the notebook went back to
        # the pool, so its route must say pooled again.
        known = {"a": slot("a", SlotState.READY)}
        plan = plan_reconcile(known, [container("a")], {"a": route("a", "handed_out")})
        assert plan.add_routes == ["a"]

    def test_a_container_whose_removal_was_cut_short_is_removed_not_adopted(self):
        plan = plan_reconcile({}, [container("a")], {"a": route("a", "removing")})
        assert [c.path_id for c in plan.remove_containers] == ["a"] and not plan.adopt

    def test_routes_lost_by_a_proxy_restart_are_restored(self):
        known = {"a": slot("a", SlotState.READY), "b": slot("b", SlotState.IN_USE)}
        plan = plan_reconcile(known, [container("a"), container("b")], {})
        assert sorted(plan.add_routes) == ["a", "b"]

    def test_a_route_to_the_wrong_target_is_rewritten(self):
        known = {"a": slot("a", SlotState.IN_USE)}
        plan = plan_reconcile(known, [container("a")], {"a": route("a", target="http://1.1.1.1:1")})
        assert plan.add_routes == ["a"]

    def test_starting_claimed_and_removing_slots_are_left_to_their_task(self):
        known = {
            "s": slot("s", SlotState.STARTING),
            "c": slot("c", SlotState.CLAIMED),
            "r": slot("r", SlotState.REMOVING),
        }
        containers = [container("s", "created"), container("c"), container("r", "exited")]
        plan = plan_reconcile(known, containers, {"s": route("s"), "c": route("c", "handed_out")})
        assert plan.empty

    def test_a_starting_slot_whose_container_is_not_listed_yet_keeps_its_route(self):
        plan = plan_reconcile({"s": slot("s", SlotState.STARTING)}, [], {"s": route("s")})
        assert plan.empty

    def test_a_tracked_container_that_died_is_removed_by_its_slot(self):
        known = {"a": slot("a", SlotState.IN_USE)}
        plan = plan_reconcile(known, [container("a", "exited")], {"a": route("a")})
        assert plan.discard == ["a"] and not plan.remove_containers
        assert plan.delete_routes == ["a"]

    def test_a_tracked_container_removed_behind_our_back_is_forgotten(self):
        plan = plan_reconcile({"a": slot("a", SlotState.READY)}, [], {"a": route("a")})
        assert plan.forget == ["a"] and plan.delete_routes == ["a"]


class TestCulling:
    """Times are monotonic seconds; the hand-out was at 0, it is now 3600."""

    timeout, now = 600.0, 3600.0

    def usage(self, **overrides):
        return Usage(**{"path_id": "a", "handed_out": 0.0, "last_active": 0.0, **overrides})

    def test_idle_longer_than_the_timeout_is_culled(self):
        assert select_for_cull([self.usage()], self.now, self.timeout, 0) == [("a", "idle")]

    def test_recent_activity_keeps_it(self):
        usage = self.usage(last_active=self.now - 60)
        assert select_for_cull([usage], self.now, self.timeout, 0) == []

    def test_a_busy_kernel_is_not_idle(self):
        assert select_for_cull([self.usage(busy=True)], self.now, self.timeout, 0) == []

    def test_a_notebook_that_does_not_answer_is_not_called_idle(self):
        assert select_for_cull([self.usage(answered=False)], self.now, self.timeout, 0) == []

    def test_cull_max_counts_from_the_hand_out_not_the_container_s_creation(self):
        # A pool provisioned hours before the room arrives: the hand-out was 30 min ago.
        usage = self.usage(handed_out=self.now - 1800, last_active=self.now, busy=True)
        assert select_for_cull([usage], self.now, self.timeout, 3600) == []
        assert select_for_cull([usage], self.now + 1801, self.timeout, 3600) == [("a", "max_age")]

    def test_older_than_cull_max_is_culled_even_when_busy(self):
        usage = self.usage(busy=True, last_active=self.now)
        assert select_for_cull([usage], self.now, self.timeout, 3000) == [("a", "max_age")]

    def test_time_left_is_the_sooner_of_idle_and_cull_max(self):
        usage = self.usage(last_active=self.now - 100)
        assert cull_in(usage, self.now, self.timeout, 0) == 500
        assert cull_in(usage, self.now, self.timeout, 3700) == 100
        assert cull_in(self.usage(busy=True), self.now, self.timeout, 0) is None


class TestClockSteps:
    """observed_at: a wall-clock moment read now, on the monotonic clock."""

    def test_a_moment_is_placed_by_its_wall_clock_age(self):
        moment = NOW - timedelta(seconds=30)
        assert observed_at(moment, NOW, 5000.0, floor=4000.0) == 4970.0

    def test_a_forward_step_cannot_age_a_moment_past_the_last_look(self):
        # The wall clock jumped an hour ahead since the last look at 4900: the moment read now
        # is at most 100 s old, not an hour.
        moment = NOW - timedelta(minutes=1)
        stepped = NOW + HOUR
        assert observed_at(moment, stepped, 5000.0, floor=4900.0) == 4900.0

    def test_a_backward_step_cannot_put_a_moment_in_the_future(self):
        assert observed_at(NOW + HOUR, NOW, 5000.0, floor=4900.0) == 5000.0


def test_stale_warm_notebooks_are_replaced_oldest_first_a_few_at_a_time():
    slots = [
        slot("old", SlotState.READY, created_mono=0),
        slot("older", SlotState.READY, created_mono=-10),
        slot("fresh", SlotState.READY, created_mono=90),
        slot("taken", SlotState.IN_USE, created_mono=-20),
    ]
    assert select_for_refresh(slots, 100, max_age=50, at_most=1) == [("older", "refreshed")]
    assert [p for p, _ in select_for_refresh(slots, 100, max_age=50, at_most=5)] == [
        "older",
        "old",
    ]
    assert select_for_refresh(slots, 100, max_age=0, at_most=5) == []


def test_warm_notebooks_of_a_previous_image_go_first_and_those_in_use_stay():
    slots = [
        slot("stale", SlotState.READY, created_mono=0),
        slot("new", SlotState.READY, created_mono=95),
        slot("working", SlotState.IN_USE, created_mono=-20),
    ]
    slots[0].image_id = slots[2].image_id = "sha256:old"
    slots[1].image_id = "sha256:new"
    chosen = select_for_refresh(slots, 100, max_age=50, at_most=1, image_id="sha256:new")
    assert chosen == [("stale", "new_image")]
    assert select_for_refresh(slots, 100, max_age=0, at_most=5, image_id="sha256:new") == [
        ("stale", "new_image")
    ]


def test_surplus_is_taken_from_warm_notebooks_never_from_those_in_use():
    slots = [slot("a", SlotState.IN_USE), slot("b", SlotState.READY, created_mono=5)]
    slots += [slot("c", SlotState.READY, created_mono=1)]
    assert select_surplus(slots, 2) == ["c"]
    assert select_surplus(slots, 3) == []
    assert select_surplus([slot("a", SlotState.IN_USE)] * 3, 1) == []


def test_the_pool_is_filled_to_capacity_counting_handed_out_containers():
    slots = [slot("a", SlotState.IN_USE), slot("b", SlotState.READY), slot("c", SlotState.REMOVING)]
    # A slot being removed holds its container until Docker confirms: it still counts.
    assert spawn_count(slots, 4, max_boots=8) == 1
    assert spawn_count(slots, 1, max_boots=8) == 0


def test_no_more_boots_at_once_than_max_boots():
    booting = [slot(f"s{i}", SlotState.STARTING) for i in range(3)]
    assert spawn_count([], 50, max_boots=4) == 4
    assert spawn_count(booting, 50, max_boots=4) == 1
    assert spawn_count(booting, 50, max_boots=3) == 0
    # More booting than allowed (adopted after a restart, or max_boots lowered): none more.
    assert spawn_count(booting, 50, max_boots=2) == 0
    # The capacity still bounds it.
    assert spawn_count(booting, 4, max_boots=10) == 1


@pytest.mark.parametrize(
    ("peer", "forwarded", "hops", "expected"),
    [
        ("127.0.0.1", [], 0, "127.0.0.1"),  # nobody in front
        ("127.0.0.1", ["1.2.3.4"], 0, "127.0.0.1"),  # no proxy trusted: the header is ignored
        ("127.0.0.1", ["198.51.100.7"], 1, "198.51.100.7"),  # configurable-http-proxy in front
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], 1, "198.51.100.7"),  # a spoofed entry ignored
        ("127.0.0.1", ["6.6.6.6", "198.51.100.7"], 1, "198.51.100.7"),  # two header lines
        ("127.0.0.1", ["198.51.100.7, 10.0.0.2"], 2, "198.51.100.7"),  # HAProxy, then the proxy
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7, 10.0.0.2"], 2, "198.51.100.7"),
        ("127.0.0.1", [], 1, "127.0.0.1"),  # came around the proxy (loopback only)
        ("127.0.0.1", [" , "], 1, "127.0.0.1"),  # empty entries are not addresses
    ],
)
def test_the_client_address_is_the_one_the_outermost_trusted_proxy_saw(
    peer, forwarded, hops, expected
):
    assert client_address(peer, forwarded, hops) == expected


def test_notebooks_in_use_are_counted_per_address():
    slots = [slot("a", SlotState.IN_USE), slot("b", SlotState.IN_USE), slot("c", SlotState.READY)]
    slots[0].client = slots[1].client = "10.0.0.1"
    slots[2].client = "10.0.0.2"  # not in use: not counted
    assert in_use_by(slots, "10.0.0.1") == 2
    assert in_use_by(slots, "10.0.0.2") == 0


@given(
    first=st.floats(0, 1000),
    gaps=st.lists(st.floats(0, 10), min_size=1, max_size=20),
    now_after=st.floats(0, 20),
)
def test_weights_are_due_after_a_pause_and_never_later_than_the_longest_wait(
    first, gaps, now_after
):
    last = first + sum(gaps)
    now = last + now_after
    wait = weights_due_in(now, first, last, quiet=0.5, longest=5.0)
    assert wait >= 0
    assert now + wait <= max(now, first + 5.0) + 1e-9  # never later than the longest wait
    if now_after >= 0.5 or now - first >= 5.0:
        assert wait == 0
    else:
        assert wait > 0  # within a burst that has not run too long: wait for its pause
