"""The project's two packages pin their own runtime dependencies, each in its pyproject.toml, only
there. A dependency both need (Tornado) is pinned to the same version: both are installed in one
.venv (requirements-dev.txt) and tested there together."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ["orchestrator", "frontdoor"]


def pins(package):
    project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
    result = {}
    for requirement in project["dependencies"]:
        name, _, version = requirement.partition("==")
        assert version, f"{package}: {requirement!r} is not pinned exactly"
        result[name.strip().lower()] = version.strip()
    return result


def test_every_runtime_dependency_is_pinned_and_shared_pins_agree():
    orchestrator, frontdoor = (pins(package) for package in PACKAGES)
    shared = sorted(set(orchestrator) & set(frontdoor))
    assert "tornado" in shared
    assert {name: orchestrator[name] for name in shared} == {
        name: frontdoor[name] for name in shared
    }


def test_the_front_door_needs_no_docker():
    assert "docker" not in pins("frontdoor")
