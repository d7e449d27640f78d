"""What an operator sees on the admin page, in a real browser: a visitor who just got a notebook,
and that notebook's cull once the visitor leaves.

It shares the service of the visitor tests and leaves its pool as it found it: full and idle.
"""

from __future__ import annotations

import re

from conftest import PAGE_TIMEOUT, wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen


def number(browser, box_id: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f"#{box_id} b").text


def test_the_admin_page_shows_a_visitor_and_the_cull(service, browser, screenshot):
    service.wait_available(2)
    admin = f"http://127.0.0.1:{service.admin_port}/"

    # The operator opens the admin port: a login form, not the pool.
    browser.get(admin)
    assert browser.find_element(By.TAG_NAME, "h2").text.startswith("403")
    screenshot("login")
    browser.find_element(By.ID, "token").send_keys(service.admin_token)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_until(browser, seen.presence_of_element_located((By.ID, "pool")), "the admin page")
    assert number(browser, "in-use") == "0"
    admin_tab = browser.current_window_handle

    # A participant clicks the workshop link in another tab and lands in a notebook.
    browser.switch_to.new_window("tab")
    visitor_tab = browser.current_window_handle
    browser.get(f"{service.proxy.url}/")
    wait_until(browser, seen.url_matches(r"/user/[^/]+/"), "the visitor's notebook")
    user_path = re.search(r"/user/[^/]+/", browser.current_url).group(0)

    # Back on the admin page: the visitor's notebook, with how long it has been idle.
    browser.switch_to.window(admin_tab)
    browser.refresh()
    row = (By.CSS_SELECTOR, f'tr[data-path="{user_path}"]')
    wait_until(browser, seen.presence_of_element_located(row), f"{user_path} on the admin page")
    assert number(browser, "in-use") == "1"
    idle = browser.find_element(*row).find_element(By.CSS_SELECTOR, "td.idle").text
    assert re.fullmatch(r"\d+ s", idle), f"idle time {idle!r} for a notebook just handed out"
    assert browser.find_element(By.CSS_SELECTOR, "#chart-handed_out b").text == "1"
    screenshot("visitor")

    # The participant leaves; the culler takes the notebook and the page (which reloads itself)
    # counts the cull. The pool refills, as the next tests expect.
    browser.switch_to.window(visitor_tab)
    browser.close()
    browser.switch_to.window(admin_tab)
    wait_until(
        browser,
        lambda b: b.find_element(By.CSS_SELECTOR, "#chart-culled b").text != "0",
        "the cull on the admin page",
        timeout=PAGE_TIMEOUT * 2,  # the cull timeout, the cull period, a reload
    )
    assert not browser.find_elements(*row)
    screenshot("culled")
    service.wait_available(2)
