"""A room clicks one workshop link at once: click → first result, warm kernels on and off.

    python bench/room.py [--rooms 1,10,50] [--json-out room.json]

Each visitor does what a browser on the workshop link does with Notebook 7: the loading page, the
deep link `/spawn/notebooks/workshop/python.ipynb` (302), the notebook's page (its `_xsrf`
cookie), a session on a random path (POST /api/sessions), renamed to the notebook's path (PATCH),
the kernel's websocket, `5*4` until `20` comes back. The time is from the first request to the
`20`.

Both modes run the real workshop image (`workshop-notebook:slim`, TMPNB_TEST_IMAGE) in a warm pool
as large as the largest room, behind the real configurable-http-proxy, with the orchestrator as a
subprocess: "warm" as the image comes (the tmpnb-warm-kernels extension keeps a kernel started in
every pooled notebook, and the pool calls a notebook ready only once its kernel is), "cold" with
Jupyter's own kernel manager (the kernel starts when the visitor asks, as in tmpnb). Each room is
served from a full pool. Everything created carries the pool label `tmpnb.pool=benchroom...` and
is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from cpu import CpuSnapshot, container_memory, memtotal_bytes
from run import NOTEBOOK_IMAGE, Orchestrator, machine, percentile, remove_pool
from selenium.webdriver.support.ui import WebDriverWait
from tornado.httpclient import AsyncHTTPClient
from visitor import Browser, _expect, five_times_four_in

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from notebook_page import (  # the browser suite's steps, shared
    OutputOfFirstCell,
    TypedIntoFirstCell,
    build_no_netlink,
    kernel_idle,
    start_chromium,
)

NOTEBOOK = "workshop/python.ipynb"
RERUN_SECONDS = 3
# Jupyter's own kernel manager, instead of the image's: the "cold" mode.
COLD_COMMAND = (
    "start-notebook --base-path={base_path} --port={port} --ip={ip} "
    "--ServerApp.kernel_manager_class="
    "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"
)
MODES = {"warm": None, "cold": COLD_COMMAND}


async def click_and_run(http: AsyncHTTPClient, proxy_url: str) -> float:
    """One visitor, from the click to `20` on screen; seconds."""
    started = time.perf_counter()
    browser = Browser(http, proxy_url, timeout=300)
    _expect(await browser.fetch("/"), 200, "loading page")
    spawn = await browser.fetch(f"/spawn/notebooks/{NOTEBOOK}", follow=False)  # Notebook 7
    _expect(spawn, 302, "/spawn")
    page = _expect(await browser.fetch(spawn.headers["Location"]), 200, "notebook page")
    server = "/" + "/".join(page.effective_url.split("/", 5)[3:5]) + "/"  # /user/<id>/
    headers = {
        "X-XSRFToken": browser.cookie("_xsrf", server) or "",
        "Content-Type": "application/json",
    }
    # Notebook 7 and JupyterLab: a session on a random path, then renamed to the notebook's.
    created = await browser.fetch(
        f"{server}api/sessions",
        "POST",
        json.dumps(
            {
                "path": str(uuid.uuid4()),
                "name": "",
                "type": "notebook",
                "kernel": {"name": "python3"},
            }
        ),
        headers,
    )
    session = json.loads(_expect(created, 201, "create session").body)
    renamed = await browser.fetch(
        f"{server}api/sessions/{session['id']}",
        "PATCH",
        json.dumps({"path": NOTEBOOK, "name": NOTEBOOK.rsplit("/", 1)[1]}),
        headers,
    )
    _expect(renamed, 200, "rename session")
    await five_times_four_in(browser, server, session["kernel"]["id"], session["id"])
    return time.perf_counter() - started


async def room(proxy_url: str, visitors: int) -> list[float]:
    http = AsyncHTTPClient(force_instance=True, max_clients=visitors * 2 + 10)
    try:
        return list(
            await asyncio.gather(*(click_and_run(http, proxy_url) for _ in range(visitors)))
        )
    finally:
        http.close()


def browser_room(proxy_url: str, visitors: int, shim: Path) -> list[tuple[float, int]]:
    """`visitors` headless Chromiums, open before the click, follow the deep link at the same
    moment; each types `5*4` into the first cell and runs it. Per visitor: seconds from the
    navigation to `20` on screen, and how many times Shift+Enter was pressed (a visitor who sees
    no result presses again after RERUN_SECONDS; Notebook 7 on a busy machine sometimes drops the
    first execution while its kernel connection settles)."""
    browsers = [start_chromium(shim, page_timeout=300) for _ in range(visitors)]
    together = threading.Barrier(visitors)

    def click_and_see(browser) -> tuple[float, int]:
        together.wait()
        started = time.perf_counter()
        browser.get(f"{proxy_url}/spawn/notebooks/{NOTEBOOK}")
        # As a person does: type once the notebook shows its kernel idle (typing earlier goes into
        # a cell about to be replaced), then Shift+Enter.
        output = OutputOfFirstCell("20", rerun_seconds=RERUN_SECONDS)
        for condition in (kernel_idle, TypedIntoFirstCell("5*4"), output):
            WebDriverWait(browser, 300, poll_frequency=0.1).until(condition)
        return time.perf_counter() - started, output.presses

    try:
        with ThreadPoolExecutor(visitors) as threads:
            return list(threads.map(click_and_see, browsers))
    finally:
        for browser in browsers:
            browser.quit()


def pool_containers(pool_name: str) -> list[str]:
    client = docker.from_env()
    try:
        listed = client.api.containers(filters={"label": f"tmpnb.pool={pool_name}"}, quiet=True)
        return [container["Id"] for container in listed]
    finally:
        client.close()


def fill_costs(before: CpuSnapshot, orchestrator: Orchestrator, seconds: float, count: int) -> dict:
    """What the pool's fill from empty cost the machine, by part, and what a pooled notebook
    holds in memory once ready."""
    containers = pool_containers(orchestrator.pool_name)
    after = CpuSnapshot.take(
        pids={"proxy": orchestrator.proxy.process.pid, "orchestrator": orchestrator.process.pid},
        containers=containers,
    )
    cpu = after.minus(before)
    memory = [container_memory(container) for container in containers]
    usage = sorted(item.usage for item in memory)
    anonymous = sorted(item.anonymous for item in memory)
    median_usage, median_anonymous = usage[len(usage) // 2], anonymous[len(anonymous) // 2]
    return {
        "seconds": seconds,
        "notebooks": count,
        "cpu_seconds": cpu,
        "cpu_seconds_per_notebook": cpu["notebooks"] / count,
        "engine_seconds_per_notebook": cpu["engine"] / count,
        "cores_busy": cpu["machine"] / seconds,
        "memory_median_mib": median_usage / 2**20,
        "anonymous_median_mib": median_anonymous / 2**20,
        # Pooled notebooks that fit in this machine's memory, at what each holds when ready.
        "fit_by_usage": memtotal_bytes() // median_usage,
        "fit_by_anonymous": memtotal_bytes() // median_anonymous,
    }


def bench_mode(
    mode: str, rooms: list[int], browser_rooms: list[int], network: str, shim: Path
) -> dict:
    pool_size = max(rooms + browser_rooms)
    pool_name = f"benchroom{secrets.token_hex(3)}{mode[0]}"
    before = CpuSnapshot.take()
    orchestrator = Orchestrator(
        pool_name, network, NOTEBOOK_IMAGE, pool_size, mem_limit="512m", command=MODES[mode]
    )
    results: dict = {}
    try:
        for visitors in rooms:
            filled = orchestrator.wait_available(pool_size, 60 + pool_size * 10)
            if "fill" not in results:
                results["fill"] = fill_costs(before, orchestrator, filled, pool_size)
                print(f"{mode} fill: " + json.dumps(results["fill"]), flush=True)
            parts = {
                "proxy": orchestrator.proxy.process.pid,
                "orchestrator": orchestrator.process.pid,
            }
            containers = pool_containers(pool_name)
            before = CpuSnapshot.take(parts, containers)
            samples = asyncio.run(room(orchestrator.proxy.url, visitors))
            cpu = CpuSnapshot.take(parts, containers).minus(before)
            results[str(visitors)] = {
                "p50_s": percentile(samples, 0.50),
                "p95_s": percentile(samples, 0.95),
                "max_s": max(samples),
                # What the room cost, per visitor, from the click to the last `20`.
                "cpu_ms_per_visitor": {
                    part: seconds * 1000 / visitors for part, seconds in cpu.items()
                },
            }
            print(f"{mode} room of {visitors}: " + json.dumps(results[str(visitors)]), flush=True)
            orchestrator.drain_in_use()
        for visitors in browser_rooms:
            orchestrator.wait_available(pool_size, 60 + pool_size * 10)
            seen = browser_room(orchestrator.proxy.url, visitors, shim)
            samples = [seconds for seconds, _ in seen]
            results[f"browser {visitors}"] = {
                "p50_s": percentile(samples, 0.50),
                "p95_s": percentile(samples, 0.95),
                "max_s": max(samples),
                "pressed_again": sum(1 for _, presses in seen if presses > 1),
            }
            print(
                f"{mode} browser room of {visitors}: " + json.dumps(results[f"browser {visitors}"]),
                flush=True,
            )
            orchestrator.drain_in_use()
        return results
    finally:
        orchestrator.stop()
        remove_pool(pool_name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rooms", default="1,10,50")
    parser.add_argument(
        "--browser-rooms", default="1,10", help="rooms in headless Chromium ('' for none)"
    )
    parser.add_argument("--json-out")
    options = parser.parse_args()
    rooms = [int(part) for part in options.rooms.split(",")]
    browser_rooms = [int(part) for part in options.browser_rooms.split(",") if part]
    client = docker.from_env()
    network = f"tmpnb-benchroom-{secrets.token_hex(3)}"
    client.networks.create(
        network, driver="bridge", options={"com.docker.network.bridge.enable_icc": "false"}
    )
    try:
        results = {"machine": machine(), "image": NOTEBOOK_IMAGE, "rooms": rooms}
        with tempfile.TemporaryDirectory(prefix="tmpnb-bench-") as shim_dir:
            shim = build_no_netlink(Path(shim_dir))
            for mode in MODES:
                results[mode] = bench_mode(mode, rooms, browser_rooms, network, shim)
    finally:
        client.networks.get(network).remove()
        client.close()
    print()
    print(f"Click -> `5*4` = 20 over the kernel's websocket, Notebook 7's way ({NOTEBOOK_IMAGE})")
    print("| visitors at once | warm kernels p50 / p95 / max (s) | without p50 / p95 / max (s) |")
    print("| ---: | --- | --- |")
    for visitors in rooms:
        cells = [
            " / ".join(
                f"{results[mode][str(visitors)][key]:.2f}" for key in ("p50_s", "p95_s", "max_s")
            )
            for mode in MODES
        ]
        print(f"| {visitors} | {cells[0]} | {cells[1]} |")
    print()
    print("CPU per visitor of each room, ms: notebooks / proxy / orchestrator / engine / client")
    print("| visitors at once | warm kernels | without |")
    print("| ---: | --- | --- |")
    for visitors in rooms:
        cells = [
            " / ".join(
                f"{results[mode][str(visitors)]['cpu_ms_per_visitor'][part]:.0f}"
                for part in ("notebooks", "proxy", "orchestrator", "engine", "benchmark")
            )
            for mode in MODES
        ]
        print(f"| {visitors} | {cells[0]} | {cells[1]} |")
    if browser_rooms:
        print()
        print("The same in headless Chromium: navigation -> `20` on screen")
        print(
            "| visitors at once | warm kernels p50 / p95 / max (s) | without p50 / p95 / max (s) |"
        )
        print("| ---: | --- | --- |")
        for visitors in browser_rooms:
            cells = [
                " / ".join(
                    f"{results[mode][f'browser {visitors}'][key]:.2f}"
                    for key in ("p50_s", "p95_s", "max_s")
                )
                + f" ({results[mode][f'browser {visitors}']['pressed_again']} pressed again)"
                for mode in MODES
            ]
            print(f"| {visitors} | {cells[0]} | {cells[1]} |")
    print()
    size = results["warm"]["fill"]["notebooks"]
    print(f"The pool of {size} filled from empty, and what one pooled notebook holds")
    print("| | warm kernels | without |")
    print("| --- | --- | --- |")
    fills = [results[mode]["fill"] for mode in MODES]
    rows = [
        ("fill 0 -> all ready", lambda fill: f"{fill['seconds']:.0f} s"),
        ("cores busy on average (of the machine's)", lambda fill: f"{fill['cores_busy']:.2f}"),
        (
            "CPU-seconds: notebooks / engine / proxy / orchestrator / machine",
            lambda fill: " / ".join(
                f"{fill['cpu_seconds'][part]:.0f}"
                for part in ("notebooks", "engine", "proxy", "orchestrator", "machine")
            ),
        ),
        (
            "CPU-seconds per notebook: in it / the engine's",
            lambda fill: (
                f"{fill['cpu_seconds_per_notebook']:.2f} / "
                f"{fill['engine_seconds_per_notebook']:.2f}"
            ),
        ),
        (
            "memory per pooled notebook: cgroup usage / RSS+tmpfs (median)",
            lambda fill: (
                f"{fill['memory_median_mib']:.0f} / {fill['anonymous_median_mib']:.0f} MiB"
            ),
        ),
        (
            "pooled notebooks in this machine's memory, by usage / by RSS+tmpfs",
            lambda fill: f"{fill['fit_by_usage']} / {fill['fit_by_anonymous']}",
        ),
    ]
    for label, cell in rows:
        print(f"| {label} | {cell(fills[0])} | {cell(fills[1])} |")
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
