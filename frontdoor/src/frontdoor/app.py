"""`tmpnb-frontdoor`: the front door's sidecar. It tells HAProxy how full each node is.

Every `poll_period` seconds it asks each notebook server (node) for its `/api/stats`. It answers
HAProxy's agent-checks (HAProxy connects, sends the node's name and a newline, reads one line) with
`ready <weight>%` (weight proportional to the node's free notebooks, 100% for the node with the
most) or `drain` (the node is full, unreachable or drained by the operator): a drained server gets
no new visitors but keeps serving the visitors it already has. Whether a node is *down* is left to
HAProxy's own health check. It also serves the whole site's `GET /api/stats`: the sums, and each
node's figures.

This module is the I/O: the polling loop, the agent's TCP server, the HTTP handler and start-up.
What they decide is pure (`decisions.py`); the configuration is read and checked in `config.py`;
log lines are `events.py`'s. It touches nothing but the nodes' /api/stats and its two ports.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

from frontdoor import __version__
from frontdoor.config import ConfigError, FrontDoorConfig, Node, parse_config
from frontdoor.decisions import NodeStats, agent_reply, aggregate, most_free, parse_stats
from frontdoor.events import log_event, setup_logging

PROG = "tmpnb-frontdoor"


class Poller:
    """Keeps the latest stats of every node, one polling task per node (a slow node delays none)."""

    def __init__(self, config: FrontDoorConfig) -> None:
        self.config = config
        self.stats = {node.name: NodeStats() for node in config.nodes}
        self._http = AsyncHTTPClient()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._poll_loop(node)) for node in self.config.nodes]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def poll(self, node: Node) -> None:
        request = HTTPRequest(
            node.url + "/api/stats",
            connect_timeout=self.config.poll_timeout,
            request_timeout=self.config.poll_timeout,
            follow_redirects=False,
        )
        before = self.stats[node.name]
        try:
            response = await self._http.fetch(request, raise_error=True)
            stats = parse_stats(response.body)
        except Exception as error:  # any failure means: no new visitors there
            stats = NodeStats(error=f"{type(error).__name__}: {error}")
        stats.checked = time.monotonic()
        self.stats[node.name] = stats
        if stats.reachable != before.reachable or (stats.error and before.checked == 0):
            log_event(
                "node-reachable" if stats.reachable else "node-unreachable",
                logging.INFO if stats.reachable else logging.WARNING,
                node=node.name,
                error=stats.error,
            )

    async def _poll_loop(self, node: Node) -> None:
        while True:
            started = time.monotonic()
            await self.poll(node)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.config.poll_period - elapsed))

    def reply(self, name: str) -> str:
        nodes = {node.name: node for node in self.config.nodes}
        node = nodes.get(name)
        if node is None:
            return "drain\n"  # a server HAProxy knows and we do not: send it nobody new
        return agent_reply(node, self.stats[name], most_free(self.config.nodes, self.stats))


class AgentServer(TCPServer):
    """HAProxy's agent-check: read `<node name>\\n`, write one line, close."""

    def __init__(self, poller: Poller) -> None:
        super().__init__()
        self.poller = poller

    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        try:
            # The first bytes hold the name (agent-send); HAProxy then waits for the answer.
            line = await asyncio.wait_for(stream.read_bytes(256, partial=True), timeout=2)
            name = line.decode("ascii", "replace").strip()
            await stream.write(self.poller.reply(name).encode("ascii"))
        except (StreamClosedError, TimeoutError, ValueError):
            pass
        finally:
            stream.close()


class StatsHandler(web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def get(self) -> None:
        poller: Poller = self.settings["poller"]
        self.finish(aggregate(poller.config.nodes, poller.stats))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"status": "error", "message": self._reason})


class NotFoundHandler(StatsHandler):
    def prepare(self) -> None:
        raise web.HTTPError(404)


def make_app(poller: Poller) -> web.Application:
    return web.Application(
        [(r"/api/stats/?", StatsHandler)], default_handler_class=NotFoundHandler, poller=poller
    )


async def serve(
    config: FrontDoorConfig, http_sockets: list[socket.socket], agent_sockets: list[socket.socket]
) -> None:
    poller = Poller(config)
    http_server = HTTPServer(make_app(poller))
    http_server.add_sockets(http_sockets)
    agent = AgentServer(poller)
    agent.add_sockets(agent_sockets)
    poller.start()
    log_event(
        "started",
        version=__version__,
        nodes=",".join(f"{n.name}={n.url}({n.state})" for n in config.nodes),
        listen=f"{config.ip}:{config.port}",
        agent=f"{config.ip}:{config.agent_port}",
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    http_server.stop()
    agent.stop()
    await poller.stop()


HELP = f"""usage: {PROG} [--check-config] --config=FILE

The front door's sidecar: polls every node's /api/stats, answers HAProxy's agent-checks with a
weight proportional to each node's free notebooks (or drain), and serves the site's /api/stats.
The TOML file lists [[nodes]] (name, url, state = active|drain) and may set poll_period (1.0),
poll_timeout (2.0), ip (127.0.0.1), port (9100) and agent_port (9101). --check-config reads and
checks the file, and exits (0: fine; 2: one line naming what is wrong) without starting anything."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        print(HELP)
        return 0
    checking = "--check-config" in args
    args = [arg for arg in args if arg != "--check-config"]
    paths = [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    if len(paths) != 1 or len(args) != 1:
        print(f"{PROG}: give exactly one --config=FILE", file=sys.stderr)
        return 2
    try:
        with open(paths[0], "rb") as handle:
            config = parse_config(handle.read().decode("utf-8"))
    except OSError as error:
        print(f"{PROG}: --config: cannot read {paths[0]}: {error.strerror}", file=sys.stderr)
        return 2
    except (ConfigError, UnicodeDecodeError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    if checking:
        return 0
    # Bound before the loop starts: only a port taken or refused reads "cannot listen".
    try:
        http_sockets = bind_sockets(config.port, config.ip)
        agent_sockets = bind_sockets(config.agent_port, config.ip)
    except OSError as error:
        print(f"{PROG}: cannot listen: {error.strerror}", file=sys.stderr)
        return 1
    setup_logging()
    asyncio.run(serve(config, http_sockets, agent_sockets))
    return 0
