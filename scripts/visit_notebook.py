"""A visitor at the service's URL: lands in a notebook and runs a cell. Exits 0 when it works.

    python scripts/visit_notebook.py http://127.0.0.1:8000/

What a browser does, in the same order: the landing page (whose script asks for a notebook), the
request to /spawn/tree that redirects into the visitor's own notebook, then a kernel that runs
`5*4` over its websocket and answers 20. scripts/check-up runs it against `make up`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
import websocket

# Running code in a kernel is the tests' own helper, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from nbtest import KernelError, NotebookServer


class VisitFailed(Exception):
    """What a visitor would have seen go wrong."""


def land_in_notebook(url: str, timeout: float) -> tuple[str, str]:
    """Follow the workshop link as a browser does; return the notebook's base URL and its token."""
    landing = requests.get(url, timeout=10)
    if landing.status_code != 200 or "/spawn" not in landing.text:
        raise VisitFailed(f"the landing page {url} answered {landing.status_code} without /spawn")
    deadline = time.monotonic() + timeout
    while True:
        spawned = requests.get(url.rstrip("/") + "/spawn/tree", timeout=60)
        if spawned.ok and "/user/" in spawned.url:
            break
        if time.monotonic() > deadline:
            raise VisitFailed(f"/spawn/tree gave no notebook: {spawned.status_code} {spawned.url}")
        time.sleep(2)
    # The redirect is relative: the notebook is reached through the very URL the visitor used.
    if not spawned.url.startswith(url.rstrip("/") + "/user/"):
        raise VisitFailed(f"redirected away from the service: {spawned.url}")
    parts = urlsplit(spawned.url)
    token = parse_qs(parts.query).get("token", [""])[0]
    if not token:
        raise VisitFailed(f"the notebook's URL has no token: {parts.path}")
    base = spawned.url.split("?", 1)[0].rsplit("/", 1)[0]  # http://host:port/user/<id>
    return base, token


def run_cell(base: str, token: str, code: str, timeout: float) -> str:
    """Start a kernel, run code over its websocket, return its result as text/plain."""
    server = NotebookServer(base, token)
    kernel_id = server.start_kernel(timeout=30)
    try:
        with server.channels(kernel_id, timeout) as kernel:
            execution = kernel.execute(code, timeout, raise_error=False)
    finally:
        with contextlib.suppress(requests.RequestException):
            server.api("DELETE", f"kernels/{kernel_id}", timeout=10)
    if execution.error:
        raise VisitFailed(f"the kernel raised {execution.error}")
    return execution.result or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the service's URL, as `make up` prints it")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for each step")
    args = parser.parse_args()
    try:
        base, token = land_in_notebook(args.url, args.timeout)
        print(f"visit: landed in {urlsplit(base).path}")
        answer = run_cell(base, token, "5*4", args.timeout)
    except (VisitFailed, KernelError, requests.RequestException, OSError,
            websocket.WebSocketException) as exc:  # fmt: skip
        print(f"visit: FAILED: {exc}", file=sys.stderr)
        return 1
    if answer != "20":
        print(f"visit: FAILED: 5*4 gave {answer!r}", file=sys.stderr)
        return 1
    print("visit: the kernel ran 5*4 over its websocket and answered 20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
