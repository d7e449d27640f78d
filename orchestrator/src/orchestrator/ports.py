"""A notebook's port. On the docker network every container listens on `container_port` at its
own address; on the host network each needs a port of its own on `container_ip`: the first from
`container_port` up that no container of this pool holds (by label, and by the slots' targets)
and that can be bound now.

May touch: DockerBackend.list_pool (read), the slot table (read), a test bind of a socket; one
reservation at a time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping

from orchestrator.config import Config
from orchestrator.docker_backend import DockerBackend, DockerError
from orchestrator.model import Slot


class HostPorts:
    def __init__(self, config: Config, docker: DockerBackend, pool_name: str) -> None:
        self.config = config
        self.docker = docker
        self.pool_name = pool_name
        self._lock = asyncio.Lock()

    async def reserve(self, slot: Slot, slots: Mapping[str, Slot]) -> int:
        """container_port, or on the host network the first port that is free on container_ip
        (then written into `slot.target`).

        Free means: no container of this pool holds it (by label) and it can be bound now.
        """
        if not self.config.host_network:
            return self.config.container_port
        async with self._lock:
            used = {s.target.rsplit(":", 1)[1] for s in slots.values() if s.target}
            for record in await self.docker.list_pool(self.pool_name):
                if record.target:
                    used.add(record.target.rsplit(":", 1)[1])
            for port in range(self.config.container_port, 65536):
                if str(port) not in used and _can_bind(self.config.container_ip, port):
                    slot.target = f"http://{self.config.container_ip}:{port}"
                    return port
        raise DockerError(f"no free port on {self.config.container_ip}")


def _can_bind(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True
