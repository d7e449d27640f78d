"""HTTP handlers: the visitor-facing app and the admin app.

Visitors never see a 5xx or a traceback: the pool being empty is a 429 with a page that retries
itself, and any unexpected error renders a plain page (write_error is overridden).
"""

from __future__ import annotations

import hmac
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from orchestrator import __version__
from orchestrator.model import Slot, user_path

RETRY_AFTER_SECONDS = 5
_NO_STORE = "no-store"


class BaseHandler(web.RequestHandler):
    """Plain error pages, no caching, CORS headers when configured."""

    @property
    def pool(self) -> Any:
        return self.settings["pool"]

    @property
    def config(self) -> Any:
        return self.settings["config"]

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", _NO_STORE)
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = (
            HTTPStatus(status_code).phrase if status_code in HTTPStatus._value2member_map_ else ""
        )
        message = "Something went wrong on our side; please try again in a moment."
        if status_code < 500:
            error = kwargs.get("exc_info", (None, None))[1]
            message = getattr(error, "log_message", None) or reason
        if self.request.path.startswith("/api/"):
            self.finish({"status": "error", "message": message})
        else:
            self.render("error.html", status_code=status_code, reason=reason, message=message)

    def authorized(self, expected: str | None) -> bool:
        """True when no token is configured, or the request carries it (constant-time compare)."""
        if not expected:
            return True
        header = self.request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        return hmac.compare_digest(presented.strip().encode(), expected.encode())


class CorsMixin(BaseHandler):
    """Access-Control-* headers from the allow_origin/credentials/headers/methods options."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        config = self.config
        if config.allow_origin:
            self.set_header("Access-Control-Allow-Origin", config.allow_origin)
        if config.allow_credentials is not None:
            self.set_header(
                "Access-Control-Allow-Credentials", str(config.allow_credentials).lower()
            )
        if config.allow_headers:
            self.set_header("Access-Control-Allow-Headers", config.allow_headers)
        if config.allow_methods:
            self.set_header("Access-Control-Allow-Methods", config.allow_methods)

    def options(self, *args: str) -> None:
        self.set_status(204)
        self.finish()


def _notebook_url(slot: Slot, path: str, query: str, with_token: bool) -> str:
    """The visitor's deep link inside their notebook, query kept whole, token added if any."""
    url = f"{user_path(slot.path_id)}/{path.lstrip('/')}"
    params = parse_qsl(query, keep_blank_values=True)
    if with_token and slot.token:
        params.append(("token", slot.token))
    return url + ("?" + urlencode(params) if params else "")


class LoadingHandler(BaseHandler):
    """`/`: a page whose script asks for a notebook, so a crawler's GET takes none."""

    def get(self) -> None:
        self.render(
            "loading.html",
            heading="Starting your notebook",
            message="This takes a moment.",
            next_url="/spawn" + self.config.redirect_uri,
            delay_ms=0,
        )


class SpawnHandler(BaseHandler):
    """`/spawn/<path>?<query>`: 302 into a ready notebook at that path, with that query."""

    async def get(self, path: str) -> None:
        started = time.perf_counter()
        slot = await self.pool.hand_out()
        if slot is None:
            self.set_status(429)
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.render("full.html", retry_after=RETRY_AFTER_SECONDS)
            return
        path = path or self.config.redirect_uri
        self.redirect(_notebook_url(slot, path, self.request.query, with_token=True))
        self.settings["metrics"].handout_seconds.observe(time.perf_counter() - started)


class ApiSpawnHandler(CorsMixin):
    """`POST /api/spawn/` (thebe-style clients): {"url": ...} or 429 {"status": "full"}."""

    async def post(self) -> None:
        if not self.authorized(self.settings["api_token"]):
            raise web.HTTPError(401, "an API token is required (Authorization: token ...)")
        started = time.perf_counter()
        slot = await self.pool.hand_out()
        if slot is None:
            self.set_status(429)
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.finish({"status": "full"})
            return
        body = {"url": user_path(slot.path_id) + "/"}
        if slot.token:
            body["token"] = slot.token
        self.finish(body)
        self.settings["metrics"].handout_seconds.observe(time.perf_counter() - started)


class StatsHandler(CorsMixin):
    def get(self) -> None:
        self.finish(
            {
                "available": self.pool.available,
                "capacity": self.config.pool_size,
                "version": __version__,
                "container_image": self.config.image,
            }
        )


class UserHandler(BaseHandler):
    """An unrouted `/user/<id>/...`: its route is being restored, or the notebook is gone."""

    def get(self, path_id: str, rest: str | None) -> None:
        if self.pool.is_live(path_id):
            # The proxy lost the route (e.g. it restarted); reconcile restores it within seconds.
            self.render(
                "loading.html",
                heading="Reconnecting to your notebook",
                message="Your notebook is still here; reconnecting.",
                next_url=self.request.uri,
                delay_ms=1500,
            )
            return
        self.set_status(404)
        query = urlencode([(k, v) for k, v in parse_qsl(self.request.query) if k != "token"])
        new_url = "/spawn/" + (rest or self.config.redirect_uri).lstrip("/")
        self.render("gone.html", new_url=new_url + ("?" + query if query else ""))

    post = put = delete = patch = get


class RobotsHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish("User-agent: *\nDisallow: /spawn\nDisallow: /user\nDisallow: /api\n")


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise web.HTTPError(404, "There is nothing at this address.")


# ----- admin app -----


class AdminHandler(BaseHandler):
    def prepare(self) -> None:
        if not self.authorized(self.settings["admin_token"]):
            raise web.HTTPError(401, "the admin token is required (Authorization: token ...)")


class AdminPoolHandler(AdminHandler):
    async def delete(self) -> None:
        drained = await self.pool.drain()
        self.finish({"drained": drained})


class AdminStatsHandler(AdminHandler, StatsHandler):
    pass


class MetricsHandler(AdminHandler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.settings["metrics"].registry))
