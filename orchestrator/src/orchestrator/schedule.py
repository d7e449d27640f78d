"""A pool sized for the room before it arrives: workshops booked ahead, and the capacity they need.

An operator books a workshop as an ISO 8601 interval and a head count, `START/END=CAPACITY`
(`2026-12-01T09:00+01:00/2026-12-01T12:30+01:00=50`). From early enough before START that a full
refill fits, until END, the pool's capacity is the booking's; before and after, `pool_size`.
Everything here is pure: the pool asks `planned_capacity` on each pass with the wall clock (a
booking is a time on the wall) and what it measured of its own boots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# Before any boot was measured: what a slim notebook took per notebook in a refill on the 2-core
# reference machine (docs/performance.md), rounded up.
DEFAULT_SECONDS_PER_NOTEBOOK = 3.0
# A refill is planned to need this much more than measured, plus a fixed margin: the machine may
# be busier at the time than when it was measured.
LEAD_FACTOR = 1.5
LEAD_MARGIN = timedelta(seconds=120)


class BookingError(ValueError):
    """A booking that cannot be understood; the message says which part and why."""


@dataclass(frozen=True)
class Booking:
    start: datetime
    end: datetime
    capacity: int

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}={self.capacity}"

    def as_json(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "capacity": self.capacity,
        }


def _moment(text: str, which: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BookingError(f"{which} {text!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise BookingError(f"{which} {text!r} needs its time zone (e.g. +01:00 or Z)")
    return moment


def booking(start: str, end: str, capacity: object) -> Booking:
    """A checked booking from its three parts (as the admin API and the TOML file give them)."""
    begins, ends = _moment(start, "start"), _moment(end, "end")
    if ends <= begins:
        raise BookingError(f"end {end!r} is not after start {start!r}")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise BookingError(f"capacity {capacity!r} is not a whole number of notebooks >= 1")
    return Booking(begins, ends, capacity)


def parse(text: str) -> Booking:
    """`START/END=CAPACITY`, the form of the `schedule` option."""
    interval, equals, count = text.partition("=")
    start, slash, end = interval.partition("/")
    if not equals or not slash:
        raise BookingError(f"{text!r} is not START/END=CAPACITY")
    if not count.strip().isdigit():
        raise BookingError(f"capacity {count!r} is not a whole number of notebooks >= 1")
    return booking(start, end, int(count))


def lead_time(capacity: int, seconds_per_notebook: float) -> timedelta:
    """How long before a booking's start the pool begins to grow: a full refill of `capacity`
    at the measured rate, with room to spare."""
    refill = capacity * max(seconds_per_notebook, 0.0) * LEAD_FACTOR
    return timedelta(seconds=math.ceil(refill)) + LEAD_MARGIN


def planned_capacity(
    bookings: Iterable[Booking], now: datetime, pool_size: int, seconds_per_notebook: float
) -> int:
    """The pool's capacity at `now`: the largest booking that is on (from its lead time before its
    start until its end), never less than `pool_size`."""
    on = [
        item.capacity
        for item in bookings
        if item.start - lead_time(item.capacity, seconds_per_notebook) <= now < item.end
    ]
    return max([pool_size, *on])


def upcoming(bookings: Iterable[Booking], now: datetime) -> list[Booking]:
    """The bookings not yet over, soonest first (what the admin page lists)."""
    return sorted((item for item in bookings if item.end > now), key=lambda item: item.start)


class BootRate:
    """Seconds per notebook when the pool refills, as measured: each boot's duration divided by
    the boots in flight when it began (n boots sharing the machine finish about n in that time),
    smoothed so one slow boot does not swing the plan."""

    SMOOTHING = 0.2

    def __init__(self, initial: float = DEFAULT_SECONDS_PER_NOTEBOOK) -> None:
        self.seconds_per_notebook = initial
        self.measured = 0

    def observe(self, duration: float, in_flight: int) -> None:
        sample = max(duration, 0.0) / max(in_flight, 1)
        if self.measured == 0:
            self.seconds_per_notebook = sample
        else:
            self.seconds_per_notebook += self.SMOOTHING * (sample - self.seconds_per_notebook)
        self.measured += 1
