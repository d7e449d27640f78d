"""A visitor at the service's URL: lands in a notebook and runs a cell. Exits 0 when it works.

    python scripts/visit_notebook.py http://127.0.0.1:8000/

What a browser does, in the same order: the landing page (whose script asks for a notebook), the
request to /spawn/tree that redirects into the visitor's own notebook, then a kernel that runs
`5*4` over its websocket and answers 20. scripts/check-up runs it against `make up`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import requests
import websocket


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
    headers = {"Authorization": f"token {token}"}
    response = requests.post(
        f"{base}/api/kernels", json={"name": "python3"}, headers=headers, timeout=30
    )
    response.raise_for_status()
    kernel_id = response.json()["id"]
    ws_url = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    connection = websocket.create_connection(
        f"{ws_url}/api/kernels/{kernel_id}/channels", header=headers, timeout=timeout
    )
    try:
        msg_id = uuid.uuid4().hex
        connection.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "check-up",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False},
                    "channel": "shell",
                }
            )
        )
        result = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(connection.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "execute_result":
                result = message["content"]["data"]["text/plain"]
            elif kind == "error":
                raise VisitFailed(f"the kernel raised {message['content']['ename']}")
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                return result
        raise VisitFailed(f"the kernel did not finish within {timeout:.0f}s")
    finally:
        connection.close()
        requests.delete(f"{base}/api/kernels/{kernel_id}", headers=headers, timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the service's URL, as `make up` prints it")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for each step")
    args = parser.parse_args()
    try:
        base, token = land_in_notebook(args.url, args.timeout)
        print(f"visit: landed in {urlsplit(base).path}")
        answer = run_cell(base, token, "5*4", args.timeout)
    except (VisitFailed, requests.RequestException, OSError, websocket.WebSocketException) as exc:
        print(f"visit: FAILED: {exc}", file=sys.stderr)
        return 1
    if answer != "20":
        print(f"visit: FAILED: 5*4 gave {answer!r}", file=sys.stderr)
        return 1
    print("visit: the kernel ran 5*4 over its websocket and answered 20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
