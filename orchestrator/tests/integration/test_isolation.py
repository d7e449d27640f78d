"""Hardened containers, isolation between visitors and between pools, host-network mode."""

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
        assert config["User"] in ("", "jovyan")  # the image's non-root user
        assert container.exec_run(["id", "-u"]).output.strip() == b"1000"
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
    stack = make_stack(pool_size=2, docker_network=None, host_network="true", container_port=18888)
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
