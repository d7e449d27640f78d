"""What the server asks of itself before its visitor: which notebook, which requests, where."""

from types import SimpleNamespace

from tmpnb_warm_kernels import first_page


def test_the_first_notebook_in_sorted_order_not_hidden_not_too_deep(tmp_path):
    assert first_page.first_notebook(tmp_path) is None
    for name in (
        ".hidden/a.ipynb",
        "b/.a.ipynb",
        "a/b/c/d/deep.ipynb",  # deeper than MAX_DEPTH folders
        "workshop/python.ipynb",
        "workshop/notes.md",
        "zeta.ipynb",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert first_page.first_notebook(tmp_path) == "zeta.ipynb"  # the root's own files first
    (tmp_path / "zeta.ipynb").unlink()
    assert first_page.first_notebook(tmp_path) == "workshop/python.ipynb"


def test_every_api_request_is_no_activity_and_the_notebook_is_escaped():
    paths = first_page.paths("work shop/python #1.ipynb")
    assert "api/contents/work%20shop/python%20%231.ipynb?" in paths[3]
    assert paths[4] == "notebooks/work%20shop/python%20%231.ipynb"
    for path in paths:
        if "api/" in path:
            assert path.endswith("no_track_activity=1"), path
    assert [p for p in first_page.paths(None) if "ipynb" in p] == []


def test_the_server_asks_itself_at_its_own_address():
    def server(ip="", sock="", certfile=""):
        return SimpleNamespace(ip=ip, sock=sock, certfile=certfile, port=8888, base_url="/user/x/")

    wildcard = "0.0.0.0"  # noqa: S104 (a setting to read, not a bind)
    assert first_page.base_url(server(wildcard)) == "http://127.0.0.1:8888/user/x/"
    assert first_page.base_url(server("")) == "http://127.0.0.1:8888/user/x/"
    assert first_page.base_url(server("::")) == "http://[::1]:8888/user/x/"
    assert first_page.base_url(server("10.1.2.3")) == "http://10.1.2.3:8888/user/x/"
    assert first_page.base_url(server("fd00::5")) == "http://[fd00::5]:8888/user/x/"
    assert first_page.base_url(server(sock="/run/jupyter.sock")) is None
    assert first_page.base_url(server(wildcard, certfile="/c.pem")) is None
