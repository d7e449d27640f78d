"""Every role variable with a type or choices, given a wrong value, is refused before any change.

Runs tests/role_wrong_values.yml once per role: it reads the role's own meta/argument_specs.yml and
feeds each variable a wrong value to validate_argument_spec, the check Ansible runs before a role's
first task. Free-form strings and paths are counted, not checked: any value is a valid string.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
ROLES = sorted(path.parent.parent.name for path in REPO.glob("roles/*/meta/argument_specs.yml"))
PLAYBOOK = REPO / "tests" / "role_wrong_values.yml"
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"


@pytest.mark.parametrize("role", ROLES)
def test_every_typed_variable_refuses_a_wrong_value(role):
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), str(PLAYBOOK), "-e", f"role_under_test={role}"],
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = re.search(
        r"wrong-values role=\S+ refused=(\d+) free_form=(\d+) total=(\d+)", result.stdout
    )
    assert summary, result.stdout[-2000:]
    refused, free_form, total = map(int, summary.groups())
    assert refused + free_form == total
    print(f"{role}: {refused} of {total} variables refused a wrong value; {free_form} free-form")


# The tmpnb role's values, each case a host of one inventory: its variables and what the role must
# answer, "accepted" or a part of its one message, which names the variable.
TMPNB_CASES = {
    "defaults": ({}, "accepted"),
    "workshop": (
        {
            "tmpnb_pool_size": 3,
            "tmpnb_mem_limit": "1g",
            "tmpnb_cull_period": 60,
            "tmpnb_cull_timeout": 900,
            "tmpnb_schedule": [
                {
                    "start": "2026-12-01T09:00:00+01:00",
                    "end": "2026-12-01T12:30:00+01:00",
                    "capacity": 50,
                },
            ],
            "tmpnb_links": ["Notes|https://example.org/notes"],
            "tmpnb_logo": "/etc/tmpnb/logo.svg",  # on the server, not here: checked there
            "tmpnb_api_auth_token": "a" * 32,
        },
        "accepted",
    ),
    "pool_size": ({"tmpnb_pool_size": 0}, "tmpnb_pool_size: got 0, expected a number >= 1"),
    "mem_limit_word": ({"tmpnb_mem_limit": "lots"}, "tmpnb_mem_limit: got 'lots', expected a size"),
    "mem_limit_small": ({"tmpnb_mem_limit": "64m"}, "tmpnb_mem_limit: got '64m'"),
    "port_range": ({"tmpnb_port": 70000}, "tmpnb_port: got 70000, expected a TCP port"),
    "home_dir": ({"tmpnb_home_dir": "home"}, "tmpnb_home_dir: got 'home'"),
    "keep_hours": ({"tmpnb_keep_hours": 1000}, "tmpnb_keep_hours: got 1000"),
    "keep_max_mb": ({"tmpnb_keep_max_mb": 2048}, "tmpnb_keep_max_mb: got 2048"),
    "title": ({"tmpnb_title": "x" * 81}, "tmpnb_title: got"),
    "links": ({"tmpnb_links": ["Bad|javascript:alert(1)"]}, "tmpnb_links: got"),
    "schedule_time": (
        {"tmpnb_schedule": [{"start": "9:00", "end": "12:00", "capacity": 5}]},
        "tmpnb_schedule: got",
    ),
    "schedule_form": ({"tmpnb_schedule": ["09:00/12:00=5"]}, "tmpnb_schedule: each booking must"),
    "cull_period": (
        {"tmpnb_cull_period": 7200},
        "tmpnb_cull_period (7200) must not be longer than tmpnb_cull_timeout (3600)",
    ),
    "cull_max": ({"tmpnb_cull_max": 600}, "tmpnb_cull_max (600) must be 0 or at least"),
    "disk_limit": (
        {"tmpnb_disk_limit": "1g"},
        "tmpnb_disk_limit (1g) must be smaller than tmpnb_mem_limit (512m)",
    ),
    "keep_within_disk": (
        {"tmpnb_disk_limit": "32m"},
        "tmpnb_keep_max_mb (32) must be less than tmpnb_disk_limit (32m)",
    ),
    "ports_differ": ({"tmpnb_port": 10000}, "tmpnb_port and tmpnb_admin_port must differ"),
    "proxy_port": (
        {"tmpnb_admin_port": 8001},
        "tmpnb_admin_port (8001) must differ from the port of tmpnb_proxy_endpoint",
    ),
    "network_and_host": (
        {"tmpnb_host_network": True},
        "tmpnb_host_network and tmpnb_docker_network: choose one",
    ),
    "host_network_ip": (
        {
            "tmpnb_host_network": True,
            "tmpnb_docker_network": "",
            "tmpnb_command": "start-notebook --base-path={base_path} --port={port} --ip=0.0.0.0",
        },
        "tmpnb_command must bind to {ip} with tmpnb_host_network",
    ),
    "command": ({"tmpnb_command": "start {base_path} {nope}"}, "tmpnb_command: got"),
    "api_token": (
        {"tmpnb_api_auth_token": "short"},
        "tmpnb_api_auth_token: must be empty or at least 32 characters",
    ),
    "admin_token": (
        {"tmpnb_admin_auth_token": "short"},
        "tmpnb_admin_auth_token: must be empty or at least 32 characters",
    ),
    "logo_home": ({"tmpnb_logo": "/home/me/logo.png"}, "tmpnb_logo must be outside /home"),
    "state_dir": ({"tmpnb_state_dir": None}, "tmpnb_state_dir must be set"),
    "source_dir": ({"tmpnb_source_dir": "/nonexistent"}, "tmpnb_source_dir"),
}


def test_tmpnb_values_are_checked_by_the_orchestrators_rules_naming_the_variable(tmp_path):
    inventory = tmp_path / "cases.json"
    inventory.write_text(
        json.dumps({"all": {"hosts": {n: v for n, (v, _) in TMPNB_CASES.items()}}})
    )
    result = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(inventory),
            str(REPO / "tests" / "tmpnb_wrong_values.yml"),
        ],
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)["plays"][0]["tasks"][-1]["hosts"]
    outcomes = {name: report[name]["msg"].split(" outcome=", 1)[1] for name in TMPNB_CASES}
    for name, (_, expected) in TMPNB_CASES.items():
        assert expected in outcomes[name], f"{name}: {outcomes[name]}"
        assert outcomes[name] == "accepted" or "\n" not in outcomes[name].strip(), name
