"""The pytest fixtures that start the real service, shared by the integration and reliability
suites: a conftest imports them and defines `pool_prefix`, the start of every pool and network name
its tests create (so `make clean` can tell whose leftovers they are)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import docker
import pytest
from live_stack import Stack, isolated_network, open_docker_client, remove_pool_containers


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = open_docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_id() -> str:
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def network(docker_client, session_id, pool_prefix) -> Iterator[str]:
    with isolated_network(
        docker_client, f"tmpnb-{pool_prefix}{session_id}", {"tmpnb.test": session_id}
    ) as name:
        yield name


@pytest.fixture
def make_stack(
    tmp_path, network, session_id, pool_prefix, docker_client
) -> Iterator[Callable[..., Stack]]:
    """Factory: `make_stack(pool_size=2, ...)` starts a proxy and an orchestrator, ready."""
    stacks: list[Stack] = []

    def make(start: bool = True, **options) -> Stack:
        pool_name = f"{pool_prefix}{session_id}{len(stacks)}{secrets.token_hex(2)}"
        stack = Stack(tmp_path, pool_name, network, options)
        stacks.append(stack)
        stack.proxy.start()
        if start:
            stack.start()
        return stack

    yield make
    for stack in stacks:
        stack.stop()
        stack.release_ports()
        stack.proxy.stop()
        remove_pool_containers(docker_client, stack.pool_name)
        # Kept beside pytest's tmp dir: the logs of a failed run are worth reading.
