"""Running one of the scenario's playbooks against the converged test host, from a test."""

import json
import os
import pathlib
import re
import subprocess
import tempfile

SCENARIO = pathlib.Path(__file__).resolve().parent.parent


def run_role(playbook: str, role: str, extra_vars: dict) -> tuple[int, str]:
    """Run `playbook` (bad-input.yml, rerun-role.yml) with one role of the project's; return its
    exit code and its output on one line (colours and the callback's line wrapping undone).

    The values go through a file readable by this user only, never the command line: a test may
    pass a secret (a new proxy token)."""
    env = dict(os.environ)
    env["ANSIBLE_ROLES_PATH"] = str(SCENARIO.parent.parent / "roles")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"  # Molecule turns colours on, and they split the recap
    with tempfile.NamedTemporaryFile("w", suffix=".json") as values:  # mode 0600
        json.dump({"notebook_server_role_under_test": role, **extra_vars}, values)
        values.flush()
        result = subprocess.run(
            [
                "ansible-playbook",
                # The whole inventory folder: the builder (localhost) and the scenario's group_vars.
                "--inventory",
                str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent),
                str(SCENARIO / playbook),
                "--extra-vars",
                f"@{values.name}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    output = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).split())
    return result.returncode, output
