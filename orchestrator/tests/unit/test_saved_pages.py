"""The visitor's side of saved work over the HTTP app, on the stand-ins (fakes.py): the key's
cookie, the "welcome back" page, continue, download, and every way of asking without the key.
The same flow against the real engine and notebooks is tests/integration/test_saved_work.py."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from urllib.parse import urlencode

from test_handlers import Service
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from orchestrator import keep
from orchestrator.web.admin import make_admin_app
from orchestrator.web.visitor import CHOICE_COOKIE, KEEP_COOKIE

NOTEBOOK = b'{"cells": [], "nbformat": 4, "nbformat_minor": 5}'


def run(coroutine):
    return asyncio.run(coroutine)


def cookies_set(response) -> list[str]:
    return response.headers.get_list("Set-Cookie")


def cookie_header(*pairs: tuple[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in pairs)}


async def visit_and_leave(service: Service, files: dict[str, bytes]) -> tuple[str, str]:
    """A visitor gets a notebook, writes `files`, and is culled: (their key, old path id)."""
    response = await service.get("/spawn/notes.ipynb")
    assert response.code == 302
    path_id = response.headers["Location"].split("/")[2]
    key = next(
        header.split(";")[0].split("=", 1)[1]
        for header in cookies_set(response)
        if header.startswith(KEEP_COOKIE + "=")
    )
    slot = service.pool.slots[path_id]
    written = service.world.clock.wall().timestamp() + 5
    home = service.world.docker.containers[slot.container_id].home
    home.update({name: (data, written) for name, data in files.items()})
    service.pool._begin_removal(slot, "culled")
    await asyncio.gather(*service.pool._tasks)
    return key, path_id


def test_the_key_is_sent_only_to_the_services_own_paths(tmp_path):
    async def scenario():
        async with Service(pool_size=1, state_dir=str(tmp_path), keep_hours=1) as service:
            response = await service.get("/spawn/notes.ipynb")
            keys = [h for h in cookies_set(response) if h.startswith(KEEP_COOKIE + "=")]
            assert len(keys) == 2
            paths = set()
            for header in keys:
                attributes = {part.strip().split("=")[0].lower(): part.strip() for part in
                              header.split(";")[1:]}  # fmt: skip
                assert "httponly" in attributes and attributes["samesite"] == "SameSite=Lax"
                paths.add(attributes["path"])
            assert paths == {"Path=/spawn", "Path=/saved"}  # never / nor /user/...
            value = keys[0].split(";")[0].split("=", 1)[1]
            assert keep.valid_key(value)

    run(scenario())


def test_a_returning_visitor_continues_with_their_files_and_a_stranger_sees_none(tmp_path):
    async def scenario():
        async with Service(pool_size=2, state_dir=str(tmp_path), keep_hours=1) as service:
            key, old = await visit_and_leave(service, {"notes.ipynb": NOTEBOOK, "d/r.csv": b"1\n"})
            await service.pool._guarded("reconcile", service.pool.reconcile_once)
            with_key = cookie_header((KEEP_COOKIE, key))

            welcome = await service.get("/spawn/notes.ipynb?x=1", headers=with_key)
            assert welcome.code == 200
            page = welcome.body.decode()
            assert "Welcome back" in page and "d/r.csv" in page and "notes.ipynb" in page
            assert 'name="next" value="/spawn/notes.ipynb?x=1"' in page

            status = await service.get("/saved/status", headers=with_key)
            assert status.code == 200 and b'"saved": true' in status.body

            download = await service.get("/saved/download", headers=with_key)
            assert download.code == 200
            assert download.headers["Content-Type"] == "application/zip"
            with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
                assert archive.read("d/r.csv") == b"1\n"
                assert archive.read("notes.ipynb") == NOTEBOOK

            form = urlencode({"choice": "continue", "next": "/spawn/notes.ipynb?x=1"})
            chosen = await service.post("/saved/choose", form, headers=with_key)
            assert chosen.code == 303 and chosen.headers["Location"] == "/spawn/notes.ipynb?x=1"
            choice = next(h for h in cookies_set(chosen) if h.startswith(CHOICE_COOKIE + "="))
            assert "Path=/spawn" in choice

            headers = cookie_header((KEEP_COOKIE, key), (CHOICE_COOKIE, "continue"))
            back = await service.get("/spawn/notes.ipynb?x=1", headers=headers)
            assert back.code == 302
            new = back.headers["Location"].split("/")[2]
            assert new != old and back.headers["Location"].startswith(
                f"/user/{new}/notes.ipynb?x=1"
            )
            slot = service.pool.slots[new]
            home = service.world.docker.containers[slot.container_id].home
            assert home["d/r.csv"][0] == b"1\n" and home["notes.ipynb"][0] == NOTEBOOK
            assert any(h.startswith(CHOICE_COOKIE + '=""') for h in cookies_set(back))

            stranger = await service.get("/spawn/notes.ipynb")
            assert stranger.code == 302
            other = stranger.headers["Location"].split("/")[2]
            assert (
                service.world.docker.containers[service.pool.slots[other].container_id].home == {}
            )

    run(scenario())


def test_a_visitor_who_made_nothing_is_not_welcomed_back(tmp_path):
    async def scenario():
        async with Service(pool_size=2, state_dir=str(tmp_path), keep_hours=1) as service:
            key, _ = await visit_and_leave(service, {})
            await service.pool._guarded("reconcile", service.pool.reconcile_once)
            again = await service.get("/spawn/", headers=cookie_header((KEEP_COOKIE, key)))
            assert again.code == 302
            assert list(tmp_path.joinpath("saved").iterdir()) == []

    run(scenario())


def test_starting_afresh_keeps_the_saved_work_for_later(tmp_path):
    async def scenario():
        async with Service(pool_size=2, state_dir=str(tmp_path), keep_hours=1) as service:
            key, _ = await visit_and_leave(service, {"a.txt": b"a"})
            await service.pool._guarded("reconcile", service.pool.reconcile_once)
            headers = cookie_header((KEEP_COOKIE, key), (CHOICE_COOKIE, "fresh"))
            fresh = await service.get("/spawn/", headers=headers)
            assert fresh.code == 302
            new = fresh.headers["Location"].split("/")[2]
            assert service.world.docker.containers[service.pool.slots[new].container_id].home == {}
            status = await service.get("/saved/status", headers=cookie_header((KEEP_COOKIE, key)))
            assert b'"saved": true' in status.body

    run(scenario())


def test_without_the_key_nothing_is_found_and_nothing_breaks(tmp_path):
    async def scenario():
        async with Service(pool_size=1, state_dir=str(tmp_path), keep_hours=1) as service:
            key, old = await visit_and_leave(service, {"a.txt": b"a"})
            forged = keep.new_key()
            for headers in ({}, cookie_header((KEEP_COOKIE, forged)),
                            cookie_header((KEEP_COOKIE, "../../etc")),
                            cookie_header((KEEP_COOKIE, keep.key_digest(key)))):  # fmt: skip
                status = await service.get("/saved/status", headers=headers)
                assert status.code == 200 and b'"saved": false' in status.body, headers
                download = await service.get("/saved/download", headers=headers)
                assert download.code == 404 and b"Nothing is saved" in download.body
            # The old address says the notebook is gone; the offer is there for the key's holder
            # (its script asks /saved/status, which the key's cookie path reaches).
            gone = await service.get(f"/user/{old}/notes.ipynb")
            assert gone.code == 404
            assert b'id="saved" hidden' in gone.body and b"/saved/status" in gone.body

    run(scenario())


def test_nonsense_choices_get_a_clear_400(tmp_path):
    async def scenario():
        async with Service(pool_size=1, state_dir=str(tmp_path), keep_hours=1) as service:
            for form, problem in [
                ({"choice": "continue", "next": "https://evil.example/"}, b"next must be"),
                ({"choice": "continue", "next": "//evil.example/spawn"}, b"next must be"),
                ({"choice": "continue", "next": "/spawnx"}, b"next must be"),
                ({"choice": "continue", "next": "/spawn/x\r\nSet-Cookie: a=b"}, b"next must be"),
                ({"choice": "continue", "next": "/spawn/\\evil.example"}, b"next must be"),
                ({"choice": "delete-everything", "next": "/spawn/"}, b"choice must be"),
                ({"next": "/spawn/"}, b"choice must be"),
            ]:
                response = await service.post("/saved/choose", urlencode(form))
                assert response.code == 400 and problem in response.body, form
            forged = await service.post(
                "/saved/choose",
                urlencode({"choice": "continue", "next": "/spawn/"}),
                headers={"Origin": "https://evil.example"},
            )
            assert forged.code == 403 and b"own pages" in forged.body
            assert (await service.get("/saved/elsewhere")).code == 404
            assert (await service.post("/saved/download")).code == 405

    run(scenario())


def test_with_keeping_off_no_key_is_given_and_the_pages_say_nothing_is_saved(tmp_path):
    async def scenario():
        async with Service(pool_size=1, state_dir=str(tmp_path), keep_hours=0) as service:
            response = await service.get("/spawn/")
            assert response.code == 302
            assert not [h for h in cookies_set(response) if h.startswith(KEEP_COOKIE)]
            status = await service.get("/saved/status")
            assert b'"saved": false' in status.body

    run(scenario())


def test_the_admin_page_shows_what_is_kept_and_its_use(tmp_path):
    async def scenario():
        async with Service(pool_size=1, state_dir=str(tmp_path), keep_hours=2) as service:
            # The admin app starts with the service: its timeline counts from then.
            admin = make_admin_app(
                service.world.config, service.pool, service.app.settings["metrics"]
            )
            key, _ = await visit_and_leave(service, {"a.txt": b"abc"})
            download = await service.get(
                "/saved/download", headers=cookie_header((KEEP_COOKIE, key))
            )
            assert download.code == 200
            sockets = bind_sockets(0, "127.0.0.1")
            server = HTTPServer(admin)
            server.add_sockets(sockets)
            port = sockets[0].getsockname()[1]
            try:
                overview = await service.http.fetch(f"http://127.0.0.1:{port}/api/overview")
                body = json.loads(overview.body)["saved_work"]
                assert (body["count"], body["bytes"], body["downloaded_last_hour"]) == (1, 3, 1)
                page = (await service.http.fetch(f"http://127.0.0.1:{port}/admin/")).body.decode()
                assert '<div class="number" id="saved-count"><b>1</b>' in page
                assert "kept 2 h" in page
            finally:
                server.stop()

    run(scenario())
