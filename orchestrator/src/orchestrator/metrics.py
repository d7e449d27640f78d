"""Prometheus metrics, in a registry of our own so that tests can run several apps in a process.

Every metric here is documented in docs/operations.md and drawn by the Grafana dashboard in
docs/grafana/ (tests/test_metrics_documented.py keeps the three in step). Counters are exposed
with the `_total` suffix that prometheus-client adds.

`Timeline` keeps the last hour of a few counters in one-minute buckets, in memory, for the admin
page: it reads the counters' totals and adds what changed since its last sample to the current
minute, so it needs no hook where the events happen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Info("tmpnb", "The orchestrator's version, pool name and image", registry=r)
        self.available = Gauge(
            "tmpnb_available",
            "Warm containers: booted, answering, waiting for a visitor",
            registry=r,
        )
        self.in_use = Gauge("tmpnb_in_use", "Containers handed out to visitors", registry=r)
        self.starting = Gauge(
            "tmpnb_starting", "Containers booting, not yet answering through the proxy", registry=r
        )
        self.capacity = Gauge(
            "tmpnb_capacity", "pool_size: containers the pool holds, handed out or not", registry=r
        )
        # Set by app.py from the public app's waiting line (see waiting.py).
        self.waiting = Gauge(
            "tmpnb_waiting", "Visitors in line for a notebook (the busy page's tickets)", registry=r
        )
        self.spawn_seconds = Histogram(
            "tmpnb_spawn_seconds",
            "Seconds from creating a container to its answering through the proxy",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.handout_seconds = Histogram(
            "tmpnb_handout_seconds",
            "Seconds from a visitor's request for a notebook to the redirect into it",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.spawned = Counter("tmpnb_spawned", "Containers created and started", registry=r)
        self.handed_out = Counter(
            "tmpnb_handed_out", "Notebooks handed out to visitors", registry=r
        )
        self.full = Counter(
            "tmpnb_full", "Requests for a notebook that found the pool empty", registry=r
        )
        self.culled = Counter(
            "tmpnb_culled", "Notebooks culled, by reason (idle, max_age)", ["reason"], registry=r
        )
        self.adopted = Counter(
            "tmpnb_adopted",
            "Running containers adopted (after a restart, or found later)",
            registry=r,
        )
        self.routes_restored = Counter(
            "tmpnb_routes_restored", "Proxy routes re-added after the proxy lost them", registry=r
        )
        self.removed = Counter(
            "tmpnb_removed", "Containers removed, by reason", ["reason"], registry=r
        )
        self.errors = Counter(
            "tmpnb_errors",
            "Failures talking to Docker, the proxy or a notebook, by kind",
            ["kind"],
            registry=r,
        )
        # A loop that stops counting is stuck; tests wait for a pass before asserting that it
        # did nothing.
        self.passes = Counter(
            "tmpnb_passes",
            "Passes of the periodic loops that completed, by loop",
            ["loop"],
            registry=r,
        )
        # Visitors' saved work (keep.py).
        self.kept = Counter(
            "tmpnb_kept", "Culled notebooks whose visitor's work was saved", registry=r
        )
        self.resumed = Counter(
            "tmpnb_resumed", "Visitors who continued their saved work in a new notebook", registry=r
        )
        self.downloaded = Counter("tmpnb_downloaded", "Downloads of saved work", registry=r)
        self.saved = Gauge("tmpnb_saved", "Visitors whose work is saved", registry=r)
        self.saved_bytes = Gauge("tmpnb_saved_bytes", "Bytes of saved work", registry=r)
        self.saved_oldest = Gauge(
            "tmpnb_saved_oldest_timestamp_seconds",
            "Unix time of the oldest save still kept (0: none)",
            registry=r,
        )


def counter_total(counter: Counter) -> float:
    """The sum of a counter over all its labels (0 before the first increment)."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@dataclass(frozen=True)
class Series:
    """One line of the timeline: its name, and its per-minute counts, oldest first."""

    name: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


class Timeline:
    """Per-minute increases of some counters over the last `minutes`, kept in a ring buffer.

    `sample(now)` is cheap; call it at least once a minute (app.py does, every 10 s) and before
    reading, so the current minute is up to date. Time comes from the caller, so tests pass it.
    """

    def __init__(
        self, sources: dict[str, Callable[[], float]], now: datetime, minutes: int = 60
    ) -> None:
        self._sources = sources
        self._minutes = minutes
        self._last = {name: read() for name, read in sources.items()}
        self._current = _minute(now)
        self._buckets: dict[str, deque[int]] = {
            name: deque([0] * minutes, maxlen=minutes) for name in sources
        }

    @classmethod
    def for_metrics(cls, metrics: Metrics, now: datetime) -> Timeline:
        sources: dict[str, Callable[[], float]] = {
            "handed_out": lambda: counter_total(metrics.handed_out),
            "full": lambda: counter_total(metrics.full),
            "culled": lambda: counter_total(metrics.culled),
            "errors": lambda: counter_total(metrics.errors),
            "resumed": lambda: counter_total(metrics.resumed),
            "downloaded": lambda: counter_total(metrics.downloaded),
        }
        return cls(sources, now)

    def sample(self, now: datetime) -> None:
        minute = _minute(now)
        # Minutes that passed without a sample are empty; a clock that went back adds to now.
        steps = min(max(0, int((minute - self._current) / timedelta(minutes=1))), self._minutes)
        for name, read in self._sources.items():
            value = read()
            increase = max(0, round(value - self._last[name]))  # a reset counter restarts at 0
            self._last[name] = value
            buckets = self._buckets[name]
            buckets.extend([0] * steps)
            buckets[-1] += increase
        if minute > self._current:
            self._current = minute

    def series(self, names: Iterable[str] | None = None) -> list[Series]:
        return [
            Series(name, tuple(self._buckets[name]))
            for name in (names if names is not None else self._sources)
        ]

    @property
    def minutes(self) -> int:
        return self._minutes


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
