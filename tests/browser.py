"""Headless Chromium (Debian's, driven by its ChromeDriver) for the tests of the CSM pages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("Chromium is missing: run `make browsers` (apt-get install chromium "
                    "chromium-driver)")
    options = Options()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.implicitly_wait(5)
    try:
        yield chrome
    finally:
        chrome.quit()


def sign_in(browser: webdriver.Chrome, base: str, key: str) -> None:
    """Sign in on the login page every page sends a browser without a key to."""
    browser.delete_all_cookies()
    browser.get(base + "/")
    assert "/login" in browser.current_url  # every page needs a key first
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 15).until_not(expected_conditions.url_contains("/login"))
    assert browser.find_element(By.ID, "accounts")
