"""A visitor's click, as a browser makes it, down to a kernel that answered: shared by benchmarks.

One `Browser` per visitor: Tornado's async client with a cookie jar that honours cookie paths
(JupyterHub and each notebook server set cookies of the same name on different paths), redirects
followed by hand so that every Set-Cookie on the way is kept. After landing on the notebook's page,
the visitor starts a kernel the way the page's script does (the login cookie and the `_xsrf` cookie
as `X-XSRFToken`), opens its websocket with the page's Origin and runs `5*4` until `20` comes back.

    tmpnb_click(browser)        GET / -> GET /spawn/tree (302) -> the notebook's page
    jupyterhub_click(browser)   GET / -> login, spawn, spawn-pending (its progress event stream,
                                as the page's EventSource) -> OAuth with the hub -> the page
    run_five_times_four(browser, page_url)
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from http.cookies import SimpleCookie
from urllib.parse import urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect

MAX_REDIRECTS = 20


class ClickFailed(RuntimeError):
    """The visitor did not get a working kernel; the message says at which step."""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile, as bench/run.py computes it."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


class Browser:
    """One visitor's cookies and requests against one site (`base_url`, no trailing slash)."""

    def __init__(self, http: AsyncHTTPClient, base_url: str, timeout: float) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cookies: dict[tuple[str, str], str] = {}  # (path, name) -> value

    def cookie_header(self, path: str) -> str:
        # Most specific path first, as browsers send them; of a name seen twice, the deepest wins.
        chosen: dict[str, str] = {}
        for (cookie_path, name), value in sorted(self.cookies.items(), key=lambda i: -len(i[0][0])):
            if path.startswith(cookie_path.rstrip("/") + "/") or path == cookie_path:
                chosen.setdefault(name, value)
        return "; ".join(f"{name}={value}" for name, value in chosen.items())

    def cookie(self, name: str, path: str) -> str | None:
        for (cookie_path, cookie_name), value in sorted(
            self.cookies.items(), key=lambda i: -len(i[0][0])
        ):
            if cookie_name == name and (path.startswith(cookie_path.rstrip("/") + "/")):
                return value
        return None

    def keep_cookies(self, response: HTTPResponse, request_path: str) -> None:
        for header in response.headers.get_list("Set-Cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                path = morsel["path"] or request_path.rsplit("/", 1)[0] or "/"
                expired = morsel["max-age"] in ("0", "-1") or "1970" in morsel["expires"]
                if expired or not morsel.value:
                    self.cookies.pop((path, name), None)
                else:
                    self.cookies[(path, name)] = morsel.value

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        body: str | None = None,
        headers: dict | None = None,
        follow: bool = True,
    ) -> HTTPResponse:
        """One request (and its redirects when `follow`), keeping cookies; no error on 4xx/5xx."""
        url = urljoin(self.base_url + "/", url)
        for _ in range(MAX_REDIRECTS):
            path = urlsplit(url).path
            request_headers = {**(headers or {})}
            cookies = self.cookie_header(path)
            if cookies:
                request_headers["Cookie"] = cookies
            response = await self.http.fetch(
                HTTPRequest(
                    url,
                    method=method,
                    body=body,
                    headers=request_headers,
                    follow_redirects=False,
                    request_timeout=self.timeout,
                    connect_timeout=self.timeout,
                ),
                raise_error=False,
            )
            if response.code == 599:
                raise ClickFailed(f"{method} {path}: {response.error}")
            self.keep_cookies(response, path)
            if not follow or response.code not in (301, 302, 303, 307, 308):
                return response
            url = urljoin(url, response.headers["Location"])
            if response.code in (301, 302, 303):
                method, body = "GET", None
        raise ClickFailed(f"more than {MAX_REDIRECTS} redirects, last {url}")


def _expect(response: HTTPResponse, code: int, step: str) -> HTTPResponse:
    if response.code != code:
        text = (response.body or b"")[:200].decode(errors="replace")
        raise ClickFailed(f"{step}: {response.effective_url} answered {response.code} {text!r}")
    return response


async def tmpnb_click(browser: Browser, path: str = "tree") -> str:
    """The workshop link of this project: its loading page, whose script asks /spawn/<path>."""
    _expect(await browser.fetch("/"), 200, "loading page")
    spawn = await browser.fetch(f"/spawn/{path}", follow=False)
    _expect(spawn, 302, "/spawn")
    page = _expect(await browser.fetch(spawn.headers["Location"]), 200, "notebook page")
    return page.effective_url


async def jupyterhub_click(browser: Browser) -> str:
    """JupyterHub's public link with tmpauthenticator: a new user, a spawn, then the server."""
    response = await browser.fetch("/")
    if response.code == 200 and "/hub/spawn-pending/" in response.effective_url:
        # Not ready within the hub's first second: the page's EventSource waits for `ready`,
        # then reloads, which redirects to the server.
        progress = re.search(r'new EventSource\("([^"]+)"\)', response.body.decode())
        if not progress:
            raise ClickFailed("spawn-pending page without a progress stream")
        await _wait_progress_ready(browser, html.unescape(progress.group(1)))
        response = await browser.fetch(response.effective_url)
    _expect(response, 200, "notebook page")
    if "/user/" not in response.effective_url:
        raise ClickFailed(f"landed on {response.effective_url}, not on a notebook server")
    return response.effective_url


async def _wait_progress_ready(browser: Browser, progress_url: str) -> None:
    events: list[dict] = []
    buffer = bytearray()

    def on_chunk(chunk: bytes) -> None:
        buffer.extend(chunk)
        while b"\n\n" in buffer:
            block, _, rest = bytes(buffer).partition(b"\n\n")
            buffer[:] = rest
            for line in block.decode().splitlines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))

    path = urlsplit(urljoin(browser.base_url + "/", progress_url)).path
    response = await browser.http.fetch(
        HTTPRequest(
            urljoin(browser.base_url + "/", progress_url),
            headers={"Cookie": browser.cookie_header(path), "Accept": "text/event-stream"},
            streaming_callback=on_chunk,
            request_timeout=browser.timeout,
        ),
        raise_error=False,
    )
    if any(event.get("ready") for event in events):
        return
    failed = [event.get("message") for event in events if event.get("failed")]
    raise ClickFailed(f"spawn did not become ready ({response.code}): {failed or events[-1:]}")


async def run_five_times_four(browser: Browser, page_url: str) -> None:
    """Start a kernel on the server of `page_url` and run `5*4` over its websocket; expect 20."""
    parts = urlsplit(page_url)
    base = re.match(r"(/user/[^/]+/)", parts.path)
    if not base:
        raise ClickFailed(f"no /user/<id>/ in {page_url}")
    server = base.group(1)
    xsrf = browser.cookie("_xsrf", server)
    if not xsrf:
        raise ClickFailed(f"no _xsrf cookie for {server}")
    headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"}
    kernel = _expect(
        await browser.fetch(f"{server}api/kernels", "POST", "{}", headers), 201, "start kernel"
    )
    await five_times_four_in(browser, server, json.loads(kernel.body)["id"])


async def five_times_four_in(
    browser: Browser, server: str, kernel_id: str, session_id: str | None = None
) -> None:
    """Run `5*4` in a running kernel of `server` (/user/<id>/) over its websocket; expect 20."""
    xsrf = browser.cookie("_xsrf", server) or ""
    query = f"?session_id={session_id}" if session_id else ""
    ws_url = browser.base_url.replace("http://", "ws://", 1) + (
        f"{server}api/kernels/{kernel_id}/channels{query}"
    )
    connection = await websocket_connect(
        HTTPRequest(
            ws_url,
            headers={
                "Cookie": browser.cookie_header(f"{server}api/kernels"),
                "Origin": browser.base_url,
                "X-XSRFToken": xsrf,
            },
            connect_timeout=browser.timeout,
            request_timeout=browser.timeout,
        )
    )
    try:
        msg_id = secrets.token_hex(8)
        await connection.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "visitor",
                       "session": session_id or secrets.token_hex(8), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": "5*4", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))  # fmt: skip
        deadline = time.monotonic() + browser.timeout
        while time.monotonic() < deadline:
            raw = await connection.read_message()
            if raw is None:
                raise ClickFailed(f"kernel websocket closed: {connection.close_reason}")
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                result = message["content"]["data"]["text/plain"]
                if result != "20":
                    raise ClickFailed(f"5*4 gave {result!r}")
                return
            if message["msg_type"] == "error":
                raise ClickFailed(f"5*4 raised {message['content'].get('ename')}")
        raise ClickFailed("no execute_result in time")
    finally:
        connection.close()
