"""The admin app on `admin_port`: the operator's page (the pool, the notebooks in use, culls and
errors), its login, and the admin API (/api/overview, /api/pool, /api/schedule, /api/stats,
/metrics). Every handler of the admin port is here.

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

May touch: the request, the login cookie, the app's settings (`pool`, `config`, `metrics`,
`timeline`, `waiting_line`, `admin_token`); of the pool, what it reads (Pool.snapshot(),
Pool.booking_plan(), Pool.counts()) and the operator's actions (drain, book, clear_bookings).
What the page shows is computed in view.py.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from orchestrator import __version__, schedule
from orchestrator.config import Config
from orchestrator.docker_backend import DockerError
from orchestrator.metrics import Metrics, Timeline
from orchestrator.pool import Pool
from orchestrator.waiting import WaitingLine
from orchestrator.web import view
from orchestrator.web.base import TEMPLATES, BaseHandler, NotFoundHandler, StatsHandler
from orchestrator.web.visitor import waiting_line

PAGE = "/admin/"
# The cookie's path keeps it to the admin page: browsers send cookies to every port of a host,
# and a visitor's notebook on the public port must never receive it.
COOKIE = "tmpnb-admin"
COOKIE_PATH = "/admin"
COOKIE_MAX_AGE_DAYS = 0.5


def cookie_secret(admin_token: str | None) -> bytes:
    """The key that signs the login cookie: derived from the token, random if there is none."""
    if not admin_token:
        return secrets.token_bytes(32)
    return hmac.new(admin_token.encode(), b"tmpnb admin cookie", hashlib.sha256).digest()


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
        timeline: Timeline = self.settings["timeline"]
        timeline.sample(snapshot.time)
        series = {item.name: item for item in timeline.series()}
        if self.as_json:
            self.finish(view.overview_json(snapshot, series))
            return
        values = view.page_values(
            snapshot,
            series,
            minutes=timeline.minutes,
            image=self.config.image,
            cull_timeout=self.config.cull_timeout,
            version=__version__,
        )
        self.render("admin.html", has_token=bool(self.admin_token), **values)


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
        self.finish(view.schedule_json(self.pool.booking_plan()))

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
        self.finish(view.schedule_json(self.pool.booking_plan()))

    def delete(self) -> None:
        self.pool.clear_bookings()
        self.finish(view.schedule_json(self.pool.booking_plan()))


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


def make_admin_app(
    config: Config, pool: Pool, metrics: Metrics, line: WaitingLine | None = None
) -> web.Application:
    """`line`: the public app's waiting line, which the admin page counts (app.serve shares one;
    an admin app alone counts a line of its own, which nobody joins)."""
    return web.Application(
        [
            (r"/", web.RedirectHandler, {"url": PAGE}),
            (r"/admin/?", AdminOverviewPage),
            (r"/admin/login", AdminLoginHandler),
            (r"/admin/logout", AdminLogoutHandler),
            (r"/admin/schedule", AdminScheduleForm),
            (r"/api/overview/?", AdminOverviewPage, {"as_json": True}),
            (r"/api/pool/?", AdminPoolHandler),
            (r"/api/schedule/?", AdminScheduleHandler),
            (r"/api/stats/?", AdminStatsHandler),
            (r"/metrics", MetricsHandler),
        ],
        default_handler_class=NotFoundHandler,
        template_path=TEMPLATES,
        pool=pool,
        config=config,
        metrics=metrics,
        admin_token=config.admin_token,
        waiting_line=line if line is not None else waiting_line(config),
        timeline=Timeline.for_metrics(metrics, pool.clock()),
        cookie_secret=cookie_secret(config.admin_token),
        # The login form's XSRF cookie, kept to the admin page like the login cookie.
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Strict", "path": COOKIE_PATH},
    )
