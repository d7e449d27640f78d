"""The whole service through its front door, as visitors and an operator see it.

Runs against the front door (testinfra's `host`); the nodes are reached by name with testinfra's
docker backend, and HTTP goes from this machine to the front door's address, as a browser would.
The last test pauses one node (`docker pause`: it stops answering but keeps its connections
open, the hardest kind of dead) and unpauses it when done.
"""

import hashlib
import json
import ssl
import subprocess
import time
import uuid

import pytest
import requests
import testinfra
import urllib3
import websocket

NODES = ["molecule-cluster-nb1", "molecule-cluster-nb2"]
# Each node's own python3: nb1 is Debian 12, nb2 Debian 13 (molecule.yml).
NODE_PYTHON = {"molecule-cluster-nb1": "3.11", "molecule-cluster-nb2": "3.13"}
COOKIE = "tmpnb_node"
SIDECAR = "http://127.0.0.1:9100/api/stats"
# The front door's certificate is the role's self-signed one.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def cookie_of(name):
    """The role names each node in the cookie by a hash of its inventory name (not a secret)."""
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]


def node_of_cookie(value):
    return {cookie_of(name): name for name in NODES}[value]


def wait_for(check, timeout=90.0, interval=1.0):
    """Call check() until it returns something true; fail with its last error after timeout s."""
    deadline = time.monotonic() + timeout
    error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, OSError, AssertionError, KeyError) as exc:
            error = exc
        time.sleep(interval)
    pytest.fail(f"not ready after {timeout:.0f}s: {error!r}")


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
        lambda: (s := site_stats(site))["available"] == 4 and s["capacity"] == 4 and s, timeout=180
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
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        return websocket.create_connection(
            self.base.replace("https://", "wss://") + f"/api/kernels/{self.kernel}/channels",
            header={**self.headers, "Cookie": cookies},
            sslopt={"cert_reqs": ssl.CERT_NONE},
            timeout=60,
        )

    def execute(self, code, connection=None, timeout=60):
        """Run code in the kernel over its websocket; return what it printed."""
        own = connection is None
        connection = connection or self.websocket()
        try:
            msg_id = uuid.uuid4().hex
            header = {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                      "msg_type": "execute_request", "version": "5.3"}  # fmt: skip
            message = {"header": header, "parent_header": {}, "metadata": {}, "channel": "shell"}
            message["content"] = {"code": code, "silent": False}
            connection.send(json.dumps(message))
            output = ""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = json.loads(connection.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if message["msg_type"] == "stream":
                    output += message["content"]["text"]
                if message["msg_type"] == "error":
                    pytest.fail(f"the kernel raised: {message['content']['ename']}")
                if (
                    message["msg_type"] == "status"
                    and message["content"]["execution_state"] == "idle"
                ):
                    return output
            pytest.fail("the kernel did not finish in time")
        finally:
            if own:
                connection.close()


@pytest.fixture(scope="module")
def visitors(site, warm):
    """New visitors until both nodes hold one: the weights follow the free notebooks, so a
    node that handed one out gets fewer new visitors, and a full one none."""
    by_node = {}
    landed = []
    for _ in range(4):
        visitor = Visitor(site).spawn()
        landed.append(visitor.node)
        by_node.setdefault(visitor.node, visitor)
        if len(by_node) == len(NODES):
            break
        time.sleep(3)  # the sidecar polls every second, HAProxy asks it every second
    print(f"\nvisitors landed on: {landed}")
    return by_node


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

    stats = wait_for(agree, timeout=20)
    print(f"\nsite stats: {stats}")


def test_visitors_land_in_notebooks_on_both_nodes(visitors):
    assert sorted(visitors) == NODES
    for visitor in visitors.values():
        assert visitor.execute("print(6 * 7)").strip() == "42"


def test_site_stats_count_the_notebooks_handed_out(site, visitors):
    wait_for(lambda: site_stats(site)["available"] == 4 - len(visitors), timeout=20)


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
        host.run_expect([0], "systemctl reload haproxy.service")
        time.sleep(2)  # the new worker is serving; the old one still holds this connection
        assert host.service("haproxy.service").systemd_properties["MainPID"] == main_pid
        assert visitor.execute("print(kept + 1)", connection).strip() == "21"
    finally:
        connection.close()
    # Its last connection closed, the old worker leaves: one worker serves (and holds the table).
    workers = f"pgrep -c -P {main_pid} haproxy"
    wait_for(lambda: host.check_output(workers).strip() == "1", timeout=30)


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
