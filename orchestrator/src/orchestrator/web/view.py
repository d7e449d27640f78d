"""What the admin page and the admin API show, computed from plain data: the pool's snapshot
(snapshot.py), the last hour's series (metrics.Timeline) and a few configured values.

Pure: no I/O, no clock, no Tornado, no pool; every function here is unit-tested on made-up
values (tests/unit/test_admin_page.py). web/admin.py renders what these return.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator import schedule
from orchestrator.metrics import Series
from orchestrator.snapshot import BookingPlan, PoolSnapshot, SavedStats

REFRESH_SECONDS = 10
# What the timeline charts, in this order, with a label and a colour for each.
CHARTS = (
    ("handed_out", "Notebooks handed out", "#2b7bb9"),
    ("full", "Visitors who found the pool empty", "#b98a2b"),
    ("culled", "Notebooks culled", "#f37726"),
    ("errors", "Errors", "#c0392b"),
)


@dataclass(frozen=True)
class SavedSummary:
    """The saved-work section: what the store holds, and its use in the last hour."""

    stats: SavedStats
    resumed: int
    downloaded: int

    @property
    def count(self) -> int:
        return self.stats.count

    @property
    def size(self) -> str:
        return f"{self.stats.bytes / 1024**2:.1f} MB"

    @property
    def cap(self) -> str:
        return f"{self.stats.cap_bytes / 1024**2:.0f} MB"

    @property
    def hours(self) -> str:
        return f"{self.stats.keep_hours:g}"

    @property
    def oldest(self) -> str:
        oldest_at = self.stats.oldest_at
        return oldest_at.strftime("%H:%M UTC") if oldest_at else "none"

    def as_json(self) -> dict[str, Any]:
        oldest_at = self.stats.oldest_at
        return {
            "count": self.stats.count,
            "bytes": self.stats.bytes,
            "oldest": oldest_at.isoformat() if oldest_at else None,
            "resumed_last_hour": self.resumed,
            "downloaded_last_hour": self.downloaded,
        }


def saved_summary(stats: SavedStats | None, series: Mapping[str, Series]) -> SavedSummary | None:
    """The saved-work section, with the last hour's `resumed` and `downloaded` series."""
    if stats is None:
        return None
    return SavedSummary(
        stats=stats, resumed=series["resumed"].total, downloaded=series["downloaded"].total
    )


def duration(span: timedelta | None) -> str:
    """A short human duration: 45 s, 12 min, 3 h 05 min, 2 d 4 h."""
    if span is None:
        return "-"
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def bar_chart(
    series: Series, now: datetime, colour: str, width: int = 600, height: int = 64
) -> str:
    """An inline SVG bar chart of one series, one bar per minute, oldest on the left.

    Each bar has a <title>, so hovering shows the minute and the count. Returned as markup for
    the template (every piece of text in it is a number or a time written here).
    """
    counts = series.counts
    peak = max(counts, default=0)
    step = width / max(len(counts), 1)
    bar = max(step - 1, 1)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=len(counts) - 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{series.total} in the last {len(counts)} minutes">',
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="axis"/>',
    ]
    for index, count in enumerate(counts):
        if not count:
            continue
        bar_height = max(2.0, (height - 4) * count / peak)
        minute = (start + timedelta(minutes=index)).strftime("%H:%M")
        parts.append(
            f'<rect x="{index * step:.1f}" y="{height - bar_height:.1f}" width="{bar:.1f}" '
            f'height="{bar_height:.1f}" fill="{colour}"><title>{minute} UTC: {count}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def page_values(
    snapshot: PoolSnapshot,
    series: Mapping[str, Series],
    *,
    minutes: int,
    image: str,
    cull_timeout: float,
    version: str,
) -> dict[str, Any]:
    """The admin page's template values (admin.html), but for who is logged in."""
    now = snapshot.time
    plan = snapshot.bookings

    def lead(item: schedule.Booking) -> timedelta:
        """How long before its start the pool grows for this booking."""
        return schedule.lead_time(item.capacity, plan.seconds_per_notebook)

    return {
        "counts": snapshot.counts,
        "waiting": snapshot.waiting,
        "rows": snapshot.notebooks,
        "charts": [
            (label, series[name], bar_chart(series[name], now, colour))
            for name, label, colour in CHARTS
        ],
        "minutes": minutes,
        "now": now,
        "proxy_answered": snapshot.proxy_answered,
        "pool_name": snapshot.pool_name,
        "saved": saved_summary(snapshot.saved, series),
        "image": image,
        "current_image": snapshot.image_id,
        "version": version,
        "cull_timeout": duration(timedelta(seconds=cull_timeout)),
        "bookings": schedule.upcoming([*plan.configured, *plan.added], now),
        "added": set(plan.added),
        "pool_size": plan.pool_size,
        "lead": lead,
        "refresh": REFRESH_SECONDS,
        "duration": duration,
    }


def schedule_json(plan: BookingPlan) -> dict[str, Any]:
    """`/api/schedule`'s answer: the capacity planned, and the bookings not yet over."""
    return {
        "capacity": plan.capacity,
        "pool_size": plan.pool_size,
        "seconds_per_notebook": round(plan.seconds_per_notebook, 2),
        "configured": [item.as_json() for item in schedule.upcoming(plan.configured, plan.time)],
        "added": [item.as_json() for item in schedule.upcoming(plan.added, plan.time)],
    }


def overview_json(snapshot: PoolSnapshot, series: Mapping[str, Series]) -> dict[str, Any]:
    """`/api/overview`'s answer: what the page shows, as JSON."""
    counts = snapshot.counts
    saved = saved_summary(snapshot.saved, series)
    return {
        "time": snapshot.time.isoformat(),
        "proxy_answered": snapshot.proxy_answered,
        "pool": {
            "warm": counts.warm,
            "in_use": counts.in_use,
            "starting": counts.starting,
            "removing": counts.removing,
            "capacity": counts.capacity,
            "waiting": snapshot.waiting,
        },
        "notebooks": [
            {
                "path": row.user_path,
                "container": row.container,
                "age_seconds": round(row.age.total_seconds()),
                "idle_seconds": round(row.idle.total_seconds()),
                "busy": row.busy,
                "image": row.image,
                "cull_in_seconds": None
                if row.cull_in is None
                else round(row.cull_in.total_seconds()),
            }
            for row in snapshot.notebooks
        ],
        "per_minute": {name: list(item.counts) for name, item in series.items()},
        "saved_work": None if saved is None else saved.as_json(),
    }
