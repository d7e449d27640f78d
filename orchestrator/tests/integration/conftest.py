"""Real parts: the Docker engine, Debian's configurable-http-proxy, the notebook image, and the
orchestrator as a subprocess (so that kill -9 is real).

Everything a test creates carries the session's random id: pools are named `it<id>...`, the
network `tmpnb-it<id>`. Teardown removes containers by their `tmpnb.pool` label and the network by
name, also when a test fails; nothing else on the host is touched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
from fault_relay import FaultRelay
from live_fixtures import docker_client, make_stack, network, session_id  # noqa: F401

# The service's starting code lives in tests/live_stack.py (on pythonpath, see pyproject.toml),
# shared with the browser tests; the names are re-exported here for the test modules.
from live_stack import (  # noqa: F401
    CHP,
    IMAGE,
    Proxy,
    Stack,
    free_port,
    isolated_network,
    notebook_status,
    open_docker_client,
    pool_containers,
    remove_pool_containers,
    visit,
)
from nbtest import NotebookServer, wait_for


@pytest.fixture(scope="session")
def pool_prefix() -> str:
    """Pools `it<session id>...`, network `tmpnb-it<session id>` (see live_fixtures.py)."""
    return "it"


def start_kernel_busy(base_url: str, token: str, seconds: int) -> str:
    """Start a kernel computing silently for `seconds`; return once the server reports it busy."""
    server = NotebookServer(base_url, token)
    kernel_id = server.start_kernel()
    with server.channels(kernel_id) as kernel:
        kernel.send_execute(f"import time; time.sleep({seconds})")

    def busy() -> bool:
        return server.api("GET", f"kernels/{kernel_id}")["execution_state"] == "busy"

    wait_for(busy, 120, "the kernel to be busy")
    return kernel_id


# ----- faults injected between the orchestrator and the real parts (fault_relay.py) -----


def docker_upstream() -> str:
    """Where this machine's Docker engine listens, as the relay's upstream."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host.replace("tcp://", "http://", 1)


@pytest.fixture
def fault_relay() -> Iterator[Callable[[str], FaultRelay]]:
    """Factory: `fault_relay(upstream)` starts a relay to `upstream`; all are stopped after."""
    relays: list[FaultRelay] = []

    def make(upstream: str) -> FaultRelay:
        relays.append(FaultRelay(upstream).start())
        return relays[-1]

    yield make
    for relay in relays:
        relay.stop()


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def log_events(text: str, event: str, **match: str) -> list[dict[str, str]]:
    """The `event=<event> key=value ...` lines of an orchestrator log whose fields match."""
    found = []
    for line in text.splitlines():
        if f"event={event} " not in line + " ":
            continue
        fields = {key: value.strip('"') for key, value in _FIELD.findall(line)}
        if fields.get("event") == event and all(fields.get(k) == v for k, v in match.items()):
            found.append(fields)
    return found


def pool_routes(stack: Stack) -> dict[str, dict]:
    """This pool's routes in the proxy, by path id: their data (target, tmpnb_state, ...)."""
    return {
        path.rsplit("/", 1)[1]: data
        for path, data in stack.proxy.routes().items()
        if path.startswith("/user/") and data.get("tmpnb_pool") == stack.pool_name
    }


def no_crash_in_log(stack: Stack) -> None:
    """No traceback and no task whose exception nobody looked at."""
    log = stack.log_text()
    for sign in ("Traceback", "Task exception was never retrieved"):
        assert sign not in log, log[max(0, log.index(sign) - 2000) :][:6000]
