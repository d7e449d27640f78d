"""The operator's page on the admin port, against the real service: who gets in, and what it shows.

Two services: one with an admin token (the login form, its cookie, a visitor appearing on the
page), and one without (loopback only).
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest
import requests


def admin_url(stack, path: str = "/admin/") -> str:
    return f"http://127.0.0.1:{stack.admin_port}{path}"


def xsrf_field(page: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert match, "the form has no XSRF field"
    return match.group(1)


def test_the_admin_page_needs_the_token_and_shows_a_visitor(make_stack):
    stack = make_stack(pool_size=2)

    # Nobody gets in without the token: a 403 page with the login form, never a traceback.
    anonymous = requests.get(admin_url(stack, "/"), timeout=10)
    assert anonymous.status_code == 403 and anonymous.url.endswith("/admin/")
    assert "Admin token" in anonymous.text and "Traceback" not in anonymous.text
    wrong = requests.get(admin_url(stack), headers={"Authorization": "token nope"}, timeout=10)
    assert wrong.status_code == 403
    for headers in ({}, {"Authorization": "token nope"}):
        api = requests.get(admin_url(stack, "/api/overview"), headers=headers, timeout=10)
        assert api.status_code == 403 and api.json()["status"] == "error"

    # A visitor takes a notebook; the page shows it with its path and idle time.
    visitor_path = urlsplit(stack.spawn("tree")).path.rsplit("/tree", 1)[0] + "/"
    overview = stack.admin("GET", "/api/overview")
    assert overview.status_code == 200
    data = overview.json()
    assert data["pool"]["in_use"] == 1 and data["pool"]["capacity"] == 2
    (notebook,) = data["notebooks"]
    assert notebook["path"] == visitor_path
    assert 0 <= notebook["idle_seconds"] <= notebook["age_seconds"] + 1 < 120
    assert sum(data["per_minute"]["handed_out"]) == 1

    page = stack.admin("GET", "/admin/")
    assert page.status_code == 200
    assert visitor_path in page.text
    assert '<meta http-equiv="refresh"' in page.text
    unknown = stack.admin("GET", "/admin/nothing-here")
    assert unknown.status_code == 404 and "Traceback" not in unknown.text

    # A browser logs in with the form: wrong token, then no XSRF field, then the right one.
    browser = requests.Session()
    form = browser.get(admin_url(stack), timeout=10)
    refused = browser.post(
        admin_url(stack, "/admin/login"),
        data={"token": "nope", "_xsrf": xsrf_field(form.text)},
        timeout=10,
    )
    assert refused.status_code == 403 and "not the admin token" in refused.text
    forged = browser.post(
        admin_url(stack, "/admin/login"), data={"token": stack.admin_token}, timeout=10
    )
    assert forged.status_code == 403 and "tmpnb-admin" not in browser.cookies
    login = browser.post(
        admin_url(stack, "/admin/login"),
        data={"token": stack.admin_token, "_xsrf": xsrf_field(form.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 302 and login.headers["Location"] == "/admin/"
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert stack.admin_token not in cookie
    signed_in = browser.get(admin_url(stack), timeout=10)
    assert signed_in.status_code == 200 and visitor_path in signed_in.text

    # The cookie is kept to the admin page: the JSON API still wants the header.
    assert browser.get(admin_url(stack, "/api/overview"), timeout=10).status_code == 403

    browser.post(
        admin_url(stack, "/admin/logout"), data={"_xsrf": xsrf_field(signed_in.text)}, timeout=10
    )
    assert browser.get(admin_url(stack), timeout=10).status_code == 403
    assert stack.admin_token not in stack.log_text(), "the admin token reached the log"


def non_loopback_address() -> str | None:
    """An address of this host that is not loopback (the default route's), if there is one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a source
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_without_a_token_the_page_is_for_loopback_only(make_stack):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    stack = make_stack(start=False, pool_size=1, admin_ip="0.0.0.0")  # noqa: S104 (the test's point)
    stack.admin_token = ""  # ADMIN_AUTH_TOKEN empty: no token
    stack.start()

    local = requests.get(admin_url(stack), timeout=10)
    assert local.status_code == 200
    assert "No admin token is set" in local.text

    remote = requests.get(f"http://{address}:{stack.admin_port}/admin/", timeout=10)
    assert remote.status_code == 403
    assert "tmpnb_admin_auth_token" in remote.text and "<form" not in remote.text
    assert "(page and API) answers loopback clients only" in stack.log_text()
