"""A workshop booked at run time grows a real pool before it starts, and the pool shrinks back
when the booking goes, never touching a notebook in use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import pool_containers, visit
from nbtest import wait_for


def test_a_booking_grows_the_pool_before_the_start_and_its_removal_shrinks_it(
    make_stack, docker_client
):
    stack = make_stack(pool_size=2)
    in_use_url, _ = visit(stack)  # a visitor already working, through all of it
    stack.wait_available(1)  # pool_size 2: the visitor's, and one warm
    start = datetime.now(UTC) + timedelta(seconds=60)
    booked = stack.admin(
        "POST",
        "/api/schedule",
        json={
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "capacity": 4,
        },
    )
    assert booked.status_code == 201 and booked.json()["capacity"] == 4
    # Within its lead time (a full refill, measured, with room to spare), so it grows now.
    stack.wait_available(3, timeout=55)
    assert datetime.now(UTC) < start, "the pool was not ready before the workshop's start"
    assert stack.stats()["capacity"] == 4
    assert len(pool_containers(docker_client, stack.pool_name)) == 4

    removed = stack.admin("DELETE", "/api/schedule")
    assert removed.status_code == 200 and removed.json()["capacity"] == 2
    # Back to pool_size: the visitor's notebook stays, two of the three warm ones go.
    wait_for(
        lambda: len(pool_containers(docker_client, stack.pool_name)) == 2,
        60,
        "the surplus warm notebooks to be removed",
    )
    names = {c.labels["tmpnb.path"] for c in pool_containers(docker_client, stack.pool_name)}
    assert in_use_url.rsplit("/", 1)[1] in names
    assert stack.stats()["available"] == 1
    assert "event=capacity" in stack.log_text() and "reason=surplus" in stack.log_text()
