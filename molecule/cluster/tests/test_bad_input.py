"""A wrong value stops the front_door role before it changes anything, naming the variable."""

import json
import os
import pathlib
import re
import subprocess

import pytest

SCENARIO = pathlib.Path(__file__).resolve().parent.parent

CASES = [
    ({"front_door_https_port": 70000}, "front_door_https_port"),
    ({"front_door_http_port": 443}, "six different TCP ports"),
    ({"front_door_poll_period": "often"}, "front_door_poll_period"),
    ({"front_door_check_interval": "soon"}, "front_door_check_interval"),
    ({"front_door_tls_cert": "/nonexistent/site.pem"}, "front_door_tls_cert"),
    # A host variable of the nodes (-e sets it on every host).
    ({"front_door_node_state": "off"}, "front_door_node_state"),
]


def run_role(extra_vars):
    env = dict(os.environ)
    env["ANSIBLE_ROLES_PATH"] = str(SCENARIO.parent.parent / "roles")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"  # Molecule turns colours on, and they split the recap
    return subprocess.run(
        [
            "ansible-playbook",
            "--inventory",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(SCENARIO / "bad-input.yml"),
            "--extra-vars",
            json.dumps(extra_vars),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(("extra_vars", "named"), CASES, ids=[c[1] for c in CASES])
def test_bad_value_fails_before_any_change(extra_vars, named):
    result = run_role(extra_vars)
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    output = " ".join(text.split())  # undo the callback's line wrapping
    assert result.returncode != 0, output[-2000:]
    assert named in output, output[-2000:]
    recap = re.search(r"changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert recap, output[-2000:]
    assert recap.groups() == ("0", "1"), output[-2000:]
