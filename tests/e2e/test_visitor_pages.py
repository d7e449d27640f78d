"""What a workshop participant sees, in a real browser, from the link to a cell's output.

The tests share one service and run in file order: the crawler's visit needs the pool full and
idle, and the busy page needs every notebook taken, so it comes last.
"""

from __future__ import annotations

import requests
from conftest import PAGE_TIMEOUT, PHONE, THEME, wait_until
from live_stack import visit
from notebook_page import (
    DESKTOP,
    KERNEL_IDLE,
    OutputOfFirstCell,
    TypedIntoFirstCell,
    kernel_idle,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen

NOTEBOOK_UI = (By.CSS_SELECTOR, "#main-panel, .jp-LabShell")


def test_a_crawler_fetching_the_link_takes_no_notebook(service, browser, screenshot):
    service.wait_available(2)

    page = requests.get(f"{service.proxy.url}/", timeout=30)
    assert page.ok
    assert "/spawn" in page.text  # the link is in the page, for the script or a click
    # What a link preview renders: the page with scripts off.
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.get(f"{service.proxy.url}/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Starting your notebook"
    assert (
        browser.find_element(By.LINK_TEXT, "Continue").get_attribute("href").endswith("/spawn/tree")
    )
    screenshot("without-script")
    browser.set_window_size(*PHONE)
    screenshot("loading-phone")

    service.wait_passes("reconcile_once")  # a hand-out would show by then
    assert service.stats()["available"] == 2
    robots = requests.get(f"{service.proxy.url}/robots.txt", timeout=30).text
    assert "Disallow: /spawn" in robots and "Disallow: /user" in robots


def test_the_pages_carry_the_workshop_theme(service, browser, screenshot):
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.get(f"{service.proxy.url}/")
    assert browser.title == f"Starting your notebook · {THEME['title']}"  # markup shown as text
    header = browser.find_element(By.CSS_SELECTOR, "header.brand")
    assert THEME["title"] in header.text and THEME["workshop_name"] in header.text
    logo = header.find_element(By.TAG_NAME, "img")
    assert browser.execute_script("return arguments[0].naturalWidth", logo) > 0, "logo not shown"
    notes = browser.find_element(By.CSS_SELECTOR, "aside.notes")
    assert THEME["message"] in notes.text
    links = [(a.text, a.get_attribute("href")) for a in notes.find_elements(By.TAG_NAME, "a")]
    assert links == [
        ("Workshop notes", "https://example.org/notes"),
        ("Code of conduct", f"{service.proxy.url}/coc"),
    ]
    # Every page carries it, the error pages too; none shows a traceback.
    browser.get(f"{service.proxy.url}/no/such/page")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Page not found"
    assert THEME["workshop_name"] in browser.find_element(By.CSS_SELECTOR, "header").text
    assert "Traceback" not in browser.page_source
    screenshot("not-found")
    assert service.stats()["available"] == 2


def test_the_workshop_link_opens_a_notebook_that_runs_code(service, browser, screenshot):
    browser.get(f"{service.proxy.url}/")
    wait_until(browser, seen.url_contains("/tree"), "the notebook's file browser")
    wait_until(
        browser,
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".jp-DirListing"), "workshop"),
        "the workshop material in the file browser",
    )
    screenshot("tree")

    base = browser.current_url.split("/tree", 1)[0]
    browser.get(f"{base}/notebooks/workshop/python.ipynb")
    # Typing before the notebook has rendered and its kernel started would type into a cell
    # that is about to be replaced.
    wait_until(browser, kernel_idle, "the notebook's kernel", timeout=PAGE_TIMEOUT * 2)
    wait_until(browser, TypedIntoFirstCell("5*4"), "the first cell to take the code")
    wait_until(browser, OutputOfFirstCell("20"), "the cell's output 20")
    screenshot("cell-output")


def no_dialog(browser) -> None:
    """Fail at once when the page asks the visitor anything (a kernel to pick, news to allow)."""
    for dialog in browser.find_elements(By.CSS_SELECTOR, ".jp-Dialog, .Toastify__toast"):
        raise AssertionError(f"the visitor was asked: {dialog.text!r}")


def test_the_deep_link_runs_its_first_cell_without_any_dialog(service, browser, screenshot):
    """The notebook names its kernel: Notebook 7 starts it (a warm one) without asking."""
    service.wait_available(1)
    browser.get(f"{service.proxy.url}/spawn/notebooks/workshop/python.ipynb")

    def idle_without_asking(browser) -> bool:
        no_dialog(browser)
        return bool(browser.find_elements(By.CSS_SELECTOR, KERNEL_IDLE))

    wait_until(browser, idle_without_asking, "the kernel, idle, with no dialog on the way")
    wait_until(browser, TypedIntoFirstCell("5*4"), "the first cell to take the code")
    output = OutputOfFirstCell("20")
    wait_until(browser, lambda b: no_dialog(b) or output(b), "the cell's output 20, no dialog")
    screenshot("no-dialog")


def test_the_lab_link_opens_jupyterlab(service, browser, screenshot):
    browser.get(f"{service.proxy.url}/spawn/lab")
    wait_until(browser, seen.url_contains("/lab"), "the JupyterLab URL")
    wait_until(
        browser,
        seen.visibility_of_element_located((By.CSS_SELECTOR, ".jp-LabShell .jp-DirListing")),
        "JupyterLab's file browser",
    )
    wait_until(
        browser,
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".jp-DirListing"), "workshop"),
        "the workshop material in JupyterLab",
    )
    # No news question: the image's settings turn it off (asked of Lab itself, not inferred from
    # a pop-up's absence), and nothing is asking now that the file browser is up.
    news = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(location.pathname.split('/lab')[0] +"
        " '/lab/api/settings/@jupyterlab/apputils-extension:notification')"
        ".then((answer) => answer.json()).then(done)"
        ".catch((error) => done({error: String(error)}));"
    )
    # The image's overrides set the default; the visitor has no setting of their own.
    assert news["schema"]["properties"]["fetchNews"]["default"] == "false", news
    assert news["settings"].get("fetchNews", "false") == "false", news
    no_dialog(browser)
    screenshot("lab")


def test_a_notebook_that_is_gone_offers_a_new_one(service, browser, screenshot):
    browser.get(f"{service.proxy.url}/user/nosuchnotebook/notebooks/workshop/python.ipynb")
    assert browser.find_element(By.TAG_NAME, "h1").text == "This notebook is no longer here"
    button = browser.find_element(By.LINK_TEXT, "Get a new notebook")
    # The new notebook opens where the old link pointed.
    assert button.get_attribute("href") == (
        f"{service.proxy.url}/spawn/notebooks/workshop/python.ipynb"
    )
    screenshot("gone")


def test_a_returning_visitor_continues_with_their_saved_file(
    service, browser, docker_client, screenshot
):
    service.wait_available(1)  # earlier tests' notebooks may still hold the seats
    browser.get(f"{service.proxy.url}/spawn/tree")
    wait_until(browser, seen.url_contains("/user/"), "a notebook")
    old_url = browser.current_url.split("?", 1)[0]
    path_id = old_url.split("/user/", 1)[1].split("/", 1)[0]
    (container,) = docker_client.containers.list(filters={"label": f"tmpnb.path={path_id}"})
    token = next(
        item.split("=", 1)[1]
        for item in container.attrs["Config"]["Env"]
        if item.startswith("JUPYTER_TOKEN=")
    )
    written = requests.put(
        f"{service.proxy.url}/user/{path_id}/api/contents/kept-by-browser.txt",
        headers={"Authorization": f"token {token}"},
        json={"type": "file", "format": "text", "content": "still here"},
        timeout=30,
    )
    assert written.status_code == 201
    browser.get("about:blank")  # the visitor leaves; idle, the notebook is culled and kept

    def kept(_) -> bool:  # this notebook's (earlier tests' notebooks are culled and kept too)
        lines = service.log_text().splitlines()
        return any("event=kept" in line and f"path={path_id} " in line for line in lines)

    wait_until(browser, kept, "the culled notebook's work to be kept", timeout=PAGE_TIMEOUT)

    # Back at the old address: the gone page offers this browser its work.
    service.wait_available(1)
    browser.get(old_url)
    button = wait_until(
        browser,
        seen.element_to_be_clickable((By.XPATH, "//button[.='Continue where you left off']")),
        "the gone page's offer to continue",
    )
    assert browser.find_element(By.LINK_TEXT, "Download my work").is_displayed()
    screenshot("gone-with-saved-work")
    button.click()
    # The gone page is at the old address, which holds "/user/" too: wait for the address to
    # change, then say where it went.
    wait_until(browser, lambda b: not b.current_url.startswith(old_url), "leaving the gone page")
    wait_until(browser, seen.url_contains("/user/"), "a new notebook")
    assert f"/user/{path_id}/" not in browser.current_url
    listed = seen.text_to_be_present_in_element(
        (By.CSS_SELECTOR, ".jp-DirListing"), "kept-by-browser"
    )

    def saved_file_listed(browser) -> bool:
        failed = [line for line in service.log_text().splitlines() if "kind=restore" in line]
        assert not failed, f"the restore failed: {failed}"  # say why at once, not after a wait
        return bool(listed(browser))

    wait_until(browser, saved_file_listed, "the saved file in the new notebook")
    screenshot("continued")


def take_every_notebook(service) -> list[tuple[str, str]]:
    """Take the ready notebooks, as a room of participants would, and return each one's base URL
    and token. Only ready ones are asked for: a request that found none would join the line."""
    # Earlier tests' notebooks hold seats until the culler frees them: start from a full pool.
    service.wait_available(2)
    taken = []
    while service.stats()["available"] > 0:
        taken.append(visit(service))
        assert len(taken) <= 2, "the pool of 2 never ran out"
    return taken


def test_the_busy_page_keeps_the_place_and_turns_into_a_notebook(service, browser, screenshot):
    # One notebook is kept in use (below), so the culler frees exactly one: the one the waiter is
    # owed. Were both freed at once, the newcomer, second in line, would rightly get the other.
    kept, *_ = take_every_notebook(service)
    browser.get(f"{service.proxy.url}/")
    wait_until(
        browser,
        seen.text_to_be_present_in_element((By.TAG_NAME, "h1"), "All notebooks are busy"),
        "the busy page",
    )
    assert browser.find_element(By.CSS_SELECTOR, ".place").text == "1"
    screenshot("busy")
    browser.set_window_size(*PHONE)
    screenshot("busy-phone")
    browser.set_window_size(*DESKTOP)

    # Someone arrives after the browser and keeps asking, far more often than the busy page
    # does; the notebook that frees up is still the browser's, who waited longer.
    newcomer = requests.Session()
    spawn_url = f"{service.proxy.url}/spawn/tree"
    assert newcomer.get(spawn_url, allow_redirects=False, timeout=30).status_code == 429

    def served_before_the_newcomer(browser) -> bool:
        base_url, token = kept  # activity on it, so the culler leaves it
        requests.get(f"{base_url}/api/contents", headers={"Authorization": f"token {token}"},
                     timeout=10).raise_for_status()  # fmt: skip
        answer = newcomer.get(spawn_url, allow_redirects=False, timeout=30)
        assert answer.status_code == 429, "the newcomer took the notebook the waiter was owed"
        return bool(browser.find_elements(*NOTEBOOK_UI))

    wait_until(
        browser,
        served_before_the_newcomer,
        "a notebook after the busy page",
        timeout=PAGE_TIMEOUT * 2,  # the cull timeout, then a fresh container's start
    )
    assert "/user/" in browser.current_url
    wait_until(
        browser,
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".jp-DirListing"), "workshop"),
        "the workshop material after the wait",
    )
    screenshot("after-wait")
