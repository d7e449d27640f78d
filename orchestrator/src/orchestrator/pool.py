"""The warm pool: start containers, wait until they answer, hand them out, cull and heal.

`pool_size` is tmpnb's capacity: the pool holds that many containers, handed out or not, and
keeps every one that is not handed out booted and ready. A container freed by culling, death or
draining is replaced in the background. Three loops run beside the visitors' requests:
refill (start what is missing), reconcile (agree with Docker and the proxy) and cull.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import string
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from orchestrator import __version__
from orchestrator.config import Config, host_binds, render_command
from orchestrator.decisions import (
    Activity,
    Adoption,
    in_use_by,
    plan_reconcile,
    select_for_cull,
    spawn_count,
)
from orchestrator.docker_backend import ContainerSpec, DockerBackend, DockerError
from orchestrator.events import log_event
from orchestrator.metrics import Metrics
from orchestrator.model import (
    LABEL_CREATED,
    LABEL_PATH,
    LABEL_POOL,
    LABEL_PORT,
    LABEL_STATE,
    LABEL_VERSION,
    ROUTE_CONTAINER,
    ROUTE_HANDED_OUT,
    ROUTE_HANDED_OUT_AT,
    ROUTE_POOLED,
    ROUTE_STATE,
    TOKEN_ENV,
    Slot,
    SlotState,
    user_path,
)
from orchestrator.proxy import ProxyClient, ProxyError
from orchestrator.timeutil import isoformat, parse_time, utcnow

_PATH_ALPHABET = string.ascii_lowercase + string.digits


class NotReady(Exception):
    """A container did not answer through the proxy before its deadline."""


class Pool:
    def __init__(
        self,
        config: Config,
        docker: DockerBackend,
        proxy: ProxyClient,
        metrics: Metrics,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.pool_name = config.effective_pool_name
        self.docker = docker
        self.proxy = proxy
        self.metrics = metrics
        self.clock = clock
        self.slots: dict[str, Slot] = {}
        self._ready: deque[str] = deque()
        self._wake_refill = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self._failures = 0  # consecutive failed spawns, for back-off
        self._port_lock = asyncio.Lock()
        # Where the proxy's marker route points: this service, which answers it with a 404.
        own_ip = "127.0.0.1" if config.ip in ("", "0.0.0.0", "::") else config.ip  # noqa: S104
        self._own_url = f"http://{own_ip}:{config.port}"
        self._http = AsyncHTTPClient()
        self.metrics.capacity.set(config.pool_size)
        self.activity: dict[str, Activity] = {}  # the last cull pass's view, for the admin page

    # ----- lifecycle -----

    async def start(self) -> None:
        """Adopt what a previous run left, then keep the pool full, healthy and culled."""
        await self.reconcile_once()
        self._loops = [
            asyncio.create_task(self._refill_loop(), name="refill"),
            asyncio.create_task(
                self._every(self.config.reconcile_period, self.reconcile_once), name="reconcile"
            ),
            asyncio.create_task(self._every(self.config.cull_period, self.cull_once), name="cull"),
        ]
        self._wake_refill.set()

    async def stop(self) -> None:
        """Stop every loop and task; containers stay for the next start to adopt."""
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)

    # ----- what visitors and the API see -----

    @property
    def available(self) -> int:
        return sum(1 for slot in self.slots.values() if slot.state is SlotState.READY)

    def is_live(self, path_id: str) -> bool:
        slot = self.slots.get(path_id)
        return slot is not None and slot.state is not SlotState.REMOVING

    def in_use_by(self, address: str) -> int:
        return in_use_by(self.slots.values(), address)

    async def hand_out(self, client: str | None = None) -> Slot | None:
        """A ready container for one visitor (at address `client`), or None when the pool is empty.

        The hand-out is written into the container's route before the visitor is redirected,
        so it survives a restart of the orchestrator (see model.py). A container whose route
        cannot be updated is removed, never offered again.
        """
        while self._ready:
            path_id = self._ready.popleft()  # no await before this: no visitor gets it twice
            slot = self.slots.get(path_id)
            if slot is None or slot.state is not SlotState.READY:
                continue
            slot.state = SlotState.IN_USE
            slot.handed_out_at = self.clock()
            slot.client = client
            self._update_gauges()
            try:
                await self.proxy.add_route(path_id, slot.target or "", self._route_data(slot))
            except ProxyError as error:
                self._error("handout_route", error, path=path_id)
                slot.state = SlotState.REMOVING  # never offered again; removed in the background
                self._background(self._discard(slot, "route_failed"))
                continue
            self.metrics.handed_out.inc()
            log_event("handed-out", pool=self.pool_name, path=path_id, container=_short(slot))
            return slot
        self.metrics.full.inc()
        return None

    async def drain(self) -> int:
        """Remove every container that is not handed out; fresh ones replace them."""
        idle = [
            slot
            for slot in self.slots.values()
            if slot.state in (SlotState.READY, SlotState.STARTING)
        ]
        for slot in idle:
            if slot.state is SlotState.STARTING:
                slot.state = SlotState.REMOVING  # its spawn task notices and cleans up
        await asyncio.gather(
            *(self._discard(slot, "drained") for slot in idle if slot.state is SlotState.READY)
        )
        self._wake_refill.set()
        return len(idle)

    # ----- starting containers -----

    async def _refill_loop(self) -> None:
        while True:
            await self._wake_refill.wait()
            self._wake_refill.clear()
            if self._failures:
                await asyncio.sleep(min(0.5 * 2 ** min(self._failures, 6), 30))
            for _ in range(spawn_count(self.slots.values(), self.config.pool_size)):
                self._background(self._spawn())

    async def _spawn(self) -> None:
        path_id = "".join(secrets.choice(_PATH_ALPHABET) for _ in range(self.config.user_length))
        # >= 128 bits: 32 random bytes, URL-safe.
        token = secrets.token_urlsafe(32) if self.config.use_tokens else ""
        slot = Slot(path_id=path_id, state=SlotState.STARTING, created=self.clock(), token=token)
        self.slots[path_id] = slot
        self._update_gauges()
        started = asyncio.get_running_loop().time()
        try:
            port = await self._reserve_port(slot)
            record = await self.docker.create_and_start(self._spec(slot, port))
            slot.container_id, slot.target = record.id, record.target
            self.metrics.spawned.inc()
            log_event("spawned", pool=self.pool_name, path=path_id, container=_short(slot))
            if not record.target:
                raise DockerError(f"container {record.id[:12]} has no address on its network")
            await self._route_and_wait(slot)
        except (DockerError, ProxyError, NotReady) as error:
            if slot.state is SlotState.REMOVING:  # drained while starting: not a failure
                await self._discard(slot, "drained")
                return
            self._failures += 1
            self._error("spawn", error, path=path_id)
            await self._discard(slot, "spawn_failed")
            return
        finally:
            self._wake_refill.set()
        self._failures = 0
        self.metrics.spawn_seconds.observe(asyncio.get_running_loop().time() - started)

    async def _route_and_wait(self, slot: Slot) -> None:
        """Route a starting container, wait until it answers through the proxy, offer it."""
        await self.proxy.add_route(slot.path_id, slot.target or "", self._route_data(slot))
        await self._wait_ready(slot)
        if slot.state is not SlotState.STARTING:
            raise NotReady("drained while starting")
        slot.state = SlotState.READY
        self._ready.append(slot.path_id)
        self._update_gauges()
        log_event("ready", pool=self.pool_name, path=slot.path_id, container=_short(slot))

    async def _wait_ready(self, slot: Slot) -> None:
        """Poll `{base_path}api/status` through the proxy until 200, without blocking the loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.ready_timeout
        url = f"{self.config.proxy_public_url.rstrip('/')}{user_path(slot.path_id)}/api/status"
        headers = {"Authorization": f"token {slot.token}"} if slot.token else {}
        delay = 0.1
        while slot.state is SlotState.STARTING:
            try:
                await self._http.fetch(
                    HTTPRequest(url, headers=headers, request_timeout=5, follow_redirects=False)
                )
                return
            except (HTTPClientError, OSError):
                pass  # not up yet (the proxy answers 503 until the server listens)
            if loop.time() + delay > deadline:
                raise NotReady(f"no answer from {url} within {self.config.ready_timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _spec(self, slot: Slot, port: int) -> ContainerSpec:
        config = self.config
        ip = config.container_ip if config.host_network else "0.0.0.0"  # noqa: S104 (in its netns)
        labels = {
            LABEL_POOL: self.pool_name,
            LABEL_PATH: slot.path_id,
            LABEL_CREATED: isoformat(slot.created),
            LABEL_STATE: ROUTE_POOLED,  # labels are immutable: this is the state at creation
            LABEL_VERSION: __version__,
        }
        if config.host_network:
            labels[LABEL_PORT] = str(port)
        return ContainerSpec(
            name=f"tmpnb-{self.pool_name}-{slot.path_id}",
            image=config.image,
            command=render_command(
                config.command,
                base_path=user_path(slot.path_id) + "/",
                port=port,
                ip=ip,
                token=slot.token,
            ),
            labels=labels,
            environment={TOKEN_ENV: slot.token} if slot.token else {},
            mem_limit=config.mem_limit,
            pids_limit=config.pids_limit,
            cpu_shares=config.cpu_shares,
            cpu_quota=config.cpu_quota,
            user=config.container_user,
            network=config.docker_network,
            host_network=config.host_network,
            volumes=host_binds(config.host_directories),
            extra_hosts=dict(item.split(":", 1) for item in config.extra_hosts),
        )

    async def _reserve_port(self, slot: Slot) -> int:
        """container_port, or on the host network the first port that is free on container_ip.

        Free means: no container of this pool holds it (by label) and it can be bound now.
        """
        if not self.config.host_network:
            return self.config.container_port
        async with self._port_lock:
            used = {s.target.rsplit(":", 1)[1] for s in self.slots.values() if s.target}
            for record in await self.docker.list_pool(self.pool_name):
                if record.target:
                    used.add(record.target.rsplit(":", 1)[1])
            for port in range(self.config.container_port, 65536):
                if str(port) not in used and _can_bind(self.config.container_ip, port):
                    slot.target = f"http://{self.config.container_ip}:{port}"
                    return port
        raise DockerError(f"no free port on {self.config.container_ip}")

    # ----- removing containers -----

    async def _discard(self, slot: Slot, reason: str) -> None:
        """Remove a container and its route; forget it once both are gone."""
        slot.state = SlotState.REMOVING
        with contextlib.suppress(ValueError):
            self._ready.remove(slot.path_id)
        self._update_gauges()
        try:
            await self.proxy.delete_route(slot.path_id)
        except ProxyError as error:
            self._error("delete_route", error, path=slot.path_id)  # reconcile deletes it later
        if slot.container_id:
            try:
                await self.docker.remove(slot.container_id)
            except DockerError as error:
                self._error("remove", error, path=slot.path_id)
        if self.slots.get(slot.path_id) is slot:
            del self.slots[slot.path_id]
        self.metrics.removed.labels(reason).inc()
        log_event(
            "removed", pool=self.pool_name, path=slot.path_id, container=_short(slot), reason=reason
        )
        self._update_gauges()
        self._wake_refill.set()

    # ----- healing -----

    async def reconcile_once(self) -> None:
        """Agree with Docker and the proxy: adopt, restore routes, remove the dead."""
        containers = await self.docker.list_pool(self.pool_name)
        routes, routes_kept = await self.proxy.listing()
        plan = plan_reconcile(self.slots, containers, routes, routes_kept)
        for container in plan.remove_containers:
            await self.docker.remove(container.id)
            self.metrics.removed.labels("dead").inc()
            log_event(
                "removed",
                pool=self.pool_name,
                path=container.path_id,
                container=container.id[:12],
                reason="dead",
                status=container.status,
            )
        for path_id in plan.forget:
            slot = self.slots.get(path_id)
            if slot is not None and await self._container_gone(slot):
                del self.slots[path_id]
                with contextlib.suppress(ValueError):
                    self._ready.remove(path_id)
                log_event(
                    "removed",
                    pool=self.pool_name,
                    path=path_id,
                    container=_short(slot),
                    reason="vanished",
                )
        for path_id in plan.delete_routes:
            if path_id not in self.slots:  # a slot may have appeared since the listing
                await self.proxy.delete_route(path_id)
                log_event("route-deleted", pool=self.pool_name, path=path_id)
        for path_id in plan.add_routes:
            slot = self.slots.get(path_id)
            if slot is not None and slot.state in (SlotState.READY, SlotState.IN_USE):
                await self.proxy.add_route(path_id, slot.target or "", self._route_data(slot))
                self.metrics.routes_restored.inc()
                log_event("route-restored", pool=self.pool_name, path=path_id, target=slot.target)
        for adoption in plan.adopt:
            await self._adopt(adoption)
        if not routes_kept:
            # Last: every route this pass restored is in place before the marker says so.
            await self.proxy.mark_routes_kept(self._own_url)
        self._update_gauges()
        if not plan.empty:
            self._wake_refill.set()

    async def _container_gone(self, slot: Slot) -> bool:
        if slot.container_id is None:
            return True
        record = await self.docker.inspect(slot.container_id)
        return record is None or not record.running

    async def _adopt(self, adoption: Adoption) -> None:
        record = await self.docker.inspect(adoption.container.id)
        if record is None or not record.running or not record.target:
            return
        in_use = adoption.state is SlotState.IN_USE
        slot = Slot(
            path_id=record.path_id,
            state=adoption.state,
            created=record.created,
            token=record.token,
            container_id=record.id,
            target=record.target,
            handed_out_at=(adoption.handed_out_at or self.clock()) if in_use else None,
        )
        self.slots[slot.path_id] = slot
        self.metrics.adopted.inc()
        log_event(
            "adopted",
            pool=self.pool_name,
            path=slot.path_id,
            container=_short(slot),
            state=slot.state.value,
        )
        if in_use:
            await self.proxy.add_route(slot.path_id, slot.target or "", self._route_data(slot))
        else:
            self._background(self._readopt(slot))

    async def _readopt(self, slot: Slot) -> None:
        try:
            await self._route_and_wait(slot)
        except (ProxyError, NotReady) as error:
            self._error("adopt", error, path=slot.path_id)
            await self._discard(slot, "not_ready")

    # ----- culling -----

    async def cull_once(self) -> None:
        in_use = [slot for slot in self.slots.values() if slot.state is SlotState.IN_USE]
        if not in_use:
            return
        routes = await self.proxy.routes()
        limit = asyncio.Semaphore(8)

        async def activity(slot: Slot) -> Activity:
            async with limit:
                return await self._activity(slot, routes)

        activities = await asyncio.gather(*(activity(slot) for slot in in_use))
        self.activity = {found.path_id: found for found in activities}
        cull_max = timedelta(seconds=self.config.cull_max) if self.config.cull_max else None
        chosen = select_for_cull(
            activities, self.clock(), timedelta(seconds=self.config.cull_timeout), cull_max
        )
        for path_id, reason in chosen:
            slot = self.slots.get(path_id)
            if slot is not None and slot.state is SlotState.IN_USE:
                self.metrics.culled.labels(reason).inc()
                log_event(
                    "culled",
                    pool=self.pool_name,
                    path=path_id,
                    container=_short(slot),
                    reason=reason,
                )
                await self._discard(slot, "culled")

    async def _activity(self, slot: Slot, routes: dict[str, Any]) -> Activity:
        """Proxy traffic plus the notebook's own view (asked directly, not through the proxy)."""
        route = routes.get(slot.path_id)
        base = f"{slot.target}{user_path(slot.path_id)}/api"
        headers = {"Authorization": f"token {slot.token}"} if slot.token else {}
        notebook_last_activity, busy, answered = None, False, False
        try:
            status = await self._get_json(f"{base}/status", headers)
            notebook_last_activity = parse_time(status.get("last_activity"))
            # no_track_activity: asking must not itself count as activity.
            kernels = await self._get_json(f"{base}/kernels?no_track_activity=1", headers)
            busy = any(kernel.get("execution_state") == "busy" for kernel in kernels)
            answered = True
        except (HTTPClientError, OSError, ValueError, AttributeError) as error:
            log_event("status-unknown", logging.INFO, path=slot.path_id, error=error)
        return Activity(
            path_id=slot.path_id,
            created=slot.created,
            handed_out_at=slot.handed_out_at,
            proxy_last_activity=route.last_activity if route else None,
            notebook_last_activity=notebook_last_activity,
            busy=busy,
            answered=answered,
        )

    async def _get_json(self, url: str, headers: dict[str, str]) -> Any:
        response = await self._http.fetch(HTTPRequest(url, headers=headers, request_timeout=10))
        return json.loads(response.body)

    # ----- helpers -----

    def _route_data(self, slot: Slot) -> dict[str, Any]:
        data: dict[str, Any] = {ROUTE_CONTAINER: slot.container_id, ROUTE_STATE: ROUTE_POOLED}
        if slot.state is SlotState.IN_USE:
            data[ROUTE_STATE] = ROUTE_HANDED_OUT
            if slot.handed_out_at is not None:
                data[ROUTE_HANDED_OUT_AT] = isoformat(slot.handed_out_at)
        return data

    async def _every(self, period: float, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `action` now and then every `period` seconds; a failure is logged, not fatal."""
        while True:
            try:
                await action()
            except (DockerError, ProxyError) as error:
                self._error(action.__name__, error)
            except Exception:  # a bug must not stop healing; log it loudly and go on
                logging.getLogger("tmpnb").exception("event=error kind=%s", action.__name__)
                self.metrics.errors.labels(action.__name__).inc()
            await asyncio.sleep(period)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _error(self, kind: str, error: Exception, **fields: Any) -> None:
        self.metrics.errors.labels(kind).inc()
        log_event("error", logging.WARNING, pool=self.pool_name, kind=kind, error=error, **fields)

    def _update_gauges(self) -> None:
        counts = dict.fromkeys(SlotState, 0)
        for slot in self.slots.values():
            counts[slot.state] += 1
        self.metrics.available.set(counts[SlotState.READY])
        self.metrics.in_use.set(counts[SlotState.IN_USE])
        self.metrics.starting.set(counts[SlotState.STARTING])


def _short(slot: Slot) -> str | None:
    return slot.container_id[:12] if slot.container_id else None


def _can_bind(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True
