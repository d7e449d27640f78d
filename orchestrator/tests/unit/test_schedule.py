"""The capacity a booked workshop plans, on given clocks (schedule.py is pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import schedule

NINE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_option_form_is_an_iso_interval_and_a_head_count():
    item = schedule.parse("2026-12-01T10:00+01:00/2026-12-01T12:30+01:00=50")
    assert item.start == NINE
    assert item.end - item.start == timedelta(hours=2, minutes=30)
    assert item.capacity == 50
    assert schedule.parse(str(item)) == item


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("2026-12-01T10:00+01:00/2026-12-01T12:30+01:00", "START/END=CAPACITY"),
        ("2026-12-01T10:00+01:00=5", "START/END=CAPACITY"),
        ("2026-12-01T10:00/2026-12-01T12:30=5", "needs its time zone"),
        ("tomorrow/2026-12-01T12:30Z=5", "start 'tomorrow' is not an ISO 8601"),
        ("2026-12-01T12:30Z/2026-12-01T10:00Z=5", "is not after start"),
        ("2026-12-01T10:00Z/2026-12-01T12:00Z=0", "capacity 0"),
        ("2026-12-01T10:00Z/2026-12-01T12:00Z=many", "capacity 'many'"),
    ],
)
def test_a_bad_booking_says_which_part_is_wrong(text, named):
    with pytest.raises(schedule.BookingError, match=named.replace("(", r"\(")):
        schedule.parse(text)


@pytest.mark.parametrize("capacity", [True, 2.5, "3", -1])
def test_the_admin_api_form_wants_a_whole_positive_capacity(capacity):
    with pytest.raises(schedule.BookingError, match="capacity"):
        schedule.booking("2026-12-01T10:00Z", "2026-12-01T11:00Z", capacity)


def test_capacity_over_a_workshop_day():
    booked = [schedule.Booking(NINE + timedelta(hours=1), NINE + timedelta(hours=3), 50)]
    lead = schedule.lead_time(50, 2.0)
    assert lead == timedelta(seconds=150) + schedule.LEAD_MARGIN  # 50 x 2 s x 1.5, plus margin

    def at(moment):
        return schedule.planned_capacity(booked, moment, 5, 2.0)

    assert at(NINE) == 5
    assert at(NINE + timedelta(hours=1) - lead - timedelta(seconds=1)) == 5
    assert at(NINE + timedelta(hours=1) - lead) == 50
    assert at(NINE + timedelta(hours=2, minutes=59)) == 50
    assert at(NINE + timedelta(hours=3)) == 5


def test_the_lead_time_follows_the_measured_boot_rate():
    assert schedule.lead_time(50, 6.0) - schedule.lead_time(50, 2.0) == timedelta(seconds=300)


def test_the_boot_rate_shares_a_boot_among_those_in_flight_and_smooths():
    rate = schedule.BootRate()
    assert rate.seconds_per_notebook == schedule.DEFAULT_SECONDS_PER_NOTEBOOK
    rate.observe(20.0, 10)
    assert rate.seconds_per_notebook == 2.0
    rate.observe(12.0, 1)
    assert rate.seconds_per_notebook == pytest.approx(2.0 + 0.2 * 10.0)


MOMENTS = st.datetimes(
    min_value=datetime(2026, 11, 30), max_value=datetime(2026, 12, 2), timezones=st.just(UTC)
)
BOOKINGS = st.lists(
    st.builds(
        lambda start, hours, capacity: schedule.Booking(
            start, start + timedelta(hours=hours), capacity
        ),
        MOMENTS,
        st.integers(1, 8),
        st.integers(1, 200),
    ),
    max_size=5,
)


@given(BOOKINGS, MOMENTS, st.integers(0, 20), st.floats(0, 30))
def test_the_plan_is_the_largest_booking_on_and_never_below_pool_size(
    bookings, now, pool_size, seconds
):
    planned = schedule.planned_capacity(bookings, now, pool_size, seconds)
    assert planned >= pool_size
    active = [
        b.capacity
        for b in bookings
        if b.start - schedule.lead_time(b.capacity, seconds) <= now < b.end
    ]
    assert planned == max([pool_size, *active])
    # Over once every booking has ended.
    if bookings:
        after = max(b.end for b in bookings)
        assert schedule.planned_capacity(bookings, after, pool_size, seconds) == pool_size
