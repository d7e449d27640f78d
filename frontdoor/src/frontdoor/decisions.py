"""The sidecar's decisions, pure: each node's agent-check answer, the site's stats, a node's stats.

Nothing here does I/O; `app.py` polls the nodes and answers HAProxy around these functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from frontdoor import __version__
from frontdoor.config import Node


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
