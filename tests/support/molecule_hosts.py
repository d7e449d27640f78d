"""What the image roles' Molecule verifiers share: the hosts of an inventory group as testinfra
names them, and `docker image inspect` on such a host.

Used by roles/{archlinux_image,debian_image,workshop_image}/molecule/default/tests. What it may
touch: Molecule's inventory file (MOLECULE_INVENTORY_FILE) and the `docker` command on the host it
is given, read-only.
"""

from __future__ import annotations

import json
import os
from typing import Any

import testinfra.utils.ansible_runner  # type: ignore[import-untyped]  # (no type hints)


def docker_hosts(group: str) -> list[str]:
    """The group's hosts as testinfra reaches them: Molecule's docker driver names each
    container after its inventory host."""
    runner = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
    return [f"docker://{name}" for name in runner.get_hosts(group)]


def inspect_image(host: Any, ref: str) -> dict[str, Any]:
    """`docker image inspect <ref>` on `host`, parsed."""
    found: list[dict[str, Any]] = json.loads(host.check_output("docker image inspect %s", ref))
    return found[0]
