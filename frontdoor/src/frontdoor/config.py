"""The sidecar's configuration: the TOML file the front_door role writes, read and checked once.

A bad value raises ConfigError, worded as the one line an operator needs (the option and what it
accepts); `tmpnb-frontdoor --check-config` runs exactly this, so the role refuses a file the sidecar
would refuse at start.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

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
