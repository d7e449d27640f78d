"""Each role's meta/argument_specs.yml mirrors its defaults; tmpnb mirrors the orchestrator.

An option documented with the wrong default, or a default nobody documented, is caught here rather
than by an operator.
"""

import pathlib

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parent.parent / "roles"
ROLES_WITH_SPECS = sorted(
    path.parent.parent.name
    for path in ROLES.glob("*/meta/argument_specs.yml")
    if (path.parent.parent / "defaults" / "main.yml").exists()
)


def load(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES_WITH_SPECS)
def test_argument_specs_mirror_defaults(role):
    defaults = load(ROLES / role / "defaults" / "main.yml")
    specs = load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    assert sorted(options) == sorted(defaults), "variables in one file but not the other"
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{name}: default differs"


def test_tmpnb_has_a_variable_for_every_orchestrator_option():
    from orchestrator.options import OPTIONS

    defaults = load(ROLES / "tmpnb" / "defaults" / "main.yml")
    # `config` is the file the role writes, not an option inside it.
    expected = {f"tmpnb_{option.name}" for option in OPTIONS if option.name != "config"}
    assert expected <= set(defaults), f"missing: {sorted(expected - set(defaults))}"
    listed = load(ROLES / "tmpnb" / "vars" / "main.yml")["__tmpnb_options"]
    assert {f"tmpnb_{name}" for name in listed} == expected
