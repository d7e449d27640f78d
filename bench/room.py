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
from dataclasses import dataclass, field
from pathlib import Path

import docker
from cpu import CpuSnapshot, container_memory, memtotal_bytes
from run import NOTEBOOK_IMAGE, Orchestrator, machine, percentile, remove_pool
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
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
WAIT_SECONDS = 120  # for each step of a browser visit
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


@dataclass
class BrowserVisit:
    seconds: float | None = None  # navigation -> `20` on screen; None: never within WAIT_SECONDS
    presses: int = 0
    asked: list[str] = field(default_factory=list)  # the dialogs the page showed on the way
    stuck_at: str = ""


def browser_room(
    orchestrator: Orchestrator, visitors: int, shim: Path
) -> tuple[list[BrowserVisit], dict[str, float]]:
    """`visitors` headless Chromiums, open before the click, follow the deep link at the same
    moment; each types `5*4` into the first cell and runs it. Per visitor: seconds from the
    navigation to `20` on screen, how many times Shift+Enter was pressed (a visitor who sees no
    result presses again after RERUN_SECONDS; Notebook 7 on a busy machine sometimes drops the
    first execution while its kernel connection settles), and any dialog the page showed (which
    the visitor answers with its default button, as a person would). Also the room's CPU by
    part: the browsers share the machine's cores with the notebooks here, which a real room's
    laptops do not."""
    proxy_url = orchestrator.proxy.url
    browsers = [start_chromium(shim, page_timeout=WAIT_SECONDS) for _ in range(visitors)]
    together = threading.Barrier(visitors)

    def click_and_see(browser) -> BrowserVisit:
        visit = BrowserVisit()

        def noting_dialogs(condition):
            def check(browser) -> bool:
                for dialog in browser.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
                    text = " ".join(dialog.text.split())[:120]
                    if text and text not in visit.asked:
                        visit.asked.append(text)
                return condition(browser)

            return check

        together.wait()
        started = time.perf_counter()
        browser.get(f"{proxy_url}/spawn/notebooks/{NOTEBOOK}")
        # As a person does: type once the notebook shows its kernel idle (typing earlier goes into
        # a cell about to be replaced), then Shift+Enter.
        output = OutputOfFirstCell("20", rerun_seconds=RERUN_SECONDS)
        steps = {"the kernel idle": kernel_idle, "typing": TypedIntoFirstCell("5*4"), "20": output}
        for what, condition in steps.items():
            try:
                WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.1).until(
                    noting_dialogs(condition)
                )
            except TimeoutException:
                visit.stuck_at, visit.presses = what, output.presses
                return visit
        visit.seconds, visit.presses = time.perf_counter() - started, output.presses
        return visit

    parts = {"proxy": orchestrator.proxy.process.pid, "orchestrator": orchestrator.process.pid}
    containers = pool_containers(orchestrator.pool_name)
    browsers_named = {"browsers": ("chrom",)}  # chromium, its renderers and chromedriver
    try:
        before = CpuSnapshot.take(parts, containers, browsers_named)
        with ThreadPoolExecutor(visitors) as threads:
            visits = list(threads.map(click_and_see, browsers))
        cpu = CpuSnapshot.take(parts, containers, browsers_named).minus(before)
        return visits, {part: seconds * 1000 / visitors for part, seconds in cpu.items()}
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
            if "fill" not in results:
                times = orchestrator.fill_times(pool_size, 60 + pool_size * 10)
                results["fill"] = fill_costs(before, orchestrator, times["all"], pool_size)
                results["fill"].update(first_ready_s=times["first"], half_ready_s=times["half"])
                print(f"{mode} fill: " + json.dumps(results["fill"]), flush=True)
            else:  # refilled after the last room
                orchestrator.wait_available(pool_size, 60 + pool_size * 10)
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
            seen, cpu = browser_room(orchestrator, visitors, shim)
            samples = [visit.seconds for visit in seen if visit.seconds is not None]
            results[f"browser {visitors}"] = {
                "p50_s": percentile(samples, 0.50) if samples else None,
                "p95_s": percentile(samples, 0.95) if samples else None,
                "max_s": max(samples, default=None),
                "reached_20": len(samples),
                "pressed_again": sum(1 for visit in seen if visit.presses > 1),
                "asked": sorted({text for visit in seen for text in visit.asked}),
                "stuck_at": [visit.stuck_at for visit in seen if visit.stuck_at],
                "cpu_ms_per_visitor": cpu,
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


def _browser_cell(figures: dict, visitors: int) -> str:
    times = (
        " / ".join(f"{figures[key]:.2f}" for key in ("p50_s", "p95_s", "max_s"))
        if figures["reached_20"]
        else "-"
    )
    notes = [f"{figures['pressed_again']} pressed again"]
    if figures["reached_20"] < visitors:
        notes.append(f"only {figures['reached_20']} of {visitors} saw 20")
    if figures["asked"]:
        notes.append(f"asked: {'; '.join(figures['asked'])}")
    cpu = figures["cpu_ms_per_visitor"]
    notes.append(
        "CPU per visitor: browser / notebook / proxy "
        + " / ".join(f"{cpu[part]:.0f}" for part in ("browsers", "notebooks", "proxy"))
        + " ms"
    )
    return f"{times} ({', '.join(notes)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rooms", default="1,10,50")
    parser.add_argument(
        "--browser-rooms", default="1,10", help="rooms in headless Chromium ('' for none)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="warm, cold (kernels started at the click) or both; one alone prints its lines only",
    )
    parser.add_argument("--json-out")
    options = parser.parse_args()
    modes = [mode for mode in options.modes.split(",") if mode]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: one or more of {', '.join(MODES)}, got {options.modes!r}")
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
            for mode in modes:
                results[mode] = bench_mode(mode, rooms, browser_rooms, network, shim)
    finally:
        client.networks.get(network).remove()
        client.close()
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    if set(modes) != set(MODES):
        return 0  # the tables set the modes side by side: the lines above are the figures
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
                _browser_cell(results[mode][f"browser {visitors}"], visitors) for mode in MODES
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
        (
            "the first / half of them ready",
            lambda fill: f"{fill['first_ready_s']:.0f} / {fill['half_ready_s']:.0f} s",
        ),
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
