"""Heals itself: kill -9 and restart adopts everything, proxy restarts lose no route, the dead
are removed and replaced, a drained pool refills."""

import signal
import time
from urllib.parse import urlsplit

import requests
from conftest import notebook_status, pool_containers, pool_routes, visit
from nbtest import run_code, wait_for


def test_kill_9_and_restart_adopts_every_container(make_stack, docker_client):
    stack = make_stack(pool_size=2)
    base_url, token = visit(stack)
    before = {c.id for c in pool_containers(docker_client, stack.pool_name)}
    assert len(before) == 2

    stack.stop(signal.SIGKILL)
    assert notebook_status(base_url, token) == 200, (
        "the visitor keeps working while nothing orchestrates"
    )
    stack.start(wait_ready=False)
    stack.wait_available(1)  # the container that was never handed out is checked and offered

    log = stack.log_text()
    assert log.count("event=adopted") == 2
    assert "state=in_use" in log and "state=starting" in log
    assert {c.id for c in pool_containers(docker_client, stack.pool_name)} == before, "no orphan"
    assert stack.stats()["available"] == 1, "the handed-out container is never offered again"
    assert run_code(base_url, token, "2+2") == "4"

    # The one that was never handed out is handed out now, and it is the other container.
    other_url, _ = visit(stack)
    assert other_url != base_url


def _delete_route(stack, path: str) -> None:
    requests.delete(
        f"{stack.proxy.api_url}/api/routes{path}",
        headers={"Authorization": f"token {stack.proxy.token}"},
        timeout=5,
    ).raise_for_status()


def test_a_container_killed_before_its_route_is_offered_again_not_held(make_stack):
    """A process killed between `docker start` and writing the route leaves a container nobody
    was given. While the proxy has kept every route (its marker route is there), the next process
    offers that container instead of holding it as in use until the culler's timeout."""
    stack = make_stack(pool_size=1)
    (path,) = [p for p in stack.proxy.routes() if p.startswith("/user/")]
    assert f"/.tmpnb/routes-kept/{stack.pool_name}" in stack.proxy.routes()
    stack.stop(signal.SIGKILL)
    _delete_route(stack, path)  # as if the kill came before the route was written

    stack.start(wait_ready=False)
    stack.wait_available(1)
    assert "state=starting" in stack.log_text() and "state=in_use" not in stack.log_text()
    assert notebook_status(*visit(stack)) == 200


def test_without_the_marker_a_container_without_a_route_is_held_as_in_use(make_stack):
    """The proxy lost its routes (its marker too) while nothing orchestrated: a container without a
    route may belong to a visitor, so it is never offered to another."""
    stack = make_stack(pool_size=1)
    (path,) = [p for p in stack.proxy.routes() if p.startswith("/user/")]
    stack.stop(signal.SIGKILL)
    _delete_route(stack, path)
    _delete_route(stack, f"/.tmpnb/routes-kept/{stack.pool_name}")

    stack.start(wait_ready=False)
    wait_for(lambda: "event=adopted" in stack.log_text(), 30, "the adoption")
    assert "state=in_use" in stack.log_text()
    # A reconcile pass and a refill look later, it is still nobody else's.
    stack.wait_passes("reconcile_once")
    assert stack.stats()["available"] == 0
    newcomer = requests.get(f"{stack.proxy.url}/spawn/", allow_redirects=False, timeout=10)
    assert newcomer.status_code == 429


def test_sigterm_leaves_containers_for_the_next_start(make_stack, docker_client):
    stack = make_stack(pool_size=1)
    base_url, token = visit(stack)
    assert stack.stop(signal.SIGTERM) == 0
    assert "event=stopping" in stack.log_text()
    assert len(pool_containers(docker_client, stack.pool_name)) == 1
    assert notebook_status(base_url, token) == 200


def test_routes_are_back_within_5_s_after_a_proxy_restart(make_stack):
    stack = make_stack(pool_size=2)
    base_url, token = visit(stack)
    stack.proxy.stop()
    stack.proxy.start()  # an empty routing table
    restarted = time.monotonic()
    wait_for(lambda: notebook_status(base_url, token) == 200, 5, "the visitor's route to come back")
    assert time.monotonic() - restarted <= 5
    # The ready container's route is back too, so it can still be handed out.
    wait_for(
        lambda: len([path for path in stack.proxy.routes() if path.startswith("/user/")]) == 2,
        5,
        "both notebooks' routes",
    )
    assert notebook_status(*visit(stack)) == 200


def test_a_dead_container_is_removed_and_replaced(make_stack, docker_client):
    stack = make_stack(pool_size=1)
    base_url, _ = visit(stack)
    (container,) = pool_containers(docker_client, stack.pool_name)
    container.kill()  # the visitor's notebook died (e.g. out of memory)

    def replaced():
        containers = pool_containers(docker_client, stack.pool_name)
        return [c for c in containers if c.id != container.id] and container.id not in {
            c.id for c in containers
        }

    wait_for(replaced, 30, "the dead container to be removed and replaced")
    stack.wait_available(1)
    assert "reason=dead" in stack.log_text()
    path = urlsplit(base_url).path
    assert path not in stack.proxy.routes(), "no route to a dead container"


def test_drain_replaces_idle_containers_and_keeps_visitors(make_stack, docker_client):
    stack = make_stack(pool_size=2)
    base_url, token = visit(stack)
    idle_before = {c.id for c in pool_containers(docker_client, stack.pool_name)}

    unauthorised = requests.delete(f"http://127.0.0.1:{stack.admin_port}/api/pool", timeout=10)
    assert unauthorised.status_code == 401
    drained = stack.admin("DELETE", "/api/pool")
    assert drained.status_code == 200 and drained.json() == {"drained": 1}

    stack.wait_available(1)
    after = {c.id for c in pool_containers(docker_client, stack.pool_name)}
    assert len(after) == 2 and len(after - idle_before) == 1, "one fresh container, visitor kept"
    assert notebook_status(base_url, token) == 200
    metrics = stack.admin("GET", "/metrics").text
    assert 'tmpnb_removed_total{reason="drained"} 1.0' in metrics


def test_the_orchestrator_never_answers_a_notebooks_readiness_probe_itself(make_stack):
    """If the proxy lost a route, a probe of /user/<id>/api/status reaches the orchestrator (the
    proxy's default target): its answer must not look like a notebook's, or a container that
    does not answer would be taken for ready."""
    stack = make_stack(pool_size=2)
    base_url, _ = visit(stack)
    in_use = base_url.rsplit("/", 1)[1]
    (warm,) = [path for path in pool_routes(stack) if path != in_use]
    for path_id in (in_use, warm):
        answer = requests.get(
            f"http://127.0.0.1:{stack.port}/user/{path_id}/api/status", timeout=10
        )
        assert answer.status_code == 503, answer.text[:300]
        assert answer.headers["Retry-After"] and "started" not in answer.json()
    unknown = requests.get(f"http://127.0.0.1:{stack.port}/user/nosuchnotebook1/api/status",
                           timeout=10)  # fmt: skip
    assert unknown.status_code == 404
    # A page at the same place is the "reconnecting" page, for a person, not for a probe.
    page = requests.get(f"http://127.0.0.1:{stack.port}/user/{in_use}/tree", timeout=10)
    assert page.status_code == 200 and "Reconnecting" in page.text
