"""The archlinux_image role, seen from the builder it ran on: the image pacstrap made runs.

The image checks run on the builder, through `docker exec` (faster than testinfra's Ansible
backend); the failure checks drive ansible-playbook against the scenario's hosts.
"""

import datetime
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from molecule_hosts import docker_hosts, inspect_image

IMAGE = "molecule-archlinux-base"
TEST_LABEL = "tmpnb.test=molecule-archlinux"

testinfra_hosts = docker_hosts("builders")


def _run_in_image(host, script):
    """Run a shell script in a throwaway container of the test image; return its output."""
    return host.check_output(
        "docker run --rm --network none --label %s %s:latest busybox sh -c %s",
        TEST_LABEL,
        IMAGE,
        script,
    )


@pytest.fixture(scope="module")
def image(host):
    return inspect_image(host, f"{IMAGE}:latest")


def test_image_is_tagged_latest_and_with_its_build_date(host, image):
    created = image["Config"]["Labels"]["org.opencontainers.image.created"]
    date_tag = created[:10].replace("-", "")
    assert f"{IMAGE}:{date_tag}" in image["RepoTags"]
    assert f"{IMAGE}:latest" in image["RepoTags"]


def test_image_carries_its_build_time_and_inputs_digest(image):
    labels = image["Config"]["Labels"]
    created = datetime.datetime.strptime(
        labels["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=datetime.UTC)
    age = datetime.datetime.now(datetime.UTC) - created
    assert datetime.timedelta(0) <= age < datetime.timedelta(hours=1)
    digest = labels["tmpnb.image.config-digest"]
    assert re.fullmatch("[0-9a-f]{64}", digest), digest  # a sha256, in hex
    assert labels["org.opencontainers.image.title"] == IMAGE
    assert "LANG=en_US.UTF-8" in image["Config"]["Env"]
    assert image["Config"]["Cmd"] == ["/usr/bin/sh"]


def test_a_container_of_the_image_runs(host):
    assert _run_in_image(host, "echo ok") == "ok"


def test_image_has_the_group_without_the_ignored_package(host):
    installed = _run_in_image(host, "ls /var/lib/pacman/local").split()
    assert "busybox-1-1" in installed
    assert "filesystem-1-1" in installed
    assert not [p for p in installed if p.startswith("molecule-docs")]


def test_image_is_configured_and_trimmed(host):
    out = _run_in_image(
        host,
        "cat /etc/pacman.d/mirrorlist /etc/locale.conf; readlink /etc/localtime;"
        " ls /usr/share/man 2>&1 || true",
    )
    assert "Server = file:///srv/molecule-archlinux-repo/$repo/os/$arch" in out
    assert "LANG=en_US.UTF-8" in out
    assert "/usr/share/zoneinfo/UTC" in out
    assert "/usr/share/man: No such file or directory" in out


def test_temporary_root_is_gone_and_nothing_stays_mounted(host):
    leftovers = host.check_output("find /var/tmp -maxdepth 1 -name 'archlinux-image-*'")
    assert leftovers == ""
    assert "archlinux-image-" not in host.file("/proc/mounts").content_string


def test_no_untagged_import_or_smoke_container_is_left(host):
    smoke = host.check_output("docker ps -aq --filter label=tmpnb.image.smoke-test=%s", IMAGE)
    assert smoke == ""
    dangling = host.check_output(
        "docker images -q --filter dangling=true --filter label=org.opencontainers.image.title=%s",
        IMAGE,
    )
    assert dangling == ""


def _run_role(*extra_vars):
    """Run the role through ansible-playbook on the scenario's hosts, as the test directs."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    command = ["ansible-playbook", "--inventory", os.environ["MOLECULE_INVENTORY_FILE"]]
    for extra in extra_vars:
        command += ["--extra-vars", json.dumps(extra)]
    result = subprocess.run(
        [*command, str(scenario / "run-role.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_preflight_stops_a_host_without_pacstrap_with_one_message():
    rc, output = _run_role({"archlinux_image_test_hosts": "without_pacstrap"})
    assert rc == 2, output
    assert "cannot build an Arch image: it has no /usr/bin/pacman, /usr/bin/pacstrap" in output
    assert output.count("FAILED!") == 1, output
    assert "changed=0" in output, output


@pytest.mark.timeout(300)
def test_a_failed_build_tags_nothing_and_removes_its_root(host, image):
    # Without busybox the root has no /usr/bin/sh, so the run before tagging fails after the import.
    rc, output = _run_role(
        {"archlinux_image_test_hosts": "builders"},
        {"archlinux_image_packages": ["filesystem"], "archlinux_image_force_rebuild": True},
    )
    assert rc == 2, output
    assert 'failed at "Run the new image once before tagging it", nothing was tagged' in output
    assert inspect_image(host, f"{IMAGE}:latest")["Id"] == image["Id"]
    test_no_untagged_import_or_smoke_container_is_left(host)
    test_temporary_root_is_gone_and_nothing_stays_mounted(host)
