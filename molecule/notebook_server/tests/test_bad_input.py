"""A wrong value stops a role before it changes anything, with a message that names the variable."""

import re

import pytest
from playbook import run_role

CASES = [
    ("tmpnb", {"tmpnb_pool_size": "ten"}, "tmpnb_pool_size"),
    ("tmpnb", {"tmpnb_mem_limit": "lots"}, "tmpnb_mem_limit"),
    ("tmpnb", {"tmpnb_port": 70000}, "tmpnb_port"),
    ("tmpnb", {"tmpnb_image": "molecule-nbsrv-missing:none"}, "tmpnb_image"),
    ("tmpnb", {"tmpnb_pool_size": 500, "tmpnb_mem_limit": "1g"}, "tmpnb_pool_size x tmpnb_mem_"),
    ("tmpnb", {"tmpnb_cull_period": 7200}, "tmpnb_cull_period (7200) must not be longer"),
    ("tmpnb", {"tmpnb_cull_max": 600}, "tmpnb_cull_max (600) must be 0 or at least"),
    ("tmpnb", {"tmpnb_mem_limit": "64m"}, "tmpnb_mem_limit: got '64m', expected a size"),
    ("tmpnb", {"tmpnb_disk_limit": "1g"}, "tmpnb_disk_limit (1g) must be smaller than"),
    # The orchestrator's own rules, run on the controller, with the message naming the variable.
    ("tmpnb", {"tmpnb_admin_port": 8000}, "tmpnb_admin_port (8000) must differ from the port of"),
    ("tmpnb", {"tmpnb_api_auth_token": "short"}, "tmpnb_api_auth_token: must be empty or at least"),
    (
        "tmpnb",
        {"tmpnb_host_network": True, "tmpnb_docker_network": "", "tmpnb_command": "nb {base_path}"},
        "tmpnb_command must bind to {ip} with tmpnb_host_network",
    ),
    ("proxy", {"proxy_public_port": 70000}, "proxy_public_port"),
    ("proxy", {"proxy_api_port": 8000}, "proxy_api_port"),
    ("proxy", {"proxy_error_retry_seconds": 0}, "proxy_error_retry_seconds"),
    ("docker_engine", {"docker_engine_network_bridge": "far-too-long-name"}, "_network_bridge"),
    (
        "docker_engine",
        {"docker_engine_blocked_addresses": ["10.0.0.0/8", "10.0.0.0/33"]},
        "docker_engine_blocked_addresses must hold IPv4",
    ),
    (
        "docker_engine",
        {"docker_engine_allowed_addresses": ["mirror.example"]},
        "docker_engine_allowed_addresses must hold IPv4",
    ),
]


@pytest.mark.parametrize(("role", "extra_vars", "named"), CASES, ids=[c[2] for c in CASES])
def test_bad_value_fails_before_any_change(role, extra_vars, named):
    returncode, output = run_role("bad-input.yml", role, extra_vars)
    assert returncode != 0, output[-2000:]
    assert named in output, output[-2000:]
    recap = re.search(r"changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert recap, output[-2000:]
    assert recap.groups() == ("0", "1"), output[-2000:]
