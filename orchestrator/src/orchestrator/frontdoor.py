"""`tmpnb-frontdoor`: the front door's sidecar. It tells HAProxy how full each node is.

Every `poll_period` seconds it asks each notebook server (node) for its `/api/stats`. It answers
HAProxy's agent-checks (HAProxy connects, sends the node's name and a newline, reads one line) with
`ready <weight>%` (weight proportional to the node's free notebooks, 100% for the node with the
most) or `drain` (the node is full, unreachable or drained by the operator): a drained server gets
no new visitors but keeps serving the visitors it already has. Whether a node is *down* is left to
HAProxy's own health check. It also serves the whole site's `GET /api/stats`: the sums, and each
node's figures.

The decisions are plain functions (`agent_reply`, `aggregate`); the loop, the agent's TCP server
and the HTTP handler around them are thin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

from orchestrator import __version__
from orchestrator.events import log_event, setup_logging

PROG = "tmpnb-frontdoor"
STATES = ("active", "drain")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


class ConfigError(Exception):
    """A configuration problem, worded as the one line an operator needs to read."""


@dataclass(frozen=True)
class Node:
    name: str  # the HAProxy server's name, sent by its agent-check
    url: str  # http://address:port of the node's public proxy
    state: str = "active"  # active, or drain: the operator is emptying it


@dataclass(frozen=True)
class FrontDoorConfig:
    nodes: tuple[Node, ...]
    poll_period: float = 1.0
    poll_timeout: float = 2.0
    ip: str = "127.0.0.1"
    port: int = 9100
    agent_port: int = 9101


@dataclass
class NodeStats:
    """What a node's last poll said; `reachable` is False when it failed or never answered."""

    reachable: bool = False
    available: int = 0
    capacity: int = 0
    version: str | None = None
    container_image: str | None = None
    checked: float = 0.0  # time.monotonic() of the last poll
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_config(text: str) -> FrontDoorConfig:
    """Read the TOML configuration; a bad value raises ConfigError naming it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"the configuration is not valid TOML: {error}") from None
    known = {"nodes", "poll_period", "poll_timeout", "ip", "port", "agent_port"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError("nodes: needs at least one [[nodes]] table with name and url")
    nodes = []
    for index, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict):
            raise ConfigError(f"nodes[{index}]: must be a table with name, url and state")
        name, url, state = raw.get("name"), raw.get("url"), raw.get("state", "active")
        if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
            raise ConfigError(f"nodes[{index}].name: letters, digits and ._:- (got {name!r})")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"nodes[{index}].url: an http(s)://host:port URL (got {url!r})")
        if state not in STATES:
            raise ConfigError(f"nodes[{index}].state: one of {', '.join(STATES)} (got {state!r})")
        nodes.append(Node(name=name, url=url.rstrip("/"), state=state))
    if len({node.name for node in nodes}) != len(nodes):
        raise ConfigError("nodes: every name must be unique")
    config = FrontDoorConfig(nodes=tuple(nodes))
    values: dict[str, Any] = {}
    for key, kind, minimum in (
        ("poll_period", float, 0.2),
        ("poll_timeout", float, 0.2),
        ("port", int, 1),
        ("agent_port", int, 1),
    ):
        value = data.get(key, getattr(config, key))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: a number (got {value!r})")
        if value < minimum or (kind is int and (value != int(value) or value > 65535)):
            accepts = "a TCP port between 1 and 65535" if kind is int else f"a number >= {minimum}"
            raise ConfigError(f"{key}: {accepts} (got {value!r})")
        values[key] = kind(value)
    if values["port"] == values["agent_port"]:
        raise ConfigError("port and agent_port must differ")
    ip = data.get("ip", config.ip)
    if not isinstance(ip, str) or not ip:
        raise ConfigError(f"ip: an address to listen on (got {ip!r})")
    return FrontDoorConfig(nodes=tuple(nodes), ip=ip, **values)


def accepts_visitors(node: Node, stats: NodeStats) -> bool:
    return node.state == "active" and stats.reachable and stats.available > 0


def agent_reply(node: Node, stats: NodeStats, most_free: int) -> str:
    """The agent-check answer for one node: its weight among the nodes, or drain.

    `most_free` is the largest number of free notebooks of any node that accepts visitors: that
    node gets 100% of its configured weight, the others their share of it (at least 1%), so new
    visitors are spread in proportion to free notebooks. Persistent visitors are not affected.
    """
    if not accepts_visitors(node, stats) or most_free <= 0:
        return "drain\n"
    percent = max(1, round(100 * stats.available / most_free))
    return f"ready {percent}%\n"


def most_free(nodes: Sequence[Node], stats: dict[str, NodeStats]) -> int:
    free = [
        stats[node.name].available for node in nodes if accepts_visitors(node, stats[node.name])
    ]
    return max(free, default=0)


def aggregate(nodes: Sequence[Node], stats: dict[str, NodeStats]) -> dict[str, Any]:
    """The site's /api/stats: tmpnb's keys, summed, and each node's own figures.

    `available` counts the free notebooks new visitors can get (active, reachable nodes);
    `capacity` the notebooks of every reachable node, drained ones included.
    """
    per_node = {}
    for node in nodes:
        node_stats = stats[node.name]
        state = node.state if node_stats.reachable else "unreachable"
        per_node[node.name] = {
            "available": node_stats.available if node_stats.reachable else 0,
            "capacity": node_stats.capacity if node_stats.reachable else 0,
            "state": state,
            "accepts_visitors": accepts_visitors(node, node_stats),
        }
    images = {stats[n.name].container_image for n in nodes if stats[n.name].reachable}
    return {
        "available": sum(
            stats[n.name].available
            for n in nodes
            if n.state == "active" and stats[n.name].reachable
        ),
        "capacity": sum(stats[n.name].capacity for n in nodes if stats[n.name].reachable),
        "version": __version__,
        "container_image": images.pop() if len(images) == 1 else None,
        "nodes": per_node,
    }


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is not a count: {value!r}")
    return value


def parse_stats(body: bytes) -> NodeStats:
    """A node's /api/stats body; ValueError when it is not what a tmpnb node answers."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return NodeStats(
        reachable=True,
        available=_count(data, "available"),
        capacity=_count(data, "capacity"),
        version=data.get("version"),
        container_image=data.get("container_image"),
    )


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


async def serve(config: FrontDoorConfig) -> None:
    poller = Poller(config)
    http_sockets = bind_sockets(config.port, config.ip)
    agent_sockets = bind_sockets(config.agent_port, config.ip)
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


HELP = f"""usage: {PROG} --config=FILE

The front door's sidecar: polls every node's /api/stats, answers HAProxy's agent-checks with a
weight proportional to each node's free notebooks (or drain), and serves the site's /api/stats.
The TOML file lists [[nodes]] (name, url, state = active|drain) and may set poll_period (1.0),
poll_timeout (2.0), ip (127.0.0.1), port (9100) and agent_port (9101)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        print(HELP)
        return 0
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
    setup_logging()
    try:
        asyncio.run(serve(config))
    except OSError as error:
        print(f"{PROG}: cannot listen: {error.strerror}", file=sys.stderr)
        return 1
    return 0
