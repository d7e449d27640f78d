"""The visitor's first page load, made once by the server itself before the visitor comes.

A pooled server has one visitor, so what a request costs only the first time in a process (a
schema compiled, a template compiled, a module imported, a cache filled) is always paid after the
click. Measured request by request on a fresh server of the image (bench/page_load.py, the build
machine), the first and the next call of the same request: the notebook's contents 109 → 4 ms of
CPU (nbformat compiles its schema validator on first use), `lab/api/settings` 129 → 89-124 ms,
`lab/api/translations` 34 → 8-14 ms, the error page's template 21 → 2 ms, the notebook's page
13 → 6-8 ms. So, once the server runs, `warm` makes those requests to itself (`paths`), with
`no_track_activity` so that none is the visitor's activity, and compiles the error page's
template. The readiness endpoint says `"page": "warming"` until it is done, and the orchestrator
hands out the server only then. A request that fails is logged and skipped: the visitor then pays
it, as before.
"""

import os
import time
from pathlib import Path
from urllib.parse import quote

WARMING, WARM = "warming", "warm"
SETTINGS_KEY = "tmpnb_first_page"  # in the web app's settings: the state, for the readiness answer
# A material notebook is looked for this deep under the server's root (the workshop's folders).
MAX_DEPTH = 3


def first_notebook(root):
    """The first notebook of the server's root, in sorted order, not hidden; None if none."""
    root = Path(root)
    for directory, subdirectories, names in os.walk(root):
        depth = len(Path(directory).relative_to(root).parts)
        subdirectories[:] = (
            []
            if depth >= MAX_DEPTH
            else sorted(name for name in subdirectories if not name.startswith("."))
        )
        for name in sorted(names):
            if name.endswith(".ipynb") and not name.startswith("."):
                return (Path(directory) / name).relative_to(root).as_posix()
    return None


def paths(notebook):
    """What a Notebook 7 page load asks first, relative to the base URL, as the server is to ask
    it of itself (the notebook's own requests only when there is a notebook)."""
    quiet = "no_track_activity=1"
    found = [
        f"lab/api/settings?{quiet}",
        f"lab/api/translations?{quiet}",
        f"lab/api/translations/default?{quiet}",
    ]
    if notebook is not None:
        escaped = quote(notebook)
        found += [
            f"api/contents/{escaped}?type=notebook&content=1&hash=1&{quiet}",
            f"notebooks/{escaped}",
        ]
    return found


def base_url(serverapp):
    """Where the server answers itself: its own address (loopback for a wildcard), or None when it
    listens on a Unix socket or with TLS, which `warm` does not speak."""
    if serverapp.sock or serverapp.certfile:
        return None
    ip = serverapp.ip
    if ip in ("", "0.0.0.0", "*"):  # noqa: S104 (matching the setting, not binding)
        host = "127.0.0.1"
    elif ip == "::":
        host = "[::1]"
    else:
        host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{serverapp.port}{serverapp.base_url}"


async def warm(serverapp):
    """Make the first page's requests; the settings say WARMING until done, then WARM."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    settings = serverapp.web_app.settings
    settings[SETTINGS_KEY] = WARMING
    began = time.monotonic()
    done, failed = [], []
    try:
        try:
            settings["jinja2_env"].get_template("404.html")
            done.append("404.html")
        except Exception as error:  # a missing template: the visitor's first 404 compiles it
            failed.append(f"404.html ({error})")
        url = base_url(serverapp)
        if url is None:
            failed.append("requests (the server listens on a socket or with TLS)")
            return
        token = serverapp.identity_provider.token
        headers = {"Authorization": f"token {token}"} if token else {}
        client = AsyncHTTPClient(force_instance=True)
        try:
            for path in paths(first_notebook(serverapp.root_dir)):
                try:
                    await client.fetch(url + path, headers=headers, request_timeout=60)
                    done.append(path.split("?", 1)[0])
                except (HTTPClientError, OSError) as error:
                    failed.append(f"{path.split('?', 1)[0]} ({error})")
        finally:
            client.close()
    finally:
        settings[SETTINGS_KEY] = WARM
        serverapp.log.info(
            "tmpnb_warm_kernels: the first page warmed in %.0f ms: %s%s",
            (time.monotonic() - began) * 1000,
            ", ".join(done) or "nothing",
            f"; not warmed: {', '.join(failed)}" if failed else "",
        )
