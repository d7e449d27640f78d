"""The workshop's material changes (the image is rebuilt under the same name): warm notebooks are
replaced in the background, the next visitor gets the new material, and a visitor already working
keeps their notebook as it was."""

from __future__ import annotations

import io

import pytest
import requests
from conftest import IMAGE, pool_containers, visit
from nbtest import wait_for


def _material(base_url: str, token: str) -> str:
    response = requests.get(
        f"{base_url}/api/contents/workshop/VERSION",
        params={"content": "1"},
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["content"].strip()


@pytest.fixture
def workshop_image(docker_client, session_id):
    """A workshop image of our own whose material says its version; removed afterwards."""
    tag = f"tmpnb-it{session_id}-refresh:latest"

    def build(version: str) -> str:
        dockerfile = (
            f"FROM {IMAGE}\n"
            f"RUN echo {version} > /opt/workshop-home/workshop/VERSION\n"
            "LABEL tmpnb.test=refresh\n"
        )
        image, _ = docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True
        )
        return image.id

    yield tag, build
    for image in docker_client.images.list(filters={"label": "tmpnb.test=refresh"}):
        if any(t.startswith(f"tmpnb-it{session_id}-") for t in image.tags) or not image.tags:
            docker_client.images.remove(image.id, force=True)


def test_a_rebuilt_image_reaches_the_next_visitor_and_the_working_one_keeps_theirs(
    workshop_image,  # first: it is torn down after the stack's containers are gone
    make_stack,
    docker_client,
):
    tag, build = workshop_image
    first_id = build("v1")
    stack = make_stack(image=tag, pool_size=2)
    working_url, working_token = visit(stack)
    assert _material(working_url, working_token) == "v1"

    second_id = build("v2")  # site.yml rebuilt it overnight with the typo fixed
    assert second_id != first_id

    def warm_ones_run_the_new_image():
        containers = pool_containers(docker_client, stack.pool_name)
        warm = [c for c in containers if c.image.id == second_id and c.status == "running"]
        return len(warm) == 1 and stack.stats()["available"] == 1

    wait_for(warm_ones_run_the_new_image, 180, "the warm notebook to run the rebuilt image")
    assert "reason=new_image" in stack.log_text()
    next_url, next_token = visit(stack)
    assert _material(next_url, next_token) == "v2"
    assert _material(working_url, working_token) == "v1", "the working visitor lost their notebook"
