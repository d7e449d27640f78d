"""Prometheus metrics, in a registry of our own so that tests can run several apps in a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.available = Gauge(
            "tmpnb_available", "Ready containers waiting for a visitor", registry=r
        )
        self.in_use = Gauge("tmpnb_in_use", "Containers handed out to visitors", registry=r)
        self.starting = Gauge("tmpnb_starting", "Containers booting, not yet ready", registry=r)
        self.capacity = Gauge("tmpnb_capacity", "pool_size", registry=r)
        self.spawn_seconds = Histogram(
            "tmpnb_spawn_seconds",
            "From create to ready through the proxy",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.handout_seconds = Histogram(
            "tmpnb_handout_seconds",
            "From a visitor's request to the redirect",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.spawned = Counter("tmpnb_spawned", "Containers started", registry=r)
        self.handed_out = Counter("tmpnb_handed_out", "Containers handed out", registry=r)
        self.full = Counter(
            "tmpnb_full", "Visitors turned away because the pool was empty", registry=r
        )
        self.culled = Counter("tmpnb_culled", "Containers culled", ["reason"], registry=r)
        self.adopted = Counter("tmpnb_adopted", "Containers adopted at start or later", registry=r)
        self.routes_restored = Counter("tmpnb_routes_restored", "Proxy routes re-added", registry=r)
        self.removed = Counter("tmpnb_removed", "Containers removed", ["reason"], registry=r)
        self.errors = Counter("tmpnb_errors", "Failures, by kind", ["kind"], registry=r)
