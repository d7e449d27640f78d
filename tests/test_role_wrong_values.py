"""Every role variable with a type or choices, given a wrong value, is refused before any change.

Runs tests/role_wrong_values.yml once per role: it reads the role's own meta/argument_specs.yml and
feeds each variable a wrong value to validate_argument_spec, the check Ansible runs before a role's
first task. Free-form strings and paths are counted, not checked: any value is a valid string.
"""

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
