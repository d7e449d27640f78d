"""The visitor's HTTP API over a real Pool on the stand-ins (fakes.py): the limits, the waiting
line's one-notebook-per-ticket rule, and answers that never take a notebook by mistake."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from fakes import Faults, World, make_config, settle
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from orchestrator.metrics import Metrics
from orchestrator.web.visitor import WAIT_COOKIE, make_public_app

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Service:
    """The public app on a loopback port, over a pool of stand-ins."""

    def __init__(self, **options) -> None:
        self.world = World(Faults(), config=make_config(**options))
        self.pool = self.world.pool()
        self.app = make_public_app(self.world.config, self.pool, Metrics())
        self.http = AsyncHTTPClient(force_instance=True)

    async def __aenter__(self) -> Service:
        await self.pool.start(periodic=False)
        await settle(self.pool, self.world)
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(self.app)
        self.server.add_sockets(sockets)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.stop()
        await self.pool.stop()
        self.http.close()

    async def get(self, path: str, **kwargs) -> HTTPResponse:
        return await self.http.fetch(
            f"http://127.0.0.1:{self.port}{path}",
            follow_redirects=False,
            raise_error=False,
            **kwargs,
        )

    async def post(self, path: str, body: str = "", **kwargs) -> HTTPResponse:
        return await self.get(path, method="POST", body=body, **kwargs)


def run(coroutine):
    return asyncio.run(coroutine)


def test_two_requests_with_one_ticket_get_one_notebook():
    async def scenario():
        async with Service(pool_size=2) as service:
            taken = [await service.get("/spawn/") for _ in range(2)]  # the room fills up
            assert [response.code for response in taken] == [302, 302]
            busy = await service.get("/spawn/")
            assert busy.code == 429
            cookie = busy.headers["Set-Cookie"].split(";")[0]
            assert cookie.startswith(WAIT_COOKIE)
            # Both leave; fresh notebooks replace theirs, and the waiter is first in line.
            for response in taken:
                path_id = response.headers["Location"].split("/")[2]
                service.pool._begin_removal(service.pool.slots[path_id], "culled")
            await settle(service.pool, service.world)
            assert service.pool.available == 2
            # The busy page's refresh and its "check now" button, at the same moment.
            first, second = await asyncio.gather(
                service.get("/spawn/", headers={"Cookie": cookie}),
                service.get("/spawn/", headers={"Cookie": cookie}),
            )
            handed = [r.headers["Location"] for r in (first, second) if r.code == 302]
            assert handed, "the waiter got nothing"
            assert len({urlsplit(url).path.split("/")[2] for url in handed}) == 1
            assert service.pool.available == 1, "one waiter took two notebooks"
            # A late duplicate of a served ticket goes to the same notebook.
            again = await service.get("/spawn/", headers={"Cookie": cookie})
            assert again.code == 302 and again.headers["Location"] == handed[0]

    run(scenario())


def test_api_spawn_is_held_to_the_per_address_limit():
    async def scenario():
        async with Service(pool_size=3, max_per_address=1) as service:
            first = await service.post("/api/spawn/")
            assert first.code == 200 and json.loads(first.body)["url"].startswith("/user/")
            second = await service.post("/api/spawn/")
            assert second.code == 429
            assert json.loads(second.body)["status"] == "limit"
            assert service.pool.available == 2
            page = await service.get("/spawn/")
            assert page.code == 429 and b"at most" in page.body.lower()

    run(scenario())


def test_a_redirect_uri_with_a_query_keeps_it_and_the_token():
    async def scenario():
        uri = "/git-pull?repo=https%3A%2F%2Fexample.org%2Fw.git&urlpath=lab"
        async with Service(pool_size=1, redirect_uri=uri) as service:
            bare = await service.get("/spawn/")
            assert bare.code == 302
            location = urlsplit(bare.headers["Location"])
            assert location.path.endswith("/git-pull")
            query = location.query.split("&")
            assert query[:2] == ["repo=https%3A%2F%2Fexample.org%2Fw.git", "urlpath=lab"]
            assert query[2].startswith("token=") and len(query) == 3

    run(scenario())


def test_a_proxy_that_refuses_the_hand_out_gets_a_retry_page_and_keeps_the_pool():
    async def scenario():
        async with Service(pool_size=2) as service:
            before = set(service.world.docker.containers)
            service.world.faults.plan["proxy.add_route"] = ["before"]
            refused = await service.get("/spawn/")
            assert refused.code == 503 and refused.headers["Retry-After"] == "2"
            assert set(service.world.docker.containers) == before
            assert service.pool.available == 2
            assert (await service.get("/spawn/")).code == 302

    run(scenario())


@pytest.mark.parametrize("rest", ["api/status", "api/kernels"])
def test_the_orchestrator_never_answers_a_notebook_s_api_as_if_it_were_the_notebook(rest):
    async def scenario():
        async with Service(pool_size=1) as service:
            path_id = next(iter(service.pool.slots))
            live = await service.get(f"/user/{path_id}/{rest}")
            assert live.code == 503
            gone = await service.get(f"/user/nosuchnotebook/{rest}")
            assert gone.code == 404

    run(scenario())


def test_readiness_counts_only_jupyter_s_own_answer():
    """A route lost while a container boots sends the probe to whoever answers the proxy's
    default target; a 200 page that is not Jupyter's /api/status must not count."""
    from tornado import web

    from orchestrator.model import Slot, SlotState
    from orchestrator.probes import NotebookProbe

    class Answer(web.RequestHandler):
        def get(self, path_id: str) -> None:
            if path_id != "orchestrator":
                self.finish({"started": "2026-03-02T09:00:00Z", "last_activity": None})
            else:
                self.finish("<html>Reconnecting to your notebook</html>")

    # A server with warm kernels answers this; one without (here: "jupyter") answers 404.
    warm = {
        "warming": {"ready": False, "kernels": {"python3": {"state": "starting"}}},
        "warm": {"ready": True, "kernels": {"python3": {"state": "ready"}}},
        "failed": {"ready": False, "kernels": {"python3": {"state": "failed", "error": "x"}}},
        # Its kernel failed for good, but the server still warms its first page: wait for that.
        "failed-page-warming": {
            "ready": False,
            "kernels": {"python3": {"state": "failed", "error": "x"}},
            "page": "warming",
        },
        "failed-page-warm": {
            "ready": False,
            "kernels": {"python3": {"state": "failed", "error": "x"}},
            "page": "warm",
        },
        # A stand-in that answers every path with its status (bench/tiny): no extension there.
        "alike": {"started": "2026-03-02T09:00:00Z", "last_activity": None},
    }

    class WarmKernels(web.RequestHandler):
        def get(self, path_id: str) -> None:
            if path_id not in warm:
                raise web.HTTPError(404)
            self.finish(warm[path_id])

    async def scenario():
        sockets = bind_sockets(0, "127.0.0.1")
        routes = [
            (r"/user/([^/]+)/api/status", Answer),
            (r"/user/([^/]+)/api/warm-kernels", WarmKernels),
        ]
        server = HTTPServer(web.Application(routes))
        server.add_sockets(sockets)
        probe = NotebookProbe(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
        cases = (
            ("jupyter", True),
            ("orchestrator", False),
            ("warming", False),  # up, but its kernel is not: not yet ready for a visitor
            ("warm", True),
            ("failed", True),  # a failed warm start gives ordinary starts: usable
            ("failed-page-warming", False),
            ("failed-page-warm", True),
            ("alike", True),
        )
        try:
            for path_id, ready in cases:
                slot = Slot(path_id, SlotState.STARTING, NOW, 0.0, token="t")  # noqa: S106
                assert await probe.ready(slot) is ready
        finally:
            server.stop()

    run(scenario())
