"""Faults of the real parts, injected between them and the orchestrator (fault_relay.py): Docker
unreachable in a burst of spawns, the proxy's API refusing hand-outs, `docker rm` failing on a
culled notebook, with and without a restart of the orchestrator in the middle.

Every check that something did not happen comes after a positive signal (a log line, a count of
requests the relay saw) that the moment it is about has passed.
"""

import signal
import time

import requests
from conftest import (
    docker_upstream,
    log_events,
    no_crash_in_log,
    notebook_status,
    pool_containers,
    pool_routes,
    visit,
)
from nbtest import run_code, wait_for

START = r"/containers/[0-9a-f]+/start$"
LIST = r"/containers/json$"


def _with_docker_relay(stack, fault_relay):
    relay = fault_relay(docker_upstream())
    stack.extra_env["DOCKER_HOST"] = relay.docker_host
    return relay


def _overview(stack) -> dict:
    return stack.admin("GET", "/api/overview").json()["pool"]


def _settled(stack, pool_size: int) -> bool:
    pool = _overview(stack)
    return pool["starting"] == pool["removing"] == 0 and pool["warm"] + pool["in_use"] == pool_size


def _one_more_reconcile(stack, relay) -> None:
    """Wait until the orchestrator has listed the pool twice more through the relay: a whole
    reconcile pass ran after this call (and found whatever it was going to find)."""
    seen = relay.seen("GET", LIST)
    wait_for(lambda: relay.seen("GET", LIST) >= seen + 2, 30, "two more reconcile passes")


def _path_id(base_url: str) -> str:
    return base_url.rstrip("/").rsplit("/", 1)[1]


def _container_of(docker_client, stack, path_id: str):
    (container,) = docker_client.containers.list(
        all=True, filters={"label": [f"tmpnb.pool={stack.pool_name}", f"tmpnb.path={path_id}"]}
    )
    return container


def _exists(docker_client, container_id: str) -> bool:
    return any(c.id == container_id for c in docker_client.containers.list(all=True))


def test_docker_unreachable_in_a_burst_of_spawns_leaks_nothing(
    make_stack, fault_relay, docker_client
):
    pool_size = 4
    stack = make_stack(start=False, pool_size=pool_size, max_dock_workers=4)
    relay = _with_docker_relay(stack, fault_relay)
    # Docker goes away in the burst of creations, for about 10 s: the second `start` is carried
    # out but never answered (a running container the orchestrator does not know), the calls in
    # flight are cut (containers created, never started), the next ones refused.
    relay.down_after("POST", START, 2)
    stack.start(wait_ready=False)
    wait_for(lambda: relay.seen("POST", START) >= 2, 60, "the burst to reach Docker")
    down_at = time.monotonic()
    wait_for(
        lambda: (
            log_events(stack.log_text(), "error", kind="spawn")
            and log_events(stack.log_text(), "error", kind="reconcile_once")
        ),
        30,
        "spawns and a reconcile pass to fail on Docker",
    )
    time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))  # the fault's length, not a check
    relay.pass_through()

    # Back: the pool is full again, and nothing is left over from the failed calls.
    stack.wait_available(pool_size, timeout=240)
    wait_for(lambda: _settled(stack, pool_size), 120, "the pool to settle")
    _one_more_reconcile(stack, relay)
    assert stack.stats()["available"] == pool_size
    containers = pool_containers(docker_client, stack.pool_name)
    routes = pool_routes(stack)
    assert {c.id for c in containers} == {data["tmpnb_container"] for data in routes.values()}, (
        "the pool's containers are exactly the slots the orchestrator knows"
    )
    assert {c.labels["tmpnb.path"] for c in containers} == set(routes)
    assert len(containers) == pool_size and all(c.status == "running" for c in containers)
    no_crash_in_log(stack)


def test_the_proxy_refusing_a_hand_out_gives_a_retry_page_and_keeps_the_pool(
    make_stack, fault_relay, docker_client
):
    stack = make_stack(start=False, pool_size=2)
    relay = fault_relay(stack.proxy.api_url)
    stack.options["proxy_endpoint"] = relay.url
    stack.start()
    warm = {c.id for c in pool_containers(docker_client, stack.pool_name)}
    assert len(warm) == 2

    # The proxy failing (its answer 500, retried until the client's deadline), then refusing our
    # token (403, final at once).
    for status, logged in ((500, "HTTP 500"), (403, "refused the token (HTTP 403)")):
        relay.fail("*", r"^/api/routes", status)
        refused = relay.seen("POST", r"^/api/routes/user/", injected=True)
        answer = requests.get(f"{stack.proxy.url}/spawn/tree", allow_redirects=False, timeout=60)
        assert answer.status_code == 503, answer.text[:300]
        assert int(answer.headers["Retry-After"]) > 0
        assert "Location" not in answer.headers and "trying again" in answer.text
        assert relay.seen("POST", r"^/api/routes/user/", injected=True) > refused
        assert logged in log_events(stack.log_text(), "error", kind="handout_route")[-1]["error"]
        # For a while: reconcile passes fail on it too.
        failed = len(log_events(stack.log_text(), "error", kind="reconcile_once"))
        wait_for(
            lambda failed=failed: (
                len(log_events(stack.log_text(), "error", kind="reconcile_once")) >= failed + 1
            ),
            30,
            "reconcile passes to fail on the proxy",
        )

    relay.pass_through()
    listed = relay.seen("GET", r"^/api/routes$")
    wait_for(lambda: relay.seen("GET", r"^/api/routes$") >= listed + 2, 30, "reconcile passes")
    assert {c.id for c in pool_containers(docker_client, stack.pool_name)} == warm, (
        "a warm container was destroyed by the proxy's failure"
    )
    assert stack.stats()["available"] == 2
    assert not log_events(stack.log_text(), "handed-out")

    base_url, token = visit(stack)  # the next visitor lands in a working notebook
    assert notebook_status(base_url, token) == 200
    assert run_code(base_url, token, "3*3") == "9"
    assert pool_routes(stack)[_path_id(base_url)]["tmpnb_state"] == "handed_out"
    assert {c.id for c in pool_containers(docker_client, stack.pool_name)} == warm
    no_crash_in_log(stack)


def _cull_while_removal_fails(stack, relay, docker_client):
    """Hand a notebook out, let it idle until culled while Docker refuses to remove it; return
    (path id, container) once the removal was refused twice and the route says `removing`."""
    path_id = _path_id(visit(stack)[0])
    container = _container_of(docker_client, stack, path_id)
    relay.fail("DELETE", rf"/containers/{container.id}$", 500)
    wait_for(
        lambda: log_events(stack.log_text(), "culled", path=path_id), 60, "the idle one's cull"
    )
    wait_for(
        lambda: relay.seen("DELETE", rf"/containers/{container.id}$", injected=True) >= 2,
        30,
        "its removal to be refused, then tried again",
    )
    assert pool_routes(stack)[path_id]["tmpnb_state"] == "removing"
    container.reload()
    assert container.status == "running"
    return path_id, container


def test_a_culled_notebook_whose_removal_fails_is_never_handed_out_again(
    make_stack, fault_relay, docker_client
):
    pool_size = 3
    stack = make_stack(start=False, pool_size=pool_size, cull_timeout=5, cull_period=1)
    relay = _with_docker_relay(stack, fault_relay)
    stack.start()

    culled, container = _cull_while_removal_fails(stack, relay, docker_client)
    assert _overview(stack)["removing"] == 1
    # It still holds its seat: the two warm ones go to the next visitors, then the pool is full.
    later = [_path_id(visit(stack)[0]) for _ in range(pool_size - 1)]
    assert culled not in later
    full = requests.get(f"{stack.proxy.url}/spawn/tree", allow_redirects=False, timeout=30)
    assert full.status_code == 429
    assert len(log_events(stack.log_text(), "handed-out", path=culled)) == 1

    # Docker removes it again: the container goes, then its route; the pool refills.
    relay.pass_through()
    wait_for(lambda: not _exists(docker_client, container.id), 90, "the container's removal")
    wait_for(lambda: culled not in pool_routes(stack), 30, "its route to go")
    assert log_events(stack.log_text(), "removed", path=culled, reason="culled")
    stack.wait_available(pool_size, timeout=240)  # the later visitors' idle ones are culled too
    assert len(log_events(stack.log_text(), "handed-out", path=culled)) == 1

    # The same, with the orchestrator stopped while the removal fails.
    culled, container = _cull_while_removal_fails(stack, relay, docker_client)
    assert stack.stop(signal.SIGTERM) == 0
    relay.pass_through()
    assert _exists(docker_client, container.id), "the stop left the container for the next start"
    before_restart = len(stack.log_text())
    stack.start(wait_ready=False)
    wait_for(lambda: not _exists(docker_client, container.id), 60, "the new process's removal")
    wait_for(lambda: culled not in pool_routes(stack), 30, "its route to go")
    stack.wait_available(pool_size, timeout=240)
    restarted_log = stack.log_text()[before_restart:]
    assert log_events(restarted_log, "removed", path=culled)
    for event in ("adopted", "ready", "handed-out"):
        assert not log_events(restarted_log, event, path=culled), f"{event} after the restart"
    assert culled not in pool_routes(stack)
    no_crash_in_log(stack)
