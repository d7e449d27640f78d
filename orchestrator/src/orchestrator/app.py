"""Start-up and shutdown: validate, check Docker and the proxy, adopt, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import docker.errors as docker_errors
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback

from orchestrator import __version__, listeners
from orchestrator.config import PROG, Config, check_main, is_check, parse, read_token_file
from orchestrator.docker_backend import DockerBackend, DockerError
from orchestrator.events import log_event, setup_logging
from orchestrator.metrics import Metrics
from orchestrator.model import LABEL_POOL
from orchestrator.options import ConfigError, help_text
from orchestrator.pool import Pool
from orchestrator.proxy import ProxyClient, ProxyError
from orchestrator.web import make_admin_app, make_public_app, waiting_line


class StartupError(Exception):
    """Something the orchestrator needs is missing; nothing was started."""


# How long a stop waits for the requests in flight (a hand-out, a page) before it lets them go.
DRAIN_SECONDS = 10


async def serve(config: Config) -> None:
    AsyncHTTPClient.configure(None, max_clients=256)
    docker = DockerBackend(
        max_workers=config.max_dock_workers,
        version="auto" if config.negotiate_docker_version else config.docker_version,
        container_port=config.container_port,
        container_ip=config.container_ip,
        network=config.docker_network,
        host_network=config.host_network,
        timeout=config.docker_timeout,
    )
    try:
        await _serve(config, docker)
    finally:
        docker.close()


async def _serve(config: Config, docker: DockerBackend) -> None:
    pool_name = config.effective_pool_name
    token_file = config.proxy_token_file
    proxy = ProxyClient(
        config.proxy_endpoint,
        config.proxy_token,
        pool_name,
        token_source=(lambda: read_token_file(token_file)) if token_file else None,
    )
    # Everything that can refuse to start goes before the one thing a check makes (Docker's check
    # makes a missing network, last): a start that fails creates nothing.
    inherited = listeners.take_inherited()
    try:
        sockets = listeners.listen(
            {"port": (config.port, config.ip), "admin_port": (config.admin_port, config.admin_ip)},
            inherited,
        )
    except listeners.ListenError as error:
        raise StartupError(str(error)) from None
    try:
        await proxy.check()
        api_version, notebook_user = await docker.check(
            config.image,
            config.container_user,
            numeric_user=bool(config.disk_limit_bytes),
        )
    except (DockerError, ProxyError) as error:
        listeners.close_all([sock for socks in sockets.values() for sock in socks])
        raise StartupError(str(error)) from None
    if config.negotiate_docker_version and config.docker_version != "auto":
        log_event(
            "docker-version",
            requested=config.docker_version,
            using=api_version,
            why="docker-py speaks API 1.24 and later, so the version was negotiated",
        )

    metrics = Metrics()
    metrics.info.info({"version": __version__, "pool": pool_name, "image": config.image})
    pool = Pool(config, docker, proxy, metrics, notebook_user=notebook_user)
    if config.static_files:
        await _extract_static_files(config, docker, config.static_files)
    await pool.start()
    line = waiting_line(config)
    public_app = make_public_app(config, pool, metrics, line)
    admin_app = make_admin_app(config, pool, metrics, line)
    metrics.waiting.set_function(lambda: len(line))
    # The client address comes from X-Forwarded-For as trusted_proxy_hops says, not from
    # tornado's xheaders, which would believe the last entry whatever the number of proxies.
    servers = [HTTPServer(public_app), HTTPServer(admin_app)]
    servers[0].add_sockets(sockets["port"])
    servers[1].add_sockets(sockets["admin_port"])
    # The admin page's per-minute history: sampled often enough that no minute is skipped.
    sampler = PeriodicCallback(lambda: admin_app.settings["timeline"].sample(pool.clock()), 10_000)
    sampler.start()
    if not config.admin_token:
        log_event(
            "warning",
            logging.WARNING,
            what=f"ADMIN_AUTH_TOKEN unset: the admin port {config.admin_ip}:{config.admin_port}"
            " (page and API) answers loopback clients only",
        )
    log_event(
        "started",
        pool=pool_name,
        version=__version__,
        docker_api=api_version,
        image=config.image,
        pool_size=config.pool_size,
        listen=f"{config.ip}:{config.port}",
        admin=f"{config.admin_ip}:{config.admin_port}",
        sockets="from systemd" if inherited else "bound here",
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    # Asked now, while the system bus is surely up: is the machine shutting down, or only us?
    machine_stopping = pool.saved is not None and await system_stopping()

    log_event(
        "stopping",
        pool=pool_name,
        containers_left=len(pool.slots),
        machine_stopping=machine_stopping,
    )
    sampler.stop()
    for server in servers:
        server.stop()  # accept no more; under systemd, new connections wait for the next start
    await _finish_requests(servers)
    await pool.stop()  # containers stay for the next start to adopt
    if machine_stopping:
        await pool.keep_all()  # they will not survive the shutdown: keep the visitors' work


async def system_stopping() -> bool:
    """True when the whole machine is shutting down (systemd says `stopping`), not when only
    this service restarts (an upgrade: its notebooks live on, and are adopted)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "systemctl", "is-system-running",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 5)
    except (OSError, TimeoutError):
        return False
    return output.strip() == b"stopping"


async def _finish_requests(servers: list[HTTPServer]) -> None:
    """Let the requests in flight end (a visitor mid-hand-out gets their notebook), for a while."""
    try:
        await asyncio.wait_for(
            asyncio.gather(*(server.close_all_connections() for server in servers)),
            DRAIN_SECONDS,
        )
    except TimeoutError:
        log_event("warning", logging.WARNING, what=f"requests still open after {DRAIN_SECONDS}s")


async def _extract_static_files(config: Config, docker: DockerBackend, source: str) -> None:
    try:
        await docker.extract(
            config.image,
            source,
            config.static_dump_path,
            {LABEL_POOL: config.effective_pool_name},
        )
    except (DockerError, OSError, docker_errors.DockerException) as error:
        raise StartupError(
            f"--static_files: cannot extract {config.static_files}: {error}"
        ) from None
    log_event("static-files", source=config.static_files, destination=config.static_dump_path)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        print(help_text(PROG))
        return 0
    if is_check(args):  # what the tmpnb role runs before it writes the file
        return check_main(args)
    try:
        config = parse(args)
    except ConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    setup_logging()
    try:
        asyncio.run(serve(config))
    except StartupError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    return 0
