"""Client for configurable-http-proxy's REST API: add, delete and list *our* routes.

Contract:
- `add_route(path_id, target, data)` creates or replaces `/user/<path_id>`; the route's data
  carries `tmpnb_pool=<pool name>`, which is how routes we made are told from the others.
- `delete_route(path_id)` removes it; a 404 means it is already gone, which is success.
- `routes()` returns only this pool's routes; every other route is left alone.
Calls are bounded (a semaphore, held per attempt), time out, and are retried only on connection
errors, time-outs and 5xx answers, with jittered exponential back-off until a deadline. Any other
answer is final; every failure is one `ProxyError`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from orchestrator import backoff
from orchestrator.events import log_event
from orchestrator.http1 import KeptAliveClient
from orchestrator.model import (
    ROUTE_CONTAINER,
    ROUTE_HANDED_OUT_AT,
    ROUTE_KEEP,
    ROUTE_MARKER,
    ROUTE_POOL,
    ROUTE_STATE,
    RouteRecord,
    marker_path,
    user_path,
)
from orchestrator.timeutil import parse_time


class ProxyError(Exception):
    """The proxy did not do what was asked."""


class ProxyAuthError(ProxyError):
    """The proxy refused our token."""


class ProxyClient:
    def __init__(
        self,
        endpoint: str,
        token: str,
        pool_name: str,
        *,
        token_source: Callable[[], str] | None = None,
        concurrency: int = 16,
        deadline: float = 10.0,
        request_timeout: float = 5.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        # Where a rotated token is read again when the proxy refuses ours (a restarted proxy with
        # a new token): the routes come back within a reconcile pass, without a restart here.
        self._token_source = token_source
        self.pool_name = pool_name
        self._semaphore = asyncio.Semaphore(concurrency)
        self._deadline = deadline
        self._request_timeout = request_timeout
        # One connection per concurrent call, kept open between calls (http1.py): a hand-out's
        # route write then costs the proxy's one thread a third of what a new connection did.
        self._http = KeptAliveClient(self.endpoint)

    async def check(self) -> None:
        """Raise ProxyError/ProxyAuthError unless the API answers and accepts our token."""
        await self._request("GET", "/api/routes", deadline=3.0)

    async def add_route(self, path_id: str, target: str, data: dict[str, Any]) -> None:
        body = {**data, "target": target, ROUTE_POOL: self.pool_name}
        await self._request("POST", self._route_url(path_id), body=body)

    async def delete_route(self, path_id: str) -> None:
        await self._request("DELETE", self._route_url(path_id), ok_statuses=(404,))

    async def routes(self) -> dict[str, RouteRecord]:
        """This pool's routes by path id."""
        return (await self.listing())[0]

    async def listing(self) -> tuple[dict[str, RouteRecord], bool]:
        """This pool's routes, and whether the proxy still holds the pool's marker route (so it
        has lost no route since `mark_routes_kept`)."""
        raw = json.loads(await self._request("GET", "/api/routes") or b"{}")
        kept = raw.get(marker_path(self.pool_name), {}).get(ROUTE_MARKER) == self.pool_name
        return self._pool_routes(raw), kept

    async def mark_routes_kept(self, target: str) -> None:
        """Write the marker route; `target` answers a visitor who follows it (with a 404)."""
        body = {"target": target, ROUTE_MARKER: self.pool_name}
        await self._request("POST", "/api/routes" + quote(marker_path(self.pool_name)), body=body)

    def _pool_routes(self, raw: dict[str, Any]) -> dict[str, RouteRecord]:
        prefix = "/user/"
        routes = {}
        for path, data in raw.items():
            if data.get(ROUTE_POOL) != self.pool_name or not path.startswith(prefix):
                continue
            path_id = path[len(prefix) :].strip("/")
            routes[path_id] = RouteRecord(
                path_id=path_id,
                target=data.get("target", ""),
                state=data.get(ROUTE_STATE, ""),
                container_id=data.get(ROUTE_CONTAINER),
                last_activity=parse_time(data.get("last_activity")),
                handed_out_at=parse_time(data.get(ROUTE_HANDED_OUT_AT)),
                keep=data.get(ROUTE_KEEP) if isinstance(data.get(ROUTE_KEEP), str) else None,
            )
        return routes

    def _token_changed(self) -> bool:
        """Read the token again; True when it differs from the one the proxy just refused."""
        if self._token_source is None:
            return False
        try:
            token = self._token_source()
        except (OSError, ValueError):
            return False
        if not token or token == self._token:
            return False
        self._token = token
        log_event("proxy-token", endpoint=self.endpoint, what="read the rotated token again")
        return True

    def _route_url(self, path_id: str) -> str:
        return "/api/routes" + quote(user_path(path_id))

    async def _request(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        ok_statuses: tuple[int, ...] = (),
        deadline: float | None = None,
    ) -> bytes:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + (deadline or self._deadline)
        delays = backoff.delays(first=0.05, cap=1.0)
        encoded = None if body is None else json.dumps(body).encode()
        while True:
            headers = {"Authorization": f"token {self._token}"}
            if encoded is not None:
                headers["Content-Type"] = "application/json"
            try:
                async with self._semaphore:  # per attempt: never held through the back-off
                    async with asyncio.timeout(self._request_timeout):
                        status, answer = await self._http.request(
                            method, url, headers=headers, body=encoded
                        )
            except TimeoutError:
                problem = "no answer in time"
            except OSError as error:  # refused, reset, unreachable, DNS, not HTTP
                problem = str(error) or type(error).__name__
            else:
                if 200 <= status < 300:
                    return answer
                if status in ok_statuses:
                    return b""
                if status in (401, 403):
                    if self._token_changed():
                        continue  # at once, with the new token
                    raise ProxyAuthError(
                        f"proxy at {self.endpoint} refused the token (HTTP {status})"
                    ) from None
                if status < 500:  # a definite answer: final
                    raise ProxyError(f"{method} {url}: HTTP {status}") from None
                problem = f"HTTP {status}"
            delay = next(delays)
            if loop.time() + delay > give_up_at:
                raise ProxyError(f"{method} {url} at {self.endpoint}: {problem}")
            await asyncio.sleep(delay)
