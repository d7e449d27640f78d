"""Fault-injecting stand-ins for Docker, the proxy and the notebooks, on a virtual clock.

They keep the state the real parts keep (containers with labels and a running flag; routes with
their data) and nothing more, so the pool's invariants can be checked against "the world" after
any schedule. Every call consults `Faults`: it may fail before it has any effect, or after (the
call took effect but its answer was lost: a time-out), and it yields to the event loop a random
number of times, so concurrent tasks interleave differently on every schedule.
"""

from __future__ import annotations

import asyncio
import io
import random
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from orchestrator.config import Config, parse
from orchestrator.docker_backend import ContainerSpec, DockerError
from orchestrator.metrics import Metrics
from orchestrator.model import (
    LABEL_CREATED,
    LABEL_PATH,
    ROUTE_CONTAINER,
    ROUTE_HANDED_OUT_AT,
    ROUTE_KEEP,
    ROUTE_MARKER,
    ROUTE_POOL,
    ROUTE_STATE,
    ContainerRecord,
    RouteRecord,
    SlotState,
)
from orchestrator.pool import Pool
from orchestrator.probes import Seen
from orchestrator.proxy import ProxyError
from orchestrator.timeutil import parse_time


class Clock:
    """Wall and monotonic time that move only when told (sleeps move them)."""

    def __init__(self, wall: datetime | None = None) -> None:
        self.wall_now = wall or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        self.mono_now = 1000.0

    def wall(self) -> datetime:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += timedelta(seconds=seconds)
        self.mono_now += seconds

    def step_wall(self, seconds: float) -> None:
        """An NTP step: the wall clock jumps, the monotonic clock does not."""
        self.wall_now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)


@dataclass
class Faults:
    """Which calls fail. `plan` maps a call name to a list of outcomes used up one per call:
    'ok', 'before' (fails, no effect) or 'after' (takes effect, then fails). `rate` makes any call
    fail at random (half before, half after) while `active`."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 (schedules)
    rate: float = 0.0
    active: bool = True
    plan: dict[str, list[str]] = field(default_factory=dict)
    max_yields: int = 3
    injected: int = 0

    def outcome(self, call: str) -> str:
        queued = self.plan.get(call)
        if queued:
            return queued.pop(0)
        if self.active and self.rate and self.rng.random() < self.rate:
            self.injected += 1
            return self.rng.choice(("before", "after"))
        return "ok"

    async def interleave(self) -> None:
        for _ in range(self.rng.randint(0, self.max_yields)):
            await asyncio.sleep(0)


@dataclass
class FakeContainer:
    id: str
    labels: dict[str, str]
    token: str
    ip: str
    image_id: str = ""
    running: bool = True
    cpu_shares: int | None = None
    # The visitor's home: name -> (content, mtime as Unix time); what `find` and `tar` see.
    home: dict[str, tuple[bytes, float]] = field(default_factory=dict)


class FakeDocker:
    """Docker as the pool sees it: containers with labels, found by the pool label."""

    def __init__(self, faults: Faults, clock: Clock) -> None:
        self.faults = faults
        self.clock = clock
        self.containers: dict[str, FakeContainer] = {}
        self.image = "sha256:" + "a" * 64  # what the pool's image name points to
        self._next = 0
        self.calls: list[str] = []

    async def _call(self, name: str) -> str:
        self.calls.append(name)
        await self.faults.interleave()
        outcome = self.faults.outcome(f"docker.{name}")
        if outcome == "before":
            raise DockerError(f"{name}: injected failure")
        return outcome

    def _done(self, outcome: str, name: str) -> None:
        if outcome == "after":
            raise DockerError(f"{name}: injected time-out after the call took effect")

    def _record(self, container: FakeContainer, with_token: bool) -> ContainerRecord:
        return ContainerRecord(
            id=container.id,
            path_id=container.labels[LABEL_PATH],
            status="running" if container.running else "exited",
            created=parse_time(container.labels.get(LABEL_CREATED)) or self.clock.wall(),
            target=f"http://{container.ip}:8888" if container.running else None,
            token=container.token if with_token else "",
            image_id=container.image_id,
        )

    async def create_and_start(self, spec: ContainerSpec) -> ContainerRecord:
        outcome = await self._call("create_and_start")
        self._next += 1
        container = FakeContainer(
            id=f"{self._next:064x}",
            labels=dict(spec.labels),
            token=spec.environment.get("JUPYTER_TOKEN", ""),
            ip=f"10.9.{self._next // 250}.{self._next % 250 + 1}",
            image_id=self.image,
            cpu_shares=spec.cpu_shares,
        )
        self.containers[container.id] = container
        self._done(outcome, "create_and_start")
        return self._record(container, with_token=True)

    async def image_id(self, image: str) -> str:
        outcome = await self._call("image_id")
        self._done(outcome, "image_id")
        return self.image

    async def set_cpu_shares(self, container_id: str, shares: int) -> None:
        outcome = await self._call("set_cpu_shares")
        container = self.containers.get(container_id)
        if container is None:
            raise DockerError(f"no such container {container_id}")
        container.cpu_shares = shares
        self._done(outcome, "set_cpu_shares")

    async def memory_total(self) -> int:
        await self._call("memory_total")
        return 24 * 1024**3

    async def list_pool(self, pool_name: str) -> list[ContainerRecord]:
        outcome = await self._call("list_pool")
        self._done(outcome, "list_pool")
        return [
            self._record(c, with_token=False)
            for c in list(self.containers.values())
            if c.labels.get("tmpnb.pool") == pool_name
        ]

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        outcome = await self._call("inspect")
        self._done(outcome, "inspect")
        container = self.containers.get(container_id)
        return None if container is None else self._record(container, with_token=True)

    async def remove(self, container_id: str) -> None:
        outcome = await self._call("remove")
        self.containers.pop(container_id, None)
        self._done(outcome, "remove")

    async def exec_output(
        self, container_id: str, command: list[str], target: IO[bytes], limit: int, *,
        check: bool = True,
    ) -> None:  # fmt: skip
        """`find` (keep.listing_command) and `tar --create` (keep.archive_command) over the
        container's home."""
        outcome = await self._call("exec_output")
        container = self.containers.get(container_id)
        if container is None or not container.running:
            raise DockerError(f"container {container_id[:12]} is not running")
        if command[0] == "find":
            output = b"".join(
                f"f {len(data)} {mtime:.6f} {name}".encode() + b"\0"
                for name, (data, mtime) in container.home.items()
            )
        else:
            names = command[command.index("--") + 1 :]
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for name in names:
                    if name in container.home:
                        data, mtime = container.home[name]
                        info = tarfile.TarInfo(name)
                        info.size, info.mtime = len(data), mtime
                        tar.addfile(info, io.BytesIO(data))
            output = buffer.getvalue()
        if len(output) > limit:
            raise DockerError(f"{command[0]} wrote more than {limit} bytes")
        target.write(output)
        self._done(outcome, "exec_output")

    async def exec_input(self, container_id: str, command: list[str], data: IO[bytes]) -> None:
        """`tar --extract` into the container's home."""
        outcome = await self._call("exec_input")
        container = self.containers.get(container_id)
        if container is None or not container.running:
            raise DockerError(f"container {container_id[:12]} is not running")
        with tarfile.open(fileobj=data) as tar:
            for member in tar:
                source = tar.extractfile(member)
                if source is not None:
                    container.home[member.name] = (source.read(), member.mtime)
        self._done(outcome, "exec_input")

    def running(self) -> dict[str, FakeContainer]:
        return {cid: c for cid, c in self.containers.items() if c.running}

    def kill(self, container_id: str) -> None:
        """The notebook died (out of memory, a crash): it stays, stopped, until removed."""
        self.containers[container_id].running = False


class FakeProxy:
    """configurable-http-proxy's routing table and its API, as proxy.ProxyClient offers it."""

    def __init__(self, faults: Faults, pool_name: str) -> None:
        self.faults = faults
        self.pool_name = pool_name
        self.table: dict[str, dict[str, Any]] = {}  # path -> data (target included)
        self.last_activity: dict[str, datetime] = {}

    async def _call(self, name: str) -> str:
        await self.faults.interleave()
        outcome = self.faults.outcome(f"proxy.{name}")
        if outcome == "before":
            raise ProxyError(f"{name}: injected failure")
        return outcome

    def _done(self, outcome: str, name: str) -> None:
        if outcome == "after":
            raise ProxyError(f"{name}: injected time-out after the call took effect")

    async def check(self) -> None:
        self._done(await self._call("check"), "check")

    async def add_route(self, path_id: str, target: str, data: dict[str, Any]) -> None:
        outcome = await self._call("add_route")
        self.table[f"/user/{path_id}"] = {**data, "target": target, ROUTE_POOL: self.pool_name}
        self._done(outcome, "add_route")

    async def delete_route(self, path_id: str) -> None:
        outcome = await self._call("delete_route")
        self.table.pop(f"/user/{path_id}", None)
        self._done(outcome, "delete_route")

    async def routes(self) -> dict[str, RouteRecord]:
        return (await self.listing())[0]

    async def listing(self) -> tuple[dict[str, RouteRecord], bool]:
        outcome = await self._call("listing")
        self._done(outcome, "listing")
        kept = self.table.get(self.marker, {}).get(ROUTE_MARKER) == self.pool_name
        return self.pool_routes(), kept

    async def mark_routes_kept(self, target: str) -> None:
        outcome = await self._call("mark_routes_kept")
        self.table[self.marker] = {"target": target, ROUTE_MARKER: self.pool_name}
        self._done(outcome, "mark_routes_kept")

    @property
    def marker(self) -> str:
        return f"/.tmpnb/routes-kept/{self.pool_name}"

    def pool_routes(self) -> dict[str, RouteRecord]:
        routes = {}
        for path, data in self.table.items():
            if not path.startswith("/user/") or data.get(ROUTE_POOL) != self.pool_name:
                continue
            path_id = path[len("/user/") :]
            routes[path_id] = RouteRecord(
                path_id=path_id,
                target=data["target"],
                state=data.get(ROUTE_STATE, ""),
                container_id=data.get(ROUTE_CONTAINER),
                last_activity=self.last_activity.get(path_id),
                handed_out_at=parse_time(data.get(ROUTE_HANDED_OUT_AT)),
                keep=data.get(ROUTE_KEEP),
            )
        return routes

    def restart(self) -> None:
        """configurable-http-proxy keeps its routes in memory: a restart loses every one."""
        self.table.clear()
        self.last_activity.clear()


class FakeProbe:
    """The notebooks' answers: ready once booted; activity and busy kernels as a test sets them."""

    def __init__(self, docker: FakeDocker, proxy: FakeProxy) -> None:
        self.docker = docker
        self.proxy = proxy
        self.activity: dict[str, datetime] = {}  # path id -> the notebook's own last activity
        self.busy: set[str] = set()
        self.silent: set[str] = set()  # path ids whose notebook does not answer

    def _container(self, path_id: str) -> FakeContainer | None:
        for container in self.docker.containers.values():
            if container.labels.get(LABEL_PATH) == path_id and container.running:
                return container
        return None

    async def ready(self, slot: Any) -> bool:
        await asyncio.sleep(0)
        route = self.proxy.table.get(f"/user/{slot.path_id}")
        container = self._container(slot.path_id)
        # Through the proxy: the route must lead to the running container.
        return bool(route and container and route["target"].startswith(f"http://{container.ip}:"))

    async def seen(self, slot: Any) -> Seen:
        await asyncio.sleep(0)
        if slot.path_id in self.silent or self._container(slot.path_id) is None:
            return Seen(answered=False)
        return Seen(self.activity.get(slot.path_id), slot.path_id in self.busy)


# ----- the world around one pool, which outlives the orchestrator's restarts -----

POOL = "unit"


def make_config(**options):
    argv = [f"--{name}={value}" for name, value in {"pool_name": POOL, **options}.items()]
    return parse(argv, environ={"CONFIGPROXY_AUTH_TOKEN": "unit-test"})


@dataclass
class World:
    """The parts outside the orchestrator, which outlive its restarts."""

    faults: Faults
    clock: Clock = field(default_factory=Clock)
    config: Config | None = None
    handed: list[str] = field(default_factory=list)  # container ids, in hand-out order

    def __post_init__(self) -> None:
        self.docker = FakeDocker(self.faults, self.clock)
        self.proxy = FakeProxy(self.faults, POOL)
        self.probe = FakeProbe(self.docker, self.proxy)

    def pool(self) -> Pool:
        return Pool(
            self.config,
            self.docker,
            self.proxy,
            Metrics(),
            clock=self.clock.wall,
            monotonic=self.clock.mono,
            probe=self.probe,
            sleep=self.clock.sleep,
        )


async def settle(pool: Pool, world: World, rounds: int = 60) -> None:
    """Let the pool finish what it is doing, as its reconcile loop would, faults or not."""
    for _ in range(rounds):
        for _ in range(20):
            await asyncio.sleep(0)
        await pool._guarded("reconcile", pool.reconcile_once)
        pending = [task for task in pool._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=0.05)
        states = {slot.state for slot in pool.slots.values()}
        full = len(pool.slots) >= pool.capacity
        tracked = {slot.container_id for slot in pool.slots.values()}
        agreed = set(world.docker.containers) == tracked
        if full and agreed and states <= {SlotState.READY, SlotState.IN_USE} and not pending:
            return
