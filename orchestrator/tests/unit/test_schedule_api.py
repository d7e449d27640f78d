"""The admin API's /api/schedule over a real Pool on the stand-ins: book, list, refuse, clear."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from fakes import Faults, World, make_config, settle
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from orchestrator.metrics import Metrics
from orchestrator.web import make_admin_app, make_public_app


class Admin:
    """The admin and public apps on loopback ports, over one pool of stand-ins."""

    def __init__(self, **options) -> None:
        self.world = World(Faults(), config=make_config(**options))
        self.pool = self.world.pool()
        metrics = Metrics()
        self.apps = {
            "admin": make_admin_app(self.world.config, self.pool, metrics),
            "public": make_public_app(self.world.config, self.pool, metrics),
        }
        self.http = AsyncHTTPClient(force_instance=True)

    async def __aenter__(self) -> Admin:
        await self.pool.start(periodic=False)
        await settle(self.pool, self.world)
        self.servers, self.ports = [], {}
        for name, app in self.apps.items():
            sockets = bind_sockets(0, "127.0.0.1")
            self.ports[name] = sockets[0].getsockname()[1]
            server = HTTPServer(app)
            server.add_sockets(sockets)
            self.servers.append(server)
        return self

    async def __aexit__(self, *_: object) -> None:
        for server in self.servers:
            server.stop()
        await self.pool.stop()
        self.http.close()

    async def call(self, method: str, path: str, body=None, app="admin") -> HTTPResponse:
        return await self.http.fetch(
            f"http://127.0.0.1:{self.ports[app]}{path}",
            method=method,
            body=None if body is None else (body if isinstance(body, str) else json.dumps(body)),
            allow_nonstandard_methods=True,
            raise_error=False,
        )


def run(coroutine):
    return asyncio.run(coroutine)


def _booking(admin: Admin, starts_in: timedelta, hours: float, capacity) -> dict:
    start = admin.world.clock.wall() + starts_in
    return {
        "start": start.isoformat(),
        "end": (start + timedelta(hours=hours)).isoformat(),
        "capacity": capacity,
    }


def test_a_workshop_booked_now_grows_the_pool_and_the_stats_say_so(tmp_path):
    async def scenario():
        async with Admin(pool_size=2, mem_limit="512m", state_dir=str(tmp_path)) as admin:
            booked = await admin.call("POST", "/api/schedule", _booking(admin, timedelta(), 2, 5))
            assert booked.code == 201
            listing = json.loads(booked.body)
            assert listing["capacity"] == 5
            assert [item["capacity"] for item in listing["added"]] == [5]
            assert listing["configured"] == []
            await settle(admin.pool, admin.world)
            assert len(admin.pool.slots) == 5
            stats = json.loads((await admin.call("GET", "/api/stats", app="public")).body)
            assert stats["capacity"] == 5
            assert stats["available"] == 5
            assert (tmp_path / "bookings.json").exists()
            cleared = json.loads((await admin.call("DELETE", "/api/schedule")).body)
            assert cleared["capacity"] == 2
            assert cleared["added"] == []

    run(scenario())


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("not json", "the body must be"),
        ({"start": "2026-03-02T10:00Z"}, "the body must be"),
        ({"start": "soon", "end": "2026-03-02T10:00Z", "capacity": 3}, "start 'soon'"),
        ({"start": "2026-03-02T10:00", "end": "2026-03-02T11:00", "capacity": 3}, "time zone"),
        ({"start": "2026-03-02T10:00Z", "end": "2026-03-02T11:00Z", "capacity": 0}, "capacity 0"),
        ({"start": "2026-03-02T10:00Z", "end": "2026-03-02T11:00Z", "capacity": 100}, "GiB"),
    ],
)
def test_a_booking_that_makes_no_sense_gets_a_400_naming_the_problem_and_changes_nothing(
    body, named
):
    async def scenario():
        async with Admin(pool_size=2, mem_limit="1g") as admin:
            refused = await admin.call("POST", "/api/schedule", body)
            assert refused.code == 400
            assert named in refused.body.decode()
            assert admin.pool.bookings.all() == []
            assert admin.pool.capacity == 2

    run(scenario())


def test_the_admin_page_books_a_workshop_lists_it_and_refuses_nonsense_with_a_page():
    async def scenario():
        async with Admin(pool_size=2, mem_limit="512m") as admin:
            page = await admin.call("GET", "/admin/")
            assert page.code == 200
            assert "None: the pool holds pool_size (2)." in page.body.decode()
            cookie = page.headers["Set-Cookie"].split(";")[0]  # _xsrf=...
            xsrf = cookie.split("=", 1)[1]

            async def submit(**fields):
                form = "&".join(f"{k}={v}" for k, v in {"_xsrf": xsrf, **fields}.items())
                return await admin.http.fetch(
                    f"http://127.0.0.1:{admin.ports['admin']}/admin/schedule",
                    method="POST",
                    body=form.replace("+", "%2B"),
                    headers={"Cookie": cookie},
                    follow_redirects=False,
                    raise_error=False,
                )

            item = _booking(admin, timedelta(hours=2), 3, 4)
            booked = await submit(**item)
            assert booked.code == 302
            listed = (await admin.call("GET", "/admin/")).body.decode()
            assert f"<td>{item['start']}</td>" in listed
            assert "here (admin)" in listed
            refused = await submit(start=item["start"], end=item["start"], capacity="4")
            assert refused.code == 400
            assert "is not after start" in refused.body.decode()
            assert len(admin.pool.bookings.all()) == 1
            cleared = await submit(action="clear")
            assert cleared.code == 302
            assert admin.pool.bookings.all() == []

    run(scenario())


def _this_hosts_address() -> str:
    """An address of this machine that is not loopback (the route's source toward elsewhere)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, a route is looked up
        return probe.getsockname()[0]


@pytest.mark.parametrize("path", ["/api/stats", "/api/schedule", "/metrics", "/admin/"])
def test_without_an_admin_token_the_page_and_the_api_answer_loopback_only(path):
    """One rule for the whole admin port: from this host's other address, everything is 403."""

    async def scenario():
        async with Admin(pool_size=1) as admin:
            address = _this_hosts_address()
            assert not address.startswith("127.")
            sockets = bind_sockets(0, address)
            server = HTTPServer(admin.apps["admin"])
            server.add_sockets(sockets)
            try:
                port = sockets[0].getsockname()[1]
                remote = await admin.http.fetch(f"http://{address}:{port}{path}", raise_error=False)
                local = await admin.call("GET", path)
            finally:
                server.stop()
            assert remote.code == 403, remote.body[:200]
            assert local.code == 200

    run(scenario())
