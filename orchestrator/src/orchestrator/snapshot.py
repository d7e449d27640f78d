"""What the pool holds at one moment, as plain values: what the admin page, `/api/overview`,
`/api/schedule` and `/api/stats` read, and all they read of the pool.

Pure: frozen records and functions of the pool's slots (model.Slot) and of values passed in; no
I/O, no clock. Pool.counts(), Pool.booking_plan() and Pool.snapshot() read the clocks, ask the
proxy and the saved-work store, and build these. Idle time and the time left before a cull are
the culler's own (decisions.Usage.idle, decisions.cull_in): they are computed nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.decisions import cull_in, usage_of
from orchestrator.lifecycle import Slots
from orchestrator.model import Slot, SlotState, user_path
from orchestrator.schedule import Booking


@dataclass(frozen=True)
class PoolCounts:
    """How many notebooks are in each state, and how many the pool holds in all."""

    warm: int
    in_use: int  # handed out, or being handed out
    starting: int
    removing: int
    capacity: int


def pool_counts(slots: Slots, capacity: int) -> PoolCounts:
    """From the slot table's own counts: no walk through the pool."""
    count = slots.count
    return PoolCounts(
        warm=count(SlotState.READY),
        in_use=count(SlotState.IN_USE) + count(SlotState.CLAIMED),
        starting=count(SlotState.STARTING),
        removing=count(SlotState.REMOVING),
        capacity=capacity,
    )


@dataclass(frozen=True)
class NotebookRow:
    """One notebook in use."""

    path_id: str
    container: str
    handed_out_at: datetime | None
    age: timedelta  # since it was handed out
    idle: timedelta  # since the last sign of use: a request, the notebook's own activity
    busy: bool  # a kernel was executing at the last cull pass
    image: str  # the short ID of the image it runs (a workshop's material may have changed since)
    cull_in: timedelta | None  # until the culler takes it, if it stays idle

    @property
    def user_path(self) -> str:
        return user_path(self.path_id) + "/"


def notebook_rows(
    slots: Mapping[str, Slot], now: float, cull_timeout: float, cull_max: float
) -> list[NotebookRow]:
    """One row per notebook in use, the longest idle first.

    Idle time and time left are the culler's own (decisions.Usage and cull_in), from the last
    cull pass's look at each notebook, on the monotonic clock `now`.
    """
    rows = []
    for slot in slots.values():
        if slot.state is not SlotState.IN_USE:
            continue
        usage = usage_of(slot)
        left = cull_in(usage, now, cull_timeout, cull_max)
        rows.append(
            NotebookRow(
                path_id=slot.path_id,
                container=(slot.container_id or "")[:12],
                handed_out_at=slot.handed_out_at,
                age=timedelta(seconds=usage.age(now)),
                idle=timedelta(seconds=usage.idle(now)),
                busy=usage.busy,
                image=short_image_id(slot.image_id),
                cull_in=None if left is None else timedelta(seconds=left),
            )
        )
    rows.sort(key=lambda row: row.idle, reverse=True)
    return rows


def short_image_id(image_id: str | None) -> str:
    """sha256:0123456789ab... -> 0123456789ab, as `docker images` shows it."""
    return (image_id or "").removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class SavedStats:
    """What the saved-work store holds (keep.py), and its limits."""

    count: int
    bytes: int
    oldest_at: datetime | None
    cap_bytes: int
    keep_hours: float


@dataclass(frozen=True)
class BookingPlan:
    """The workshops booked (every one, over or not) and the capacity they plan now."""

    time: datetime  # when the plan was read, on the wall clock
    capacity: int
    pool_size: int
    seconds_per_notebook: float  # the measured refill rate the lead times follow
    configured: tuple[Booking, ...]
    added: tuple[Booking, ...]  # through the admin API or page


@dataclass(frozen=True)
class PoolSnapshot:
    """Everything the admin page shows of the pool, read at `time`."""

    time: datetime  # the wall clock when it was taken
    pool_name: str
    counts: PoolCounts
    waiting: int  # visitors in the waiting line, as the line counts them
    notebooks: tuple[NotebookRow, ...]  # in use, the longest idle first
    proxy_answered: bool  # the proxy's API answered while the snapshot was taken
    saved: SavedStats | None  # None: saved work is not kept
    bookings: BookingPlan
    image_id: str  # the short ID of the image the pool's image name points to, as last seen
