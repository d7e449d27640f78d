"""What both web apps share: the base handler (security headers, no caching, themed plain error
pages, never a traceback; the constant-time token check), the operator's theme, CORS, the
`/api/stats` handler, the 404.

May touch: the request and the app's settings (`pool`, `config`, `theme`); of the pool, only
Pool.counts() (for /api/stats).
"""

from __future__ import annotations

import hmac
from http import HTTPStatus
from pathlib import Path
from typing import Any

from tornado import web

from orchestrator import __version__
from orchestrator.config import Config
from orchestrator.pool import Pool

# The pages of both apps.
TEMPLATES = str(Path(__file__).parent / "templates")
_NO_STORE = "no-store"
# Inline styles and scripts of our own templates, the logo, nothing from elsewhere.
_PAGE_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADINGS = {
    400: "That request did not make sense",
    401: "This needs a token",
    403: "Not allowed",
    404: "Page not found",
    405: "That does not work here",
    429: "Too many requests",
}


class BaseHandler(web.RequestHandler):
    """Themed plain error pages, no caching, the security headers, the token check."""

    @property
    def pool(self) -> Pool:
        pool: Pool = self.settings["pool"]
        return pool

    @property
    def config(self) -> Config:
        config: Config = self.settings["config"]
        return config

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", _NO_STORE)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", _PAGE_POLICY)
        self.set_header("Referrer-Policy", "same-origin")

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace["theme"] = self.settings.get("theme") or Theme()
        return namespace

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
            heading = _HEADINGS.get(status_code) or (
                "Something went wrong" if status_code >= 500 else reason
            )
            self.render(
                "error.html",
                status_code=status_code,
                reason=reason,
                heading=heading,
                message=message,
            )

    def authorized(self, expected: str | None) -> bool:
        """True when no token is configured, or the request carries it (constant-time compare)."""
        if not expected:
            return True
        header = self.request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        return hmac.compare_digest(presented.strip().encode(), expected.encode())


class Theme:
    """What the operator put on every page; the templates escape each value."""

    def __init__(
        self,
        title: str = "Jupyter notebooks",
        workshop_name: str | None = None,
        message: str | None = None,
        links: list[tuple[str, str]] | None = None,
        logo: bytes | None = None,
        logo_type: str | None = None,
    ) -> None:
        self.title = title
        self.workshop_name = workshop_name
        self.paragraphs = [part.strip() for part in (message or "").split("\n\n") if part.strip()]
        self.links = links or []
        self.logo = logo
        self.logo_type = logo_type


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


class StatsHandler(CorsMixin):
    """`/api/stats`: the pool's counts (Pool.counts), for the front door and tmpnb's clients."""

    def get(self) -> None:
        counts = self.pool.counts()
        self.finish(
            {
                "available": counts.warm,
                "capacity": counts.capacity,
                "version": __version__,
                "container_image": self.config.image,
            }
        )


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise web.HTTPError(404, "There is nothing at this address; check the link.")
