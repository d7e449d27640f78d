"""Browser tests of the visitor's experience: headless Chromium against the real service.

One service for the whole module (configurable-http-proxy, the orchestrator with a pool of 2, the
notebook image on a test network), started with the same code as the orchestrator's integration
tests. Everything carries this session's id: the pool `e2e<id>`, the network `tmpnb-e2e<id>`;
teardown removes exactly those. Each test saves a screenshot under .run/screenshots/.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
# The service's starting code is shared with the integration tests rather than copied, and
# nbtest.py (waiting, running code in a kernel) with every suite.
sys.path[:0] = [str(REPO / "orchestrator" / "tests"), str(REPO / "tests" / "support")]
from live_stack import (  # noqa: E402
    Stack,
    isolated_network,
    open_docker_client,
    remove_pool_containers,
)
from notebook_page import DESKTOP, build_no_netlink, start_chromium  # noqa: E402

SCREENSHOTS = REPO / ".run" / "screenshots"
# A notebook server boots in seconds, but `make test` runs other suites on the same 2 cores.
PAGE_TIMEOUT = 90
# Short enough that the busy page frees up within the test, long enough that a notebook a
# browser is using (its tab polls the server) is never idle that long.
CULL_TIMEOUT = 20
# The operator's theme, as the tmpnb_* role variables would set it; the markup in the title
# must show as text.
THEME = {
    "title": "Intro to <Python>",
    "workshop_name": "Software Carpentry, Oslo",
    "message": "Notebooks close after a while without activity: download what you want to keep.",
    "links": "Workshop notes|https://example.org/notes,Code of conduct|/coc",
}
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    '<circle cx="32" cy="32" r="30" fill="#2a7ab0"/>'
    '<text x="32" y="41" font-size="24" text-anchor="middle" fill="#fff" '
    'font-family="sans-serif">SC</text></svg>'
)
PHONE = (390, 844)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = open_docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def service(tmp_path_factory, docker_client) -> Iterator[Stack]:
    """The running service, its pool of 2 ready; removed with everything it started."""
    session_id = secrets.token_hex(3)
    workdir = tmp_path_factory.mktemp("service")
    logo = workdir / "logo.svg"
    logo.write_text(LOGO_SVG)
    with isolated_network(
        docker_client, f"tmpnb-e2e{session_id}", {"tmpnb.test": session_id}
    ) as network:
        stack = Stack(
            workdir,
            f"e2e{session_id}",
            network,
            {
                "pool_size": 2,
                "cull_period": 2,
                "cull_timeout": CULL_TIMEOUT,
                "logo": str(logo),
                "state_dir": str(workdir / "state"),  # visitors' work is kept there
                **THEME,
            },
        )
        try:
            stack.proxy.start()
            stack.start()
            yield stack
        finally:
            stack.stop()
            stack.proxy.stop()
            remove_pool_containers(docker_client, stack.pool_name)


@pytest.fixture(scope="session")
def no_netlink(tmp_path_factory) -> Path:
    """The shim that keeps Docker's interface churn from aborting Chromium's requests, built once
    per session (tests/support/no_netlink.c)."""
    return build_no_netlink(tmp_path_factory.mktemp("shim"))


@pytest.fixture
def browser(no_netlink) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium per test: no cookie of one notebook leaks into the next test."""
    driver = start_chromium(no_netlink, page_timeout=PAGE_TIMEOUT, window=DESKTOP)
    yield driver
    driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, save what the browser showed: the page says more than the traceback."""
    report = yield
    driver = item.funcargs.get("browser") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and driver is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{item.name}-FAILED.png"))
    return report


@pytest.fixture
def screenshot(browser, request) -> Callable[[str], Path]:
    """`screenshot("busy")` saves .run/screenshots/<test>-busy.png for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(label: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{label}.png"
        assert browser.save_screenshot(str(path)), f"could not save {path}"
        return path

    return save


def wait_until(browser: webdriver.Chrome, condition: Callable, what: str, timeout=PAGE_TIMEOUT):
    """WebDriverWait with a message that names what did not happen, and where the browser is."""
    try:
        # A page that re-renders while it loads replaces the elements a condition just found.
        return WebDriverWait(
            browser,
            timeout,
            poll_frequency=0.5,
            ignored_exceptions=[StaleElementReferenceException],
        ).until(condition)
    except TimeoutException as error:
        pytest.fail(f"{what}: not seen within {timeout}s (at {browser.current_url}): {error!r}")
