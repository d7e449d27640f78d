"""Culling: an idle notebook goes and is replaced; one whose kernel is computing stays."""

import time

import requests
from conftest import notebook_status, pool_containers, start_kernel_busy, visit
from nbtest import wait_for


def test_idle_is_culled_and_replaced_but_a_busy_kernel_is_kept(make_stack, docker_client):
    stack = make_stack(pool_size=2, cull_timeout=6, cull_period=1)
    busy_url, busy_token = visit(stack)
    idle_url, idle_token = visit(stack)
    start_kernel_busy(busy_url, busy_token, seconds=600)
    ids_before = {c.id for c in pool_containers(docker_client, stack.pool_name)}

    # The idle one is culled (no traffic for 6 s, no busy kernel) and its seat refilled. Poll the
    # log, not the notebook: a request through the proxy is activity and would keep it alive.
    wait_for(lambda: "event=culled" in stack.log_text(), 90, "the idle notebook to be culled")
    # Being removed, its address answers 503; once gone, the orchestrator's 404: never Jupyter.
    wait_for(lambda: notebook_status(idle_url, idle_token) == 404, 30, "the culled one to be gone")
    assert "event=culled" in stack.log_text() and "reason=idle" in stack.log_text()
    stack.wait_available(1)
    assert len(pool_containers(docker_client, stack.pool_name)) == 2
    assert len({c.id for c in pool_containers(docker_client, stack.pool_name)} & ids_before) == 1

    # The busy one, silent for far longer than cull_timeout, is still there.
    assert notebook_status(busy_url, busy_token) == 200
    assert stack.log_text().count("event=culled") == 1

    # Its visitor, coming back to the culled address, is told and offered a new notebook.
    gone = requests.get(idle_url + "/tree", timeout=10)
    assert gone.status_code == 404 and "/spawn/tree" in gone.text


def test_cull_max_removes_even_a_busy_notebook(make_stack):
    # cull_max counts from the hand-out, not from creation (the pool may be warm for hours), and
    # is at least cull_timeout: the busy kernel keeps the idle rule away, cull_max does not wait.
    stack = make_stack(pool_size=1, cull_timeout=20, cull_max=40, cull_period=1)
    before_hand_out = time.monotonic()
    url, token = visit(stack)
    start_kernel_busy(url, token, seconds=600)
    wait_for(lambda: "reason=max_age" in stack.log_text(), 120, "cull_max to cull it")
    assert time.monotonic() - before_hand_out >= 40, "culled before cull_max after the hand-out"
    wait_for(lambda: notebook_status(url, token) == 404, 30, "the culled notebook to be gone")
    assert "reason=idle" not in stack.log_text()
