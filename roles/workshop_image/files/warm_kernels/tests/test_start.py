"""The extension's start hook: a speed-up that fails must not keep the server from being ready."""

import asyncio
import logging
from types import SimpleNamespace

from tmpnb_warm_kernels import (
    _start_jupyter_server_extension,
    first_page,
    precompressed,
    settings_cache,
)


def test_a_failing_handler_swap_still_warms_the_first_page(monkeypatch, caplog):
    warmed, started = [], []

    def broken(web_app):
        raise RuntimeError("a handler this version does not have")

    async def warm(serverapp):
        warmed.append(serverapp)

    monkeypatch.setattr(precompressed, "install", broken)
    monkeypatch.setattr(settings_cache, "install", lambda web_app: 3)
    monkeypatch.setattr(first_page, "warm", warm)
    serverapp = SimpleNamespace(
        web_app=SimpleNamespace(settings={}),
        kernel_manager=SimpleNamespace(start_warm_pool=lambda: started.append(True)),
        log=logging.getLogger("test-start"),
    )

    async def start_and_settle():
        await _start_jupyter_server_extension(serverapp)
        await asyncio.sleep(0)  # the warm-up task's first step

    with caplog.at_level(logging.INFO, logger="test-start"):
        asyncio.run(start_and_settle())
    assert warmed == [serverapp]
    assert started == [True]
    assert (
        "tmpnb_warm_kernels.precompressed failed" in caplog.text and "RuntimeError" in caplog.text
    )
    assert "3 settings handlers keep their listing" in caplog.text
