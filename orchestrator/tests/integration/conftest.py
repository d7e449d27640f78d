"""Real parts: the Docker engine, Debian's configurable-http-proxy, the notebook image, and the
orchestrator as a subprocess (so that kill -9 is real).

Everything a test creates carries the session's random id: pools are named `it<id>...`, the
network `tmpnb-it<id>`. Teardown removes containers by their `tmpnb.pool` label and the network by
name, also when a test fails; nothing else on the host is touched.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import docker
import pytest
import requests

# The service's starting code lives in tests/live_stack.py (on pythonpath, see pyproject.toml),
# shared with the browser tests; the names are re-exported here for the test modules.
from live_stack import (  # noqa: F401
    CHP,
    IMAGE,
    Proxy,
    Stack,
    free_port,
    isolated_network,
    open_docker_client,
    remove_pool_containers,
    wait_for,
)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = open_docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_id() -> str:
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def network(docker_client, session_id) -> Iterator[str]:
    with isolated_network(
        docker_client, f"tmpnb-it{session_id}", {"tmpnb.test": session_id}
    ) as name:
        yield name


@pytest.fixture
def make_stack(tmp_path, network, session_id, docker_client) -> Iterator[Callable[..., Stack]]:
    """Factory: `make_stack(pool_size=2, ...)` starts a proxy and an orchestrator, ready."""
    stacks: list[Stack] = []

    def make(start: bool = True, **options) -> Stack:
        pool_name = f"it{session_id}{len(stacks)}{secrets.token_hex(2)}"
        stack = Stack(tmp_path, pool_name, network, options)
        stacks.append(stack)
        stack.proxy.start()
        if start:
            stack.start()
        return stack

    yield make
    for stack in stacks:
        stack.stop()
        stack.proxy.stop()
        remove_pool_containers(docker_client, stack.pool_name)


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


def run_code(base_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel through the proxy, execute `code` over its websocket, return the result."""
    import websocket

    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{base_url}/api/kernels", headers=headers, json={}, timeout=60)
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]
    ws_url = base_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    connection = websocket.create_connection(
        ws_url, header=[f"Authorization: token {token}"], timeout=max(timeout, 180)
    )
    try:
        msg_id = secrets.token_hex(8)
        connection.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": secrets.token_hex(8), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(connection.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return message["content"]["data"]["text/plain"]
            if message["msg_type"] == "error":
                raise AssertionError(message["content"])
        raise AssertionError("no execute_result")
    finally:
        connection.close()


def start_kernel_busy(base_url: str, token: str, seconds: int) -> str:
    """Start a kernel computing silently for `seconds`; return once the server reports it busy."""
    import websocket

    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{base_url}/api/kernels", headers=headers, json={}, timeout=120)
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]
    ws_url = base_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    connection = websocket.create_connection(
        ws_url, header=[f"Authorization: token {token}"], timeout=180
    )
    connection.send(json.dumps({
        "header": {"msg_id": secrets.token_hex(8), "msg_type": "execute_request", "username": "t",
                   "session": secrets.token_hex(8), "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": f"import time; time.sleep({seconds})", "silent": False,
                    "store_history": False, "user_expressions": {}, "allow_stdin": False},
    }))  # fmt: skip
    connection.close()

    def busy() -> bool:
        state = requests.get(f"{base_url}/api/kernels/{kernel_id}", headers=headers, timeout=10)
        return state.json().get("execution_state") == "busy"

    wait_for(busy, 120, "the kernel to be busy")
    return kernel_id
