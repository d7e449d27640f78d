"""Running one of the scenario's playbooks against the converged test host, from a test."""

import json
import os
import pathlib
import re
import subprocess

SCENARIO = pathlib.Path(__file__).resolve().parent.parent


def run_role(playbook: str, role: str, extra_vars: dict) -> tuple[int, str]:
    """Run `playbook` (bad-input.yml, rerun-role.yml) with one role of the project's; return its
    exit code and its output on one line (colours and the callback's line wrapping undone)."""
    env = dict(os.environ)
    env["ANSIBLE_ROLES_PATH"] = str(SCENARIO.parent.parent / "roles")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"  # Molecule turns colours on, and they split the recap
    result = subprocess.run(
        [
            "ansible-playbook",
            "--inventory",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(SCENARIO / playbook),
            "--extra-vars",
            json.dumps({"notebook_server_role_under_test": role, **extra_vars}),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    output = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).split())
    return result.returncode, output
