"""The container one notebook runs in, from the configuration: command, labels, limits, mounts."""

from __future__ import annotations

from orchestrator import __version__
from orchestrator.config import Config
from orchestrator.docker_backend import ContainerSpec
from orchestrator.model import (
    LABEL_CREATED,
    LABEL_PATH,
    LABEL_POOL,
    LABEL_PORT,
    LABEL_STATE,
    LABEL_VERSION,
    ROUTE_POOLED,
    TOKEN_ENV,
    Slot,
    user_path,
)
from orchestrator.timeutil import isoformat


def writable_mounts(config: Config, user: str | None) -> dict[str, str]:
    """In-memory file systems of `disk_limit` each for the home and /tmp (the root is then
    read-only, so one visitor cannot fill the host's disk); none when disk_limit is 0.

    The home belongs to the container's user, a `uid[:gid]` (app.py refuses to start with a
    name: Docker does not apply a mode to a mount point the image already has).
    """
    if not config.disk_limit_bytes:
        return {}
    size = f"size={config.disk_limit},nosuid,nodev,exec"
    uid, _, gid = (user or "").partition(":")
    home = f"{size},uid={uid},gid={gid if gid.isdigit() else uid},mode=0755"
    return {"/tmp": f"{size},mode=1777", config.home_dir: home}  # noqa: S108 (the container's)


# Docker's default weight. A notebook in the pool (booting, or warm and waiting) weighs an eighth of
# a visitor's: when a room arrives and the pool refills at the same moment, the visitors' kernels
# get the CPU first, and the boots take what is left (CPU shares only matter under contention).
DOCKER_CPU_SHARES = 1024
POOLED_SHARE_DIVISOR = 8


def visitor_cpu_shares(config: Config) -> int:
    """The weight of a notebook handed out: cpu_shares, or Docker's default."""
    return config.cpu_shares or DOCKER_CPU_SHARES


def pooled_cpu_shares(config: Config) -> int:
    """The weight of a notebook in the pool, raised to visitor_cpu_shares at its hand-out."""
    return max(2, visitor_cpu_shares(config) // POOLED_SHARE_DIVISOR)


def container_spec(
    config: Config, pool_name: str, slot: Slot, port: int, user: str | None
) -> ContainerSpec:
    """`user`: who the notebook runs as (container_user, else the image's user)."""
    ip = config.container_ip if config.host_network else "0.0.0.0"  # noqa: S104 (in its netns)
    labels = {
        LABEL_POOL: pool_name,
        LABEL_PATH: slot.path_id,
        LABEL_CREATED: isoformat(slot.created),
        LABEL_STATE: ROUTE_POOLED,  # labels are immutable: this is the state at creation
        LABEL_VERSION: __version__,
    }
    if config.host_network:
        labels[LABEL_PORT] = str(port)
    return ContainerSpec(
        name=f"tmpnb-{pool_name}-{slot.path_id}",
        image=config.image,
        command=config.command_template.render(
            base_path=user_path(slot.path_id) + "/", port=port, ip=ip, token=slot.token
        ),
        labels=labels,
        environment={TOKEN_ENV: slot.token} if slot.token else {},
        mem_limit=config.mem_limit,
        pids_limit=config.pids_limit,
        cpu_shares=pooled_cpu_shares(config),
        cpu_quota=config.cpu_quota,
        user=config.container_user,
        network=config.docker_network,
        host_network=config.host_network,
        volumes=config.binds,
        extra_hosts=config.extra_host_map,
        tmpfs=writable_mounts(config, user),
        read_only=bool(config.disk_limit_bytes),
    )
