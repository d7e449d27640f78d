"""The decision logic: what to adopt, restore, remove and cull. Pure, with a fixed clock."""

from datetime import UTC, datetime, timedelta

import pytest
from orchestrator.decisions import (
    Activity,
    client_address,
    in_use_by,
    plan_reconcile,
    select_for_cull,
    spawn_count,
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


def slot(path_id, state):
    return Slot(
        path_id=path_id, state=state, created=NOW - HOUR, target=f"http://10.0.0.1:{path_id}"
    )


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
        plan = plan_reconcile(
            known, [container("a"), container("b")], {"a": route("a"), "b": route("b")}
        )
        assert plan.empty

    def test_routes_lost_by_a_proxy_restart_are_restored(self):
        known = {"a": slot("a", SlotState.READY), "b": slot("b", SlotState.IN_USE)}
        plan = plan_reconcile(known, [container("a"), container("b")], {})
        assert sorted(plan.add_routes) == ["a", "b"]

    def test_a_route_to_the_wrong_target_is_rewritten(self):
        known = {"a": slot("a", SlotState.IN_USE)}
        plan = plan_reconcile(known, [container("a")], {"a": route("a", target="http://1.1.1.1:1")})
        assert plan.add_routes == ["a"]

    def test_starting_and_removing_slots_are_left_to_their_task(self):
        known = {"s": slot("s", SlotState.STARTING), "r": slot("r", SlotState.REMOVING)}
        containers = [container("s", "created"), container("r", "exited")]
        plan = plan_reconcile(known, containers, {"s": route("s")})
        assert plan.empty

    def test_a_starting_slot_whose_container_is_not_listed_yet_keeps_its_route(self):
        plan = plan_reconcile({"s": slot("s", SlotState.STARTING)}, [], {"s": route("s")})
        assert plan.empty

    def test_a_tracked_container_that_died_is_removed_and_forgotten(self):
        known = {"a": slot("a", SlotState.IN_USE)}
        plan = plan_reconcile(known, [container("a", "exited")], {"a": route("a")})
        assert [c.path_id for c in plan.remove_containers] == ["a"]
        assert plan.forget == ["a"] and plan.delete_routes == ["a"]

    def test_a_tracked_container_removed_behind_our_back_is_forgotten(self):
        plan = plan_reconcile({"a": slot("a", SlotState.READY)}, [], {"a": route("a")})
        assert plan.forget == ["a"] and plan.delete_routes == ["a"]


class TestCulling:
    timeout = timedelta(minutes=10)

    def activity(self, **overrides):
        fields = {"path_id": "a", "created": NOW - HOUR, "handed_out_at": NOW - HOUR}
        return Activity(**{**fields, **overrides})

    def test_idle_longer_than_the_timeout_is_culled(self):
        chosen = select_for_cull(
            [self.activity(proxy_last_activity=NOW - HOUR)], NOW, self.timeout, None
        )
        assert chosen == [("a", "idle")]

    def test_recent_proxy_traffic_keeps_it(self):
        activity = self.activity(proxy_last_activity=NOW - timedelta(minutes=1))
        assert select_for_cull([activity], NOW, self.timeout, None) == []

    def test_recent_notebook_activity_keeps_it(self):
        activity = self.activity(notebook_last_activity=NOW - timedelta(minutes=1))
        assert select_for_cull([activity], NOW, self.timeout, None) == []

    def test_a_busy_kernel_is_not_idle(self):
        activity = self.activity(proxy_last_activity=NOW - HOUR, busy=True)
        assert select_for_cull([activity], NOW, self.timeout, None) == []

    def test_a_notebook_that_does_not_answer_is_not_called_idle(self):
        activity = self.activity(proxy_last_activity=NOW - HOUR, answered=False)
        assert select_for_cull([activity], NOW, self.timeout, None) == []

    def test_the_idle_clock_starts_at_hand_out(self):
        activity = self.activity(created=NOW - 5 * HOUR, handed_out_at=NOW - timedelta(minutes=2))
        assert select_for_cull([activity], NOW, self.timeout, None) == []

    def test_older_than_cull_max_is_culled_even_when_busy(self):
        activity = self.activity(created=NOW - 5 * HOUR, busy=True, proxy_last_activity=NOW)
        assert select_for_cull([activity], NOW, self.timeout, 4 * HOUR) == [("a", "max_age")]

    def test_naive_clocks_are_refused(self):
        with pytest.raises(ValueError, match="timezone-aware"):
            select_for_cull([], datetime(2026, 1, 1), self.timeout, None)


def test_the_pool_is_filled_to_capacity_counting_handed_out_containers():
    slots = [slot("a", SlotState.IN_USE), slot("b", SlotState.READY), slot("c", SlotState.REMOVING)]
    assert spawn_count(slots, 4) == 2
    assert spawn_count(slots, 1) == 0


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
