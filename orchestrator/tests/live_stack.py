"""The real service for tests: configurable-http-proxy and the orchestrator as subprocesses.

Shared by the orchestrator's integration tests and the browser tests (tests/e2e), so both start
the service the same way. Everything here runs the real parts; the callers name what they create
(pools, networks) with a prefix unique to their session and remove it with the helpers below.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import docker
import pytest
import requests

# tests/support/nbtest.py (waiting, and running code in a kernel) is shared by every suite: on the
# path through orchestrator/pyproject.toml, or the suite's conftest.py.
from nbtest import wait_for

IMAGE = os.environ.get("TMPNB_TEST_IMAGE", "workshop-notebook:slim")
CHP = os.environ.get("TMPNB_TEST_CHP", "/usr/bin/configurable-http-proxy")


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A loopback port free now, and never one this process was given before: the kernel hands a
    just-closed ephemeral port out again, and two options given the same port are refused."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


class Proxy:
    """configurable-http-proxy on free loopback ports, restartable on the same ports."""

    def __init__(self, workdir: Path, default_target_port: int) -> None:
        self.token = secrets.token_hex(16)
        self.port, self.api_port = free_port(), free_port()
        self.default_target_port = default_target_port
        self.log = workdir / f"chp-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token, "NODE_PATH": "/usr/share/nodejs"}
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [CHP, "--ip=127.0.0.1", f"--port={self.port}", "--api-ip=127.0.0.1",
                 f"--api-port={self.api_port}",
                 f"--default-target=http://127.0.0.1:{self.default_target_port}"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(lambda: self.routes() is not None, 30, "configurable-http-proxy to answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def routes(self) -> dict:
        response = requests.get(
            f"{self.api_url}/api/routes",
            headers={"Authorization": f"token {self.token}"},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()


# Starts the orchestrator as systemd's socket activation does (sd_listen_fds(3)): the held sockets,
# passed by number after the script, become descriptors 3, 4, ... and LISTEN_PID is the process
# that execs the orchestrator (execv keeps the pid). F_DUPFD moves them out of the way first.
SOCKET_ACTIVATE = """
import fcntl, os, sys
split = sys.argv.index("--")
moved = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 100) for fd in sys.argv[1:split]]
for number, fd in enumerate(moved, start=3):
    os.dup2(fd, number)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(moved)))
os.execv(sys.argv[split + 1], sys.argv[split + 1 :])
"""


class Stack:
    """A proxy and an orchestrator for one pool; the orchestrator can be killed and restarted."""

    def __init__(self, workdir: Path, pool_name: str, network: str, options: dict) -> None:
        self.pool_name = pool_name
        self.port, self.admin_port = free_port(), free_port()
        self.proxy = Proxy(workdir, self.port)
        self.api_token = secrets.token_hex(16)
        self.admin_token = secrets.token_hex(16)
        self.log = workdir / f"orchestrator-{pool_name}.log"
        self.options = {
            "image": IMAGE,
            "pool_name": pool_name,
            "pool_size": 1,
            "docker_network": network,
            "use_tokens": "true",
            "port": self.port,
            "admin_port": self.admin_port,
            "proxy_endpoint": self.proxy.api_url,
            "proxy_public_url": self.proxy.url,
            "ready_timeout": 120,
            "reconcile_period": 1,
            "cull_period": 2,
            "cull_timeout": 3600,
            "mem_limit": "384m",
            **options,
        }
        # Added to the orchestrator's environment, e.g. DOCKER_HOST pointing at a fault relay.
        self.extra_env: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self.held: list[socket.socket] = []  # hold_ports()

    def hold_ports(self) -> None:
        """Hold the orchestrator's two ports as tmpnb.socket does: every start inherits them, and
        connections made between two processes wait in their queue."""
        self.held = [
            socket.create_server(("127.0.0.1", port), backlog=1024)
            for port in (self.port, self.admin_port)
        ]

    def release_ports(self) -> None:
        for sock in self.held:
            sock.close()
        self.held = []

    def argv(self, **overrides) -> list[str]:
        options = {**self.options, **overrides}
        return [sys.executable, "-m", "orchestrator"] + [
            f"--{name}={value}" for name, value in options.items() if value is not None
        ]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONFIGPROXY_AUTH_TOKEN": self.proxy.token,
            "API_AUTH_TOKEN": self.api_token,
            "ADMIN_AUTH_TOKEN": self.admin_token,
            **self.extra_env,
        }

    def start(self, wait_ready: bool = True) -> None:
        argv, fds = self.argv(), [sock.fileno() for sock in self.held]
        if fds:
            argv = [sys.executable, "-c", SOCKET_ACTIVATE, *map(str, fds), "--", *argv]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, pass_fds=fds
            )
        wait_for(self._answers, 60, f"orchestrator {self.pool_name} to listen")
        if wait_ready:
            self.wait_available(self.options["pool_size"])

    def _answers(self) -> bool:
        if self.process and self.process.poll() is not None:
            pytest.fail(f"orchestrator exited with {self.process.returncode}:\n{self.log_text()}")
        return requests.get(f"http://127.0.0.1:{self.port}/api/stats", timeout=5).ok

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait()
        return None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stats(self) -> dict:
        return requests.get(f"http://127.0.0.1:{self.port}/api/stats", timeout=5).json()

    def wait_available(self, count: int, timeout: float = 180) -> None:
        wait_for(
            lambda: self.stats()["available"] >= count,
            timeout,
            f"{count} ready container(s) in pool {self.pool_name}",
            interval=0.5,
        )

    def metric(self, name: str, **labels: str) -> float:
        """A metric of the admin port's /metrics: the sum of its series whose labels match."""
        total = 0.0
        for line in self.admin("GET", "/metrics").text.splitlines():
            series, _, value = line.rpartition(" ")
            metric_name, _, label_text = series.partition("{")
            found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
            if metric_name == name and all(found.get(k) == v for k, v in labels.items()):
                total += float(value)
        return total

    def wait_passes(self, loop: str, count: int = 1, timeout: float = 60) -> None:
        """Wait until `count` whole passes of a periodic loop (`reconcile_once`, `cull_once`)
        began and completed after this call: what it would do about the state at this call, it
        has done. The pass running at the call is not counted, so a check made after this one
        that nothing happened can fail."""
        before = self.metric("tmpnb_passes_total", loop=loop)
        wait_for(
            lambda: self.metric("tmpnb_passes_total", loop=loop) >= before + count + 1,
            timeout,
            f"{count} whole {loop} pass(es) of pool {self.pool_name}",
            interval=0.2,
        )

    def spawn(self, path: str = "") -> str:
        """A visitor's click on /spawn/<path> through the proxy; returns the redirect target."""
        response = requests.get(f"{self.proxy.url}/spawn/{path}", allow_redirects=False, timeout=30)
        assert response.status_code == 302, response.text[:300]
        return response.headers["Location"]

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.admin_token}"}
        return requests.request(
            method,
            f"http://127.0.0.1:{self.admin_port}{path}",
            headers=headers,
            timeout=60,
            **kwargs,
        )


@contextlib.contextmanager
def isolated_network(client: docker.DockerClient, name: str, labels: dict) -> Iterator[str]:
    """A bridge network like the deployed one: containers cannot talk to each other."""
    created = client.networks.create(
        name,
        driver="bridge",
        options={"com.docker.network.bridge.enable_icc": "false"},
        labels=labels,
    )
    try:
        yield name
    finally:
        created.remove()


def remove_pool_containers(client: docker.DockerClient, pool_name: str) -> None:
    """Remove every container of one pool, found by its label (never by a name pattern)."""
    for container in client.containers.list(all=True, filters={"label": f"tmpnb.pool={pool_name}"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)


def open_docker_client() -> docker.DockerClient:
    """A client of the real engine, once the test image is known to be there."""
    client = docker.from_env(version="auto")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        client.close()
        pytest.fail(f"test image {IMAGE} is missing: build it first (make images)")
    return client


# ----- a visitor's view, shared by the integration and reliability suites -----


def visit(stack: Stack) -> tuple[str, str]:
    """Hand out a notebook; return (its base URL through the proxy, its token)."""
    url = urlsplit(stack.spawn("tree"))
    return stack.proxy.url + url.path.rsplit("/tree", 1)[0], parse_qs(url.query)["token"][0]


def notebook_status(base_url: str, token: str) -> int:
    return requests.get(
        f"{base_url}/api/status", headers={"Authorization": f"token {token}"}, timeout=5
    ).status_code


def pool_containers(client: docker.DockerClient, pool_name: str) -> list:
    return client.containers.list(all=True, filters={"label": f"tmpnb.pool={pool_name}"})
