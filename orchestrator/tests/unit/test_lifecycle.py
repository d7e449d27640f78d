"""The slot state machine (lifecycle.py): every path through its table keeps the invariants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.lifecycle import HOLDS_A_CONTAINER, TRANSITIONS, Slots, Step, next_state, step
from orchestrator.model import Slot, SlotState

S = SlotState


def test_a_container_is_offered_again_only_when_its_hand_out_was_never_written():
    into_offer = {(state, action) for (state, action), to in TRANSITIONS.items() if to is S.READY}
    assert into_offer == {(S.STARTING, Step.BOOTED), (S.CLAIMED, Step.RELEASED)}


def test_every_state_but_gone_can_be_removed_and_removing_ends_only_in_gone():
    for state in HOLDS_A_CONTAINER - {S.REMOVING}:
        assert next_state(state, Step.REMOVE) is S.REMOVING
    assert {to for (state, _), to in TRANSITIONS.items() if state is S.REMOVING} == {S.GONE}
    assert not [key for key in TRANSITIONS if key[0] is S.GONE]


def test_a_step_the_table_does_not_allow_changes_nothing():
    slot = Slot(path_id="a", state=S.IN_USE, created=datetime.now(UTC), created_mono=0.0)
    assert not step(slot, Step.CLAIM)
    assert slot.state is S.IN_USE
    assert not step(slot, Step.BOOTED)
    assert step(slot, Step.REMOVE) and slot.state is S.REMOVING
    assert not step(slot, Step.REMOVE)  # a second owner does not get it


@given(st.lists(st.sampled_from(list(Step)), max_size=40))
def test_once_handed_out_never_offered_again_on_any_path(actions):
    slot = Slot(path_id="a", state=S.STARTING, created=datetime.now(UTC), created_mono=0.0)
    handed_out = False
    for action in actions:
        step(slot, action)
        handed_out |= slot.state is S.IN_USE
        if handed_out:
            assert slot.state not in (S.READY, S.CLAIMED, S.STARTING)


@pytest.mark.parametrize("state", list(S))
def test_no_state_is_a_dead_end_except_gone(state):
    reachable_exit = any(key[0] is state for key in TRANSITIONS)
    assert reachable_exit is (state is not S.GONE)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "step", "drop"]), st.integers(0, 4), st.sampled_from(Step)
        ),
        max_size=80,
    )
)
def test_the_slot_table_counts_every_state_as_a_walk_over_the_slots_would(operations):
    """Slots.count is what the hand-out reads instead of walking the pool: after any sequence of
    adds, steps (allowed or not, of slots in the table or already dropped) and drops, it agrees."""
    slots = Slots()
    made: dict[int, Slot] = {}
    for operation, number, action in operations:
        slot = made.get(number)
        if operation == "add" and (slot is None or slot.path_id not in slots):
            made[number] = slot = _slot(f"p{number}")
            slots.add(slot)
        elif operation == "step" and slot is not None:
            slots.step(slot, action)
        elif operation == "drop" and slot is not None:
            slots.drop(slot)
        states = [held.state for held in slots.values()]
        for state in SlotState:
            assert slots.count(state) == states.count(state)
    assert len(slots) == sum(slots.count(state) for state in SlotState)


def test_a_slot_cannot_be_added_twice():
    slots = Slots()
    slots.add(_slot("p"))
    with pytest.raises(ValueError, match="already"):
        slots.add(_slot("p"))


def _slot(path_id: str) -> Slot:
    return Slot(path_id=path_id, state=S.STARTING, created=datetime.now(UTC), created_mono=0.0)
