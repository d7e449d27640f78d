"""The Docker calls the orchestrator makes, run off the event loop.

docker-py is blocking, so each call runs in a thread pool of `max_dock_workers` threads: the event
loop keeps serving visitors while Docker is slow, and Docker never sees more than that many
concurrent calls from us. Removing or stopping something that is already gone (404) or already
being removed (409) counts as done.

Every failure of a call is one `DockerError`, whatever raised it (docker-py's own errors, or the
`requests` connection errors and read time-outs it lets through while the engine restarts), and
every call has a time-out (`docker_timeout`): callers handle one typed error, and nothing waits
forever on an engine that went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import docker
import docker.errors
import requests

from orchestrator.model import (
    LABEL_CREATED,
    LABEL_PATH,
    LABEL_POOL,
    LABEL_PORT,
    TOKEN_ENV,
    ContainerRecord,
)
from orchestrator.timeutil import parse_time

# What docker-py raises when a call fails: its errors, and the requests/socket errors it passes.
_CALL_FAILED = (docker.errors.DockerException, requests.RequestException, OSError)


ICC_OPTION = "com.docker.network.bridge.enable_icc"
_T = TypeVar("_T")


class DockerError(Exception):
    """A Docker call failed; the message names what and why."""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one hardened notebook container."""

    name: str
    image: str
    command: list[str]
    labels: dict[str, str]
    environment: dict[str, str] = field(repr=False)
    mem_limit: str
    pids_limit: int
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    user: str | None = None
    network: str | None = None  # None with host_network False: Docker's default bridge
    host_network: bool = False
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> mount options
    read_only: bool = False  # the root file system


class DockerBackend:
    def __init__(
        self,
        *,
        max_workers: int,
        version: str,
        container_port: int,
        container_ip: str,
        network: str | None,
        host_network: bool,
        timeout: float = 60,
    ) -> None:
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        self._version = version
        self._client: docker.DockerClient | None = None
        self._max_workers = max_workers
        self.container_port = container_port
        self.container_ip = container_ip
        self.network = network
        self.host_network = host_network

    async def _run(self, what: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run a blocking call in the pool; any failure, or no answer in time, is a DockerError
        naming `what`. (A call that times out may still finish in its thread: what it made is
        labelled, and the reconcile loop finds it.)"""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, partial(func, *args))
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise DockerError(f"{what}: no answer from Docker in {self._timeout:g}s") from None
        except DockerError:
            raise
        except _CALL_FAILED as error:
            raise DockerError(f"{what}: {error}") from None

    def _api(self) -> docker.APIClient:
        if self._client is None:
            self._client = docker.from_env(
                version=self._version,
                timeout=max(1, int(self._timeout)),
                max_pool_size=max(10, self._max_workers),
            )
        return self._client.api

    async def check(
        self, image: str, user: str | None = None, *, numeric_user: bool = False
    ) -> tuple[str, str | None]:
        """Docker answers, the image is present and the network exists (it is made, with
        inter-container traffic off, when missing); returns the API version and who the notebook
        runs as (`user`, else the image's user). `numeric_user`: that user must be a uid[:gid],
        to own the in-memory home (a name cannot be resolved without running the image)."""

        def check() -> tuple[str, str | None]:
            try:
                api = self._api()
                api.ping()
            except _CALL_FAILED as error:
                raise DockerError(f"cannot reach Docker: {error}") from None
            try:
                attrs = api.inspect_image(image)  # type: ignore[no-untyped-call]
                image_user = attrs.get("Config", {}).get("User") or None
            except docker.errors.ImageNotFound:
                raise DockerError(
                    f"--image: {image} is not present on this Docker host (images are never pulled)"
                ) from None
            runs_as = user or image_user
            if numeric_user and not (runs_as or "").partition(":")[0].isdigit():
                raise DockerError(
                    f"--container_user: the notebook runs as {runs_as or 'root'!r}, but disk_limit "
                    "needs a numeric uid[:gid] to own its home: set --container_user=1000:1000 "
                    "(the image's user's ids), or --disk_limit=0"
                )
            if self.network:
                self._ensure_network(api, self.network)
            return str(api.api_version), runs_as

        return await self._run("check", check)

    @staticmethod
    def _ensure_network(api: docker.APIClient, name: str) -> None:
        try:
            network = api.inspect_network(name)
        except docker.errors.NotFound:
            api.create_network(
                name,
                driver="bridge",
                options={ICC_OPTION: "false"},
                labels={"tmpnb.network": "true"},
                check_duplicate=True,
            )
            return
        options = network.get("Options") or {}
        if network.get("Driver") == "bridge" and options.get(ICC_OPTION, "true") != "false":
            raise DockerError(
                f"--docker_network: network {name} lets its containers reach each other; "
                f"create it with -o {ICC_OPTION}=false (or name a network that does not exist yet)"
            )

    async def image_id(self, image: str) -> str:
        """The ID the image's name points to now (it changes when the image is rebuilt)."""

        def image_id() -> str:
            attrs = self._api().inspect_image(image)  # type: ignore[no-untyped-call]
            return str(attrs["Id"])

        return await self._run(f"inspect image {image}", image_id)

    async def set_cpu_shares(self, container_id: str, shares: int) -> None:
        """Change a running container's CPU weight (a notebook handed out gets a visitor's)."""

        def update() -> None:
            self._api().update_container(container_id, cpu_shares=shares)

        await self._run(f"update container {container_id[:12]}", update)

    async def memory_total(self) -> int:
        """Bytes of memory the engine's machine has (what every notebook's mem_limit shares)."""

        def memory_total() -> int:
            return int(self._api().info()["MemTotal"])

        return await self._run("read the engine's memory", memory_total)

    async def list_pool(self, pool_name: str) -> list[ContainerRecord]:
        """Every container (running or not) labelled with this pool, without secrets."""

        def list_pool() -> list[ContainerRecord]:
            summaries = self._api().containers(
                all=True, filters={"label": f"{LABEL_POOL}={pool_name}"}
            )
            return [self._record(summary) for summary in summaries if _path_id(summary)]

        return await self._run("list containers", list_pool)

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        """The full record of one container, token included; None when it is gone."""

        def inspect() -> ContainerRecord | None:
            try:
                attrs = self._api().inspect_container(container_id)
            except docker.errors.NotFound:
                return None
            return self._record(attrs)

        return await self._run(f"inspect {container_id[:12]}", inspect)

    async def create_and_start(self, spec: ContainerSpec) -> ContainerRecord:
        def create_and_start() -> ContainerRecord:
            api = self._api()
            host_config = api.create_host_config(
                mem_limit=spec.mem_limit,
                memswap_limit=spec.mem_limit,  # no swap beyond the memory limit
                cpu_shares=spec.cpu_shares,
                cpu_quota=spec.cpu_quota,
                cpu_period=100_000 if spec.cpu_quota else None,
                pids_limit=spec.pids_limit,
                cap_drop=["ALL"],  # the notebook runs as a non-root user and needs none
                security_opt=["no-new-privileges"],
                network_mode="host" if spec.host_network else spec.network,
                binds=dict(spec.volumes) or None,
                extra_hosts=spec.extra_hosts or None,
                tmpfs=spec.tmpfs or None,
                read_only=spec.read_only,
                init=False,
            )
            created = api.create_container(
                image=spec.image,
                command=spec.command,
                name=spec.name,
                labels=spec.labels,
                environment=spec.environment,
                user=spec.user or "",
                host_config=host_config,
                detach=True,
            )
            container_id = created["Id"]
            try:
                api.start(container_id)
                return self._record(api.inspect_container(container_id))
            except _CALL_FAILED:
                with contextlib.suppress(*_CALL_FAILED, DockerError):
                    _remove(api, container_id)  # else labelled: the reconcile loop removes it
                raise

        return await self._run(f"start a container of {spec.image}", create_and_start)

    async def remove(self, container_id: str) -> None:
        """Remove the container (and its anonymous volumes); gone already is done."""
        await self._run(f"remove {container_id[:12]}", lambda: _remove(self._api(), container_id))

    async def exec_output(
        self, container_id: str, command: list[str], target: IO[bytes], limit: int, *,
        check: bool = True,
    ) -> None:  # fmt: skip
        """Run `command` in the running container (as its user), its output written to `target`
        as it comes (a caller may pass a temporary file: it may be large); more than `limit`
        bytes, or a non-zero exit when `check`, is a DockerError. The output is the visitor's to
        shape: callers parse it, never trust it."""

        def run() -> None:
            api = self._api()
            exec_id = api.exec_create(container_id, command, stdout=True, stderr=False)["Id"]
            size = 0
            for chunk in api.exec_start(exec_id, stream=True):
                size += len(chunk)
                if size > limit:
                    raise DockerError(f"{command[0]} wrote more than {limit} bytes")
                target.write(chunk)
            if check:
                _check_exit(api, exec_id, command[0])

        await self._run(f"run {command[0]} in {container_id[:12]}", run)

    async def exec_input(self, container_id: str, command: list[str], data: IO[bytes]) -> None:
        """Run `command` in the running container (as its user) with `data` on its stdin, sent
        a chunk at a time (it may be a large file)."""

        def run() -> None:
            api = self._api()
            exec_id = api.exec_create(
                container_id, command, stdin=True, stdout=False, stderr=False
            )["Id"]
            attached = api.exec_start(exec_id, socket=True)
            raw = cast(socket.socket, getattr(attached, "_sock", attached))  # wrapped on Unix
            try:
                while chunk := data.read(1024 * 1024):
                    raw.sendall(chunk)
                raw.shutdown(socket.SHUT_WR)
                while raw.recv(65536):  # until the command ends and Docker closes the stream
                    pass
            finally:
                attached.close()
            _check_exit(api, exec_id, command[0])

        await self._run(f"run {command[0]} in {container_id[:12]}", run)

    async def extract(
        self, image: str, source: str, destination: str, labels: dict[str, str]
    ) -> None:
        """Copy `source` out of a never-started container of `image` into `destination`.

        This is tmpnb's static_files: a front web server can then serve the notebook's static
        assets itself. The container is labelled like the pool's and removed at once.
        """

        def extract() -> None:
            api = self._api()
            created = api.create_container(image=image, command=["true"], labels=labels)
            try:
                stream, _ = api.get_archive(created["Id"], source)
                data = io.BytesIO(b"".join(stream))
                Path(destination).mkdir(parents=True, exist_ok=True)
                with tarfile.open(fileobj=data) as archive:
                    archive.extractall(destination, filter="data")
            finally:
                _remove(api, created["Id"])

        await self._run(f"extract {source} from {image}", extract)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def _record(self, attrs: dict[str, Any]) -> ContainerRecord:
        """Build a record from either `docker ps` (summary) or `docker inspect` output."""
        labels = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
        state = attrs.get("State")
        status = state.get("Status", "") if isinstance(state, dict) else str(state or "")
        created = parse_time(labels.get(LABEL_CREATED))
        if created is None:
            raw = attrs.get("Created")
            created = (
                datetime.fromtimestamp(raw, UTC) if isinstance(raw, int) else parse_time(raw)
            ) or datetime.now(UTC)
        token = ""
        for item in attrs.get("Config", {}).get("Env") or []:
            name, _, value = item.partition("=")
            if name == TOKEN_ENV:
                token = value
        # `docker ps` says ImageID; `docker inspect` says Image (both the sha256 ID).
        image_id = attrs.get("ImageID") or attrs.get("Image") or ""
        return ContainerRecord(
            image_id=image_id if image_id.startswith("sha256:") else "",
            id=attrs.get("Id", ""),
            path_id=labels.get(LABEL_PATH, ""),
            status=status,
            created=created,
            target=self._target(attrs, labels) if status == "running" else None,
            token=token,
        )

    def _target(self, attrs: dict[str, Any], labels: dict[str, str]) -> str | None:
        if self.host_network:
            port = labels.get(LABEL_PORT)
            return f"http://{self.container_ip}:{port}" if port else None
        networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
        network = networks.get(self.network or "bridge") or {}
        ip = network.get("IPAddress")
        return f"http://{ip}:{self.container_port}" if ip else None


def _path_id(summary: dict[str, Any]) -> str:
    return str((summary.get("Labels") or {}).get(LABEL_PATH, ""))


def _remove(api: docker.APIClient, container_id: str) -> None:
    try:
        api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass  # already gone
    except docker.errors.APIError as error:
        if error.status_code != 409:  # 409: removal already in progress
            raise DockerError(f"cannot remove container {container_id[:12]}: {error}") from None


def _check_exit(api: docker.APIClient, exec_id: str, program: str) -> None:
    """The exec's exit status, once Docker has it (it lags the stream's end by a moment)."""
    for _ in range(100):
        state = api.exec_inspect(exec_id)
        if not state.get("Running"):
            if state.get("ExitCode"):
                raise DockerError(f"{program} exited with status {state['ExitCode']}")
            return
        time.sleep(0.02)
    raise DockerError(f"{program} did not end")
