"""The workshop_image role, seen from the builder it ran on.

The builder drives the machine's Docker engine through its socket, so every check below runs a
throwaway container of the built image with the test's label (cleanup.yml removes leftovers).
"""

import contextlib
import datetime
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner

IMAGE = "molecule-workshop-notebook"
FLAVOR = os.environ.get("MOLECULE_WORKSHOP_FLAVOR") or "slim"
KERNELS = {"slim": ["python"], "full": ["python", "r", "octave"]}[FLAVOR]
KERNELSPECS = {"python": "python3", "r": "ir", "octave": "octave"}
MATERIAL_REPO = "/srv/molecule-workshop-material"
TEST_LABEL = "tmpnb.test=molecule-workshop"
SCENARIO = Path(__file__).resolve().parent.parent

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("builders")


def _inspect(host, ref):
    return json.loads(host.check_output("docker image inspect %s", ref))[0]


def _run_in_image(host, *command):
    """Run a throwaway container of the image as its entrypoint would, and return its output."""
    return host.check_output(
        "docker run --rm --network none --label %s %s " + " ".join(["%s"] * len(command)),
        TEST_LABEL,
        f"{IMAGE}:{FLAVOR}",
        *command,
    )


READY_PROBE = """
import sys, time, requests
for _ in range(120):
    try:
        if requests.get(sys.argv[1] + "api/status", timeout=2).ok:
            print("ready")
            break
    except requests.ConnectionError:
        pass
    time.sleep(0.5)
"""


@contextlib.contextmanager
def _server(host, name, docker_args="", start_args="--token="):
    """A notebook container started from the image, once it answers: (name, its URL)."""
    host.check_output(
        f"docker run --detach --name %s --label %s {docker_args} %s start-notebook "
        f"--base-path=/user/molecule/ --port=8888 --ip=0.0.0.0 {start_args}",
        name,
        TEST_LABEL,
        f"{IMAGE}:{FLAVOR}",
    )
    try:
        address = host.check_output(
            "docker inspect --format '{{.NetworkSettings.IPAddress}}' %s", name
        )
        url = f"http://{address}:8888/user/molecule/"
        assert host.check_output("python3 -c %s %s", READY_PROBE, url) == "ready"
        yield name, url
    finally:
        host.run("docker rm --force %s", name)


@pytest.fixture
def notebook_server(host):
    """A container started as the orchestrator starts one, once it answers; removed afterwards."""
    with _server(host, f"molecule-workshop-server-{os.getpid()}") as started:
        yield started


def test_image_is_named_and_labelled(host):
    image = _inspect(host, f"{IMAGE}:{FLAVOR}")
    labels = image["Config"]["Labels"]
    created = datetime.datetime.strptime(
        labels["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=datetime.UTC)
    assert datetime.datetime.now(datetime.UTC) - created < datetime.timedelta(days=1)
    assert len(labels["tmpnb.image.config-digest"]) == 64
    assert labels["tmpnb.image.flavor"] == FLAVOR
    assert labels["tmpnb.image.kernels"] == ",".join(KERNELS)
    assert labels["org.opencontainers.image.base.name"] == "debian-base:latest"
    # No temporary build tag is left behind.
    assert [tag for tag in image["RepoTags"] if ":build-" in tag] == []


def test_labels_record_the_material_revision(host):
    labels = _inspect(host, f"{IMAGE}:{FLAVOR}")["Config"]["Labels"]
    revision = host.check_output("git -C %s rev-parse main", MATERIAL_REPO)
    assert labels["tmpnb.material.workshop.revision"] == revision
    assert labels["tmpnb.material.workshop.url"] == MATERIAL_REPO


def test_image_runs_as_jovyan_under_an_init(host):
    config = _inspect(host, f"{IMAGE}:{FLAVOR}")["Config"]
    # Numeric, so the orchestrator can give the in-memory home (its disk_limit) to this uid.
    assert config["User"] == "1000:1000"
    assert _run_in_image(host, "id", "-un") == "jovyan"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert _run_in_image(host, "id", "-u") == "1000"
    assert _run_in_image(host, "sh", "-c", "echo $HOME") == "/home/jovyan"


def test_ca_bundle_of_the_build_stays_out_of_the_image(host):
    check = 'test ! -e /tmp/pip-ca.crt && test -z "${PIP_CERT:-}" && echo clean'
    assert _run_in_image(host, "sh", "-c", check) == "clean"


def test_material_is_in_the_home(host):
    listing = _run_in_image(host, "ls", "-A", "/home/jovyan/workshop")
    assert set(listing.split()) == {"README.md", "python.ipynb", "r.ipynb", "octave.ipynb"}
    owner = _run_in_image(host, "stat", "-c", "%U", "/home/jovyan/workshop/python.ipynb")
    assert owner == "jovyan"


def test_kernelspecs_are_exactly_the_configured_kernels(host):
    specs = json.loads(_run_in_image(host, "jupyter", "kernelspec", "list", "--json"))
    assert sorted(specs["kernelspecs"]) == sorted(KERNELSPECS[k] for k in KERNELS)


@pytest.mark.parametrize("kernel", ["python", "r", "octave"])
def test_a_notebook_per_kernel_executes(host, kernel):
    if kernel not in KERNELS:
        pytest.skip(f"the {FLAVOR} flavor has no {kernel} kernel")
    output = _run_in_image(
        host,
        "jupyter",
        "nbconvert",
        "--to=notebook",
        "--execute",
        "--stdout",
        f"workshop/{kernel}.ipynb",
    )
    assert "sum of x: 15" in output


def test_server_answers_on_its_base_path(host, notebook_server):
    _, url = notebook_server
    get_status = "import sys, requests; print(requests.get(sys.argv[1], timeout=10).status_code)"
    for page in ("api/status", "tree", "lab"):
        assert host.check_output("python3 -c %s %s", get_status, url + page) == "200", page


def test_server_stops_promptly(host, notebook_server):
    # The init forwards SIGTERM to the server: `docker stop` must not wait for its 10 s time-out.
    name, _ = notebook_server
    started = time.monotonic()
    host.check_output("docker stop %s", name)
    assert time.monotonic() - started < 8


def _build_broken(what):
    return subprocess.run(
        [
            "ansible-playbook",
            "--inventory",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--extra-vars",
            f"broken={what}",
            str(SCENARIO / "broken.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.parametrize(
    ("what", "cause"),
    [
        ("material", "/srv/no-such-repository at main"),
        ("package", "No matching distribution found for tmpnb-no-such-package"),
    ],
)
def test_a_broken_build_fails_clearly_and_tags_nothing(host, what, cause):
    result = _build_broken(what)
    assert result.returncode != 0
    # Ansible prints the failure on stderr; it must be the role's own message, naming the cause.
    output = result.stdout + result.stderr
    assert "workshop_image:" in output
    assert cause in output
    tags = host.check_output(
        "docker image ls --format '{{.Repository}}:{{.Tag}}' molecule-workshop-broken"
    )
    assert tags == ""


def test_a_read_only_notebook_with_an_empty_in_memory_home_is_seeded_and_serves(host):
    """Started as the orchestrator's disk_limit has it: read-only root, empty in-memory home and
    /tmp, the token (none here) in the environment only."""
    in_memory = (
        "--read-only --tmpfs /tmp:size=64m,mode=1777 "
        "--tmpfs /home/jovyan:size=64m,uid=1000,gid=1000,mode=0755"
    )
    with _server(host, f"molecule-workshop-readonly-{os.getpid()}", in_memory, "") as (name, _):
        listing = host.check_output("docker exec %s ls -A /home/jovyan/workshop", name)
        assert set(listing.split()) == {"README.md", "python.ipynb", "r.ipynb", "octave.ipynb"}
        writable = host.check_output("docker exec %s sh -c 'touch ~/new && echo ok'", name)
        assert writable == "ok"
        refused = host.run("docker exec %s touch /opt/x", name)
        assert refused.rc != 0 and "Read-only file system" in refused.stderr
