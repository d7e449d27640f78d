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
import time
import uuid
from pathlib import Path

import docker
from run import NOTEBOOK_IMAGE, Orchestrator, machine, percentile, remove_pool
from tornado.httpclient import AsyncHTTPClient
from visitor import Browser, _expect, five_times_four_in

NOTEBOOK = "workshop/python.ipynb"
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


def bench_mode(mode: str, rooms: list[int], network: str) -> dict:
    pool_size = max(rooms)
    pool_name = f"benchroom{secrets.token_hex(3)}{mode[0]}"
    orchestrator = Orchestrator(
        pool_name, network, NOTEBOOK_IMAGE, pool_size, mem_limit="512m", command=MODES[mode]
    )
    results: dict = {}
    try:
        for visitors in rooms:
            filled = orchestrator.wait_available(pool_size, 60 + pool_size * 10)
            results.setdefault("first_fill_seconds", filled)
            samples = asyncio.run(room(orchestrator.proxy.url, visitors))
            results[str(visitors)] = {
                "p50_s": percentile(samples, 0.50),
                "p95_s": percentile(samples, 0.95),
                "max_s": max(samples),
            }
            print(f"{mode} room of {visitors}: " + json.dumps(results[str(visitors)]), flush=True)
            orchestrator.drain_in_use()
        return results
    finally:
        orchestrator.stop()
        remove_pool(pool_name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rooms", default="1,10,50")
    parser.add_argument("--json-out")
    options = parser.parse_args()
    rooms = [int(part) for part in options.rooms.split(",")]
    client = docker.from_env()
    network = f"tmpnb-benchroom-{secrets.token_hex(3)}"
    client.networks.create(
        network, driver="bridge", options={"com.docker.network.bridge.enable_icc": "false"}
    )
    try:
        results = {"machine": machine(), "image": NOTEBOOK_IMAGE, "rooms": rooms}
        for mode in MODES:
            results[mode] = bench_mode(mode, rooms, network)
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
    print(
        f"pool of {max(rooms)} filled from empty in {results['warm']['first_fill_seconds']:.0f} s "
        f"with warm kernels, {results['cold']['first_fill_seconds']:.0f} s without"
    )
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
