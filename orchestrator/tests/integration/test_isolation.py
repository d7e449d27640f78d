"""Hardened containers, isolation between visitors and between pools, host-network mode."""

import json
import subprocess
from urllib.parse import urlsplit

import requests
from conftest import notebook_status, pool_containers, visit


def _connect_from(container, host: str, port: int) -> bool:
    """Whether `container` can open a TCP connection to host:port (2 s timeout)."""
    code = (
        "import socket,sys\n"
        f"s=socket.socket();s.settimeout(2)\n"
        f"sys.exit(0 if s.connect_ex(({host!r},{port}))==0 else 1)\n"
    )
    result = container.exec_run(["python3", "-c", code])
    return result.exit_code == 0


def test_containers_are_hardened_and_cannot_reach_each_other(make_stack, docker_client):
    stack = make_stack(pool_size=2, cpu_quota=50000, pids_limit=128)
    first, second = pool_containers(docker_client, stack.pool_name)
    for container in (first, second):
        host = container.attrs["HostConfig"]
        config = container.attrs["Config"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Memory"] == 384 * 1024 * 1024
        assert host["CpuQuota"] == 50000 and host["PidsLimit"] == 128
        assert not host["Privileged"] and not host["Binds"] and not host["PortBindings"]
        assert not container.attrs["NetworkSettings"]["Ports"].get("8888/tcp")
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [
            stack.options["docker_network"]
        ]
        assert config["User"] in ("", "jovyan", "1000:1000")  # the image's non-root user
        assert container.exec_run(["id", "-u"]).output.strip() == b"1000"
        # disk_limit (default 256m): a read-only root, the home and /tmp in memory, limited.
        assert host["ReadonlyRootfs"] is True
        assert set(host["Tmpfs"]) == {"/tmp", "/home/jovyan"}  # noqa: S108 (the container's)
        assert all("size=256m" in options for options in host["Tmpfs"].values())
        labels = config["Labels"]
        assert {"tmpnb.pool", "tmpnb.path", "tmpnb.created", "tmpnb.state"} <= set(labels)
        assert not any(
            mount["Source"].endswith("docker.sock") for mount in container.attrs["Mounts"]
        )

    second_ip = second.attrs["NetworkSettings"]["Networks"][stack.options["docker_network"]][
        "IPAddress"
    ]
    assert not _connect_from(first, second_ip, 8888), "a visitor reached another visitor's notebook"
    gateway = first.attrs["NetworkSettings"]["Networks"][stack.options["docker_network"]]["Gateway"]
    for port in (stack.proxy.api_port, stack.admin_port, stack.port):
        assert not _connect_from(first, gateway, port), f"a visitor reached host port {port}"


def test_two_pools_on_one_host_never_touch_each_other(make_stack, docker_client):
    one = make_stack(pool_size=1)
    two = make_stack(pool_size=1)
    one_url, one_token = visit(one)
    (two_container,) = pool_containers(docker_client, two.pool_name)

    one.admin("DELETE", "/api/pool")  # drains pool one only
    one.stop()
    one.start(wait_ready=False)  # adoption and reconcile see only pool one
    one.wait_available(0)
    assert two_container.id in {c.id for c in pool_containers(docker_client, two.pool_name)}
    assert two.stats()["available"] == 1
    assert notebook_status(one_url, one_token) == 200
    assert "adopted" not in two.log_text() and two_container.id[:12] not in one.log_text()


def test_host_network_mode_gives_each_container_its_own_free_port(make_stack, docker_client):
    stack = make_stack(pool_size=2, docker_network="", host_network="true", container_port=18888)
    ports = set()
    for container in pool_containers(docker_client, stack.pool_name):
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        ports.add(container.labels["tmpnb.port"])
    assert len(ports) == 2
    base_url, token = visit(stack)
    assert notebook_status(base_url, token) == 200
    assert urlsplit(base_url).path.startswith("/user/")
    # The notebook listens on container_ip (loopback) only, not on every address.
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=False).stdout
    for port in ports:
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    assert requests.get(f"http://127.0.0.1:{stack.port}/api/stats", timeout=5).ok


# Runs inside a notebook as its user: every process's command line, NUL-separated arguments.
_CMDLINES = r"""
import json, os
lines = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            lines[pid] = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
print(json.dumps(lines))
"""


def _sh(container, script: str) -> tuple[int, str]:
    """Run `script` in the container as the notebook's user (the container's user)."""
    result = container.exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode(errors="replace")


def test_inside_a_notebook_the_token_is_hidden_the_disk_limited_and_the_home_seeded(
    make_stack, docker_client
):
    stack = make_stack(pool_size=2, disk_limit="64m")
    base_url, token = visit(stack)
    path_id = base_url.rsplit("/", 1)[1]
    (mine,) = [c for c in pool_containers(docker_client, stack.pool_name)
               if c.labels["tmpnb.path"] == path_id]  # fmt: skip
    (other,) = [c for c in pool_containers(docker_client, stack.pool_name) if c.id != mine.id]
    other_url = f"{stack.proxy.url}/user/{other.labels['tmpnb.path']}"
    other_token = next(
        item.split("=", 1)[1] for item in other.attrs["Config"]["Env"]
        if item.startswith("JUPYTER_TOKEN=")
    )  # fmt: skip
    assert _sh(mine, "id -u") == (0, "1000\n")

    # The token is in no process's command line, inside the container or on the host.
    result = mine.exec_run(["python3", "-c", _CMDLINES])
    assert result.exit_code == 0, result.output[-500:]
    cmdlines = json.loads(result.output)
    assert any("jupyter" in line for line in cmdlines.values()), cmdlines  # the server was seen
    assert not [line for line in cmdlines.values() if token in line]
    host_view = " ".join(" ".join(process) for process in mine.top()["Processes"])
    assert "jupyter" in host_view and token not in host_view
    assert token not in " ".join(mine.attrs["Args"] + [mine.attrs["Path"]])

    # The home is an in-memory file system of disk_limit, seeded with the image's material.
    code, mounts = _sh(mine, "cat /proc/mounts")
    home_mount = next(line.split() for line in mounts.splitlines() if " /home/jovyan " in line)
    assert home_mount[2] == "tmpfs" and "size=65536k" in home_mount[3], home_mount
    assert _sh(mine, "diff -r /opt/workshop-home/workshop $HOME/workshop")[0] == 0
    code, listing = _sh(mine, "ls -A $HOME")
    assert {"workshop", ".bashrc", ".profile"} <= set(listing.split())
    material = requests.get(
        f"{base_url}/api/contents/workshop", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert material.status_code == 200
    assert "python.ipynb" in {item["name"] for item in material.json()["content"]}

    # Writing past disk_limit fails with "No space left", and the neighbour carries on.
    code, output = _sh(mine, "dd if=/dev/zero of=$HOME/filler bs=1M count=100 2>&1")
    assert code != 0 and "No space left" in output, output
    assert notebook_status(other_url, other_token) == 200
    assert notebook_status(base_url, token) == 200
    assert _sh(mine, "rm $HOME/filler")[0] == 0

    # The rest of the file system is read-only, even where the notebook's user owns a file.
    for path in ("/usr/x", "/opt/workshop-home/x", "/x"):
        code, output = _sh(mine, f"touch {path} 2>&1")
        assert code != 0 and "Read-only file system" in output, (path, output)
