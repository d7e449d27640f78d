"""The workshop_image role, seen from the builder it ran on.

The builder drives the machine's Docker engine through its socket, so every check below runs a
throwaway container of the built image with the test's label (cleanup.yml removes leftovers).
"""

import contextlib
import datetime
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner
from molecule_hosts import inspect_image
from nbtest import wait_for

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


def _run_in_image(host, *command):
    """Run a throwaway container of the image as its entrypoint would, and return its output."""
    return host.check_output(
        "docker run --rm --network none --label %s %s " + " ".join(["%s"] * len(command)),
        TEST_LABEL,
        f"{IMAGE}:{FLAVOR}",
        *command,
    )


GET_TEXT = "import sys, requests; print(requests.get(sys.argv[1], timeout=30).text)"

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


# What start-notebook runs, for the tests that add server options (start-notebook takes none).
JUPYTER_SERVER = (
    "jupyter server --ServerApp.base_url=/user/molecule/ --ServerApp.port=8888 "
    "--ServerApp.ip=0.0.0.0 --IdentityProvider.token= --ServerApp.root_dir=/home/jovyan"
)


@contextlib.contextmanager
def _server(host, name, docker_args="", start_args="--token=", command=None):
    """A notebook container started from the image, once it answers: (name, its URL)."""
    if command is None:
        command = (
            f"start-notebook --base-path=/user/molecule/ --port=8888 --ip=0.0.0.0 {start_args}"
        )
    host.check_output(
        f"docker run --detach --name %s --label %s {docker_args} %s {command}",
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
    image = inspect_image(host, f"{IMAGE}:{FLAVOR}")
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
    labels = inspect_image(host, f"{IMAGE}:{FLAVOR}")["Config"]["Labels"]
    revision = host.check_output("git -C %s rev-parse main", MATERIAL_REPO)
    assert labels["tmpnb.material.workshop.revision"] == revision
    assert labels["tmpnb.material.workshop.url"] == MATERIAL_REPO


def test_image_runs_as_jovyan_under_an_init(host):
    config = inspect_image(host, f"{IMAGE}:{FLAVOR}")["Config"]
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


def test_the_language_server_bridge_is_installed_but_not_started(host, notebook_server):
    # jupyter_lsp (a JupyterLab dependency) costs every boot and serves nothing without a
    # language server: installed, but its /lsp/status route is not there while the server's are.
    _, url = notebook_server
    get_status = "import sys, requests; print(requests.get(sys.argv[1], timeout=10).status_code)"
    assert host.check_output("python3 -c %s %s", get_status, url + "api/status") == "200"
    assert host.check_output("python3 -c %s %s", get_status, url + "lsp/status") == "404"
    listing = _run_in_image(host, "sh", "-c", "jupyter server extension list 2>&1")
    # Still installed (JupyterLab requires it), and listed as turned off.
    assert re.search(r"jupyter_lsp\s+(\x1b\[\d+m)?disabled", listing), listing


def test_server_stops_promptly(host, notebook_server):
    # The init forwards SIGTERM to the server, which stops its kernels and exits: `docker stop`
    # must not end in its SIGKILL. The grace is long so that a slow machine, with the warm
    # kernels still starting, is not taken for a server that ignored the signal.
    name, _ = notebook_server
    grace = 60
    started = time.monotonic()
    host.check_output("docker stop -t %s %s", str(grace), name)
    took = time.monotonic() - started
    state = json.loads(host.check_output("docker inspect --format '{{json .State}}' %s", name))
    assert not state["OOMKilled"] and state["ExitCode"] != 137, state  # 137: the SIGKILL
    assert took < grace / 2, took


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


# --- the warm kernel (tmpnb_warm_kernels) and the first click ------------------------------------

BROWSER_CLIENT = (Path(__file__).parent / "browser_client.py").read_text()
# The tests' shared helper (waiting, running code in a kernel), which browser_client.py imports.
NBTEST = (Path(__file__).resolve().parents[5] / "tests" / "support" / "nbtest.py").read_text()
# Runs in the container: nbtest.py becomes the module `nbtest`, then browser_client.py runs as the
# main program with the arguments after the two sources.
IN_CONTAINER = """
import sys, types
nbtest = sys.modules["nbtest"] = types.ModuleType("nbtest")
exec(compile(sys.argv[1], "nbtest.py", "exec"), nbtest.__dict__)
client, sys.argv = sys.argv[2], ["browser_client.py", *sys.argv[3:]]
exec(compile(client, "browser_client.py", "exec"), {"__name__": "__main__"})
"""
IN_CONTAINER_URL = "http://127.0.0.1:8888/user/molecule/"
# What a kernel looks like from inside: everything a start for a notebook decides.
FINGERPRINT = """
import json, os, sys
print(json.dumps({"cwd": os.getcwd(), "session": globals().get("__session__"),
    "env_session": os.environ.get("JPY_SESSION_NAME"), "names": sorted(get_ipython().user_ns),
    "inputs": len(In), "outputs": len(Out), "dir_history": [str(p) for p in _dh],
    "sys_path": sys.path, "starting_dir": get_ipython().starting_dir, "env": sorted(os.environ),
    "history": list(get_ipython().history_manager.get_range(output=False)), "pid": os.getpid()}))
"""
# Faults for the tests that prove a failing warm kernel never fails the visitor.
FAULTS = """
from tmpnb_warm_kernels.manager import WarmKernelManager


class FailingWarmStart(WarmKernelManager):
    async def _start_warm(self, name):
        raise RuntimeError("forced failure of the warm start")


class FailingHandOut(WarmKernelManager):
    async def _run_silently(self, km, code, user_expressions=None):
        if "chdir" in code:
            raise RuntimeError("forced failure of the hand-out")
        return await super()._run_silently(km, code, user_expressions)
"""


def _client(host, name, *args):
    """browser_client.py in the notebook container, against its own server: the printed JSON."""
    output = host.check_output(
        "docker exec %s python3 -c %s " + " ".join(["%s"] * (len(args) + 3)),
        name,
        IN_CONTAINER,
        NBTEST,
        BROWSER_CLIENT,
        IN_CONTAINER_URL,
        *args,
    )
    return json.loads(output)


def _open(host, name, notebook, code):
    """The browser's flow for `notebook`, running `code` as its first cell."""
    return _client(host, name, "open", notebook, code)


def _fingerprint(host, name, notebook):
    opened = _open(host, name, notebook, FINGERPRINT)
    assert opened["execution_count"] == 1
    return json.loads(opened["outputs"])


def _warm_kernels(host, name):
    return _client(host, name, "get", "api/warm-kernels")


def _wait_warm(host, name, timeout=120):
    """The readiness answer once every warm kernel is ready."""
    return wait_for(
        lambda: (answer := _warm_kernels(host, name))["ready"] and answer,
        timeout,
        "every warm kernel to be ready",
        interval=0.5,
    )


def _with_notebook_folder(host, name):
    """notebooks/x.ipynb, the deep link's notebook, next to the material."""
    host.check_output(
        "docker exec %s sh -c %s",
        name,
        "mkdir -p ~/notebooks && cp ~/workshop/python.ipynb ~/notebooks/x.ipynb",
    )


def _faulty_server(host, fault):
    command = shlex.quote(
        'echo "$TMPNB_FAULTS" > /tmp/tmpnb_faults.py && PYTHONPATH=/tmp exec '
        f"{JUPYTER_SERVER} --ServerApp.kernel_manager_class=tmpnb_faults.{fault}"
    )
    return _server(
        host,
        f"molecule-workshop-{fault.lower()}-{os.getpid()}",
        docker_args=f"--env TMPNB_FAULTS={shlex.quote(FAULTS)}",
        command=f"sh -c {command}",
    )


def test_the_warm_kernels_extension_is_enabled(host):
    listing = _run_in_image(host, "sh", "-c", "jupyter server extension list 2>&1")
    assert re.search(r"tmpnb_warm_kernels\s+(\x1b\[\d+m)?enabled", listing), listing
    assert re.search(r"tmpnb_warm_kernels 1\.0\.0\s+(\x1b\[\d+m)?OK", listing), listing
    config = json.loads(
        _run_in_image(host, "cat", "/opt/notebook/etc/jupyter/jupyter_server_config.json")
    )
    assert (
        config["ServerApp"]["kernel_manager_class"]
        == "tmpnb_warm_kernels.manager.WarmKernelManager"
    )
    assert config["WarmKernelManager"]["warm_kernel_names"] == ["python3"]
    labels = inspect_image(host, f"{IMAGE}:{FLAVOR}")["Config"]["Labels"]
    assert labels["tmpnb.image.warm-kernels"] == "python3"


def test_a_kernel_is_running_before_any_client_asks(host, notebook_server):
    name, _ = notebook_server
    readiness = _wait_warm(host, name)
    assert readiness["ready"] is True
    assert readiness["kernels"]["python3"]["state"] == "ready"
    assert readiness["kernels"]["python3"]["handed_out"] == 0
    assert len(_client(host, name, "kernel-pids")) == 1
    # No activity of a visitor's (the orchestrator culls on it): only untracked endpoints
    # (api/status, api/warm-kernels) were asked so far, so the last activity is the start.
    status = _client(host, name, "get", "api/status")
    assert status["last_activity"] == status["started"]
    # Invisible until handed out.
    assert status["kernels"] == 0
    assert _client(host, name, "get", "api/kernels") == []
    assert _client(host, name, "get", "api/sessions") == []


def test_the_browsers_flow_gets_the_warm_kernel_as_if_started_for_the_notebook(
    host, notebook_server
):
    name, _ = notebook_server
    _with_notebook_folder(host, name)
    assert _wait_warm(host, name)["ready"]
    [warm_pid] = _client(host, name, "kernel-pids")

    warm = _fingerprint(host, name, "notebooks/x.ipynb")
    assert warm["pid"] == warm_pid
    assert warm["cwd"] == "/home/jovyan/notebooks"
    assert warm["session"] == warm["env_session"] == "/home/jovyan/notebooks/x.ipynb"
    readiness = _client(host, name, "get", "api/warm-kernels")
    assert readiness["kernels"]["python3"]["handed_out"] == 1
    assert [kernel["execution_state"] for kernel in _client(host, name, "get", "api/kernels")] == [
        "idle"
    ]

    # The next notebook, before the refill (30 s after a hand-out), gets an ordinary kernel; the
    # same notebook's kernel started the ordinary way looks exactly like the warm one.
    ordinary = _fingerprint(host, name, "notebooks/x.ipynb")
    assert ordinary.pop("pid") != warm.pop("pid")
    assert ordinary == warm
    elsewhere = _open(host, name, "workshop/python.ipynb", "import os; print(os.getcwd()); 5*4")
    assert elsewhere["outputs"] == "/home/jovyan/workshop\n20"
    assert elsewhere["execution_count"] == 1


def test_the_warm_kernel_is_refilled_after_a_hand_out(host):
    command = f"{JUPYTER_SERVER} --WarmKernelManager.refill_delay=1"
    with _server(host, f"molecule-workshop-refill-{os.getpid()}", command=command) as (name, _):
        _with_notebook_folder(host, name)
        assert _wait_warm(host, name)["ready"]
        [first_pid] = _client(host, name, "kernel-pids")
        first = _open(host, name, "notebooks/x.ipynb", "import os; os.getpid()")
        assert first["outputs"] == str(first_pid)

        readiness = _wait_warm(host, name)
        assert readiness["ready"] and readiness["kernels"]["python3"]["handed_out"] == 1
        [refilled_pid] = set(_client(host, name, "kernel-pids")) - {first_pid}
        second = _open(
            host, name, "workshop/python.ipynb", "import os; print(os.getcwd()); os.getpid()"
        )
        assert second["outputs"] == f"/home/jovyan/workshop\n{refilled_pid}"
        assert second["execution_count"] == 1
        assert len(_client(host, name, "get", "api/kernels")) == 2


def test_a_failing_warm_start_still_gives_the_visitor_a_kernel(host):
    with _faulty_server(host, "FailingWarmStart") as (name, _):
        readiness = wait_for(
            lambda: (
                (answer := _warm_kernels(host, name))["kernels"]["python3"].get("error") and answer
            ),
            60,
            "the warm start to fail",
            interval=0.5,
        )
        assert readiness["ready"] is False
        assert "forced failure of the warm start" in readiness["kernels"]["python3"]["error"]
        assert _client(host, name, "kernel-pids") == []
        opened = _open(host, name, "workshop/python.ipynb", "print(__session__); 5*4")
        assert opened["outputs"] == "/home/jovyan/workshop/python.ipynb\n20"
        assert opened["execution_count"] == 1


def test_a_failing_hand_out_gives_an_ordinary_kernel(host):
    with _faulty_server(host, "FailingHandOut") as (name, _):
        assert _wait_warm(host, name)["ready"]
        [warm_pid] = _client(host, name, "kernel-pids")
        opened = _open(
            host, name, "workshop/python.ipynb", "import os; print(os.getcwd()); os.getpid()"
        )
        cwd, pid = opened["outputs"].split("\n")
        assert cwd == "/home/jovyan/workshop"
        assert int(pid) != warm_pid
        assert opened["execution_count"] == 1
        # The warm kernel that could not be handed out is shut down, never left running.
        wait_for(
            lambda: warm_pid not in _client(host, name, "kernel-pids"),
            10,
            "the warm kernel to be shut down",
            interval=0.5,
        )
        assert _client(host, name, "kernel-pids") == [int(pid)]


def test_the_first_click_meets_no_kernel_dialog_and_no_news_pop_up(host, notebook_server):
    name, url = notebook_server
    for page in ("lab", "tree", "notebooks/workshop/python.ipynb"):
        html = host.check_output("python3 -c %s %s", GET_TEXT, url + page)
        config = json.loads(
            re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', html, re.S)[1]
        )
        disabled = config["disabledExtensions"]
        assert disabled == ["@jupyterlab/apputils-extension:announcements"], page
    settings = "lab/api/settings/@jupyterlab/"
    tracker = _client(host, name, "get", settings + "notebook-extension:tracker")
    assert tracker["schema"]["properties"]["autoStartDefaultKernel"]["default"] is True
    news = _client(host, name, "get", settings + "apputils-extension:notification")
    assert news["schema"]["properties"]["fetchNews"]["default"] == "false"
    assert news["schema"]["properties"]["checkForUpdates"]["default"] is False


def test_every_material_notebook_names_its_kernel(host):
    names = _run_in_image(
        host,
        "python3",
        "-c",
        "import json, pathlib; print(json.dumps({str(p): json.loads(p.read_text())['metadata']"
        ".get('kernelspec', {}).get('name') for p in pathlib.Path.home().rglob('*.ipynb')}))",
    )
    kernelspecs = json.loads(names)
    assert kernelspecs, "no material notebook"
    assert set(kernelspecs.values()) <= set(KERNELSPECS.values()), kernelspecs


def test_the_server_boots_without_rfc3987_syntax(host):
    # Its parsers cost about half of a server's boot; jsonschema skips the "iri" format without it.
    check = (
        "import importlib.util, jupyter_events.logger; "
        "assert importlib.util.find_spec('rfc3987_syntax') is None; print('absent')"
    )
    assert _run_in_image(host, "python3", "-c", check) == "absent"
    assert "No broken requirements" in _run_in_image(host, "pip", "check")


def test_a_git_pull_link_pulls_a_repository(host, notebook_server):
    name, _ = notebook_server
    make_repository = (
        "git init --quiet -b main /tmp/course && cp ~/workshop/python.ipynb /tmp/course/ && "
        "git -C /tmp/course add . && "
        "git -C /tmp/course -c user.name=t -c user.email=t@example.org commit --quiet -m course"
    )
    host.check_output("docker exec %s sh -c %s", name, make_repository)
    pull = "git-pull/api?repo=file%3A%2F%2F%2Ftmp%2Fcourse&branch=main&targetpath=course"
    # The event stream of nbgitpuller's page, read to its end.
    read_events = (
        "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=60).read())"
    )
    events = host.check_output(
        "docker exec %s python3 -c %s %s", name, read_events, IN_CONTAINER_URL + pull
    )
    assert '"phase": "finished"' in events, events
    opened = _open(host, name, "course/python.ipynb", "import os; print(os.getcwd(), os.listdir())")
    assert opened["outputs"].split(" ", 1)[0] == "/home/jovyan/course"
    assert "python.ipynb" in opened["outputs"]


EXPORT_FORMATS_DIR = "/opt/notebook/share/jupyter/tmpnb"
COMPUTE_EXPORT_FORMATS = (
    "import json, tmpnb_warm_kernels.export_formats as formats; "
    "print(json.dumps(formats.compute(), sort_keys=True))"
)


def test_the_export_formats_listing_is_the_one_computed_at_build(host, notebook_server):
    name, _ = notebook_server
    built = json.loads(_run_in_image(host, "cat", f"{EXPORT_FORMATS_DIR}/export_formats.json"))
    assert built == json.loads(_run_in_image(host, "python3", "-c", COMPUTE_EXPORT_FORMATS))
    assert {"html", "markdown", "notebook", "python", "script"} <= set(built), built
    assert _client(host, name, "get", "api/nbconvert") == built


def test_the_export_formats_listing_is_served_from_the_image_s_file(host):
    # The file replaced by a marker (an in-memory folder over the image's): the server answers the
    # marker, so it did not compute the listing.
    marker = json.dumps({"tmpnb-marker": {"output_mimetype": "text/x-marker"}})
    command = shlex.quote(
        f"echo {shlex.quote(marker)} > {EXPORT_FORMATS_DIR}/export_formats.json && "
        f"exec {JUPYTER_SERVER}"
    )
    with _server(
        host,
        f"molecule-workshop-formats-{os.getpid()}",
        docker_args=f"--tmpfs {EXPORT_FORMATS_DIR}:uid=1000",
        command=f"sh -c {command}",
    ) as (name, _):
        assert _client(host, name, "get", "api/nbconvert") == json.loads(marker)


def test_without_the_file_the_server_computes_the_export_formats_itself(host):
    with _server(
        host,
        f"molecule-workshop-no-formats-{os.getpid()}",
        docker_args=f"--tmpfs {EXPORT_FORMATS_DIR}",
        command=JUPYTER_SERVER,
    ) as (name, _):
        computed = json.loads(_run_in_image(host, "python3", "-c", COMPUTE_EXPORT_FORMATS))
        assert _client(host, name, "get", "api/nbconvert") == computed
        log = host.check_output("docker logs %s 2>&1", name)
        assert "the export formats are computed per request" in log


# Runs in the container against its own server: for one static file of each kind, what is sent
# with and without gzip accepted, compared with the file and its build-time copy on disk.
GZIP_PROBE = """
import glob, json, sys, urllib.request

base = sys.argv[1]
site = glob.glob("/opt/notebook/lib/python3*/site-packages")[0]
files = {
    "static/notebook/": sorted(glob.glob(site + "/notebook/static/main.*.js"))[0],
    "lab/extensions/": sorted(glob.glob(
        "/opt/notebook/share/jupyter/labextensions/@jupyter-notebook/lab-extension/static/*.js"
    ))[0],
}
report = {"copies": len(glob.glob("/opt/notebook/**/*.js.gz", recursive=True))}
for prefix, path in files.items():
    url = base + prefix + path.split("/static/", 1)[1]
    if prefix == "lab/extensions/":
        url = base + prefix + path.split("/labextensions/", 1)[1]
    answers = {}
    for accept in ("gzip, deflate, br", "identity"):
        request = urllib.request.Request(url, headers={"Accept-Encoding": accept})
        with urllib.request.urlopen(request, timeout=30) as answer:
            answers[accept] = {
                "encoding": answer.headers.get("Content-Encoding"),
                "vary": answer.headers.get("Vary"),
                "etag": answer.headers.get("Etag"),
                "is_copy": answer.read() == open(path + ".gz", "rb").read(),
            }
    with urllib.request.urlopen(urllib.request.Request(url), timeout=30) as answer:
        answers["plain_is_file"] = answer.read() == open(path, "rb").read()
    report[prefix] = answers
# A static handler with route arguments of its own (the kernelspec's name), and one whose answer
# is not its file (the theme's CSS, rewritten): both as a browser asks.
for path in ("kernelspecs/python3/logo-64x64.png",
             "lab/api/themes/@jupyterlab/theme-light-extension/index.css"):
    request = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        report[path] = answer.status
print(json.dumps(report))
"""


def test_static_files_are_sent_from_their_gzip_copies(host, notebook_server):
    name, _ = notebook_server
    report = json.loads(
        host.check_output("docker exec %s python3 -c %s %s", name, GZIP_PROBE, IN_CONTAINER_URL)
    )
    assert report["copies"] > 50, report
    for prefix in ("static/notebook/", "lab/extensions/"):
        gzip_answer, plain = report[prefix]["gzip, deflate, br"], report[prefix]["identity"]
        assert gzip_answer == {
            "encoding": "gzip",
            "vary": "Accept-Encoding",
            "etag": plain["etag"],
            "is_copy": True,
        }, (prefix, report)
        assert plain["encoding"] is None and plain["vary"] == "Accept-Encoding", (prefix, report)
        assert report[prefix]["plain_is_file"], (prefix, report)
    assert report["kernelspecs/python3/logo-64x64.png"] == 200, report
    assert report["lab/api/themes/@jupyterlab/theme-light-extension/index.css"] == 200, report
    log = host.check_output("docker logs %s 2>&1", name)
    assert re.search(r"tmpnb_warm_kernels: [1-9]\d* static handlers send the image's gzip", log)


def test_the_first_page_is_warmed_before_the_server_says_ready(host, notebook_server):
    name, _ = notebook_server
    readiness = _wait_warm(host, name)
    assert readiness["page"] == "warm"
    log = host.check_output("docker logs %s 2>&1", name)
    warmed = re.search(r"tmpnb_warm_kernels: the first page warmed in \d+ ms: (.*)", log)
    assert warmed, log
    # The material's first notebook in sorted order, whichever it is.
    first = _run_in_image(host, "sh", "-c", "ls ~/workshop/*.ipynb | sort | head -1")
    notebook = "workshop/" + first.rsplit("/", 1)[1]
    assert warmed.group(1).split(", ") == [
        "404.html",
        "lab/api/settings",
        "lab/api/translations",
        "lab/api/translations/default",
        f"api/contents/{notebook}",
        f"notebooks/{notebook}",
    ], log
    # Asked with no_track_activity: none of it is the visitor's activity, which the culler reads.
    status = _client(host, name, "get", "api/status")
    assert status["last_activity"] == status["started"]


def _tracker_raw(host, name):
    listing = _client(host, name, "get", "lab/api/settings")["settings"]
    return next(p["raw"] for p in listing if p["id"] == "@jupyterlab/notebook-extension:tracker")


def test_the_settings_listing_is_kept_until_a_setting_is_saved(host, notebook_server):
    name, _ = notebook_server
    _wait_warm(host, name)  # the first page's warm-up asked for the listing: it is kept
    before = _tracker_raw(host, name)
    assert "lineNumbers" not in before
    raw = json.dumps({"codeCellConfig": {"lineNumbers": True}})
    path = "lab/api/settings/@jupyterlab/notebook-extension:tracker"
    assert _client(host, name, "put", path, json.dumps({"raw": raw})) == 204
    assert _tracker_raw(host, name) == raw
    log = host.check_output("docker logs %s 2>&1", name)
    assert re.search(r"tmpnb_warm_kernels: [1-9]\d* settings handlers keep their listing", log)
