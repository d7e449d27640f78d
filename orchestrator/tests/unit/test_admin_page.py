"""The admin page's pure parts: idle times as the culler sees them, the per-minute history, the
chart, and who counts as loopback. The handlers are tested against the real service in
tests/integration/test_admin.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from orchestrator.lifecycle import Slots
from orchestrator.metrics import Metrics, Series, Timeline, counter_total
from orchestrator.model import Slot, SlotState
from orchestrator.snapshot import notebook_rows, pool_counts
from orchestrator.web.admin import _loopback, cookie_secret
from orchestrator.web.view import bar_chart, duration

NOW = datetime(2026, 3, 1, 12, 30, 20, tzinfo=UTC)
MONO = 50_000.0  # the monotonic clock now
HOUR = 3600.0


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def slot(
    path_id: str,
    state: SlotState,
    handed_out: float | None = None,
    active: float | None = None,
    busy: bool = False,
) -> Slot:
    """`handed_out` and `active`: minutes ago."""
    return Slot(
        path_id=path_id,
        state=state,
        created=NOW - minutes(90),
        created_mono=MONO - 90 * 60,
        container_id=path_id * 8,
        handed_out_at=NOW - minutes(handed_out) if handed_out is not None else None,
        handed_out_mono=MONO - handed_out * 60 if handed_out is not None else None,
        last_active_mono=MONO - active * 60 if active is not None else None,
        busy=busy,
    )


def test_pool_counts_by_state():
    slots = {
        "a": slot("a", SlotState.IN_USE, 1),
        "b": slot("b", SlotState.READY),
        "c": slot("c", SlotState.READY),
        "d": slot("d", SlotState.STARTING),
        "e": slot("e", SlotState.REMOVING),
        "f": slot("f", SlotState.CLAIMED),
    }
    table = Slots()
    for item in slots.values():
        table.add(item)
    counts = pool_counts(table, 6)
    assert (counts.in_use, counts.warm, counts.starting, counts.removing, counts.capacity) == (
        2, 2, 1, 1, 6
    )  # fmt: skip


def test_rows_list_only_notebooks_in_use_longest_idle_first():
    slots = {
        "new": slot("new", SlotState.IN_USE, 2),
        "old": slot("old", SlotState.IN_USE, 50),
        "warm": slot("warm", SlotState.READY),
    }
    rows = notebook_rows(slots, MONO, HOUR, 0)
    assert [row.path_id for row in rows] == ["old", "new"]
    assert rows[0].user_path == "/user/old/"
    assert rows[0].idle == rows[0].age == minutes(50)
    assert rows[0].cull_in == minutes(10)
    assert rows[0].container == ("old" * 8)[:12]


def test_idle_is_the_culler_s_own_measure():
    rows = notebook_rows({"a": slot("a", SlotState.IN_USE, 50, active=5)}, MONO, HOUR, 0)
    assert rows[0].idle == minutes(5)
    assert rows[0].age == minutes(50)


def test_a_busy_kernel_is_not_culled_for_idleness_but_cull_max_still_applies():
    slots = {"a": slot("a", SlotState.IN_USE, 80, busy=True)}
    assert notebook_rows(slots, MONO, HOUR, 0)[0].cull_in is None
    row = notebook_rows(slots, MONO, HOUR, 2 * HOUR)[0]
    assert row.busy and row.cull_in == minutes(40)


def test_overdue_notebooks_show_zero_not_negative():
    slots = {"a": slot("a", SlotState.IN_USE, 70)}
    assert notebook_rows(slots, MONO, HOUR, 0)[0].cull_in == timedelta(0)


def test_durations_read_like_a_person_writes_them():
    assert duration(timedelta(seconds=42)) == "42 s"
    assert duration(minutes(12.5)) == "12 min"
    assert duration(minutes(185)) == "3 h 05 min"
    assert duration(timedelta(days=2, hours=4, minutes=3)) == "2 d 4 h"
    assert duration(None) == "-"


def test_timeline_puts_increases_in_their_minute_and_forgets_after_an_hour():
    counter = Counter("demo", "demo", registry=None)
    timeline = Timeline({"demo": lambda: counter_total(counter)}, NOW)
    counter.inc(3)
    timeline.sample(NOW + timedelta(seconds=10))  # same minute
    counter.inc(2)
    timeline.sample(NOW + minutes(2))  # two minutes later: one empty minute between
    (series,) = timeline.series()
    assert series.counts[-3:] == (3, 0, 2)
    assert len(series.counts) == 60 and series.total == 5
    timeline.sample(NOW + minutes(61))  # the oldest minute kept is the one with 2
    assert timeline.series()[0].counts[0] == 2 and timeline.series()[0].total == 2
    timeline.sample(NOW + minutes(200))
    assert timeline.series()[0].total == 0


def test_timeline_of_the_metrics_sums_every_label():
    metrics = Metrics()
    timeline = Timeline.for_metrics(metrics, NOW)
    metrics.culled.labels("idle").inc()
    metrics.culled.labels("max_age").inc()
    metrics.errors.labels("spawn").inc(4)
    metrics.handed_out.inc()
    timeline.sample(NOW)
    totals = {series.name: series.total for series in timeline.series()}
    assert totals == {
        "handed_out": 1,
        "full": 0,
        "culled": 2,
        "errors": 4,
        "resumed": 0,
        "downloaded": 0,
    }


def test_bar_chart_has_a_bar_and_a_tooltip_per_busy_minute():
    counts = (0,) * 57 + (4, 0, 1)
    svg = bar_chart(Series("culled", counts), NOW, "#f37726")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2
    assert "<title>12:28 UTC: 4</title>" in svg and "<title>12:30 UTC: 1</title>" in svg
    assert 'aria-label="5 in the last 60 minutes"' in svg
    assert "<rect" not in bar_chart(Series("errors", (0,) * 60), NOW, "#c0392b")


def test_cookie_key_follows_the_token():
    assert cookie_secret("a" * 32) == cookie_secret("a" * 32)
    assert cookie_secret("a" * 32) != cookie_secret("b" * 32)
    assert cookie_secret(None) != cookie_secret(None)  # random when there is no token


def test_loopback_addresses():
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("127.3.4.5")
    assert not _loopback("10.0.0.1") and not _loopback(None) and not _loopback("nonsense")
