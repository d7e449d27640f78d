"""The image_distribution role, seen from the notebook servers it shipped to.

The server with its own Docker engine must now hold the builder's image with the same ID; the server
that shares the builder's engine was left alone; no archive is left anywhere.
"""

import json
import os
from pathlib import Path

import testinfra.utils.ansible_runner

IMAGE = "molecule-imgdist-probe:v1"
# The role's default archive directory, on the hosts (not this machine's temporary files).
ARCHIVE_DIR = "/var/tmp/tmpnb-image-distribution"  # noqa: S108
inventory = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(inventory).get_hosts(
    "notebook_servers"
)


def _image_id(host):
    return json.loads(host.check_output("docker image inspect %s", IMAGE))[0]["Id"]


def _builder():
    runner = testinfra.utils.ansible_runner.AnsibleRunner(inventory)
    return runner.get_host(runner.get_hosts("builders")[0])


def test_server_has_the_builders_image(host):
    assert _image_id(host) == _image_id(_builder())


def test_the_loaded_image_keeps_its_content(host):
    if host.backend.get_hostname() != "molecule-imgdist-server":
        return
    # A container cannot run in this engine (no cgroups); reading the image's layer is enough.
    container = host.check_output("docker create --label tmpnb.test=molecule-imgdist %s x", IMAGE)
    try:
        exported = host.check_output("docker cp %s:/probe.txt - | tar -xO", container)
    finally:
        host.run("docker rm %s", container)
    assert exported == "shipped by image_distribution"


def test_no_archive_is_left_behind(host):
    for where in (host, _builder()):
        listing = where.run("ls -A %s", ARCHIVE_DIR)
        assert listing.stdout.strip() == ""
    controller_dir = Path("/tmp/molecule-imgdist")  # noqa: S108 (set in molecule.yml)
    assert not list(controller_dir.glob("*.tar"))
