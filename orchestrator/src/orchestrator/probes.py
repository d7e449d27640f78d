"""What a notebook server says about itself: is it up, and is it in use.

Readiness is asked through the proxy, so a ready notebook is one a visitor can reach; it counts
only when the answer is Jupyter's own `/api/status` (a JSON object with `started`): if the proxy
lost the route, the same URL reaches the orchestrator, which must not answer its own probe.
An image with warm kernels (the workshop image's tmpnb-warm-kernels extension) is ready only once
its warm kernels are: `/api/warm-kernels` says so; a server without the extension answers it 404.
Activity is asked of the notebook directly, with `no_track_activity`, so asking is not use.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from orchestrator.events import log_event
from orchestrator.model import Slot, user_path
from orchestrator.timeutil import parse_time


@dataclass(frozen=True)
class Seen:
    """One look at a notebook in use."""

    last_activity: datetime | None = None  # the notebook server's own last activity
    busy: bool = False  # a kernel is executing
    answered: bool = True  # False: it did not answer, so nothing above is known


def warm_kernels_ready(answer: Any) -> bool:
    """From `/api/warm-kernels`: every warm kernel is ready, or failed for good (a visitor then gets
    an ordinary start, so the notebook is usable: waiting would only keep the pool empty), and the
    server is no longer warming its first page (`"page": "warming"`). An
    answer without `ready` is not the extension's (a server that answers every path alike): there
    is no warm kernel to wait for."""
    if not isinstance(answer, dict):
        return False
    if "ready" not in answer:
        return True
    if answer.get("ready") is True:
        return True
    if answer.get("page") == "warming":
        return False  # the server is still making its first page's requests to itself
    kernels = answer.get("kernels")
    if not isinstance(kernels, dict):
        return False
    states = [kernel.get("state") for kernel in kernels.values() if isinstance(kernel, dict)]
    return len(states) == len(kernels) and all(state in ("ready", "failed") for state in states)


def _headers(slot: Slot) -> dict[str, str]:
    return {"Authorization": f"token {slot.token}"} if slot.token else {}


class NotebookProbe:
    def __init__(self, public_url: str, timeout: float = 5.0) -> None:
        self.public_url = public_url.rstrip("/")
        self.timeout = timeout
        self._http = AsyncHTTPClient()

    async def ready(self, slot: Slot) -> bool:
        """One look: does the notebook answer through the proxy as Jupyter?"""
        base = f"{self.public_url}{user_path(slot.path_id)}/api"
        try:
            status = await self._get_json(f"{base}/status", slot)
        except (HTTPClientError, OSError, ValueError):
            return False  # not up yet (the proxy answers 503 until the server listens)
        if not (isinstance(status, dict) and "started" in status):
            return False
        try:
            warm = await self._get_json(f"{base}/warm-kernels", slot)
        except HTTPClientError as error:
            return error.code == 404  # Jupyter answered above: it has no warm kernels to wait for
        except (OSError, ValueError):
            return False
        return warm_kernels_ready(warm)

    async def seen(self, slot: Slot) -> Seen:
        base = f"{slot.target}{user_path(slot.path_id)}/api"
        try:
            status = await self._get_json(f"{base}/status", slot)
            kernels = await self._get_json(f"{base}/kernels?no_track_activity=1", slot)
            busy = any(kernel.get("execution_state") == "busy" for kernel in kernels)
            return Seen(parse_time(status.get("last_activity")), busy)
        except (HTTPClientError, OSError, ValueError, AttributeError, TypeError) as error:
            log_event("status-unknown", logging.INFO, path=slot.path_id, error=error)
            return Seen(answered=False)

    async def _get_json(self, url: str, slot: Slot) -> Any:
        response = await self._http.fetch(
            HTTPRequest(
                url,
                headers=_headers(slot),
                request_timeout=self.timeout,
                connect_timeout=self.timeout,
                follow_redirects=False,
            )
        )
        return json.loads(response.body)
