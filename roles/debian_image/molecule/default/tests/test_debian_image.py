"""The debian_image role, seen from the builder it ran on: the image debootstrap made runs.

Image checks go through the builder's Docker client (the machine's engine); the failure check drives
ansible-playbook against the scenario's host with a mirror that does not answer.
"""

import datetime
import os
import subprocess
from pathlib import Path

from molecule_hosts import docker_hosts, inspect_image

IMAGE = "molecule-debian-base"
BROKEN = "molecule-debian-broken"

testinfra_hosts = docker_hosts("builders")


def test_image_is_tagged_with_the_date_and_latest(host):
    latest = inspect_image(host, f"{IMAGE}:latest")
    labels = latest["Config"]["Labels"]
    created = labels["org.opencontainers.image.created"]
    date_tag = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y%m%d")
    assert inspect_image(host, f"{IMAGE}:{date_tag}")["Id"] == latest["Id"]
    assert labels["org.opencontainers.image.version"] == "bookworm"
    assert len(labels["tmpnb.image.config-digest"]) == 64
    assert latest["Config"]["Cmd"] == ["/bin/bash"]


def test_a_container_of_the_image_runs_debian_with_the_extra_package(host):
    out = host.check_output(
        "docker run --rm --network none %s:latest sh -c %s",
        IMAGE,
        ". /etc/os-release && echo $VERSION_CODENAME && busybox true && echo busybox-ok",
    )
    assert out.split() == ["bookworm", "busybox-ok"]


def test_image_carries_no_package_caches_and_starts_no_services(host):
    out = host.check_output(
        "docker run --rm --network none %s:latest sh -c %s",
        IMAGE,
        "ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages 2>/dev/null | wc -l;"
        " /usr/sbin/policy-rc.d; echo $?",
    )
    assert out.split() == ["0", "101"]


def test_temporary_root_is_gone(host):
    leftovers = host.check_output("ls -d /var/tmp/debian-image-* 2>/dev/null || true")
    assert leftovers == ""
    mounts = host.check_output("grep -c debian-image- /proc/mounts || true")
    assert mounts == "0"


def test_a_mirror_that_does_not_answer_gives_one_message_and_tags_nothing(host):
    """Runs the real role with a dead mirror: it fails once, names the cause, tags nothing."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(scenario / "converge.yml"),
            "-e",
            f"debian_image_name={BROKEN}",
            "-e",
            "debian_image_mirror=http://127.0.0.1:9/debian",
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"ANSIBLE_NOCOLOR": "1"},
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # The rescue turns debootstrap's failure into the role's one message, naming step and cause.
    message = output.split("debian_image: building molecule-debian-broken failed at", 1)
    assert len(message) == 2, output[-3000:]
    assert "Failed getting release file" in message[1]
    assert "(no image was tagged)" in message[1]
    assert host.run("docker image inspect %s:latest", BROKEN).rc != 0
    assert host.check_output("ls -d /var/tmp/debian-image-* 2>/dev/null || true") == ""
