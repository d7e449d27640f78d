"""What a browser's first page load costs the visitor's notebook server, request by request.

    python bench/page_load.py [--image workshop-notebook:slim] [--loads 5] [--json-out page.json]

A pooled notebook server has one visitor, so everything its first page load costs is paid after
the click, on the visitor's time: per-process caches (the static files' hashes, their places on
disk) are always cold. This measures it where it is paid, in the notebook's cgroup.

1. One container of the image (`start-notebook`, base path /user/bench/, no token, its port
   published on 127.0.0.1 only); a headless Chromium opens the workshop notebook's deep link,
   waits until its kernel is idle, and the page's own Resource Timing lists every URL it fetched
   (scripts, styles, fonts, the REST calls).
2. `--loads` times, each on a fresh container of the image once its warm kernel is ready: every
   one of those URLs is fetched with GET, in the page's order, over one kept-alive connection
   with Chromium's `Accept-Encoding`, and the container's CPU (its cgroup) is read before and
   after each request.
Prints, by kind of request (the page, Notebook 7's static files, the lab extensions' files, each
API call), the median over the loads of the CPU milliseconds and bytes sent. The session POST,
its renames and the kernel's websocket are not replayed (bench/room.py counts them): only what
a GET repeats. Every container is labelled tmpnb.bench=page and removed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "support")]

from cpu import container_seconds  # noqa: E402
from notebook_page import build_no_netlink, kernel_idle, start_chromium  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BASE_PATH = "/user/bench/"
NOTEBOOK = "workshop/python.ipynb"
# What Chromium sends; the server's gzip (Tornado's) is what a visitor's load pays for.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
LABEL = "tmpnb.bench=page"


def start_container(image: str) -> tuple[str, int]:
    """A notebook server of `image` as the orchestrator starts one; (container id, host port)."""
    command = ["docker", "run", "-d", "--rm", "--label", LABEL, "-p", "127.0.0.1::8888"]
    command += [image, "start-notebook", f"--base-path={BASE_PATH}", "--port=8888"]
    container = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    port = subprocess.run(
        ["docker", "port", container, "8888/tcp"], capture_output=True, text=True, check=True
    ).stdout.split(":")[-1]
    return container, int(port)


def wait_until_ready(port: int, timeout: float = 120) -> None:
    """api/status answers and the warm kernels are ready (or the image has none: 404)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", f"{BASE_PATH}api/status")
            status = connection.getresponse()
            status.read()
            if status.status == 200:
                connection.request("GET", f"{BASE_PATH}api/warm-kernels")
                answer = connection.getresponse()
                body = answer.read()
                if answer.status == 404 or (answer.status == 200 and json.loads(body)["ready"]):
                    return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise SystemExit(f"the notebook server on port {port} was not ready within {timeout:g} s")


def page_urls(port: int) -> list[str]:
    """The paths (with query) the notebook's page fetched until its kernel was idle, in order."""
    with tempfile.TemporaryDirectory() as scratch:
        browser = start_chromium(build_no_netlink(Path(scratch)), page_timeout=120)
        try:
            browser.get(f"http://127.0.0.1:{port}{BASE_PATH}notebooks/{NOTEBOOK}")
            WebDriverWait(browser, 120, poll_frequency=0.2).until(kernel_idle)
            time.sleep(2)  # the requests the page makes right after (settings, translations)
            names = browser.execute_script(
                "return [performance.getEntriesByType('navigation')[0].name].concat("
                "performance.getEntriesByType('resource').map(e => e.name))"
            )
        finally:
            browser.quit()
    paths = []
    for name in names:
        parts = urlsplit(name)
        if parts.scheme == "http" and parts.port == port:
            paths.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return paths


def kind(path: str) -> str:
    rest = path.removeprefix(BASE_PATH).split("?", 1)[0]
    if rest.startswith("notebooks/"):
        return "the notebook's page"
    if rest.startswith("static/"):
        return "static/ (Notebook 7, the server)"
    if rest.startswith("lab/extensions/"):
        return "lab/extensions/ (prebuilt extensions)"
    if rest.startswith(("api/", "lab/api/")):
        words = rest.split("/")
        return "/".join(words[:3] if words[0] == "lab" else words[:2])
    return rest


def one_load(
    container: str, port: int, paths: list[str], by_path: list[list[float]]
) -> dict[str, list[float]]:
    """Every path once, in order, over one connection: {kind: [CPU ms, bytes, requests]}. A 4xx
    counts as the page got it too (lsp/status: 404, the language server bridge is off). Each
    request's CPU ms is appended to `by_path`'s row of the same index."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    cost: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    try:
        for index, path in enumerate(paths):
            before = container_seconds(container)
            connection.request("GET", path, headers={"Accept-Encoding": ACCEPT_ENCODING})
            answer = connection.getresponse()
            body = answer.read()
            if answer.status >= 500:
                raise SystemExit(f"GET {path}: {answer.status}")
            spent = container_seconds(container) - before
            row = cost[kind(path)]
            row[0] += spent * 1000
            row[1] += len(body)
            row[2] += 1
            by_path[index].append(spent * 1000)
    finally:
        connection.close()
    return dict(cost)


def remove(container: str) -> None:
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="workshop-notebook:slim")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--json-out")
    options = parser.parse_args()

    container, port = start_container(options.image)
    try:
        wait_until_ready(port)
        paths = page_urls(port)
    finally:
        remove(container)
    loads = []
    by_path: list[list[float]] = [[] for _ in paths]
    for _ in range(options.loads):
        container, port = start_container(options.image)
        try:
            wait_until_ready(port)
            time.sleep(1)  # the warm kernel's start settles before the first request
            loads.append(one_load(container, port, paths, by_path))
        finally:
            remove(container)

    kinds = sorted({k for load in loads for k in load}, key=lambda k: -loads[0].get(k, [0])[0])
    print(f"{options.image}: {len(paths)} requests a page load, median of {options.loads} loads")
    print("| request | count | server CPU ms | bytes sent |")
    print("| --- | ---: | ---: | ---: |")
    results: dict[str, dict[str, float]] = {}
    for name in [*kinds, "all"]:
        rows = [
            load.get(name, [0.0, 0.0, 0.0])
            if name != "all"
            else [sum(row[i] for row in load.values()) for i in range(3)]
            for load in loads
        ]
        cpu = statistics.median(row[0] for row in rows)
        sent = statistics.median(row[1] for row in rows)
        count = int(rows[0][2])
        results[name] = {"cpu_ms": cpu, "bytes": sent, "requests": count}
        print(f"| {name} | {count} | {cpu:.0f} | {sent / 1024:.0f} KiB |")
    if options.json_out:
        with open(options.json_out, "w", encoding="utf-8") as file:
            requests = [
                {"path": path, "cpu_ms": statistics.median(spent)}
                for path, spent in zip(paths, by_path, strict=True)
            ]
            json.dump(
                {"image": options.image, "kinds": results, "requests": requests}, file, indent=2
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
