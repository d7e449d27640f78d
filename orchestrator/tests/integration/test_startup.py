"""Start-up refuses bad input with one line and a non-zero exit, having created nothing."""

import os
import subprocess
import sys

import pytest
from conftest import IMAGE, Proxy, free_port, pool_containers, remove_pool_containers

BAD_OPTIONS = [
    "--pool_size=0", "--pool-size=many", "--port=70000", "--admin_port=0", "--container_port=-1",
    "--cull_timeout=0", "--cull_period=soon", "--cull_max=-1", "--mem_limit=lots",
    "--cpu_shares=1", "--cpu_quota=10", "--max_dock_workers=0", "--docker_version=new",
    "--pool_name=bad name", "--redirect_uri=tree", "--command=jupyter notebook",
    "--command=start {base_path} {nope}", "--host_directories=relative:/x",
    "--extra_hosts=nocolon", "--use_tokens=maybe", "--user_length=4",
    "--proxy_endpoint=ftp://x", "--proxy_public_url=nonsense", "--ready_timeout=0",
    "--reconcile_period=0", "--pids_limit=1", "--container_user=a b", "--docker_network=-bad",
    "--static_files=rel", "--static_dump_path=rel", "--no_such_option=1", "--allow_credentials=2",
]  # fmt: skip


def run(args, env_overrides=None, timeout=60):
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": "x", **(env_overrides or {})}
    env = {key: value for key, value in env.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_lists_every_option_with_its_default():
    result = run(["--help"])
    assert result.returncode == 0
    assert "--pool_size" in result.stdout and "(default 10)" in result.stdout


@pytest.mark.parametrize("bad", BAD_OPTIONS)
def test_every_invalid_option_is_one_line_and_exit_2(bad):
    result = run([bad])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert bad.split("=")[0].replace("-", "_").lstrip("_") in lines[0].replace("-", "_")
    assert result.stdout == ""


def test_a_missing_proxy_token_is_one_line():
    result = run([], {"CONFIGPROXY_AUTH_TOKEN": None})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tmpnb-orchestrator: CONFIGPROXY_AUTH_TOKEN: not set (nor --proxy_token_file); the "
        "proxy's API token is required"
    ]


def test_an_unreadable_or_empty_token_file_is_one_line_naming_the_option(tmp_path):
    empty = tmp_path / "auth.env"
    empty.write_text("# nothing here\n")
    for path in (empty, tmp_path / "missing"):
        result = run([f"--proxy_token_file={path}"], {"CONFIGPROXY_AUTH_TOKEN": None})
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("tmpnb-orchestrator: --proxy_token_file: ")


@pytest.fixture
def proxy(tmp_path):
    started = Proxy(tmp_path, free_port())
    started.start()
    yield started
    started.stop()


def _common(proxy, pool_name, network):
    return [
        f"--image={IMAGE}",
        f"--pool_name={pool_name}",
        "--pool_size=1",
        f"--port={free_port()}",
        f"--admin_port={free_port()}",
        f"--proxy_endpoint={proxy.api_url}",
        f"--docker_network={network}",  # missing: a start that goes on would make it
    ]


@pytest.fixture
def open_network(docker_client, session_id):
    """A bridge network whose containers can reach each other (Docker's default)."""
    created = docker_client.networks.create(
        f"tmpnb-it{session_id}-open", driver="bridge", labels={"tmpnb.test": session_id}
    )
    yield created.name
    created.remove()


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ([], {"DOCKER_HOST": "tcp://127.0.0.1:1"}, "cannot reach Docker"),
        (["--image=tmpnb-it-missing:none"], {}, "--image: tmpnb-it-missing:none is not present"),
        (["--docker_network={open}"], {}, "--docker_network: network {open} lets its containers"),
        ([], {"CONFIGPROXY_AUTH_TOKEN": "wrong"}, "refused the token"),
        ([f"--proxy_endpoint=http://127.0.0.1:{free_port()}"], {}, "at http://127.0.0.1:"),
        # The in-memory home must belong to a uid: a user name cannot be given one.
        (["--container_user=jovyan"], {}, "--container_user: the notebook runs as 'jovyan'"),
    ],
    ids=[
        "docker-unreachable",
        "image-missing",
        "network-open",
        "proxy-token",
        "proxy-down",
        "named-user-with-disk-limit",
    ],
)
def test_missing_parts_stop_start_up_with_one_line(
    proxy, docker_client, session_id, open_network, extra, env, expected
):
    pool_name = f"it{session_id}start"
    missing_network = f"tmpnb-it{session_id}-missing"
    extra = [arg.format(open=open_network) for arg in extra]
    expected = expected.format(open=open_network)
    try:
        result = run(
            _common(proxy, pool_name, missing_network) + extra,
            {"CONFIGPROXY_AUTH_TOKEN": proxy.token, **env},
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert pool_containers(docker_client, pool_name) == []
        assert docker_client.networks.list(names=[missing_network]) == [], "a network was made"
        assert set(proxy.routes()) == {"/"}
    finally:  # a start that went wrong leaves nothing for the next case
        remove_pool_containers(docker_client, pool_name)
        for network in docker_client.networks.list(names=[missing_network]):
            network.remove()
