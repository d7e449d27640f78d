"""A notebook's page in a real headless Chromium: starting the browser, and the visitor's steps
in Notebook 7 (the kernel idle, code typed into the first cell, its output).

Used by the browser suite (tests/e2e) and the browser room of `make bench-room` (bench/room.py).
What it may touch: the Chromium and chromedriver of Debian's packages (named explicitly, so that
Selenium Manager never downloads a browser or driver), a shim it compiles with gcc into the
directory it is given, and the pages it is pointed at. Each browser it starts is the caller's to
quit.

    shim = build_no_netlink(tmp_dir)
    browser = start_chromium(shim, page_timeout=90)
    browser.get(link)
    WebDriverWait(browser, 90).until(TypedIntoFirstCell("5*4"))
    WebDriverWait(browser, 90).until(OutputOfFirstCell("20"))
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 800)
KERNEL_IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
# What a page still settling throws at a click: a dialog over the cell, or the cell re-rendered.
NOT_YET = (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)


def build_no_netlink(directory: Path) -> Path:
    """The LD_PRELOAD shim that keeps Docker's interface churn from aborting Chromium's requests
    (see no_netlink.c), compiled into `directory`."""
    library = directory / "no_netlink.so"
    source = Path(__file__).with_name("no_netlink.c")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], check=True
    )
    return library


def start_chromium(
    no_netlink: Path, *, page_timeout: float, window: tuple[int, int] = DESKTOP
) -> webdriver.Chrome:
    """A fresh headless Chromium with its own profile: no cookie of one visitor reaches another."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # run as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",  # Docker-sized /dev/shm is too small for the renderer
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(argument)
    # chromedriver passes its environment on to the browser it starts.
    service = Service(
        executable_path=CHROMEDRIVER, env={**os.environ, "LD_PRELOAD": str(no_netlink)}
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(page_timeout)
    return driver


def kernel_idle(browser: webdriver.Chrome) -> bool:
    """True once the notebook's kernel is started and idle. When the server is slow, Notebook
    asks which kernel to start instead of starting the notebook's own: accept its choice, as a
    person would."""
    for accept in browser.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"):
        try:
            accept.click()
        except NOT_YET:
            return False  # the dialog is still opening or closing: look again next time
    return bool(browser.find_elements(By.CSS_SELECTOR, KERNEL_IDLE))


class OutputOfFirstCell:
    """A wait condition that runs the first code cell until it shows `expected`.

    On a loaded machine the notebook sometimes drops the first execute request while its kernel
    connection settles (the cell stays `[ ]`); a person would press Shift+Enter again, and so
    does this, at most every `rerun_seconds`; `presses` counts the Shift+Enters.
    """

    def __init__(self, expected: str, rerun_seconds: float = 15) -> None:
        self.expected = expected
        self.rerun_seconds = rerun_seconds
        self.last_run = float("-inf")
        self.presses = 0

    def __call__(self, browser: webdriver.Chrome) -> bool:
        # The kernel dialog can come back after the cell was typed (a slow server's kernel
        # restart): accept it, or every Shift+Enter lands on the dialog.
        if not kernel_idle(browser):
            return False
        cell = browser.find_element(By.CSS_SELECTOR, ".jp-CodeCell")
        outputs = cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
        if self.expected in " ".join(output.text for output in outputs).split():
            return True
        if time.monotonic() - self.last_run > self.rerun_seconds:
            try:
                editor = cell.find_element(By.CSS_SELECTOR, ".cm-content")
                editor.click()
                editor.send_keys(Keys.SHIFT, Keys.ENTER)
            except NOT_YET:
                return False
            self.last_run = time.monotonic()
            self.presses += 1
        return False


class TypedIntoFirstCell:
    """A wait condition that replaces the first code cell's text, once the cell takes clicks.

    Right after the kernel is idle, Notebook may still be rendering the cell or showing a dialog
    over it; a person would wait a moment and click again, and so does this.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, browser: webdriver.Chrome) -> bool:
        kernel_idle(browser)  # accepts a kernel dialog that may cover the cell
        try:
            editor = browser.find_element(By.CSS_SELECTOR, ".jp-CodeCell .cm-content")
            editor.click()
            editor.send_keys(Keys.CONTROL, "a")
            editor.send_keys(self.text)
        except NOT_YET:
            return False
        return True
