"""Helpers for driving the app's pages in Chromium: waits, the app's own strings, axe-core."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from hosting.web import i18n
from tests.hosting.conftest import unavailable

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"


def t(language: str, key: str, **values: object) -> str:
    return i18n.translate(i18n.catalog(language), key, **values)


def wait_for[T](condition: Callable[[], T], within: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + within
    last: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (StaleElementReferenceException, WebDriverException, AssertionError) as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s (last error: {last})")
        time.sleep(0.2)


def find(driver: WebDriver, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def visible(driver: WebDriver, css: str, within: float = 20.0) -> WebElement:
    return wait_for(lambda: (e := find(driver, css)).is_displayed() and e, within, f"{css} visible")


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.execute_script("return document.querySelector(arguments[0])?.textContent ?? ''", css)).strip()


def click(driver: WebDriver, css: str, within: float = 10.0) -> None:
    """Click what `css` finds, again if a live update redrew it in between (a stale element)."""

    def clicked() -> bool:
        find(driver, css).click()
        return True

    wait_for(clicked, within, f"click {css}")


def fill(driver: WebDriver, css: str, value: str) -> None:
    element = find(driver, css)
    element.clear()
    element.send_keys(value)


def settle(driver: WebDriver, page: str, within: float = 20.0) -> None:
    """Wait until the page at path `page` has loaded its data (its script ran and the live stream is open)."""
    wait_for(
        lambda: (
            driver.execute_script("return location.pathname") == page
            and driver.execute_script("return document.readyState") == "complete"
        ),
        within,
        f"page {page}",
    )


def log_in(driver: WebDriver, url: str, email: str, password: str) -> None:
    """Through the app's log-in page at `url`; returns once the browser has left it."""
    driver.get(url + "/")
    fill(driver, "#email", email)
    fill(driver, "#password", password)
    find(driver, "#login button[type=submit]").click()
    wait_for(lambda: driver.execute_script("return location.pathname") != "/", 20, "logged in")


def confirm_dialog(driver: WebDriver) -> None:
    visible(driver, "#confirm[open] #confirm-ok").click()
    wait_for(lambda: not driver.execute_script("return document.querySelector('#confirm').open"), 5, "dialog closed")


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018  # raises when there is none
    except NoAlertPresentException:
        return True
    return False


def watch_csp(driver: WebDriver) -> None:
    """Record every Content-Security-Policy violation of the pages this browser opens from now on."""
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " (e) => window.__csp.push(e.effectiveDirective + ' ' + (e.blockedURI || 'inline')));"
        },
    )


def csp_violations(driver: WebDriver) -> list[str]:
    found: list[str] = driver.execute_script("return window.__csp || []")
    return found


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now (installed by scripts/setup.sh from npm)."""
    if not AXE.exists():
        unavailable("axe-core is not installed; run `bash scripts/setup.sh` (npm install in tests/web)")
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        ".then(r => done(JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))), e => done(JSON.stringify([{id: 'axe-error',"
        " help: String(e)}])));"
    )
    violations: list[dict[str, Any]] = json.loads(result)
    return violations
