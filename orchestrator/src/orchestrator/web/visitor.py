"""The visitors' app on `port`: the loading page, the hand-out (`/spawn`, `/api/spawn`), the
waiting line's busy page, saved work (`/saved/...`), the pages of a notebook gone or being
reconnected (`/user/...`), `/api/stats`, `/robots.txt`, the logo.

Visitors never see a 5xx or a traceback: the pool being empty is a 429 with a page that retries
itself (keeping the visitor's place in line, see waiting.py), and any unexpected error renders a
plain page (base.BaseHandler.write_error). Every page carries the operator's theme (title,
workshop name, logo, message, links), HTML-escaped by the templates.

May touch: the request, the visitors' cookies, the waiting line, and the pool's visitor side:
hand_out, available, in_use_by, is_live, restore_work and the saved-work store (`pool.saved`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from tornado import web

from orchestrator import keep
from orchestrator.config import Config
from orchestrator.decisions import client_address
from orchestrator.metrics import Metrics
from orchestrator.model import Slot, user_path
from orchestrator.pool import HandOutFailed, Pool
from orchestrator.waiting import Ticket, WaitingLine
from orchestrator.web.base import (
    TEMPLATES,
    BaseHandler,
    CorsMixin,
    NotFoundHandler,
    StatsHandler,
    Theme,
)

RETRY_AFTER_SECONDS = 5
# A waiter's busy page shows their ticket every RETRY_AFTER_SECONDS; one that stopped asking
# (tab closed) holds its place this long at most.
WAIT_TICKET_SECONDS = 30
WAIT_COOKIE = "tmpnb_wait"
# The visitor's resume key (keep.py). Sent only to this service's own paths, never to a notebook
# (a notebook at /user/... could read it): the workshop link, and the saved-work pages.
KEEP_COOKIE = "tmpnb_keep"
KEEP_COOKIE_PATHS = ("/spawn", "/saved")
# Long enough to outlast a day's notebook plus keep_hours; the server's expiry is what counts.
KEEP_COOKIE_DAYS = 30
# What the visitor chose on the "welcome back" page, for their next /spawn (which may wait in line).
CHOICE_COOKIE = "tmpnb_choice"
CHOICES = ("continue", "fresh")


class VisitorHandler(BaseHandler):
    """A handler of the visitors' app: their address, their resume key and saved work."""

    def keep_key(self) -> str | None:
        """The visitor's resume key, when keeping work is on and the cookie holds a well-formed
        one (a forged one finds nothing: only its digest is looked up)."""
        key = self.get_cookie(KEEP_COOKIE) if self.pool.saved is not None else None
        return key if keep.valid_key(key) else None

    async def saved_work(self, key: str | None) -> keep.Saved | None:
        if key is None or self.pool.saved is None:
            return None
        return await asyncio.to_thread(self.pool.saved.lookup, keep.key_digest(key))

    def set_keep_cookie(self, key: str) -> None:
        """The key, once per path it may be sent to (tornado's set_cookie keeps one per name)."""
        secure = "https" in (self.request.protocol, self.request.headers.get("X-Forwarded-Proto"))
        for path in KEEP_COOKIE_PATHS:
            cookie: SimpleCookie = SimpleCookie()
            cookie[KEEP_COOKIE] = key
            morsel = cookie[KEEP_COOKIE]
            morsel["path"], morsel["max-age"] = path, str(KEEP_COOKIE_DAYS * 86400)
            morsel["httponly"], morsel["samesite"], morsel["secure"] = True, "Lax", secure
            self.add_header("Set-Cookie", morsel.OutputString())

    def client_address(self) -> str:
        """The visitor's real address behind `trusted_proxy_hops` proxies (see decisions.py)."""
        return client_address(
            self.request.remote_ip or "",
            self.request.headers.get_list("X-Forwarded-For"),
            self.config.trusted_proxy_hops,
        )


def _notebook_url(slot: Slot, path: str, query: str, with_token: bool) -> str:
    """The visitor's deep link inside their notebook: the path as it was sent (still
    percent-encoded) and the query byte for byte, but for a `token` the visitor cannot choose."""
    url = f"{user_path(slot.path_id)}/{path.lstrip('/')}"
    params = _without_token(query)
    if with_token and slot.token:
        params.append(urlencode([("token", slot.token)]))
    return url + ("?" + "&".join(params) if params else "")


def _without_token(query: str) -> list[str]:
    return [part for part in query.split("&") if part and part.split("=", 1)[0] != "token"]


def _raw_rest(request_path: str, skip: int) -> str:
    """What follows the first `skip` segments of the request's path, still percent-encoded
    (tornado's path arguments are decoded, and re-encoding them would change the link)."""
    parts = request_path.split("/", skip + 1)
    return parts[skip + 1] if len(parts) > skip + 1 else ""


class LoadingHandler(VisitorHandler):
    """`/`: a page whose script asks for a notebook, so a crawler's GET takes none."""

    def get(self) -> None:
        self.render(
            "loading.html",
            heading="Starting your notebook",
            message="This takes a few seconds.",
            next_url="/spawn" + self.config.redirect_uri,
            delay_ms=0,
            steps=["Finding a free notebook", "Opening it in your browser"],
        )


class LogoHandler(VisitorHandler):
    """`/logo`: the operator's logo, read once at start; a script in an SVG cannot run."""

    def get(self) -> None:
        theme = self.settings.get("theme")
        if theme is None or theme.logo is None:
            raise web.HTTPError(404, "There is no logo.")
        self.set_header("Content-Type", theme.logo_type)
        self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.finish(theme.logo)


def _split_uri(uri: str) -> tuple[str, str]:
    """redirect_uri's path and query (an nbgitpuller link carries one)."""
    path, _, query = uri.partition("?")
    return path, query


def _join_queries(*queries: str) -> str:
    return "&".join(query for query in queries if query)


class SpawnHandler(VisitorHandler):
    """`/spawn/<path>?<query>`: 302 into a ready notebook at that path, with that query.

    When every notebook is taken, or the ready ones are owed to visitors already waiting, the
    visitor gets the busy page (429) and a place in line (see waiting.py). One waiter gets one
    notebook: while one of their requests is being served, another with the same ticket waits,
    and once served, it is sent to the same notebook.
    """

    @property
    def line(self) -> WaitingLine:
        line: WaitingLine = self.settings["waiting_line"]
        return line

    async def get(self, path: str) -> None:
        started = time.perf_counter()
        address = self.client_address()
        now = time.monotonic()
        self.line.expire(now)
        ticket = self.line.show(self.get_cookie(WAIT_COOKIE), now)
        if ticket is not None and ticket.served_url is not None:
            self.clear_cookie(WAIT_COOKIE, path="/spawn")
            self.redirect(ticket.served_url)  # a second request of a waiter already served
            return
        key = self.keep_key()
        choice = self.get_cookie(CHOICE_COOKIE)
        saved = await self.saved_work(key)
        if saved is not None and choice not in CHOICES:
            self._welcome_back(saved)  # continue, download, or start afresh
            return
        restore = saved is not None and choice == "continue"
        key = key or (keep.new_key() if self.pool.saved is not None else None)
        limit = self.config.max_per_address
        if limit and self.pool.in_use_by(address) >= limit:
            self._too_many(429, "limit.html", limit=limit)
            return
        slot = None
        # No await between the check and hand_out's taking a container: nobody jumps the line.
        if self.line.may_take(ticket, self.pool.available):
            self.line.claim(ticket)
            try:
                slot = await self.pool.hand_out(
                    address, keep_as=keep.key_digest(key) if key else None
                )
            except HandOutFailed:
                self.line.unclaim(ticket)
                self._retry_soon()
                return
        else:
            self.settings["metrics"].full.inc()
        if slot is None:
            self.line.unclaim(ticket)
            self._wait(ticket, address, now)
            return
        if self.request.path.rstrip("/") in ("/spawn", ""):
            path, query = _split_uri(self.config.redirect_uri)
            query = _join_queries(query, self.request.query)
        else:
            path, query = _raw_rest(self.request.path, 1), self.request.query  # after /spawn
        url = _notebook_url(slot, path, query, with_token=True)
        if restore and key is not None:  # their files are there before they are
            await self.pool.restore_work(slot, keep.key_digest(key))
        if ticket is not None:
            self.line.serve(ticket, url, time.monotonic())
            self.clear_cookie(WAIT_COOKIE, path="/spawn")
        if key is not None:
            self.set_keep_cookie(key)
        if choice is not None:
            self.clear_cookie(CHOICE_COOKIE, path="/spawn")
        self.redirect(url)
        self.settings["metrics"].handout_seconds.observe(time.perf_counter() - started)

    def _welcome_back(self, saved: keep.Saved) -> None:
        self.render(
            "resume.html",
            saved=saved,
            next_url=self.request.uri,
            kept_until=_moment(saved.saved_at + self.config.keep_seconds),
            saved_at=_moment(saved.saved_at),
            size=_size(saved.bytes),
        )

    def _wait(self, ticket: Ticket | None, address: str, now: float) -> None:
        if ticket is None:
            ticket = self.line.join(secrets.token_urlsafe(16), address, now)
            if ticket is None:
                self._too_many(429, "error.html", status_code=429, reason="Too Many Requests",
                               heading="Too many people are waiting",
                               message="Every notebook is in use and the line is full. "
                               "Please try again in a few minutes.")  # fmt: skip
                return
            self.set_cookie(
                WAIT_COOKIE,
                ticket.id,
                path="/spawn",  # the busy page's own address; never sent to a notebook
                max_age=WAIT_TICKET_SECONDS * 4,  # the server's ttl decides; this only tidies up
                httponly=True,
                samesite="Lax",
            )
        self._too_many(
            429,
            "full.html",
            retry_after=RETRY_AFTER_SECONDS,
            position=self.line.ahead_of(ticket) + 1,
            waiting=len(self.line),
            retry_url=self.request.uri,
        )

    def _retry_soon(self) -> None:
        """The proxy did not take the hand-out: nothing was lost, the page tries again."""
        self.set_status(503)
        self.set_header("Retry-After", "2")
        self.render(
            "loading.html",
            heading="Connecting you to a notebook",
            message="That took longer than it should; trying again.",
            next_url=self.request.uri,
            delay_ms=2000,
            steps=["Finding a free notebook", "Opening it in your browser"],
        )

    def _too_many(self, status: int, template: str, **values: Any) -> None:
        self.set_status(status)
        self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.render(template, **values)


def _workshop_link(url: str) -> bool:
    """A /spawn link of this service, fit for a Location header (no open redirect, no header
    injection)."""
    if any(ord(char) < 33 or ord(char) == 127 or char == "\\" for char in url):
        return False
    return url == "/spawn" or url.startswith(("/spawn/", "/spawn?"))


def _moment(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return ""  # pragma: no cover


class SavedHandler(VisitorHandler):
    """`/saved/...`: the visitor's saved work, found by the resume key in their cookie.

    `GET /saved/status`: {"saved": bool, ...} for the gone page's script; `GET /saved/download`:
    a zip; `POST /saved/choose` (choice=continue|fresh, next=/spawn/...): remember the choice for
    that /spawn, then go there. Without a key (or with a forged or expired one) nothing is found:
    a 404 page, never another visitor's work.
    """

    async def get(self, action: str) -> None:
        saved = await self.saved_work(key := self.keep_key())
        if action == "status":
            body: dict[str, Any] = {"saved": saved is not None}
            if saved is not None:
                body["files"] = len(saved.files)
                body["kept_until"] = _moment(saved.saved_at + self.config.keep_seconds)
            self.finish(body)
            return
        if action != "download":
            raise web.HTTPError(404, "There is nothing at this address; check the link.")
        store = self.pool.saved  # not None when something was found in it
        if saved is None or key is None or store is None:
            raise web.HTTPError(404, "Nothing is saved for this browser (or its time is up).")
        with tempfile.TemporaryFile() as archive:  # up to keep_max_mb: never all in memory
            try:
                await asyncio.to_thread(store.download, keep.key_digest(key), archive)
            except (keep.KeepError, OSError):  # removed meanwhile (its time was up)
                raise web.HTTPError(
                    404, "Nothing is saved for this browser (or its time is up)."
                ) from None
            self.settings["metrics"].downloaded.inc()
            self.set_header("Content-Type", "application/zip")
            self.set_header("Content-Disposition", 'attachment; filename="my-notebook-work.zip"')
            self.set_header("Content-Length", str(archive.tell()))
            archive.seek(0)
            while chunk := archive.read(256 * 1024):
                self.write(chunk)
                await self.flush()
        self.finish()

    def post(self, action: str) -> None:
        if action != "choose":
            raise web.HTTPError(405, "That does not work here.")
        origin = self.request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.request.host:
            # Another site's form (SameSite keeps the key from it; this keeps the choice too).
            raise web.HTTPError(403, "This form works only from this service's own pages.")
        choice = self.get_body_argument("choice", "")
        next_url = self.get_body_argument("next", "")
        if choice not in CHOICES:
            raise web.HTTPError(400, "choice must be continue or fresh")
        if not _workshop_link(next_url):
            raise web.HTTPError(400, "next must be a workshop link of this service (/spawn/...)")
        self.set_cookie(CHOICE_COOKIE, choice, path="/spawn", max_age=600, httponly=True,
                        samesite="Lax")  # fmt: skip
        self.redirect(next_url, status=303)


class ApiSpawnHandler(CorsMixin, VisitorHandler):
    """`POST /api/spawn/` (thebe-style clients): {"url": ...} or 429 {"status": "full"}.

    An API client does not wait in line, takes no notebook owed to a visitor who does, and is
    held to max_per_address like everyone else.
    """

    async def post(self) -> None:
        if not self.authorized(self.settings["api_token"]):
            raise web.HTTPError(401, "an API token is required (Authorization: token ...)")
        if self.request.body.strip():  # no field is read, but nonsense takes no notebook
            try:
                json.loads(self.request.body)
            except ValueError:
                raise web.HTTPError(400, "the request body is not JSON") from None
        started = time.perf_counter()
        address = self.client_address()
        limit = self.config.max_per_address
        if limit and self.pool.in_use_by(address) >= limit:
            self._refuse(429, "limit", f"at most {limit} notebooks per address")
            return
        line: WaitingLine = self.settings["waiting_line"]
        line.expire(time.monotonic())
        slot = None
        if line.may_take(None, self.pool.available):
            try:
                slot = await self.pool.hand_out(address)
            except HandOutFailed:
                self._refuse(503, "retry", "the notebook could not be connected; try again")
                return
        else:
            self.settings["metrics"].full.inc()
        if slot is None:
            self._refuse(429, "full", "every notebook is in use")
            return
        body = {"url": user_path(slot.path_id) + "/"}
        if slot.token:
            body["token"] = slot.token
        self.finish(body)
        self.settings["metrics"].handout_seconds.observe(time.perf_counter() - started)

    def _refuse(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.finish({"status": kind, "message": message})


class UserHandler(VisitorHandler):
    """An unrouted `/user/<id>/...`: its route is being restored, or the notebook is gone."""

    def get(self, path_id: str, rest: str | None) -> None:
        if (rest or "").startswith("api/"):
            # A notebook's API, not a page: say plainly it is not there (never a 200 a readiness
            # probe could take for the notebook's own answer).
            self.set_status(503 if self.pool.is_live(path_id) else 404)
            self.set_header("Retry-After", "2")
            self.finish({"status": "unavailable", "message": "this notebook is not reachable now"})
            return
        if self.pool.is_live(path_id):
            # The proxy lost the route (e.g. it restarted); reconcile restores it within seconds.
            self.render(
                "loading.html",
                heading="Reconnecting to your notebook",
                message="Your notebook is still here; reconnecting.",
                next_url=self.request.uri,
                delay_ms=1500,
                steps=["Restoring the connection", "Opening your notebook"],
            )
            return
        self.set_status(404)
        query = "&".join(_without_token(self.request.query))
        rest = _raw_rest(self.request.path, 2)  # after /user/<id>
        if not rest:
            rest, default_query = _split_uri(self.config.redirect_uri)
            query = _join_queries(default_query, query)
        new_url = "/spawn/" + rest.lstrip("/")
        self.render(
            "gone.html",
            new_url=new_url + ("?" + query if query else ""),
            keeping=self.pool.saved is not None,
        )

    post = put = delete = patch = get


class RobotsHandler(VisitorHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish(
            "User-agent: *\nDisallow: /spawn\nDisallow: /user\nDisallow: /api\nDisallow: /saved\n"
        )


def waiting_line(config: Config) -> WaitingLine:
    """The visitors' line on the busy page: this app serves it, the admin page counts it."""
    return WaitingLine(config.max_waiting, WAIT_TICKET_SECONDS, config.max_per_address)


def make_theme(config: Config) -> Theme:
    """The operator's title, names, message, links and logo (read once: it was checked at start)."""
    return Theme(
        title=config.title,
        workshop_name=config.workshop_name,
        message=config.message,
        links=list(config.page_links),
        logo=Path(config.logo).read_bytes() if config.logo else None,
        logo_type=config.logo_type,
    )


def make_public_app(
    config: Config, pool: Pool, metrics: Metrics, line: WaitingLine | None = None
) -> web.Application:
    """`line`: the waiting line the admin app counts too (app.serve shares one)."""
    return web.Application(
        [
            (r"/", LoadingHandler),
            (r"/spawn/?(.*)", SpawnHandler),
            (r"/api/spawn/?", ApiSpawnHandler),
            (r"/saved/([a-z]+)", SavedHandler),
            (r"/api/stats/?", StatsHandler),
            (r"/user/([^/]+)(?:/(.*))?", UserHandler),
            (r"/robots\.txt", RobotsHandler),
            (r"/logo", LogoHandler),
        ],
        default_handler_class=NotFoundHandler,
        template_path=TEMPLATES,
        pool=pool,
        config=config,
        metrics=metrics,
        api_token=config.api_token,
        theme=make_theme(config),
        waiting_line=line if line is not None else waiting_line(config),
        # No forms; the one cookie is a place in line, which a forged request cannot use.
        xsrf_cookies=False,
    )
