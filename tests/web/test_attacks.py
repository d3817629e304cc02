"""Attacks on the web app: a hostile device name (XSS), forged cross-site calls (CSRF), the session cookie,
the Content-Security-Policy, and no state change on GET."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from selenium.webdriver.common.by import By

from hosting.web.pages import PAGES
from tests.browser import chromium, screenshot
from tests.hosting.conftest import free_port
from tests.web.browse import click, csp_violations, find, log_in, no_alert, text_of, visible, wait_for, watch_csp
from tests.web.service import PASSWORD, Service, bearer

HOSTILE = "<img src=x onerror=alert(1)>"


def test_a_hostile_device_name_shows_as_text(service: Service, artifacts: Path) -> None:
    email, token = service.sign_up()
    code = service.call("POST", "/api/devices/pairing-codes", {"name": HOSTILE}, bearer(token)).body["code"]
    assert service.call("POST", "/api/devices/pair", {"code": code}).status == 201
    with chromium(language="en") as driver:
        watch_csp(driver)
        log_in(driver, service.url, email, PASSWORD)
        driver.get(service.url + "/devices")
        cell = visible(driver, "#devices tbody .name")
        assert cell.text == HOSTILE
        assert driver.find_elements(By.CSS_SELECTOR, "#devices img") == []
        # The rename dialog's field and the revoke question carry it as text too.
        click(driver, "#devices tbody .row-actions .danger")
        assert HOSTILE in text_of(driver, "#confirm-text")
        assert driver.find_elements(By.CSS_SELECTOR, "#confirm img") == []
        screenshot(driver, artifacts, "xss-device-name")
        find(driver, "#confirm button[value=cancel]").click()
        assert no_alert(driver)
        assert csp_violations(driver) == []  # the app itself needs nothing the policy forbids
        # And were a string ever put in as HTML, the policy would still keep its script from running.
        driver.execute_script(
            "document.querySelector('#devices tbody .name').innerHTML = arguments[0]", HOSTILE.replace("1", "2")
        )
        wait_for(lambda: any("script-src" in v for v in csp_violations(driver)), 5, "the inline handler blocked")
        assert no_alert(driver)


def browser_session(service: Service, email: str) -> tuple[str, str]:
    """Log in the way the app does; returns (the refresh cookie's value, the Set-Cookie header)."""
    reply = service.call(
        "POST",
        "/api/auth/login",
        {"email": email, "password": PASSWORD},
        {"X-MicroPi-Session": "cookie", "Origin": service.url},
    )
    assert reply.status == 200, reply.body
    assert "refresh_token" not in reply.body  # only in the cookie
    (cookie,) = [c for c in reply.cookies if c.startswith("micropi_refresh=")]
    return cookie.split(";")[0].split("=", 1)[1], cookie


def refresh_with(service: Service, token: str, origin: str | None, method: str = "POST") -> int:
    headers = {"Cookie": f"micropi_refresh={token}"}
    if origin is not None:
        headers["Origin"] = origin
    return service.call(method, "/api/auth/refresh", headers=headers).status


def test_session_cookie_attributes_and_origin_checks(service: Service) -> None:
    email, _ = service.sign_up()
    token, cookie = browser_session(service, email)
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert attributes["path"] == "Path=/api/auth/refresh"
    assert attributes["samesite"] == "SameSite=Strict"
    assert "httponly" in attributes
    assert "secure" not in attributes  # plain HTTP here...
    behind_tls = service.call(
        "POST",
        "/api/auth/login",
        {"email": email, "password": PASSWORD},
        {"X-MicroPi-Session": "cookie", "Origin": service.url, "X-Forwarded-Proto": "https"},
    )
    assert any("Secure" in c for c in behind_tls.cookies)  # ...and Secure under HTTPS
    proxied = service.call(
        "POST",
        "/api/auth/login",
        {"email": email, "password": PASSWORD},
        {"X-MicroPi-Session": "cookie", "Origin": "https://micropi.example", "X-Forwarded-Host": "micropi.example"},
    )
    assert proxied.status == 200  # behind a reverse proxy that rewrites Host

    # Forged from another site, or with no Origin at all: refused, and the cookie's token is not spent.
    for origin in ("http://evil.example", "null", None, "http://127.0.0.1.evil.example"):
        assert refresh_with(service, token, origin) == 403, origin
        assert refresh_with(service, token, origin, "DELETE") == 403, origin
    # A login that asks for the cookie from another origin gets none.
    forged = service.call(
        "POST",
        "/api/auth/login",
        {"email": email, "password": PASSWORD},
        {"X-MicroPi-Session": "cookie", "Origin": "http://evil.example"},
    )
    assert forged.status == 403 and not forged.cookies
    # From our own origin the token is good (and spent: a second use is a replay).
    rotated = service.call(
        "POST", "/api/auth/refresh", headers={"Cookie": f"micropi_refresh={token}", "Origin": service.url}
    )
    assert rotated.status == 200 and "refresh_token" not in rotated.body
    new_token = rotated.cookies[0].split(";")[0].split("=", 1)[1]
    assert new_token != token
    # Log-out from our own origin ends the session: the cookie's family is revoked, the cookie cleared.
    out = service.call(
        "DELETE", "/api/auth/refresh", headers={"Cookie": f"micropi_refresh={new_token}", "Origin": service.url}
    )
    assert out.status == 204
    assert any(c.startswith('micropi_refresh=""') or "Max-Age=0" in c for c in out.cookies)
    assert refresh_with(service, new_token, service.url) == 401


def test_no_state_change_on_get(service: Service) -> None:
    email, token = service.sign_up()
    token_cookie, _ = browser_session(service, email)
    for path in ("/api/auth/refresh", "/api/devices/pairing-codes", "/api/me/instance/restart", "/api/auth/logout"):
        reply = service.call("GET", path, headers={**bearer(token), "Cookie": f"micropi_refresh={token_cookie}"})
        assert reply.status == 405, (path, reply.status)
    # Every page is the same for everyone and needs no login: nothing personal, nothing changed.
    for page in PAGES:
        reply = service.call("GET", page.path)
        assert reply.status == 200, page.path
        assert email not in reply.body.decode()
    assert refresh_with(service, token_cookie, service.url) == 200  # the GETs spent nothing


def test_strict_content_security_policy_and_no_inline_script(service: Service) -> None:
    for page in PAGES:
        reply = service.call("GET", page.path)
        policy = reply.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        html = reply.body.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, f"{page.path}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page.path}: an inline event handler"
        assert "style=" not in html, f"{page.path}: an inline style"
    assert "Content-Security-Policy" in service.call("GET", "/api/me").headers  # errors too


def session_cookie(driver) -> str:
    """The refresh cookie's value, read through DevTools (page scripts cannot read it)."""
    cookies = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    (value,) = [c["value"] for c in cookies if c["name"] == "micropi_refresh"]
    return str(value)


def test_a_cross_site_page_cannot_use_the_session(service: Service, tmp_path: Path, artifacts: Path) -> None:
    """A real attack in the browser: the victim is logged in at 127.0.0.1; a page on another site
    (http://localhost:PORT) fetches our refresh and log-out endpoints and posts a form at them."""
    email, _ = service.sign_up()
    evil = tmp_path / "evil"
    evil.mkdir()
    target = service.url
    (evil / "attack.js").write_text(
        f"""
const out = document.getElementById("out");
const report = (what) => {{ out.textContent += what + "\\n"; }};
// A simple POST is sent without asking (no-cors): the browser must not attach the SameSite=Strict cookie,
// and our Origin check refuses it anyway.
fetch("{target}/api/auth/refresh", {{method: "POST", credentials: "include", mode: "no-cors"}})
  .then(r => report("POST sent"), e => report("POST failed"));
// These need a CORS preflight, which our service does not grant to other origins.
fetch("{target}/api/auth/refresh", {{method: "DELETE", credentials: "include"}})
  .then(r => report("DELETE went through"), e => report("DELETE blocked"));
fetch("{target}/api/auth/refresh", {{method: "POST", credentials: "include",
  headers: {{"X-MicroPi-Session": "cookie"}}}})
  .then(r => r.text()).then(t => report("read " + t), e => report("read blocked"));
"""
    )
    (evil / "index.html").write_text(
        f'<!doctype html><title>prize</title><pre id="out"></pre>'
        f'<form id="f" method="post" action="{target}/api/auth/refresh" target="sink"></form>'
        f'<iframe name="sink"></iframe><script src="attack.js"></script>'
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(evil)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with chromium(language="en") as driver:
            log_in(driver, service.url, email, PASSWORD)
            wait_for(lambda: driver.execute_script("return location.pathname") == "/home", 20, "home")
            # The page has its session (its refresh done) once its live stream is up.
            wait_for(lambda: driver.execute_script("return document.body.dataset.live") == "open", 20, "settled")
            assert "micropi_refresh" not in driver.execute_script("return document.cookie")  # HttpOnly
            before = session_cookie(driver)
            driver.get(f"http://localhost:{port}/index.html")
            expected = ("POST sent", "DELETE blocked", "read blocked")
            wait_for(lambda: all(line in text_of(driver, "#out") for line in expected), 20, "the attack ran")
            driver.execute_script("document.getElementById('f').submit()")  # and a plain form post
            time.sleep(1)
            screenshot(driver, artifacts, "csrf-attack-page")
            # Nothing was spent, revoked or read: the same refresh token, and it still works.
            assert session_cookie(driver) == before
            driver.get(service.url + "/account")
            wait_for(lambda: text_of(driver, "#me-email") == email, 20, "still logged in")
    finally:
        server.terminate()
        server.wait(10)
