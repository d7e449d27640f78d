"""The settings listing kept while its inputs are unchanged, with a stand-in for
jupyterlab_server's SettingsHandler that counts its computations (the real one: molecule
workshop_image)."""

import asyncio
import json
import os
from typing import ClassVar

from tmpnb_warm_kernels import settings_cache
from tmpnb_warm_kernels.routes import swap_handlers
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler


class StandInSettingsHandler(RequestHandler):
    """What the cache relies on of jupyterlab_server's handler: its folders, overrides, locale,
    and a get() that finishes with the JSON text."""

    computed: ClassVar[list[str]] = []

    def initialize(self, settings_dir, schemas_dir):
        self.settings_dir, self.schemas_dir = settings_dir, schemas_dir
        self.labextensions_path, self.overrides = [], {}

    def get_current_locale(self):
        return "en"

    def get_current_user(self):
        return "visitor"

    def get(self, schema_name=""):
        self.computed.append(schema_name or self.get_argument("ids_only", "all"))
        names = sorted(os.listdir(self.settings_dir))
        return self.finish(json.dumps({"settings": names, "n": len(self.computed)}))


def serve(tmp_path, *paths):
    """GET each path in turn from a server with the swapped handler; the decoded answers."""
    (tmp_path / "user").mkdir(exist_ok=True)
    (tmp_path / "schemas").mkdir(exist_ok=True)
    app = Application(
        [
            (
                r"/lab/api/settings/?(.*)",
                StandInSettingsHandler,
                {"settings_dir": str(tmp_path / "user"), "schemas_dir": str(tmp_path / "schemas")},
            )
        ]
    )
    assert (
        swap_handlers(
            app, lambda t: issubclass(t, StandInSettingsHandler), settings_cache.handler_class
        )
        == 1
    )

    async def run():
        socket, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([socket])
        client = AsyncHTTPClient(force_instance=True)
        answers = []
        try:
            for path in paths:
                if callable(path):
                    path()  # a change on disk between two requests
                    continue
                answer = await client.fetch(f"http://127.0.0.1:{port}{path}")
                answers.append(json.loads(answer.body))
        finally:
            client.close()
            server.stop()
        return answers

    StandInSettingsHandler.computed = []
    return asyncio.run(run())


def test_the_listing_is_computed_once_while_nothing_changes(tmp_path):
    answers = serve(tmp_path, "/lab/api/settings", "/lab/api/settings", "/lab/api/settings/")
    assert answers == [{"settings": [], "n": 1}] * 3
    assert StandInSettingsHandler.computed == ["all"]


def test_a_saved_setting_or_a_new_schema_folder_computes_it_anew(tmp_path):
    def save():
        (tmp_path / "user" / "plugin.jupyterlab-settings").write_text("{}")

    def install_extension():
        (tmp_path / "schemas" / "@new").mkdir()

    answers = serve(
        tmp_path,
        "/lab/api/settings",
        save,
        "/lab/api/settings",
        install_extension,
        "/lab/api/settings",
        "/lab/api/settings",
    )
    assert [a["n"] for a in answers] == [1, 2, 3, 3]
    assert answers[1]["settings"] == ["plugin.jupyterlab-settings"]


def test_ids_only_and_one_plugin_are_answered_apart(tmp_path):
    answers = serve(
        tmp_path,
        "/lab/api/settings?ids_only=true",
        "/lab/api/settings",
        "/lab/api/settings?ids_only=true",
        "/lab/api/settings/@jupyterlab/x:plugin",
        "/lab/api/settings/@jupyterlab/x:plugin",
    )
    assert StandInSettingsHandler.computed == [
        "true",
        "all",
        "@jupyterlab/x:plugin",
        "@jupyterlab/x:plugin",
    ]
    assert answers[0] == answers[2]


def test_the_fingerprint_sees_a_setting_rewritten_in_place(tmp_path):
    setting = tmp_path / "user" / "a.jupyterlab-settings"
    setting.parent.mkdir()
    setting.write_text('{"theme": "light"}')
    before = settings_cache.fingerprint(tmp_path / "user", [])
    setting.write_text('{"theme": "dark!"}')
    stamp = setting.stat().st_mtime_ns
    os.utime(setting, ns=(stamp + 10**9, stamp + 10**9))
    assert settings_cache.fingerprint(tmp_path / "user", []) != before
