"""The life of one container of the pool: which steps are allowed, as one pure table.

    STARTING ──booted──► READY ──claim──► CLAIMED ──handed_out──► IN_USE
       │                  ▲  │               │                      │
       │                  └──┼──released─────┘                      │
       └──────remove─────────┴──────────────remove──────────────────┴──► REMOVING ──removed──► GONE

The invariants this table makes hold by construction (tests/unit/test_lifecycle.py checks them
over every path through it):
- A container is offered (READY) only before it was ever handed out: no step leads from IN_USE,
  or from anything after it, back to READY or CLAIMED. A CLAIMED container goes back to READY only
  when its hand-out was not written, so no visitor was redirected into it.
- REMOVING ends only in GONE, and GONE only once its container is confirmed gone: a removal that
  fails leaves the slot REMOVING (and so counted, never offered), to be tried again.
- Every state but GONE can be removed, so no slot is stuck: whatever fails, `remove` applies.

Pool methods call `step()` before their first await, so two coroutines never both act on one
container: the second finds the state already changed and the step refused.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from enum import StrEnum

from orchestrator.model import Slot, SlotState


class Step(StrEnum):
    BOOTED = "booted"  # it answers through the proxy
    CLAIM = "claim"  # a visitor's request takes it (no await between the check and this)
    HANDED_OUT = "handed_out"  # the hand-out is written in its route; the visitor is redirected
    RELEASED = "released"  # writing the hand-out failed: nobody was redirected into it
    REMOVE = "remove"  # culled, drained, dead, failed, replaced: it goes
    REMOVED = "removed"  # Docker confirmed the container is gone


S = SlotState
TRANSITIONS: dict[tuple[SlotState, Step], SlotState] = {
    (S.STARTING, Step.BOOTED): S.READY,
    (S.READY, Step.CLAIM): S.CLAIMED,
    (S.CLAIMED, Step.HANDED_OUT): S.IN_USE,
    (S.CLAIMED, Step.RELEASED): S.READY,
    **{(state, Step.REMOVE): S.REMOVING for state in (S.STARTING, S.READY, S.CLAIMED, S.IN_USE)},
    (S.REMOVING, Step.REMOVED): S.GONE,
}

# Counted toward pool_size: everything that holds (or may still hold) a container.
HOLDS_A_CONTAINER = frozenset(SlotState) - {S.GONE}


class StepRefused(Exception):
    """A step that the table does not allow from the slot's state (another task got there first)."""


def next_state(state: SlotState, step: Step) -> SlotState:
    try:
        return TRANSITIONS[(state, step)]
    except KeyError:
        raise StepRefused(f"{step.value} is not allowed from {state.value}") from None


def step(slot: Slot, action: Step) -> bool:
    """Move `slot` by `action`; False (and no change) when the table does not allow it."""
    try:
        slot.state = next_state(slot.state, action)
    except StepRefused:
        return False
    return True


class Slots(Mapping[str, Slot]):
    """The pool's slots by path id, and how many are in each state.

    The counts follow every slot added, stepped (through `step` here) and dropped, so what the
    hand-out and the gauges ask (how many are ready, in use, starting) never walks the pool: a
    hand-out costs the same with 10 slots or 2000. Reading is a read-only mapping's (the dict's
    own views, for speed); changing goes through `add`, `step` and `drop` only.
    """

    def __init__(self) -> None:
        self._by_path: dict[str, Slot] = {}
        self._counts = dict.fromkeys(SlotState, 0)

    def add(self, slot: Slot) -> None:
        if slot.path_id in self._by_path:
            raise ValueError(f"slot {slot.path_id} is already in the pool")
        self._by_path[slot.path_id] = slot
        self._counts[slot.state] += 1

    def step(self, slot: Slot, action: Step) -> bool:
        """`step(slot, action)`, counted when the slot is this table's."""
        was = slot.state
        if not step(slot, action):
            return False
        if self._by_path.get(slot.path_id) is slot:
            self._counts[was] -= 1
            self._counts[slot.state] += 1
        return True

    def drop(self, slot: Slot) -> None:
        """Forget `slot` (a GONE one); another slot under the same path id stays."""
        if self._by_path.get(slot.path_id) is slot:
            del self._by_path[slot.path_id]
            self._counts[slot.state] -= 1

    def count(self, state: SlotState) -> int:
        return self._counts[state]

    def __getitem__(self, path_id: str) -> Slot:
        return self._by_path[path_id]

    def __contains__(self, path_id: object) -> bool:
        return path_id in self._by_path

    def __len__(self) -> int:
        return len(self._by_path)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_path)

    def keys(self) -> KeysView[str]:
        return self._by_path.keys()

    def values(self) -> ValuesView[Slot]:
        return self._by_path.values()

    def items(self) -> ItemsView[str, Slot]:
        return self._by_path.items()
