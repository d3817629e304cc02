"""A real headless Chromium for the browser tests: Debian's `chromium` driven through `chromium-driver`.

No browser is downloaded (selenium's own manager is bypassed by naming the driver). Screenshots go to
the test's artifact folder, so a person can look at what the test saw.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.hosting.conftest import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(*, language: str = "hu", width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (own profile, given UI language); quit afterwards."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        unavailable("chromium / chromium-driver are not installed; run `bash scripts/services.sh install`")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        f"--lang={language}",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, folder: Path, name: str) -> Path:
    """Save a PNG of what the browser shows now, under `folder` (the test's artifacts)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not save the screenshot {path}"
    return path


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where a browser test leaves its screenshots (the test's temporary directory)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder
