"""Where the machine's CPU and memory went during a benchmark's step, by part.

    before = CpuSnapshot.take(pids={"proxy": proxy_pid}, containers=ids)
    ... the step ...
    after = CpuSnapshot.take(pids={"proxy": proxy_pid}, containers=ids)
    after.minus(before)   # {"proxy": 0.21, "notebooks": 12.3, "engine": 4.1, "machine": 40.2, ...}

Reads /proc and the containers' cgroups only (v1 with Docker's cgroupfs driver, as on the build
machine; v2 with either driver). CPU-seconds are user + system time:
- a named process (`pids`): its own and its waited-for children's, so a process started inside
  the step counts whole;
- `engine`: every dockerd, containerd, containerd-shim, runc and fuse-overlayfs process (a
  container's start runs several of them);
- `notebooks`: the containers' cgroups (everything inside them: the server, its kernel);
- `machine`: every core's busy time, from /proc/stat; what no part explains is in it too (the
  kernel's own work, other people's processes on a shared machine).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
ENGINE = ("dockerd", "containerd", "containerd-shim", "runc", "fuse-overlayfs")
CGROUP = Path("/sys/fs/cgroup")


def process_seconds(pid: int) -> float:
    """User + system CPU of `pid` and of its children it has waited for; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / TICK


def named_processes(prefixes: tuple[str, ...]) -> dict[int, float]:
    """CPU of every process whose name starts with one of `prefixes` (and of its waited-for
    children), by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith(prefixes):
            found[int(entry.name)] = process_seconds(int(entry.name))
    return found


def machine_seconds() -> float:
    """Busy time of every core (all but idle and iowait)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def _cgroup_file(container_id: str, v1_controller: str, v1_name: str, v2_name: str) -> Path:
    for path in (
        CGROUP / v1_controller / "docker" / container_id / v1_name,
        CGROUP / "system.slice" / f"docker-{container_id}.scope" / v2_name,
        CGROUP / "docker" / container_id / v2_name,
    ):
        if path.exists():
            return path
    raise FileNotFoundError(f"no cgroup found for container {container_id[:12]}")


def container_seconds(container_id: str) -> float:
    path = _cgroup_file(container_id, "cpuacct", "cpuacct.usage", "cpu.stat")
    text = path.read_text()
    if path.name == "cpuacct.usage":
        return int(text) / 1e9
    usage = dict(line.split() for line in text.splitlines())
    return int(usage["usage_usec"]) / 1e6


@dataclass(frozen=True)
class ContainerMemory:
    """What the memory cgroup of one container holds: `usage` is what its mem_limit counts (with
    the page cache it touched first); `anonymous` what only it can hold (RSS and tmpfs)."""

    usage: int
    anonymous: int


def container_memory(container_id: str) -> ContainerMemory:
    usage_path = _cgroup_file(container_id, "memory", "memory.usage_in_bytes", "memory.current")
    stat_path = usage_path.with_name("memory.stat")
    stat = dict(line.split() for line in stat_path.read_text().splitlines())
    if usage_path.name == "memory.usage_in_bytes":  # v1
        anonymous = int(stat["total_rss"]) + int(stat["total_shmem"])
    else:
        anonymous = int(stat["anon"]) + int(stat["shmem"])
    return ContainerMemory(usage=int(usage_path.read_text()), anonymous=anonymous)


@dataclass(frozen=True)
class CpuSnapshot:
    parts: dict[str, float] = field(default_factory=dict)
    # The parts made of named processes, by pid: a process that ends during the step (a removed
    # container's shim) takes its CPU with it, which a plain sum would count as negative.
    processes: dict[str, dict[int, float]] = field(default_factory=dict)

    @classmethod
    def take(
        cls,
        pids: dict[str, int] | None = None,
        containers: list[str] | None = None,
        named: dict[str, tuple[str, ...]] | None = None,
    ) -> CpuSnapshot:
        """`pids`: parts that are one process; `named`: parts that are every process whose name
        starts with one of the prefixes (e.g. {"browsers": ("chrom",)})."""
        parts = {name: process_seconds(pid) for name, pid in (pids or {}).items()}
        processes = {name: named_processes(prefixes) for name, prefixes in (named or {}).items()}
        processes["engine"] = named_processes(ENGINE)
        parts |= {name: sum(found.values()) for name, found in processes.items()}
        own = os.times()
        parts["benchmark"] = own.user + own.system
        notebooks = 0.0
        for container_id in containers or []:
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile: counts nothing
                notebooks += container_seconds(container_id)
        parts["notebooks"] = notebooks
        parts["machine"] = machine_seconds()
        return cls(parts, processes)

    def minus(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU-seconds of each part between `before` and this one. A named part counts what its
        processes alive now spent since then (the whole of those started since): one that ended
        in between is not counted, so the figure is a floor, never below zero."""
        spent = {name: value - before.parts.get(name, 0.0) for name, value in self.parts.items()}
        for name, now in self.processes.items():
            then = before.processes.get(name, {})
            spent[name] = sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())
        return spent


def memtotal_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")
