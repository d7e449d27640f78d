"""Saved work on the real parts: a culled visitor continues where they left off, with the real
engine, proxy and notebook image; a stranger finds no trace; the work goes when its time is up."""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import parse_qs, urlsplit

import requests
from nbtest import run_code, wait_for

from orchestrator import keep

NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "metadata": {}, "source": "my analysis", "id": "c1"}],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}
# Run in the visitor's kernel: a data file, links out of the home (the container's /etc; a guess
# at the host's store, which the container cannot see), a zip bomb (kept as the bytes it is), and
# a file over the cap.
VISITOR_CODE = """
import os, zipfile
open('results.csv', 'w').write('a,b\\n1,2\\n')
os.symlink('/etc', 'etc-link')
os.symlink('/var/lib/tmpnb/saved', 'store-link')
with zipfile.ZipFile('bomb.zip', 'w', zipfile.ZIP_DEFLATED) as bomb:
    bomb.writestr('zeros', b'0' * 50_000_000)
os.makedirs('data', exist_ok=True)
open('data/big.bin', 'wb').write(os.urandom(2 * 1024 * 1024))
5 * 4
"""


def notebook_of(location: str, proxy_url: str) -> tuple[str, str]:
    """(base URL through the proxy, token) from a hand-out's redirect."""
    url = urlsplit(location)
    path_id = url.path.split("/")[2]
    return f"{proxy_url}/user/{path_id}", parse_qs(url.query)["token"][0]


def names_in_home(base_url: str, token: str) -> set[str]:
    listing = requests.get(
        f"{base_url}/api/contents", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert listing.status_code == 200
    return {item["name"] for item in listing.json()["content"]}


def test_a_culled_visitor_continues_where_they_left_off(make_stack, tmp_path):
    state = tmp_path / "state"
    stack = make_stack(
        pool_size=2, cull_timeout=6, cull_period=1, state_dir=str(state), keep_hours=1,
        keep_max_mb=1,
    )  # fmt: skip
    proxy = stack.proxy.url
    visitor = requests.Session()
    first = visitor.get(f"{proxy}/spawn/analysis.ipynb", allow_redirects=False, timeout=30)
    assert first.status_code == 302
    key = visitor.cookies.get("tmpnb_keep", path="/saved")
    assert keep.valid_key(key) and visitor.cookies.get("tmpnb_keep", path="/spawn") == key
    base, token = notebook_of(first.headers["Location"], proxy)
    headers = {"Authorization": f"token {token}"}
    saved_nb = requests.put(
        f"{base}/api/contents/analysis.ipynb",
        headers=headers, json={"type": "notebook", "content": NOTEBOOK}, timeout=30,
    )  # fmt: skip
    assert saved_nb.status_code in (200, 201)
    assert run_code(base, token, VISITOR_CODE) == "20"

    wait_for(lambda: "event=kept" in stack.log_text(), 90, "the culled visitor's work to be kept")
    assert key not in stack.log_text()
    home = state / "saved" / keep.key_digest(key)
    files = home / keep.FILES
    assert sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()) == [
        "analysis.ipynb", "bomb.zip", "results.csv",
    ]  # fmt: skip
    assert (files / "bomb.zip").stat().st_size < 200_000  # kept as sent, never unpacked
    assert not any(path.is_symlink() for path in home.rglob("*"))
    skipped = {
        item["name"]: item["why"] for item in json.loads((home / keep.INDEX).read_text())["skipped"]
    }
    assert skipped == {
        "data/big.bin": "over the size kept per visitor",
        "etc-link": "symbolic links are not kept",
        "store-link": "symbolic links are not kept",
    }

    # Back after lunch: the workshop link again, with the key in the browser.
    stack.wait_available(2)
    welcome = visitor.get(f"{proxy}/spawn/analysis.ipynb", allow_redirects=False, timeout=30)
    assert welcome.status_code == 200 and "Welcome back" in welcome.text
    assert "results.csv" in welcome.text and "data/big.bin" in welcome.text
    download = visitor.get(f"{proxy}/saved/download", timeout=30)
    assert download.status_code == 200
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert archive.read("results.csv") == b"a,b\n1,2\n"
        cell = json.loads(archive.read("analysis.ipynb"))["cells"][0]
        assert "".join(cell["source"]) == "my analysis"  # Jupyter writes it as lines
        assert "data/big.bin" in archive.read("NOT-KEPT.txt").decode()

    chosen = visitor.post(
        f"{proxy}/saved/choose", data={"choice": "continue", "next": "/spawn/analysis.ipynb"},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    assert chosen.status_code == 303
    back = visitor.get(proxy + chosen.headers["Location"], allow_redirects=False, timeout=60)
    assert back.status_code == 302 and "/analysis.ipynb?token=" in back.headers["Location"]
    new_base, new_token = notebook_of(back.headers["Location"], proxy)
    assert new_base != base
    assert {"analysis.ipynb", "results.csv", "bomb.zip"} <= names_in_home(new_base, new_token)
    assert run_code(new_base, new_token, "open('results.csv').read()") == "'a,b\\n1,2\\n'"
    assert "event=resumed" in stack.log_text()

    # Someone else, without the key, gets a notebook with no trace of them.
    stranger = requests.get(f"{proxy}/spawn/", allow_redirects=False, timeout=30)
    assert stranger.status_code == 302
    other_base, other_token = notebook_of(stranger.headers["Location"], proxy)
    assert names_in_home(other_base, other_token).isdisjoint({"analysis.ipynb", "results.csv"})
    nothing = requests.get(f"{proxy}/saved/download", timeout=30)
    assert nothing.status_code == 404


def test_saved_work_is_gone_from_disk_when_its_time_is_up(make_stack, tmp_path):
    state = tmp_path / "state"
    # 0.005 h = 18 s: long enough to see it kept, short enough to see it go.
    stack = make_stack(
        pool_size=1, cull_timeout=4, cull_period=1, state_dir=str(state), keep_hours=0.005
    )
    visitor = requests.Session()
    first = visitor.get(f"{stack.proxy.url}/spawn/", allow_redirects=False, timeout=30)
    base, token = notebook_of(first.headers["Location"], stack.proxy.url)
    assert run_code(base, token, "open('mine.txt', 'w').write('x')") == "1"
    wait_for(lambda: "event=kept" in stack.log_text(), 90, "the work to be kept")
    home = state / "saved" / keep.key_digest(visitor.cookies.get("tmpnb_keep", path="/saved"))
    assert (home / keep.FILES / "mine.txt").read_text() == "x"
    wait_for(lambda: not home.exists(), 60, "the expired work to be removed from disk")
    assert "event=saved-expired" in stack.log_text()
    status = visitor.get(f"{stack.proxy.url}/saved/status", timeout=30)
    assert status.json() == {"saved": False}
