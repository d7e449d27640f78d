"""Side by side with JupyterHub + DockerSpawner + tmpauthenticator: same image, machine and run.

    python bench/peer/run.py [--levels 1,10,50] [--json-out results.json] [--remove-image]

For each level (visitors clicking at once), first this project (configurable-http-proxy and the
orchestrator with a warm pool sized for the level), then JupyterHub (its hub, the same
configurable-http-proxy, DockerSpawner, tmpauthenticator; bench/peer/jupyterhub_config.py), each
fresh: the time from the click (GET of the public link) to a kernel that ran `5*4` and returned 20
over its websocket (p50/p95/max), and the RSS of the control plane (ours: orchestrator + proxy;
theirs: hub + proxy), idle before the click and at its peak during it. Prints a table with the
ratios, then the figures as JSON.

JupyterHub is installed from PyPI in its own virtualenv, .run/peer-venv (pinned in
bench/peer/requirements.txt). Its notebook image, tmpnb-peer-notebook:jupyterhub-<version>, is the
project's image with only jupyterhub added by pip; it is kept for the next run (rebuilt when the
project's image changes) unless --remove-image. Everything else the run starts or creates
(processes, containers labelled tmpnb.pool=peer<run> or tmpnb.peer.run=<run>, the network, temp
dirs) is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import requests
from tornado.httpclient import AsyncHTTPClient

HERE = Path(__file__).resolve().parent
# bench/visitor.py, and the tests' wait_for (tests/support/nbtest.py), shared rather than copied.
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent / "tests" / "support")]
from nbtest import wait_for  # noqa: E402
from visitor import Browser, jupyterhub_click, percentile, run_five_times_four, tmpnb_click  # noqa: E402

ROOT = HERE.parent.parent
PEER_VENV = ROOT / ".run" / "peer-venv"
REQUIREMENTS = HERE / "requirements.txt"
BASE_IMAGE = os.environ.get("TMPNB_TEST_IMAGE", "workshop-notebook:slim")
PEER_IMAGE_REPO = "tmpnb-peer-notebook"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CHP = "/usr/bin/configurable-http-proxy"
# Rounds per level: five single visitors one after the other give the 1-visitor figure a spread.
ROUNDS = {1: 5}
CLICK_TIMEOUT = 900  # seconds one visitor may take, from click to 20; the slowest spawn is minutes
READY_TIMEOUT = 600  # the orchestrator's ready_timeout, the same as the hub's http_timeout


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


class RssSampler:
    """The summed RSS of some processes, sampled every 0.2 s in a thread; keeps the peak."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        return sum(rss_mib(pid) for pid in self.pids())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(0.2)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def stop_process(process: subprocess.Popen | None, timeout: float = 60) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def remove_containers(client: docker.DockerClient, label: str) -> int:
    found = client.containers.list(all=True, filters={"label": label})
    for container in found:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)
    return len(found)


# --- the peer's environment and image ----------------------------------------------------------


def jupyterhub_version() -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith("jupyterhub=="):
            return line.split("==", 1)[1].strip()
    raise RuntimeError(f"{REQUIREMENTS}: no jupyterhub== pin")


def ensure_peer_venv() -> Path:
    """.run/peer-venv with bench/peer/requirements.txt; recreated when the pins change."""
    stamp = PEER_VENV / ".requirements-sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return PEER_VENV / "bin"
    log(f"installing JupyterHub in {PEER_VENV} ({REQUIREMENTS.name})")
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(PEER_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True,
    )  # fmt: skip
    stamp.write_text(digest)
    return PEER_VENV / "bin"


def ensure_peer_image(client: docker.DockerClient, version: str) -> str:
    """The project's image plus jupyterhub==version, and nothing else; kept while it is current.

    pip runs in a container of the project's image and trusts the host's CA bundle (HTTPS may be
    intercepted), which comes in on stdin and is deleted before the commit, so no layer holds it;
    the image's own user, entrypoint and command are put back on the result.
    """
    tag = f"{PEER_IMAGE_REPO}:jupyterhub-{version}"
    base = client.images.get(BASE_IMAGE)
    with contextlib.suppress(docker.errors.ImageNotFound):
        if client.images.get(tag).labels.get("tmpnb.peer.base") == base.id:
            return tag
    log(f"building {tag}: {BASE_IMAGE} plus jupyterhub=={version}")
    config = base.attrs["Config"]
    name = f"tmpnb-peer-build-{secrets.token_hex(3)}"
    script = (
        "cat > /tmp/pip-ca.crt && /opt/notebook/bin/pip install --no-cache-dir --quiet "
        '--disable-pip-version-check --cert /tmp/pip-ca.crt "$1"; status=$?; '
        "rm -f /tmp/pip-ca.crt; exit $status"
    )
    try:
        subprocess.run(
            ["docker", "run", "--interactive", "--name", name, "--user", "root",
             "--entrypoint", "/bin/sh", BASE_IMAGE, "-c", script, "sh", f"jupyterhub=={version}"],
            input=Path(CA_BUNDLE).read_bytes(), check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client.containers.get(name).commit(
            PEER_IMAGE_REPO,
            f"jupyterhub-{version}",
            changes=[
                f"USER {config.get('User') or 'root'}",
                f"ENTRYPOINT {json.dumps(config.get('Entrypoint') or [])}",
                f"CMD {json.dumps(config.get('Cmd') or [])}",
                f"LABEL tmpnb.peer.base={base.id}",
            ],
        )
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)
    return tag


# --- the two systems ---------------------------------------------------------------------------


class Tmpnb:
    """This project: configurable-http-proxy and the orchestrator, with the deployed defaults."""

    name = "tmpnb"

    def __init__(self, run: str, workdir: Path, network: str, pool_size: int) -> None:
        self.pool_name = f"peer{run}"
        self.workdir = workdir
        self.network = network
        self.pool_size = pool_size
        self.port, self.api_port, self.orch_port, self.admin_port = (free_port() for _ in "1234")
        self.proxy: subprocess.Popen | None = None
        self.orchestrator: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        token = secrets.token_hex(32)
        env = {
            **os.environ,
            "CONFIGPROXY_AUTH_TOKEN": token,
            "NODE_PATH": "/usr/share/nodejs",
            "API_AUTH_TOKEN": secrets.token_hex(16),
            "ADMIN_AUTH_TOKEN": secrets.token_hex(16),
        }
        with (self.workdir / "tmpnb-proxy.log").open("a") as out:
            self.proxy = subprocess.Popen(
                [CHP, "--ip=127.0.0.1", f"--port={self.port}", "--api-ip=127.0.0.1",
                 f"--api-port={self.api_port}",
                 f"--default-target=http://127.0.0.1:{self.orch_port}"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: requests.get(self.url, timeout=2) is not None, 30, "the proxy")
        # The tmpnb role's defaults, except the pool (sized for the level) and ready_timeout.
        options = {
            "image": BASE_IMAGE, "pool_name": self.pool_name, "pool_size": self.pool_size,
            "docker_network": self.network, "use_tokens": "true", "mem_limit": "512m",
            "max_dock_workers": 2, "port": self.orch_port, "admin_port": self.admin_port,
            "proxy_endpoint": f"http://127.0.0.1:{self.api_port}", "proxy_public_url": self.url,
            "ready_timeout": READY_TIMEOUT, "docker_version": "auto",
        }  # fmt: skip
        with (self.workdir / "tmpnb-orchestrator.log").open("a") as out:
            self.orchestrator = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", *(f"--{k}={v}" for k, v in options.items())],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started = time.monotonic()

        def pool_full() -> bool:
            if self.orchestrator.poll() is not None:
                raise RuntimeError(f"orchestrator exited; see {self.workdir}")
            stats = requests.get(f"http://127.0.0.1:{self.orch_port}/api/stats", timeout=5)
            return stats.json()["available"] >= self.pool_size

        wait_for(pool_full, READY_TIMEOUT + 300, f"a warm pool of {self.pool_size}", interval=1)
        log(f"tmpnb: pool of {self.pool_size} ready in {time.monotonic() - started:.0f} s")

    def control_plane(self) -> list[int]:
        return [p.pid for p in (self.orchestrator, self.proxy) if p and p.poll() is None]

    async def click(self, browser: Browser) -> str:
        return await tmpnb_click(browser)

    def stop(self, client: docker.DockerClient) -> None:
        stop_process(self.orchestrator, 30)
        stop_process(self.proxy, 10)
        remove_containers(client, f"tmpnb.pool={self.pool_name}")


class JupyterHub:
    """JupyterHub with DockerSpawner and tmpauthenticator (bench/peer/jupyterhub_config.py)."""

    name = "JupyterHub"

    def __init__(self, run: str, workdir: Path, network: str, hub_ip: str, image: str) -> None:
        self.run = run
        self.workdir = workdir / f"hub-{secrets.token_hex(3)}"
        self.workdir.mkdir()
        self.network = network
        self.hub_ip = hub_ip
        self.image = image
        self.port, self.api_port = free_port(), free_port()
        self.hub: subprocess.Popen | None = None
        self.proxy_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, venv_bin: Path) -> None:
        env = {
            **os.environ,
            "PATH": f"{venv_bin}:/usr/bin:/bin",
            "NODE_PATH": "/usr/share/nodejs",
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
            "PEER_PORT": str(self.port),
            "PEER_PROXY_API_PORT": str(self.api_port),
            "PEER_HUB_IP": self.hub_ip,
            "PEER_HUB_PORT": str(free_port()),
            "PEER_STATE_DIR": str(self.workdir),
            "PEER_IMAGE": self.image,
            "PEER_NETWORK": self.network,
            "PEER_PREFIX": f"tmpnb-peer-{self.run}",
            "PEER_RUN": self.run,
        }
        env.pop("VIRTUAL_ENV", None)
        with (self.workdir / "jupyterhub.log").open("a") as out:
            self.hub = subprocess.Popen(
                [str(venv_bin / "jupyterhub"), "-f", str(HERE / "jupyterhub_config.py")],
                cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

        def healthy() -> bool:
            if self.hub.poll() is not None:
                raise RuntimeError(f"jupyterhub exited; see {self.workdir}/jupyterhub.log")
            return requests.get(f"{self.url}/hub/health", timeout=2).ok

        wait_for(healthy, 120, "JupyterHub to answer through its proxy")
        pid_file = self.workdir / "proxy.pid"
        self.proxy_pid = int(pid_file.read_text()) if pid_file.exists() else None

    def control_plane(self) -> list[int]:
        pids = [self.hub.pid] if self.hub and self.hub.poll() is None else []
        if self.proxy_pid and Path(f"/proc/{self.proxy_pid}").exists():
            pids.append(self.proxy_pid)
        return pids

    async def click(self, browser: Browser) -> str:
        return await jupyterhub_click(browser)

    def stop(self, client: docker.DockerClient) -> None:
        # SIGTERM: the hub stops every server (cleanup_servers) and its proxy, then exits.
        stop_process(self.hub, 300)
        if self.proxy_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proxy_pid, signal.SIGTERM)
        remove_containers(client, f"tmpnb.peer.run={self.run}")


# --- the measurement ---------------------------------------------------------------------------


async def one_visitor(http: AsyncHTTPClient, system, errors: list[str]) -> float | None:
    browser = Browser(http, system.url, CLICK_TIMEOUT)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CLICK_TIMEOUT):
            page = await system.click(browser)
            await run_five_times_four(browser, page)
    except Exception as error:  # every failure is counted and named, none stops the others
        errors.append(f"{type(error).__name__}: {error}")
        return None
    return time.perf_counter() - started


async def burst(system, visitors: int) -> tuple[list[float], list[str]]:
    http = AsyncHTTPClient(force_instance=True, max_clients=4 * visitors + 10)
    errors: list[str] = []
    try:
        results = await asyncio.gather(
            *(one_visitor(http, system, errors) for _ in range(visitors))
        )
    finally:
        http.close()
    return [r for r in results if r is not None], errors


def measure(system, client: docker.DockerClient, level: int) -> dict:
    rounds = ROUNDS.get(level, 1)
    samples: list[float] = []
    errors: list[str] = []
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    idle = RssSampler(system.control_plane).now()
    with RssSampler(system.control_plane) as sampler:
        for _ in range(rounds):
            got, failed = asyncio.run(burst(system, level))
            samples += got
            errors += failed
    figures = {
        "visitors_at_once": level,
        "rounds": rounds,
        "ok": len(samples),
        "failed": len(errors),
        "errors": sorted(set(errors))[:5],
        "load_average_before": load,
        "control_plane_rss_idle_mib": idle,
        "control_plane_rss_peak_mib": sampler.peak,
    }
    if samples:
        figures |= {
            "p50_s": percentile(samples, 0.50),
            "p95_s": percentile(samples, 0.95),
            "max_s": max(samples),
        }
    log(
        f"{system.name}, {level} at once: {len(samples)} ok, {len(errors)} failed"
        + (f", p50 {figures['p50_s']:.2f} s, max {figures['max_s']:.2f} s" if samples else "")
        + f", control plane {idle:.0f} -> {sampler.peak:.0f} MiB, load average {load:.1f}"
    )
    for error in figures["errors"]:
        log(f"  {error}")
    return figures


def machine(client: docker.DockerClient) -> dict:
    memory = next(
        int(line.split()[1]) // 1024**2
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    info = client.info()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "kernel": platform.release(),
        "docker": client.version()["Version"],
        "storage_driver": info.get("Driver"),
        "load_average_at_start": os.getloadavg()[0],
    }


def print_table(results: dict) -> None:
    def times(figures: dict) -> str:
        if not figures:
            return "not run"
        if "p50_s" not in figures:
            return "all failed"
        text = f"{figures['p50_s']:.2f} / {figures['p95_s']:.2f} / {figures['max_s']:.2f} s"
        return text + (f" ({figures['failed']} failed)" if figures["failed"] else "")

    def memory(figures: dict) -> str:
        if not figures:
            return "not run"
        return (f"{figures['control_plane_rss_idle_mib']:.0f} -> "
                f"{figures['control_plane_rss_peak_mib']:.0f} MiB")  # fmt: skip

    def ratio(theirs: dict, ours: dict, key: str) -> str:
        if key not in theirs or key not in ours or not ours[key]:
            return "-"
        return f"{theirs[key] / ours[key]:.1f}x"

    rows = [("click -> 5*4 = 20, visitors at once", "tmpnb (p50/p95/max)",
             "JupyterHub (p50/p95/max)", "ratio p50", "ratio max")]  # fmt: skip
    for level in results["levels"]:
        ours, theirs = (
            results["tmpnb"].get(str(level), {}),
            results["jupyterhub"].get(str(level), {}),
        )
        rounds = ROUNDS.get(level, 1)
        label = f"{level}" + (f" ({rounds} rounds)" if rounds > 1 else "")
        rows.append((label, times(ours), times(theirs), ratio(theirs, ours, "p50_s"),
                     ratio(theirs, ours, "max_s")))  # fmt: skip
    rows.append(("control plane RSS, idle -> peak", "", "", "ratio idle", "ratio peak"))
    for level in results["levels"]:
        ours, theirs = (
            results["tmpnb"].get(str(level), {}),
            results["jupyterhub"].get(str(level), {}),
        )
        rows.append(
            (f"  during the {level} step", memory(ours), memory(theirs),
             ratio(theirs, ours, "control_plane_rss_idle_mib"),
             ratio(theirs, ours, "control_plane_rss_peak_mib"))
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print("ratio: JupyterHub's figure divided by tmpnb's (above 1: JupyterHub is slower or bigger)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,50", help="visitors at once, comma-separated")
    parser.add_argument(
        "--systems", default="tmpnb,jupyterhub", help="which to run (both, for the ratios)"
    )
    parser.add_argument("--json-out", help="also write the JSON results to this file")
    parser.add_argument(
        "--remove-image", action="store_true", help=f"remove {PEER_IMAGE_REPO} at the end"
    )
    args = parser.parse_args()
    try:
        levels = [int(level) for level in args.levels.split(",")]
        if not levels or min(levels) < 1:
            raise ValueError
    except ValueError:
        print(f"bench-peer: --levels: got {args.levels!r}, expected numbers >= 1 like 1,10,50")
        return 2
    systems = set(args.systems.split(","))
    if not systems or not systems <= {"tmpnb", "jupyterhub"}:
        print(f"bench-peer: --systems: got {args.systems!r}, expected tmpnb and/or jupyterhub")
        return 2
    if not Path(CHP).exists():
        print(f"bench-peer: {CHP} is missing: make host-deps installs it", file=sys.stderr)
        return 2
    # A SIGTERM unwinds like Ctrl-C, so the cleanup below runs either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    client = docker.from_env(version="auto")
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        print(f"bench-peer: {BASE_IMAGE} is missing: build it first (make images)", file=sys.stderr)
        return 2
    venv_bin = ensure_peer_venv()
    version = jupyterhub_version()
    image = ensure_peer_image(client, version)

    run = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix=f"tmpnb-peer-{run}-"))
    network = client.networks.create(
        f"tmpnb-peer-{run}",
        driver="bridge",
        options={"com.docker.network.bridge.enable_icc": "false"},
        labels={"tmpnb.peer.run": run},
    )
    network.reload()
    hub_ip = network.attrs["IPAM"]["Config"][0]["Gateway"]
    results: dict = {
        "machine": machine(client),
        "jupyterhub_version": version,
        "image": BASE_IMAGE,
        "peer_image": image,
        "levels": levels,
        "tmpnb": {},
        "jupyterhub": {},
    }
    failed = False
    try:
        for level in levels:
            pool = level * ROUNDS.get(level, 1)
            if "tmpnb" in systems:
                ours = Tmpnb(run, workdir, network.name, pool)
                try:
                    ours.start()
                    results["tmpnb"][str(level)] = measure(ours, client, level)
                finally:
                    ours.stop(client)
            if "jupyterhub" in systems:
                theirs = JupyterHub(run, workdir, network.name, hub_ip, image)
                try:
                    theirs.start(venv_bin)
                    results["jupyterhub"][str(level)] = measure(theirs, client, level)
                finally:
                    theirs.stop(client)
    except BaseException:
        failed = True
        raise
    finally:
        removed = remove_containers(client, f"tmpnb.peer.run={run}") + remove_containers(
            client, f"tmpnb.pool=peer{run}"
        )
        if removed:
            log(f"removed {removed} leftover container(s)")
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
        if failed or any(
            figures["failed"] for system in ("tmpnb", "jupyterhub")
            for figures in results[system].values()
        ):  # fmt: skip
            kept = ROOT / ".run" / f"peer-logs-{run}"
            shutil.copytree(workdir, kept, ignore=shutil.ignore_patterns("*.sqlite", "*secret"))
            log(f"something failed: the logs are kept in {kept}")
        shutil.rmtree(workdir, ignore_errors=True)
        if args.remove_image:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(image)
    print_table(results)
    print(json.dumps(results, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
