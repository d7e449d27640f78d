"""The records the orchestrator reasons about, and the names it writes into Docker and the proxy.

Where the hand-out is recorded, and why: container labels cannot change after creation, so the
label `tmpnb.state` only says how a container started (`pooled`). The hand-out is written into the
container's proxy route (`tmpnb_state: handed_out`) *before* the visitor is redirected, so a
restarted orchestrator reads it back from the proxy. If the proxy lost its routes at the same
time, nothing can tell whether a running container was handed out, so it is adopted as in use:
it is culled when idle, and no container is ever given to two visitors.

Where the token is kept, and why: in the container's environment (`JUPYTER_TOKEN`), which only the
visitor inside it and whoever can talk to the Docker API can read; the latter can exec into any
container anyway. A restarted orchestrator reads it back with `docker inspect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

LABEL_POOL = "tmpnb.pool"
LABEL_PATH = "tmpnb.path"
LABEL_CREATED = "tmpnb.created"
LABEL_STATE = "tmpnb.state"
LABEL_PORT = "tmpnb.port"
LABEL_VERSION = "tmpnb.version"
TOKEN_ENV = "JUPYTER_TOKEN"  # noqa: S105 (the variable's name, not a secret)

# Keys we add to a route's data in configurable-http-proxy; `tmpnb_pool` marks the route as ours.
ROUTE_POOL = "tmpnb_pool"
ROUTE_STATE = "tmpnb_state"
ROUTE_CONTAINER = "tmpnb_container"
ROUTE_HANDED_OUT_AT = "tmpnb_handed_out_at"
# The SHA-256 of the visitor's resume key (keep.py), so their work is kept at the cull even after
# a restart; the key itself is only ever in the visitor's cookie.
ROUTE_KEEP = "tmpnb_keep"
ROUTE_POOLED = "pooled"
ROUTE_HANDED_OUT = "handed_out"
# Written over `handed_out` before a culled container is removed, and removed with the route after
# the container: a restart part-way through finishes the removal, and never offers it again.
ROUTE_REMOVING = "removing"
# configurable-http-proxy keeps its routes in memory only. Each pool keeps one more route, outside
# /user/, whose data says `tmpnb_routes_kept=<pool>`: while it is there, the proxy has lost no route
# since the pool wrote it, so a container without a route was never handed out (see decisions.py).
ROUTE_MARKER = "tmpnb_routes_kept"


def marker_path(pool_name: str) -> str:
    return f"/.tmpnb/routes-kept/{pool_name}"


def user_path(path_id: str) -> str:
    """The proxy route and the notebook's base URL (without the trailing slash)."""
    return f"/user/{path_id}"


class SlotState(StrEnum):
    """Where one container of the pool is in its life (lifecycle.py: which steps are allowed)."""

    STARTING = "starting"  # created or adopted, not yet answering through the proxy
    READY = "ready"  # answering through the proxy, waiting for a visitor
    CLAIMED = "claimed"  # taken for one visitor; the hand-out is being written into its route
    IN_USE = "in_use"  # handed out (or possibly handed out: see the module docstring)
    REMOVING = "removing"  # being removed; nobody else touches it
    GONE = "gone"  # its container is removed; the slot is forgotten


@dataclass
class Slot:
    """One container of the pool, as the orchestrator tracks it between reconciliations.

    Durations are measured on the monotonic clock (`*_mono`, seconds, time.monotonic), so a step
    of the wall clock moves no cull; the wall-clock moments are kept for display and for the
    proxy's route data only.
    """

    path_id: str
    state: SlotState
    created: datetime
    created_mono: float
    token: str = ""
    container_id: str | None = None
    target: str | None = None  # http://ip:port the proxy sends the visitor to
    handed_out_at: datetime | None = None
    handed_out_mono: float | None = None
    client: str | None = None  # the address it was handed to (in memory: not after a restart)
    image_id: str | None = None  # the image it runs (its ID), shown on the admin page
    # What the culler last saw: the latest sign of use (monotonic estimate) and the wall-clock
    # values it came from, so an unchanged value is not read again after a clock step.
    last_active_mono: float | None = None
    seen_activity: tuple[datetime | None, datetime | None] = (None, None)
    last_looked_mono: float | None = None
    busy: bool = False
    answered: bool = True
    removal_reason: str | None = None
    keep: str | None = None  # the digest of the visitor's resume key: their work is kept under it


@dataclass(frozen=True)
class ContainerRecord:
    """A container of our pool as Docker reports it."""

    id: str
    path_id: str
    status: str  # Docker's: created, running, exited, dead, ...
    created: datetime
    target: str | None = None
    token: str = ""
    image_id: str = ""  # the ID of the image it was created from

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class RouteRecord:
    """A route of our pool as the proxy reports it."""

    path_id: str
    target: str
    state: str
    container_id: str | None = None
    last_activity: datetime | None = None
    handed_out_at: datetime | None = None
    keep: str | None = None
