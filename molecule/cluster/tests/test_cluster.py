"""The whole service through its front door, as visitors and an operator see it.

Runs against the front door (testinfra's `host`); the nodes are reached by name with testinfra's
docker backend, and HTTP goes from this machine to the front door's address, as a browser would.
The dead-node test pauses one node (`docker pause`: it stops answering but keeps its connections
open, the hardest kind of dead) and unpauses it when done. The last test waits for a real cull
(the scenario's short tmpnb_cull_timeout) and follows a returning visitor to their saved work.
"""

import csv
import functools
import hashlib
import io
import json
import secrets
import subprocess
import time
import tomllib
import uuid
import zipfile

import pytest
import requests
import testinfra
import urllib3
from nbtest import TRANSIENT_OR_ASSERT, NotebookServer
from nbtest import wait_for as _wait_for

NODES = ["molecule-cluster-nb1", "molecule-cluster-nb2"]
# Each node's own python3: nb1 is Debian 12, nb2 Debian 13 (molecule.yml).
NODE_PYTHON = {"molecule-cluster-nb1": "3.11", "molecule-cluster-nb2": "3.13"}
COOKIE = "tmpnb_node"
# The orchestrator's resume key (orchestrator/.../web/visitor.py), sent to /spawn and /saved only.
KEEP_COOKIE = "tmpnb_keep"
# Each node's orchestrator options (roles/tmpnb), read for its cull timings and state_dir.
NODE_CONFIG = "/etc/tmpnb/orchestrator.toml"
SIDECAR = "http://127.0.0.1:9100/api/stats"
# The front door's certificate is the role's self-signed one.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
# Conditions here may assert (testinfra's check_output does): a failed one means "not yet".
wait_for = functools.partial(_wait_for, interval=1.0, retry=TRANSIENT_OR_ASSERT)


def cookie_of(name):
    """The role names each node in the cookie by a hash of its inventory name (not a secret)."""
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]


def node_of_cookie(value):
    return {cookie_of(name): name for name in NODES}[value]


@pytest.fixture(scope="module")
def door_ip(host):
    return host.interface("eth0").addresses[0]


@pytest.fixture(scope="module")
def site(door_ip):
    return f"https://{door_ip}"


@pytest.fixture(scope="module")
def node_hosts():
    return {name: testinfra.get_host(f"docker://{name}") for name in NODES}


def node_stats(node_host):
    """A node's own /api/stats, asked on the node itself."""
    return json.loads(node_host.check_output("curl -sf http://127.0.0.1:8000/api/stats"))


def node_config(node_host):
    return tomllib.loads(node_host.file(NODE_CONFIG).content_string)


def remove_from_nodes(node_hosts, notebooks, keys):
    """Remove these notebooks (by path id; the orchestrator sees them vanish and refills its
    pool), then the work kept under these resume keys, wherever they are."""
    for node in node_hosts.values():
        for path_id in notebooks:
            node.run_expect(
                [0], "docker ps -aq --filter label=tmpnb.path=%s | xargs -r docker rm -f", path_id
            )
        saved = node_config(node)["state_dir"] + "/saved"
        for key in keys:
            work = f"{saved}/{hashlib.sha256(key.encode()).hexdigest()}"
            node.run_expect([0], "rm -rf %s", work)
            assert not node.file(work).exists


def session(cookies=None):
    """A browser of our own: the self-signed certificate accepted, and no proxy or CA bundle from
    the environment (requests would let REQUESTS_CA_BUNDLE override verify=False)."""
    browser = requests.Session()
    browser.trust_env = False
    browser.verify = False
    browser.cookies.update(cookies or {})
    return browser


def site_stats(site):
    response = session().get(site + "/api/stats", timeout=5)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def warm(site):
    """Every node answers and its pool is full (the first visitors find warm notebooks)."""
    return wait_for(
        lambda: (s := site_stats(site))["available"] == 4 and s["capacity"] == 4 and s,
        180,
        "4 free notebooks on the site",
    )


class Visitor:
    """One browser: its cookies, its notebook reached through the front door."""

    def __init__(self, site):
        self.site = site
        self.session = session()

    def spawn(self):
        response = self.session.get(self.site + "/spawn/tree", timeout=30)
        assert response.ok and "/user/" in response.url, (response.status_code, response.url)
        path, _, query = response.url.partition("?")
        self.base = path.rsplit("/", 1)[0]  # https://door/user/<id>
        self.token = dict(part.split("=", 1) for part in query.split("&") if part)["token"]
        self.node = node_of_cookie(self.session.cookies[COOKIE])
        self.kernel = self.api("POST", "kernels", json={"name": "python3"})["id"]
        return self

    @property
    def headers(self):
        return {"Authorization": f"token {self.token}"}

    def api(self, method, path, session=None, **kwargs):
        response = (session or self.session).request(
            method, f"{self.base}/api/{path}", headers=self.headers, timeout=10, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def websocket(self):
        """The kernel's channels, opened as the browser would: with its cookies."""
        return NotebookServer(self.base, self.token, self.session).channels(self.kernel, 60)

    def execute(self, code, connection=None, timeout=60):
        """Run code in the kernel over its websocket; return what it printed."""
        if connection is not None:
            return connection.execute(code, timeout).stdout
        with self.websocket() as own:
            return own.execute(code, timeout).stdout


@pytest.fixture(scope="module")
def visitors(site, warm, node_hosts):
    """New visitors until both nodes hold one: the weights follow the free notebooks, so a
    node that handed one out gets fewer new visitors, and a full one none. When the module is
    done, their notebooks go, and the work kept for them when they were culled."""
    by_node = {}
    landed = []
    for _ in range(4):
        visitor = Visitor(site).spawn()
        landed.append(visitor)
        by_node.setdefault(visitor.node, visitor)
        if len(by_node) == len(NODES):
            break
        time.sleep(3)  # the sidecar polls every second, HAProxy asks it every second
    print(f"\nvisitors landed on: {[visitor.node for visitor in landed]}")
    yield by_node
    remove_from_nodes(
        node_hosts,
        {visitor.base.rsplit("/", 1)[1] for visitor in landed},
        {c.value for visitor in landed for c in visitor.session.cookies if c.name == KEEP_COOKIE},
    )


@pytest.mark.parametrize("unit", ["haproxy.service", "tmpnb-frontdoor.service"])
def test_front_door_units_are_active_and_hardened(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled
    properties = service.systemd_properties
    assert properties["NoNewPrivileges"] == "yes"
    assert properties["ProtectSystem"] == "strict"
    assert properties["ProtectHome"] == "yes"


def test_haproxy_workers_and_sidecar_run_unprivileged(host):
    workers = host.check_output("ps -o user= --ppid $(systemctl show -p MainPID --value haproxy)")
    assert set(workers.split()) == {"haproxy"}
    sidecar_pid = host.service("tmpnb-frontdoor.service").systemd_properties["MainPID"]
    assert host.check_output(f"ps -o user= -p {sidecar_pid}").strip() != "root"


@pytest.mark.parametrize("unit", ["haproxy.service", "tmpnb-frontdoor.service"])
def test_front_door_units_are_sandboxed_by_their_drop_in(host, unit):
    """roles/systemd_hardening's drop-in, with each unit's own differences."""
    properties = host.service(unit).systemd_properties
    assert f"/etc/systemd/system/{unit}.d/hardening.conf" in properties["DropInPaths"].split()
    families = properties["RestrictAddressFamilies"].split()
    if unit == "haproxy.service":
        assert "cap_kill" in properties["CapabilityBoundingSet"].split()
        assert "AF_UNIX" in families
    else:
        # systemctl show leaves out an empty set: no capability at all.
        assert properties.get("CapabilityBoundingSet", "") == ""
        assert sorted(families) == ["AF_INET", "AF_INET6"]


def test_the_sidecar_is_its_own_package_without_docker(host):
    """The front door installs tmpnb-frontdoor and Tornado, not the orchestrator or Docker's SDK."""
    wheels = host.check_output("ls /opt/tmpnb-frontdoor/wheelhouse").split()
    names = {wheel.split("-")[0].lower() for wheel in wheels}
    assert {"tmpnb_frontdoor", "tornado"} <= names, wheels
    assert not names & {"tmpnb_orchestrator", "docker", "prometheus_client", "requests"}, wheels
    python = "/opt/tmpnb-frontdoor/venv/bin/python"
    assert host.run(f"{python} -c 'import docker'").rc == 1
    assert host.run(f"{python} -c 'import orchestrator'").rc == 1


def test_runtime_api_and_stats_only_on_loopback_or_a_socket(host, door_ip):
    # The runtime API answers on its Unix socket, in a folder only root enters.
    runtime = host.file("/run/haproxy")
    assert (runtime.user, runtime.mode) == ("root", 0o750)
    show_info = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
        "s.sendall(b'show info\\n'); print(s.recv(200).decode())"
    )
    assert "Name: HAProxy" in host.check_output("python3 -c %s", show_info)
    for port in (8404, 9100, 9101, 10100):
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
        with pytest.raises(requests.ConnectionError):
            session().get(f"http://{door_ip}:{port}/", timeout=3)


def test_http_redirects_to_https(door_ip):
    response = session().get(f"http://{door_ip}/spawn/tree?x=1", allow_redirects=False, timeout=5)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{door_ip}/spawn/tree?x=1"


@pytest.mark.parametrize("name", NODES)
def test_each_node_runs_the_orchestrator_on_its_own_python(node_hosts, name):
    node, version = node_hosts[name], NODE_PYTHON[name]
    print_version = "import sys; print('%d.%d' % sys.version_info[:2])"
    assert node.check_output("python3 -c %s", print_version) == version
    assert node.check_output("/opt/tmpnb/venv/bin/python -c %s", print_version) == version
    # The service runs that interpreter.
    pid = node.service("tmpnb.service").systemd_properties["MainPID"]
    assert node.check_output("readlink -f /proc/%s/exe", pid).endswith(f"/python{version}")
    # The node got only the wheels built for its Python: each compiled one is of its ABI (cp311 on
    # Debian 12, cp313 on Debian 13) or the stable ABI; the pure ones are for any Python.
    wheels = node.check_output("ls /opt/tmpnb/wheelhouse").split()
    abis = {wheel.split("-")[-2] for wheel in wheels}
    assert "cp" + version.replace(".", "") in abis, wheels
    assert abis <= {"none", "abi3", "cp" + version.replace(".", "")}, wheels


def test_site_stats_add_up_to_the_nodes(site, warm, node_hosts):
    def agree():
        per_node = {name: node_stats(node_hosts[name]) for name in NODES}
        stats = site_stats(site)
        assert stats["available"] == sum(s["available"] for s in per_node.values())
        assert stats["capacity"] == sum(s["capacity"] for s in per_node.values())
        for name in NODES:
            assert stats["nodes"][name]["available"] == per_node[name]["available"]
            assert stats["nodes"][name]["capacity"] == per_node[name]["capacity"]
        return stats

    stats = wait_for(agree, 20, "the site's stats to add up to the nodes'")
    print(f"\nsite stats: {stats}")


def test_visitors_land_in_notebooks_on_both_nodes(visitors):
    assert sorted(visitors) == NODES
    for visitor in visitors.values():
        assert visitor.execute("print(6 * 7)").strip() == "42"


def test_site_stats_count_the_notebooks_handed_out(site, visitors):
    wait_for(
        lambda: site_stats(site)["available"] == 4 - len(visitors),
        20,
        f"the site's stats to count {len(visitors)} notebooks handed out",
    )


def test_one_visitor_stays_on_their_node_for_every_request(visitors, site):
    visitor = visitors[NODES[0]]
    # Every request reaches the notebook's node: on the other one, /user/<id> is unknown (404).
    for _ in range(20):
        assert "started" in visitor.api("GET", "status")
    connection = visitor.websocket()
    try:
        for _ in range(3):
            assert visitor.execute("print(5 * 4)", connection).strip() == "20"
    finally:
        connection.close()
    # A browser without the cookie, or with the other node's, still reaches the notebook: the
    # front door learned the notebook's node from the hand-out.
    other = {COOKIE: cookie_of(NODES[1])}
    for cookies in ({}, other):
        assert "started" in visitor.api("GET", "status", session=session(cookies))


def test_a_reload_keeps_open_websockets(host, visitors):
    visitor = visitors[NODES[1]]
    connection = visitor.websocket()
    try:
        assert visitor.execute("kept = 5 * 4\nprint(kept)", connection).strip() == "20"
        main_pid = host.service("haproxy.service").systemd_properties["MainPID"]
        old_workers = set(host.check_output(f"pgrep -P {main_pid} haproxy").split())
        host.run_expect([0], "systemctl reload haproxy.service")
        # The new worker is serving; the old one still holds this connection.
        wait_for(
            lambda: (
                (now := set(host.check_output(f"pgrep -P {main_pid} haproxy").split()))
                - old_workers
                and now & old_workers
            ),
            30,
            "a new HAProxy worker beside the old one",
        )
        assert host.service("haproxy.service").systemd_properties["MainPID"] == main_pid
        assert visitor.execute("print(kept + 1)", connection).strip() == "21"
    finally:
        connection.close()
    # Its last connection closed, the old worker leaves: one worker serves (and holds the table).
    workers = f"pgrep -c -P {main_pid} haproxy"
    wait_for(lambda: host.check_output(workers).strip() == "1", 30, "the old worker to leave")


@pytest.fixture
def paused_node():
    """The second node stops answering, connections open (docker pause); back when done."""
    name = NODES[1]
    subprocess.run(["docker", "pause", name], check=True)
    paused_at = time.monotonic()
    yield name, paused_at
    subprocess.run(["docker", "unpause", name], check=True)


def probe(site):
    """A new visitor's first request; the node that answered, or None (no answer in time)."""
    try:
        response = session().get(site + "/", timeout=1.5)
    except requests.RequestException:
        return None
    value = response.cookies.get(COOKIE)
    return node_of_cookie(value) if response.ok and value else None


def test_new_visitors_leave_a_dead_node_within_10s(site, visitors, paused_node):
    dead, paused_at = paused_node
    live = NODES[0]
    last_miss = 0.0  # seconds after the pause of the last probe not answered by the live node
    probes = []
    # Probe until 8 s of new visitors in a row all landed on the live node.
    while True:
        started = time.monotonic() - paused_at
        node = probe(site)
        probes.append((round(started, 1), node))
        if node != live:
            last_miss = started
        if started - last_miss >= 8 or started > 40:
            break
        time.sleep(0.25)
    # The first probe sent after the last one that missed (a missed probe waits up to 1.5 s).
    switched = min((t for t, _ in probes if t > round(last_miss, 1)), default=0.0)
    print(
        f"\nnode {dead} paused: the last new visitor sent to it left at {last_miss:.1f} s; "
        f"every one from {switched:.1f} s on landed on {live}; probes: {probes}"
    )
    assert started - last_miss >= 8, "new visitors still reach the dead node"
    assert switched < 10
    # The visitor on the live node kept working all along.
    assert visitors[live].execute("print(5 * 4)").strip() == "20"


# ----- a returning visitor: their work is kept at the cull, on their node -----


def haproxy_states(host):
    """Each node's status in HAProxy (runtime API `show stat`): UP, "DRAIN (agent)" (the
    sidecar's drain: only visitors sent by persistence), DOWN, ..."""
    script = (
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect('/run/haproxy/admin.sock')\n"
        "s.sendall(b'show stat\\n')\n"
        "data = b''\n"
        "while chunk := s.recv(65536):\n"
        "    data += chunk\n"
        "print(data.decode())\n"
    )
    text = host.check_output("python3 -c %s", script).lstrip("# ")
    return {
        row["svname"]: row["status"]
        for row in csv.DictReader(io.StringIO(text))
        if row["pxname"] == "nodes" and row["svname"] in NODES
    }


def notebook_node(node_hosts, path_id):
    """The node whose engine runs the notebook /user/<path_id>, or None."""
    held = [
        name
        for name, node in node_hosts.items()
        if node.check_output("docker ps -q --filter label=tmpnb.path=%s", path_id)
    ]
    assert len(held) <= 1, held
    return held[0] if held else None


def set_cookies(response):
    """The Set-Cookie headers of one answer, each on its own (requests joins them)."""
    return response.raw.headers.getlist("Set-Cookie")


@pytest.fixture
def left_on_nodes(node_hosts):
    """What the test leaves on the nodes (notebooks, resume keys), removed when it ends."""
    made = {"notebooks": set(), "keys": set()}
    yield made
    remove_from_nodes(node_hosts, made["notebooks"], made["keys"])


class Browser:
    """One browser through the front door that follows the workshop link; every notebook it is
    handed and every resume key it is given is noted in `left`, for the clean-up."""

    def __init__(self, site, left, cookies=None):
        self.site, self.left = site, left
        self.session = session(cookies)

    @property
    def node(self):
        return node_of_cookie(self.session.cookies[COOKIE])

    def follow_link(self):
        """GET the workshop link, no redirect followed: the answer, and the notebook's base URL
        and token when it handed one out."""
        answer = self.session.get(self.site + "/spawn/tree", allow_redirects=False, timeout=60)
        self.left["keys"].update(c.value for c in self.session.cookies if c.name == KEEP_COOKIE)
        location = answer.headers.get("Location", "")
        if answer.status_code != 302 or not location.startswith("/user/"):
            return answer, None, None
        path, _, query = location.partition("?")
        path_id = path.split("/")[2]
        self.left["notebooks"].add(path_id)
        token = dict(part.split("=", 1) for part in query.split("&") if part)["token"]
        return answer, f"{self.site}/user/{path_id}", token

    def new_notebook(self):
        answer, base, token = self.follow_link()
        assert answer.status_code == 302 and base, (answer.status_code, answer.text[:300])
        return answer, base, token

    def contents(self, base, token, name=""):
        answer = self.session.get(
            f"{base}/api/contents/{name}", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert answer.status_code == 200, (answer.status_code, answer.text[:300])
        return answer.json()

    def listing(self, base, token):
        return {item["name"] for item in self.contents(base, token)["content"]}

    def welcomed_back(self, name):
        """The workshop link once more: the Welcome back page naming the kept file (200), or
        the assertion says what came instead (a 302 is a fresh notebook on a node without it)."""
        answer, _, _ = self.follow_link()
        assert answer.status_code == 200, (answer.status_code, answer.headers.get("Location"))
        assert "Welcome back" in answer.text and name in answer.text, answer.text[:300]


def path_id_of(base):
    return base.rsplit("/", 1)[1]


def test_a_returning_visitor_reaches_their_work_through_the_front_door(
    host, site, door_ip, node_hosts, left_on_nodes
):
    """A visitor writes a file, leaves, is culled for real, and follows the workshop link again
    through the front door: every time it reaches the node that kept their work, also when that
    node is full, and continuing gives a notebook with the file. Nobody else sees it."""
    configs = {name: node_config(node_hosts[name]) for name in NODES}
    for name, config in configs.items():
        assert config.get("state_dir"), f"{name}: no state_dir, so no work is kept"
        assert config.get("keep_hours", 24) > 0, f"{name}: keeping work is off"
        assert config["cull_timeout"] + config["cull_period"] <= 300, (
            f"{name}: cull_timeout {config['cull_timeout']} s is too long for this test; "
            "molecule.yml sets a short tmpnb_cull_timeout for it"
        )
    # Both nodes take new visitors (the test before paused one): otherwise every request would
    # reach the one up, and the test could not tell persistence from balancing.
    wait_for(lambda: set(haproxy_states(host).values()) == {"UP"}, 120, "every node UP in HAProxy")

    visitor = Browser(site, left_on_nodes)
    answer, base, token = visitor.new_notebook()
    work_node = visitor.node
    other_node = next(name for name in NODES if name != work_node)
    cookies = set_cookies(answer)
    # The node's cookie outlives the browser's session, as the resume key does: a visitor who
    # closed their laptop overnight still knows their node.
    assert any(c.startswith(f"{COOKIE}=") and "Max-Age=" in c for c in cookies), cookies
    for path in ("/spawn", "/saved"):
        assert any(c.startswith(f"{KEEP_COOKIE}=") and f"Path={path}" in c for c in cookies)
    name = f"kept-{uuid.uuid4().hex[:8]}.txt"
    text = f"written on {work_node}, before lunch\n"
    written = visitor.session.put(
        f"{base}/api/contents/{name}",
        headers={"Authorization": f"token {token}"},
        json={"type": "file", "format": "text", "content": text},
        timeout=30,
    )
    assert written.status_code == 201, (written.status_code, written.text[:300])
    assert name in visitor.listing(base, token)
    left_at = time.monotonic()

    # The visitor leaves; the node culls the idle notebook and keeps the file.
    config = configs[work_node]
    status = wait_for(
        lambda: (
            (s := visitor.session.get(site + "/saved/status", timeout=10).json())["saved"] and s
        ),
        config["cull_timeout"] + config["cull_period"] + 120,
        "the visitor's work to be kept at the cull",
        interval=2,
    )
    kept_after = time.monotonic() - left_at
    assert status["files"] == 1, status
    # The notebook itself is gone: its address ends at the orchestrator's page (404).
    wait_for(
        lambda: visitor.session.get(f"{base}/tree", timeout=10).status_code == 404,
        60,
        "the culled notebook to be gone",
    )
    assert notebook_node(node_hosts, path_id_of(base)) is None
    # Each node has every notebook free again (the other tests' visitors were idle longer and
    # were culled too), and both take new visitors: nothing but the cookie holds the visitor.
    wait_for(
        lambda: all((s := node_stats(node_hosts[n]))["available"] == s["capacity"] for n in NODES),
        180,
        "every notebook of both nodes free again",
    )
    wait_for(lambda: set(haproxy_states(host).values()) == {"UP"}, 60, "every node UP in HAProxy")

    # They follow the workshop link again, many times: the Welcome back page of their node every
    # time (balanced, every other request would go to the other node, which keeps nothing for
    # them and would hand out a fresh notebook).
    returns = 8
    for _ in range(returns):
        visitor.welcomed_back(name)
        assert visitor.node == work_node
    download = visitor.session.get(site + "/saved/download", timeout=30)
    assert download.status_code == 200, download.status_code
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert archive.read(name).decode() == text

    # Continue where they left off: a new notebook on the same node, the file in it.
    chosen = visitor.session.post(
        site + "/saved/choose",
        data={"choice": "continue", "next": "/spawn/tree"},
        allow_redirects=False,
        timeout=30,
    )
    assert chosen.status_code == 303, chosen.status_code
    assert chosen.headers["Location"] == "/spawn/tree"
    _, resumed, resumed_token = visitor.new_notebook()
    assert notebook_node(node_hosts, path_id_of(resumed)) == work_node
    assert name in visitor.listing(resumed, resumed_token)
    assert visitor.contents(resumed, resumed_token, name)["content"] == text

    # Someone else whose node it is, with a resume key of their own, gets a fresh notebook
    # there: the key, not the node, opens the work. That fills the node (pool of 2).
    other = Browser(site, left_on_nodes, {COOKIE: cookie_of(work_node)})
    other.session.cookies.set(KEEP_COOKIE, secrets.token_urlsafe(32), domain=door_ip, path="/spawn")
    _, theirs, their_token = other.new_notebook()
    assert notebook_node(node_hosts, path_id_of(theirs)) == work_node
    names = other.listing(theirs, their_token)
    assert "workshop" in names and name not in names, names
    # The sidecar's agent drains a full node: no new visitor goes there, a returning one still does.
    drained = {work_node: "DRAIN (agent)", other_node: "UP"}
    wait_for(lambda: haproxy_states(host) == drained, 30, f"HAProxy states {drained}")
    visitor.welcomed_back(name)
    assert visitor.node == work_node
    # A browser without any cookie gets a fresh notebook, on the node with room.
    stranger = Browser(site, left_on_nodes)
    _, fresh, fresh_token = stranger.new_notebook()
    assert stranger.node == other_node
    names = stranger.listing(fresh, fresh_token)
    assert "workshop" in names and name not in names, names
    print(
        f"\nwork kept on {work_node} {kept_after:.0f} s after the visitor left "
        f"(cull_timeout {config['cull_timeout']:g} s, cull_period {config['cull_period']:g} s); "
        f"{returns + 1} of {returns + 1} returns reached it, the last one with the node full"
    )
