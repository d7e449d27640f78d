"""Benchmark of the orchestrator: one command, one machine, one run; prints a table and JSON.

    python bench/run.py [--routes 500] [--cold 4] [--json-out results.json]

Measures, against the real Docker engine, the real configurable-http-proxy and the orchestrator
as a subprocess:
- warm time-to-notebook: GET / -> GET /spawn/tree (302) -> GET /user/<id>/api/status through the
  proxy answers 200; p50/p95/p99 with 1, 10 and 50 visitors arriving at once;
- cold spawn rate with an empty pool, as a ratio to plain `docker run` of the same image;
- proxy overhead per request, as a ratio to asking the container directly;
- orchestrator memory (RSS) with `--routes` containers handed out.
Warm and memory runs use a tiny stand-in notebook (bench/tiny, a static C server that follows the
image contract) so that hundreds of containers fit on a small machine; cold spawn and proxy
overhead use the real notebook image. Everything created carries the name prefix `tmpnb-bench-`
or the pool label `tmpnb.pool=bench...` and is removed at the end; the tiny image is kept for reuse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import docker
import requests
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

HERE = Path(__file__).parent
# bench/cpu.py, and the tests' wait_for (tests/support/nbtest.py), shared rather than copied.
# bench/ itself too: the reliability suite loads this file by its path to build the tiny image,
# and then the folder of the file is not on the path as it is for a script.
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "support")]
from cpu import CpuSnapshot  # noqa: E402
from nbtest import wait_for  # noqa: E402

TINY_IMAGE = "tmpnb-bench-tiny:1"
NOTEBOOK_IMAGE = os.environ.get("TMPNB_TEST_IMAGE", "workshop-notebook:slim")
CHP = "/usr/bin/configurable-http-proxy"
WARM_LEVELS = {1: 20, 10: 5, 50: 2}  # visitors at once -> rounds
# After each round: the orchestrator writes the visitors' CPU weights once hand-outs pause
# (weights.WEIGHTS_QUIET_SECONDS, 0.5 s), and that work belongs to the round's cost.
WEIGHTS_SETTLED_SECONDS = 1.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def build_tiny_image(client: docker.DockerClient) -> None:
    """Static C server in an otherwise empty rootfs: built once, reused afterwards."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(TINY_IMAGE)
        return
    with tempfile.TemporaryDirectory() as workdir:
        binary = Path(workdir) / "start-notebook"
        subprocess.run(
            ["gcc", "-static", "-O2", "-o", str(binary), str(HERE / "tiny" / "start-notebook.c")],
            check=True,
        )
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(binary, arcname="usr/local/bin/start-notebook")
        subprocess.run(
            ["docker", "import",
             "--change", "USER 1000",
             "--change", "ENV PATH=/usr/local/bin",
             "--change", 'CMD ["start-notebook"]',
             "--change", "LABEL org.opencontainers.image.title=tmpnb-bench-tiny",
             "-", TINY_IMAGE],
            input=archive.getvalue(), check=True, capture_output=True,
        )  # fmt: skip


class Proxy:
    def __init__(self, default_target_port: int) -> None:
        self.token = secrets.token_hex(16)
        self.port, self.api_port = free_port(), free_port()
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token, "NODE_PATH": "/usr/share/nodejs"}
        self.process = subprocess.Popen(
            [CHP, "--ip=127.0.0.1", f"--port={self.port}", "--api-ip=127.0.0.1",
             f"--api-port={self.api_port}", f"--default-target=http://127.0.0.1:{default_target_port}",
             "--log-level=warn"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: requests.get(self.url, timeout=2) is not None, 30, "the proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Orchestrator:
    def __init__(
        self, pool_name: str, network: str, image: str, pool_size: int, **options: object
    ) -> None:
        self.pool_name = pool_name
        self.port = free_port()
        self.proxy = Proxy(self.port)
        self.api_token = secrets.token_hex(16)
        self.admin_token = secrets.token_hex(16)
        self.admin_port = free_port()
        args = {
            "image": image, "pool_name": pool_name, "pool_size": pool_size,
            "docker_network": network, "use_tokens": "true", "port": self.port,
            "admin_port": self.admin_port, "proxy_endpoint": f"http://127.0.0.1:{self.proxy.api_port}",
            "proxy_public_url": self.proxy.url, "max_dock_workers": 4, "cull_timeout": 86400,
            "cull_period": 600, "cull_max": 0, "mem_limit": "512m",
        }  # fmt: skip
        args.update((name, value) for name, value in options.items() if value is not None)
        env = {
            **os.environ,
            "CONFIGPROXY_AUTH_TOKEN": self.proxy.token,
            "API_AUTH_TOKEN": self.api_token,
            "ADMIN_AUTH_TOKEN": self.admin_token,
        }
        self.log = tempfile.NamedTemporaryFile(prefix="tmpnb-bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *(f"--{k}={v}" for k, v in args.items())],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stats(self) -> dict:
        if self.process.poll() is not None:  # refused its options, or crashed: say why, at once
            raise RuntimeError(f"the orchestrator exited: {Path(self.log.name).read_text()}")
        return requests.get(f"http://127.0.0.1:{self.port}/api/stats", timeout=5).json()

    def wait_available(self, count: int, timeout: float) -> float:
        wait_for(
            lambda: self.stats()["available"] >= count, timeout, f"{count} ready", interval=0.1
        )
        return time.monotonic() - self.started

    def fill_times(self, count: int, timeout: float) -> dict[str, float]:
        """Seconds from the orchestrator's start until the first, half and all of `count`
        notebooks were ready (a pool that boots all at once has none ready until the end)."""
        marks = {"first": 1, "half": (count + 1) // 2, "all": count}
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(marks):
            try:
                available = self.stats()["available"]
            except requests.RequestException:  # not listening yet
                available = 0
            now = time.monotonic() - self.started
            seen.update(
                {name: now for name, n in marks.items() if available >= n and name not in seen}
            )
            if len(seen) < len(marks):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{count} ready: only {available} within {timeout:g} s")
                time.sleep(0.1)
        return seen

    def handout_totals(self) -> tuple[float, float]:
        """(sum of seconds, count) of the orchestrator's own hand-out histogram."""
        text = requests.get(
            f"http://127.0.0.1:{self.admin_port}/metrics",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=10,
        ).text
        values = dict(
            line.split(" ", 1)
            for line in text.splitlines()
            if line.startswith("tmpnb_handout_seconds_")
        )
        return float(values["tmpnb_handout_seconds_sum"]), float(
            values["tmpnb_handout_seconds_count"]
        )

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def hand_out(self) -> dict:
        response = requests.post(
            f"{self.proxy.url}/api/spawn/",
            headers={"Authorization": f"token {self.api_token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def drain_in_use(self) -> int:
        """Remove the notebooks handed out (as if their visitors left at once); the pool notices
        and refills. Returns how many."""
        overview = requests.get(
            f"http://127.0.0.1:{self.admin_port}/api/overview",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=30,
        ).json()
        client = docker.from_env()
        try:
            for notebook in overview["notebooks"]:
                with contextlib.suppress(docker.errors.NotFound):
                    client.containers.get(notebook["container"]).remove(force=True)
        finally:
            client.close()
        return len(overview["notebooks"])

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        self.proxy.stop()
        os.unlink(self.log.name)


async def one_visitor(http: AsyncHTTPClient, proxy_url: str) -> float:
    """GET / -> /spawn/tree -> the notebook's /api/status through the proxy; seconds taken."""
    started = time.perf_counter()
    await http.fetch(f"{proxy_url}/")
    spawn = await http.fetch(
        HTTPRequest(f"{proxy_url}/spawn/tree", follow_redirects=False), raise_error=False
    )
    if spawn.code != 302:
        raise RuntimeError(f"/spawn answered {spawn.code}")
    location = spawn.headers["Location"]
    path, _, query = location.partition("?")
    token = dict(part.split("=", 1) for part in query.split("&"))["token"]
    base = path.rsplit("/tree", 1)[0]
    await http.fetch(
        HTTPRequest(f"{proxy_url}{base}/api/status", headers={"Authorization": f"token {token}"})
    )
    return time.perf_counter() - started


async def warm_round(proxy_url: str, visitors: int) -> list[float]:
    http = AsyncHTTPClient(force_instance=True, max_clients=200)
    try:
        return list(await asyncio.gather(*(one_visitor(http, proxy_url) for _ in range(visitors))))
    finally:
        http.close()


def bench_warm_and_memory(network: str, routes: int) -> dict:
    needed = sum(level * rounds for level, rounds in WARM_LEVELS.items())
    pool_size = max(routes, needed)
    orchestrator = Orchestrator(f"bench{secrets.token_hex(3)}w", network, TINY_IMAGE, pool_size)
    try:
        fill_seconds = orchestrator.wait_available(pool_size, 60 + pool_size * 3)
        rss_idle = orchestrator.rss_mib()
        warm = {}
        parts = {"proxy": orchestrator.proxy.process.pid, "orchestrator": orchestrator.process.pid}
        for level, rounds in WARM_LEVELS.items():
            samples: list[float] = []
            sum_before, count_before = orchestrator.handout_totals()
            cpu_before = CpuSnapshot.take(parts)
            for _ in range(rounds):
                samples += asyncio.run(warm_round(orchestrator.proxy.url, level))
                # What follows a burst (the visitors' CPU weights, written once it pauses) counts.
                time.sleep(WEIGHTS_SETTLED_SECONDS)
            cpu = CpuSnapshot.take(parts).minus(cpu_before)
            sum_after, count_after = orchestrator.handout_totals()
            warm[level] = {
                # Where the CPU went, per visitor (the machine's figure includes any other work).
                "cpu_ms_per_visitor": {
                    part: seconds * 1000 / len(samples) for part, seconds in cpu.items()
                },
                # The orchestrator's own share: from its receiving /spawn to its sending the 302.
                "orchestrator_handout_mean_ms": (sum_after - sum_before)
                / max(1, count_after - count_before)
                * 1000,
                "samples": len(samples),
                "p50_ms": percentile(samples, 0.50) * 1000,
                "p95_ms": percentile(samples, 0.95) * 1000,
                "p99_ms": percentile(samples, 0.99) * 1000,
            }
        while orchestrator.stats()["available"] > pool_size - routes:
            orchestrator.hand_out()
        return {
            "warm": warm,
            "pool_fill_seconds": fill_seconds,
            "pool_size": pool_size,
            "rss_mib_all_ready": rss_idle,
            "rss_mib_handed_out": orchestrator.rss_mib(),
            "handed_out_routes": routes,
        }
    finally:
        orchestrator.stop()
        remove_pool(orchestrator.pool_name)


def bench_cold(network: str, count: int) -> dict:
    """Time for `count` notebooks to answer: orchestrator from an empty pool vs plain docker run."""
    client = docker.from_env()
    names = [f"tmpnb-bench-plain-{secrets.token_hex(3)}" for _ in range(count)]
    started = time.monotonic()
    try:
        for name in names:
            subprocess.run(
                ["docker", "run", "-d", "--name", name, "--network", network, NOTEBOOK_IMAGE,
                 "start-notebook", "--base-path=/", "--port=8888", "--ip=0.0.0.0", "--token="],
                check=True, capture_output=True,
            )  # fmt: skip
        for name in names:
            ip = client.containers.get(name).attrs["NetworkSettings"]["Networks"][network][
                "IPAddress"
            ]
            wait_for(
                lambda ip=ip: requests.get(f"http://{ip}:8888/api/status", timeout=2).ok, 300, name
            )
        plain_seconds = time.monotonic() - started
    finally:
        for name in names:
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(name).remove(force=True)

    orchestrator = Orchestrator(f"bench{secrets.token_hex(3)}c", network, NOTEBOOK_IMAGE, count)
    try:
        orchestrator_seconds = orchestrator.wait_available(count, 600)
        overhead = proxy_overhead(orchestrator, client, network)
    finally:
        orchestrator.stop()
        remove_pool(orchestrator.pool_name)
    return {
        "containers": count,
        "plain_docker_run_seconds": plain_seconds,
        "orchestrator_seconds": orchestrator_seconds,
        "rate_ratio": plain_seconds / orchestrator_seconds,
        **overhead,
    }


def proxy_overhead(orchestrator: Orchestrator, client: docker.DockerClient, network: str) -> dict:
    """Median time of the notebook's /api/status through the proxy vs straight to the container."""
    handed = orchestrator.hand_out()
    path_id = handed["url"].strip("/").split("/")[1]
    (container,) = client.containers.list(filters={"label": f"tmpnb.path={path_id}"})
    ip = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    headers = {"Authorization": f"token {handed['token']}"}
    timings = {}
    for name, base in (("direct", f"http://{ip}:8888"), ("proxy", orchestrator.proxy.url)):
        with requests.Session() as session:
            samples = []
            for _ in range(200):
                started = time.perf_counter()
                session.get(f"{base}{handed['url']}api/status", headers=headers, timeout=10)
                samples.append(time.perf_counter() - started)
        timings[name] = statistics.median(samples) * 1000
    return {
        "direct_ms": timings["direct"],
        "proxy_ms": timings["proxy"],
        "proxy_overhead_ratio": timings["proxy"] / timings["direct"],
    }


def remove_pool(pool_name: str) -> None:
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"label": f"tmpnb.pool={pool_name}"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)


def machine() -> dict:
    cpus = os.cpu_count()
    memory = next(
        int(line.split()[1]) // 1024**2
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": cpus,
        "memory_gib": memory,
        "kernel": platform.release(),
        "docker": docker.from_env().version()["Version"],
        "load_average_at_start": os.getloadavg()[0],
    }


def print_table(results: dict) -> None:
    rows = [("measure", "value", "target")]
    for level, figures in results["warm"]["warm"].items():
        rows.append(
            (f"warm time-to-notebook, {level} at once (p50/p95/p99)",
             f"{figures['p50_ms']:.0f} / {figures['p95_ms']:.0f} / {figures['p99_ms']:.0f} ms",
             "p99 <= 100 ms at 50" if level == 50 else "")
        )  # fmt: skip
        rows.append(
            (f"  of which the orchestrator's hand-out, {level} at once (mean)",
             f"{figures['orchestrator_handout_mean_ms']:.1f} ms", "")
        )  # fmt: skip
        cpu = figures["cpu_ms_per_visitor"]
        rows.append(
            ("  CPU per visitor: proxy / orchestrator / engine / this client / machine",
             " / ".join(f"{cpu[part]:.1f}" for part in
                        ("proxy", "orchestrator", "engine", "benchmark", "machine")) + " ms", "")
        )  # fmt: skip
    cold = results["cold"]
    rows += [
        (f"cold spawn, {cold['containers']} notebooks: orchestrator vs plain docker run",
         f"{cold['orchestrator_seconds']:.1f} s vs {cold['plain_docker_run_seconds']:.1f} s "
         f"(rate ratio {cold['rate_ratio']:.2f})", ">= 0.8"),
        ("proxy overhead per request (median, /api/status)",
         f"{cold['proxy_ms']:.2f} ms vs {cold['direct_ms']:.2f} ms direct "
         f"(ratio {cold['proxy_overhead_ratio']:.2f})", ""),
        (f"orchestrator RSS, {results['warm']['handed_out_routes']} routes handed out",
         f"{results['warm']['rss_mib_handed_out']:.1f} MiB "
         f"({results['warm']['rss_mib_all_ready']:.1f} MiB with all ready)", ""),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=500, help="handed-out routes for RSS")
    parser.add_argument("--cold", type=int, default=4, help="notebooks for the cold-spawn run")
    parser.add_argument("--json-out", help="also write the JSON results to this file")
    args = parser.parse_args()
    if not shutil.which("gcc"):
        print("bench: gcc is needed to build the tiny stand-in notebook", file=sys.stderr)
        return 2

    client = docker.from_env()
    build_tiny_image(client)
    network = f"tmpnb-bench-{secrets.token_hex(3)}"
    client.networks.create(
        network,
        options={"com.docker.network.bridge.enable_icc": "false"},
        labels={"tmpnb.bench": "1"},
    )
    try:
        results = {"machine": machine()}
        results["cold"] = bench_cold(network, args.cold)
        results["warm"] = bench_warm_and_memory(network, args.routes)
    finally:
        client.networks.get(network).remove()
    print_table(results)
    print(json.dumps(results, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
