"""The app's pages in Chromium beyond the journeys: the browser's language and the switch, a phone's
screen, the states of parts not installed yet, and the catalogs."""

from __future__ import annotations

import ast
import time
from pathlib import Path

from hosting import instances
from hosting.provision import HOUSEHOLD_MESSAGES, HOUSEHOLD_SLOW, STEPS
from hosting.web import i18n
from tests.browser import chromium, screenshot
from tests.web.browse import axe_violations, fill, find, log_in, t, text_of, visible, wait_for
from tests.web.service import PASSWORD, Service, bearer


def service_reasons() -> set[str]:
    """The household's failure messages and every `status_reason="..."` the instance manager writes."""
    tree = ast.parse(Path(instances.__file__).read_text())
    written = {
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "status_reason" and isinstance(keyword.value, ast.Constant) and keyword.value.value
    }
    assert len(written) >= 5, written  # the walk finds them
    return written | set(HOUSEHOLD_MESSAGES)


def test_catalogs_have_the_same_strings() -> None:
    hungarian, english = i18n.catalog("hu"), i18n.catalog("en")
    assert set(hungarian) == set(english)
    assert all(value.strip() for value in [*hungarian.values(), *english.values()])
    # Every provisioning step the home page lists has its words.
    assert {f"step.{step}" for step in ("start", *STEPS)} <= set(hungarian)
    # Every reason the service gives an instance shows in the page's language (home.js: `reason.<text>`).
    assert {f"reason.{reason}" for reason in service_reasons()} <= set(hungarian)
    assert i18n.from_accept_language("de-DE,de;q=0.9,en;q=0.8") == "en"
    assert i18n.from_accept_language("en-GB;q=0.5, hu") == "hu"
    assert i18n.from_accept_language("fr, de") is None  # then Hungarian, the default


def test_starts_in_the_browsers_language_and_switches(service: Service, artifacts: Path) -> None:
    with chromium(language="en-US") as driver:
        driver.get(service.url + "/")
        assert find(driver, "html").get_attribute("lang") == "en"
        assert text_of(driver, "h1") == t("en", "page.login")
        assert axe_violations(driver) == []
        find(driver, ".lang-switch[data-lang='hu']").click()
        wait_for(lambda: find(driver, "html").get_attribute("lang") == "hu", 10, "switched to Hungarian")
        assert text_of(driver, "h1") == t("hu", "page.login")
        driver.get(service.url + "/signup")  # the choice is kept
        assert find(driver, "html").get_attribute("lang") == "hu"
    with chromium(language="de") as driver:  # neither of ours: Hungarian first
        driver.get(service.url + "/")
        assert find(driver, "html").get_attribute("lang") == "hu"
        screenshot(driver, artifacts, "hu-login-empty")


def test_usable_on_a_phone(service: Service, artifacts: Path) -> None:
    email, _ = service.sign_up()
    with chromium(language="hu", width=390, height=844) as driver:
        log_in(driver, service.url, email, PASSWORD)
        for path in ("/home", "/devices", "/usage", "/account"):
            driver.get(service.url + path)
            wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 10, path)
            if path in ("/home", "/devices"):  # the pages with a live stream: wait for it
                wait_for(lambda: driver.execute_script("return document.body.dataset.live") == "open", 10, "live")
            time.sleep(0.5)  # its data drawn
            # Nothing wider than the screen: no sideways scrolling of the page itself.
            width, screen = driver.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
            assert width <= screen, f"{path}: {width}px wide on a {screen}px screen"
            screenshot(driver, artifacts, f"phone{path.replace('/', '-')}")
        # The usage page draws the gateway's figures for this month (a new household: all zero).
        driver.get(service.url + "/usage")
        wait_for(lambda: len(driver.find_elements("css selector", "#usage dd")) == 4, 20, "usage figures")
        assert [e.text for e in driver.find_elements("css selector", "#usage dd")] == ["0", "0", "0", "0"]
        assert not find(driver, "#usage-missing").is_displayed()
        visible(driver, "#no-conversations")
        # Keyboard only: Tab from the top reaches the skip link, then the navigation.
        driver.get(service.url + "/devices")
        visible(driver, "main h1")
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(driver).send_keys(Keys.TAB).perform()
        assert driver.execute_script("return document.activeElement.className") == "skip"
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        wait_for(lambda: driver.execute_script("return location.hash") == "#main", 5, "skipped to the content")


def test_password_change_keeps_this_session_and_ends_the_others(service: Service) -> None:
    email, _ = service.sign_up()
    other = service.call("POST", "/api/auth/login", {"email": email, "password": PASSWORD}).body[
        "refresh_token"
    ]  # another device's session
    new_password = "a brand new passphrase 42"
    with chromium(language="en") as driver:
        log_in(driver, service.url, email, PASSWORD)
        wait_for(lambda: driver.execute_script("return location.pathname") == "/home", 20, "home")
        driver.get(service.url + "/account")
        wait_for(lambda: text_of(driver, "#me-email") == email, 20, "account")
        fill(driver, "#current_password", "not my password")
        fill(driver, "#new_password", new_password)
        find(driver, "#password-form button[type=submit]").click()
        visible(driver, "#password-error")
        assert text_of(driver, "#password-error") == t("en", "error.wrong_password")
        fill(driver, "#current_password", PASSWORD)
        find(driver, "#password-form button[type=submit]").click()
        wait_for(lambda: text_of(driver, "#toast") == t("en", "account.changed"), 20, "changed")
        driver.refresh()  # this session goes on (its cookie was renewed with the change)
        wait_for(lambda: text_of(driver, "#me-email") == email, 20, "still logged in")
    assert service.call("POST", "/api/auth/refresh", {"refresh_token": other}).status == 401
    assert service.call("POST", "/api/auth/login", {"email": email, "password": new_password}).status == 200


def open_streams(service: Service) -> float:
    metrics = service.call("GET", "/metrics").body.decode()
    (line,) = [line for line in metrics.splitlines() if line.startswith("micropi_event_streams ")]
    return float(line.split()[1])


def test_one_live_stream_per_browser(service: Service) -> None:
    """Two tabs of the app share one server-sent-event stream; when its tab closes, the other takes over."""
    email, token = service.sign_up()
    code = service.call("POST", "/api/devices/pairing-codes", {"name": "Hall"}, bearer(token)).body["code"]
    device_id = service.call("POST", "/api/devices/pair", {"code": code}).body["device"]["id"]
    with chromium(language="en") as driver:
        log_in(driver, service.url, email, PASSWORD)
        wait_for(lambda: driver.execute_script("return document.body.dataset.live") == "open", 20, "live")
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(service.url + "/devices")
        wait_for(lambda: text_of(driver, "#devices tbody .name") == "Hall", 20, "the second tab's list")
        time.sleep(1)
        assert open_streams(service) == 1
        # An event reaches the second tab through the first one's stream.
        service.call("PATCH", f"/api/devices/{device_id}", {"name": "Hall Pi"}, bearer(token))
        wait_for(lambda: text_of(driver, "#devices tbody .name") == "Hall Pi", 10, "passed on")
        # The first tab closes: the second opens the stream itself, and events still arrive.
        driver.switch_to.window(first)
        driver.close()
        driver.switch_to.window(driver.window_handles[0])
        wait_for(lambda: driver.execute_script("return document.body.dataset.live") == "open", 20, "taken over")
        service.call("PATCH", f"/api/devices/{device_id}", {"name": "Kitchen Pi"}, bearer(token))
        wait_for(lambda: text_of(driver, "#devices tbody .name") == "Kitchen Pi", 10, "still live")
        wait_for(lambda: open_streams(service) == 1, 20, "one stream")


def test_a_failed_set_up_is_explained_in_the_pages_language(quick_instances: Service, artifacts: Path) -> None:
    # `hass` is /bin/false here: HA never comes up, so provisioning ends in `error`, worth another go.
    service = quick_instances
    email, token = service.sign_up()

    def failed() -> dict[str, str] | None:
        instance: dict[str, str] = service.call("GET", "/api/me/instance", headers=bearer(token)).body
        return instance if instance["status"] == "error" else None

    instance = wait_for(failed, 30, "provisioning to fail")
    assert instance["status_reason"] == HOUSEHOLD_SLOW  # the API speaks English
    with chromium(language="hu") as driver:
        log_in(driver, service.url, email, PASSWORD)
        wait_for(lambda: text_of(driver, "#status") == t("hu", "status.error"), 20, "the error shown")
        assert text_of(driver, "#reason") == t("hu", f"reason.{HOUSEHOLD_SLOW}")
        assert "újrapróbáljuk" in text_of(driver, "#reason")
        screenshot(driver, artifacts, "home-failed-hu")
