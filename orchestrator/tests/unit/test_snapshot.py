"""Pool.snapshot(), what the admin page and /api/overview read, over a real Pool on the stand-ins
(fakes.py): the counts, each notebook's idle time as the culler measures it, the waiting count it
is given, and whether the proxy answered."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from fakes import Faults, World, make_config, settle
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from orchestrator.decisions import cull_in, usage_of
from orchestrator.metrics import Metrics
from orchestrator.web import make_admin_app, make_public_app, waiting_line


def test_the_snapshot_shows_the_culler_s_idle_time_the_waiting_line_and_the_proxy():
    async def scenario():
        world = World(Faults(), config=make_config(pool_size=3, cull_timeout=600, cull_period=60))
        pool = world.pool()
        await pool.start(periodic=False)
        await settle(pool, world)
        slot = await pool.hand_out("192.0.2.1")
        world.clock.advance(120)

        snapshot = await pool.snapshot(waiting=4)
        assert snapshot.waiting == 4
        assert snapshot.proxy_answered
        assert snapshot.time == world.clock.wall()
        counts = snapshot.counts
        assert (counts.in_use, counts.warm, counts.capacity) == (1, 2, 3)
        assert counts == pool.counts()
        (row,) = snapshot.notebooks
        assert row.path_id == slot.path_id
        usage, now = usage_of(pool.slots[slot.path_id]), world.clock.mono()
        assert row.idle == timedelta(seconds=usage.idle(now)) == timedelta(seconds=120)
        config = pool.config
        left = cull_in(usage, now, config.cull_timeout, config.cull_max)
        assert row.cull_in == timedelta(seconds=left) == timedelta(seconds=480)
        assert snapshot.bookings.capacity == 3 and snapshot.bookings.added == ()

        world.faults.plan["proxy.check"] = ["before"]
        down = await pool.snapshot(waiting=0)
        assert not down.proxy_answered  # still a snapshot: what is known, and that it is down
        assert down.counts == counts and down.notebooks[0].path_id == slot.path_id
        await pool.stop()

    asyncio.run(scenario())


def test_the_admin_page_counts_the_visitors_own_waiting_line():
    """The public and admin apps share one line; /api/overview counts it, not a copy of it."""

    async def scenario():
        world = World(Faults(), config=make_config(pool_size=1))
        pool = world.pool()
        await pool.start(periodic=False)
        await settle(pool, world)
        line = waiting_line(world.config)
        public = make_public_app(world.config, pool, Metrics(), line)
        admin = make_admin_app(world.config, pool, Metrics(), line)
        assert public.settings["waiting_line"] is admin.settings["waiting_line"] is line
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(admin)
        server.add_sockets(sockets)
        http = AsyncHTTPClient(force_instance=True)
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/api/overview"
        try:
            line.join("ticket-1", "192.0.2.1", time.monotonic())
            line.join("ticket-2", "192.0.2.2", time.monotonic())
            overview = json.loads((await http.fetch(url)).body)
            assert overview["pool"]["waiting"] == 2
        finally:
            server.stop()
            http.close()
            await pool.stop()

    asyncio.run(scenario())
