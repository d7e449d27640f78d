"""The admin port: the operator's page (the pool, the notebooks in use, culls and errors) and the
admin API (/api/overview, /api/pool, /api/schedule, /api/stats, /metrics).

Who gets in, the page and the API alike (AdminHandler.is_admin, the one rule):
- With ADMIN_AUTH_TOKEN set, a request carrying `Authorization: token <admin token>` (scripts), or
  a browser holding the signed cookie that the login form sets. The form posts the token (never in
  a URL, so never in a log), is protected by Tornado's XSRF token, and the cookie is httponly,
  SameSite=Strict, Secure when the page is served over HTTPS, and good for 12 hours. Its signing
  key is derived from the admin token, so changing the token logs everyone out.
- With no token set, only clients on loopback (an SSH tunnel, curl on the host, a local
  Prometheus) get in; anyone else gets a 403 page that says how to set a token.
Everyone else gets a 403 page with the login form (the API: a one-line JSON message), never a
traceback.

The page is rendered on the server and reloads itself; it needs no script and no third-party asset.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from orchestrator import __version__, schedule
from orchestrator.docker_backend import DockerError
from orchestrator.handlers import BaseHandler, StatsHandler
from orchestrator.metrics import Series, Timeline
from orchestrator.snapshot import BookingPlan, PoolSnapshot, SavedStats
from orchestrator.waiting import WaitingLine

PAGE = "/admin/"
# The cookie's path keeps it to the admin page: browsers send cookies to every port of a host,
# and a visitor's notebook on the public port must never receive it.
COOKIE = "tmpnb-admin"
COOKIE_PATH = "/admin"
COOKIE_MAX_AGE_DAYS = 0.5
REFRESH_SECONDS = 10
# What the timeline charts, in this order, with a label and a colour for each.
CHARTS = (
    ("handed_out", "Notebooks handed out", "#2b7bb9"),
    ("full", "Visitors who found the pool empty", "#b98a2b"),
    ("culled", "Notebooks culled", "#f37726"),
    ("errors", "Errors", "#c0392b"),
)


def cookie_secret(admin_token: str | None) -> bytes:
    """The key that signs the login cookie: derived from the token, random if there is none."""
    if not admin_token:
        return secrets.token_bytes(32)
    return hmac.new(admin_token.encode(), b"tmpnb admin cookie", hashlib.sha256).digest()


# ----- what the page shows: pure functions of the pool's snapshot -----


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


def saved_summary(stats: SavedStats | None, timeline: Timeline) -> SavedSummary | None:
    if stats is None:
        return None
    series = {item.name: item for item in timeline.series(["resumed", "downloaded"])}
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


# ----- handlers -----


class AdminHandler(BaseHandler):
    """Every handler of the admin port, and the one rule of who is let in. With an admin token:
    a request that carries it (`Authorization: token ...`, or the page's signed login cookie).
    Without one: this host's loopback only (an SSH tunnel, curl on the host, a local Prometheus)."""

    @property
    def admin_token(self) -> str | None:
        token: str | None = self.settings["admin_token"]
        return token

    def is_admin(self) -> bool:
        if not self.admin_token:
            return _loopback(self.request.remote_ip)
        if self.authorized(self.admin_token):  # Authorization: token ... (constant time)
            return True
        value = self.get_signed_cookie(COOKIE, max_age_days=COOKIE_MAX_AGE_DAYS)
        return value == b"admin"


class AdminApiHandler(AdminHandler):
    """The admin port's JSON and metrics: refused with a one-line message, never a page."""

    def prepare(self) -> None:
        if self.is_admin():
            return
        if self.admin_token:
            raise web.HTTPError(401, "the admin token is required (Authorization: token ...)")
        raise web.HTTPError(
            403, "no admin token is set: the admin API answers this host's loopback only"
        )


class AdminPage(AdminHandler):
    """A page of the admin port: renders a 403 page (with the login form) for everyone else."""

    def deny(self, problem: str | None = None) -> None:
        self.set_status(403)
        self.render(
            "admin_denied.html",
            has_token=bool(self.admin_token),
            problem=problem,
            admin_address=f"{self.config.admin_ip}:{self.config.admin_port}",
        )


class AdminOverviewPage(AdminPage):
    """`GET /admin/`: the page; `GET /api/overview`: the same as JSON, for scripts."""

    def initialize(self, as_json: bool = False) -> None:
        self.as_json = as_json

    async def get(self) -> None:
        if not self.is_admin():
            if self.as_json:
                raise web.HTTPError(403, "the admin token is required (Authorization: token ...)")
            self.deny()
            return
        line: WaitingLine = self.settings["waiting_line"]
        snapshot = await self.pool.snapshot(waiting=len(line))
        now = snapshot.time
        timeline: Timeline = self.settings["timeline"]
        timeline.sample(now)
        saved = saved_summary(snapshot.saved, timeline)
        series = {item.name: item for item in timeline.series()}
        if self.as_json:
            body = overview_json(snapshot, series)
            body["saved_work"] = None if saved is None else saved.as_json()
            self.finish(body)
            return
        plan = snapshot.bookings
        self.render(
            "admin.html",
            counts=snapshot.counts,
            waiting=snapshot.waiting,
            rows=snapshot.notebooks,
            charts=[
                (label, series[name], bar_chart(series[name], now, colour))
                for name, label, colour in CHARTS
            ],
            minutes=timeline.minutes,
            now=now,
            proxy_answered=snapshot.proxy_answered,
            pool_name=snapshot.pool_name,
            saved=saved,
            image=self.config.image,
            current_image=snapshot.image_id,
            version=__version__,
            cull_timeout=duration(timedelta(seconds=self.config.cull_timeout)),
            has_token=bool(self.admin_token),
            bookings=schedule.upcoming([*plan.configured, *plan.added], now),
            added=set(plan.added),
            pool_size=plan.pool_size,
            lead=lambda item: schedule.lead_time(item.capacity, plan.seconds_per_notebook),
            refresh=REFRESH_SECONDS,
            duration=duration,
        )


class AdminLoginHandler(AdminPage):
    """`POST /admin/login` with the token in the form's body: sets the cookie, back to the page."""

    def get(self) -> None:
        self.redirect(PAGE)

    def post(self) -> None:
        self.check_xsrf_cookie()  # 403 if the form did not come from our own page
        if not self.admin_token:
            self.deny()
            return
        presented = self.get_body_argument("token", "").strip()
        if not hmac.compare_digest(presented.encode(), self.admin_token.encode()):
            self.deny("That is not the admin token.")
            return
        self.set_signed_cookie(
            COOKIE,
            "admin",
            expires_days=None,  # gone when the browser closes; the signature expires anyway
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
            path=COOKIE_PATH,
        )
        self.redirect(PAGE)


class AdminScheduleForm(AdminPage):
    """`POST /admin/schedule`, the page's form: book a workshop, or clear those booked here."""

    def get(self) -> None:
        self.redirect(PAGE)

    async def post(self) -> None:
        self.check_xsrf_cookie()
        if not self.is_admin():
            self.deny()
            return
        if self.get_body_argument("action", "book") == "clear":
            self.pool.clear_bookings()
            self.redirect(PAGE + "#schedule")
            return
        try:
            capacity = self.get_body_argument("capacity", "").strip()
            item = schedule.booking(
                self.get_body_argument("start", ""),
                self.get_body_argument("end", ""),
                int(capacity) if capacity.isdigit() else capacity,
            )
            await self.pool.book(item)
        except (schedule.BookingError, DockerError) as error:
            self.set_status(400)
            self.render("admin_message.html", problem=str(error), back=PAGE + "#schedule")
            return
        self.redirect(PAGE + "#schedule")


class AdminLogoutHandler(AdminPage):
    def post(self) -> None:
        self.check_xsrf_cookie()
        self.clear_cookie(COOKIE, path=COOKIE_PATH)
        self.redirect(PAGE)


# ----- the admin API -----


class AdminPoolHandler(AdminApiHandler):
    async def delete(self) -> None:
        drained = await self.pool.drain()
        self.finish({"drained": drained})


class AdminScheduleHandler(AdminApiHandler):
    """`/api/schedule`: the workshops booked on this pool and the capacity they plan.

    GET lists them; POST {"start", "end", "capacity"} books one more (kept in state_dir, so it
    outlives a restart); DELETE removes those added here (the configuration's stay).
    """

    def get(self) -> None:
        self.finish(schedule_json(self.pool.booking_plan()))

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
            item = schedule.booking(body["start"], body["end"], body["capacity"])
        except (ValueError, TypeError, KeyError) as error:
            message = str(error) if isinstance(error, schedule.BookingError) else None
            raise web.HTTPError(
                400,
                message or 'the body must be {"start": ISO 8601, "end": ISO 8601, "capacity": n}',
            ) from None
        try:
            await self.pool.book(item)
        except schedule.BookingError as error:
            raise web.HTTPError(400, str(error)) from None
        except DockerError as error:
            raise web.HTTPError(503, f"cannot check this server's memory: {error}") from None
        self.set_status(201)
        self.finish(schedule_json(self.pool.booking_plan()))

    def delete(self) -> None:
        self.pool.clear_bookings()
        self.finish(schedule_json(self.pool.booking_plan()))


class AdminStatsHandler(AdminApiHandler, StatsHandler):
    pass


class MetricsHandler(AdminApiHandler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.settings["metrics"].registry))


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def schedule_json(plan: BookingPlan) -> dict[str, Any]:
    """`/api/schedule`'s answer: the capacity planned, and the bookings not yet over."""
    return {
        "capacity": plan.capacity,
        "pool_size": plan.pool_size,
        "seconds_per_notebook": round(plan.seconds_per_notebook, 2),
        "configured": [item.as_json() for item in schedule.upcoming(plan.configured, plan.time)],
        "added": [item.as_json() for item in schedule.upcoming(plan.added, plan.time)],
    }


def overview_json(snapshot: PoolSnapshot, series: dict[str, Series]) -> dict[str, Any]:
    """`/api/overview`'s answer (without its saved work, which needs the timeline too)."""
    counts = snapshot.counts
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
    }
