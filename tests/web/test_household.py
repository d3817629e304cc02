"""The household's journey in a real Chromium, in Hungarian and in English, against the real service with a
real Home Assistant (`hass` from .venv-ha): sign up, watch the live progress until ready, open the HA (its
own page loads), pair a device with the code shown (a real `micropi-edge pair` process), rename it,
revoke it, delete the account. One screenshot of each page it visits."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from hosting.runtime.process import default_hass_command
from tests.browser import chromium, screenshot
from tests.edge.peers import mic_command, speaker_command
from tests.hosting.conftest import free_port, unavailable
from tests.web.browse import (
    axe_violations,
    click,
    confirm_dialog,
    csp_violations,
    fill,
    find,
    t,
    text_of,
    visible,
    wait_for,
    watch_csp,
)
from tests.web.service import PASSWORD, ROOT, Service, edge

MODEL = "ministral-3:3b-instruct-2512-q4_K_M"
READY_WITHIN = 300.0


@pytest.fixture
def ollama() -> Iterator[str]:
    """The Ollama wire-format server (bench/ollama_wire.py) as its own process: the one network boundary
    we cannot run here."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ollama_wire", "--print-url", "--model", MODEL],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def with_homes(tmp_path: Path, ollama: str) -> Iterator[Service]:
    if not Path(default_hass_command()).exists():
        unavailable("no .venv-ha/bin/hass; run `bash scripts/setup.sh`")
    running = Service(tmp_path, MICROPI_OLLAMA_URL=ollama, MICROPI_OLLAMA_MODEL=MODEL).start()
    try:
        yield running
    finally:
        running.stop()


def accessible(driver, page: str) -> None:
    """axe-core finds no WCAG 2.1 A/AA violation (labels, contrast, names, landmarks) on the page, and the
    page broke no rule of its Content-Security-Policy."""
    violations = axe_violations(driver)
    assert violations == [], f"{page}: {violations}"
    assert csp_violations(driver) == [], page


@pytest.mark.hass
@pytest.mark.parametrize("language", ["hu", "en"])
def test_household_journey(with_homes: Service, language: str, tmp_path: Path, artifacts: Path) -> None:
    service = with_homes
    email = f"otthon-{uuid.uuid4().hex[:6]}@example.hu"
    with chromium(language=language) as driver:
        watch_csp(driver)
        # 1. Sign up, in the browser's language.
        driver.get(service.url + "/signup")
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
        assert text_of(driver, "h1") == t(language, "page.signup")
        fill(driver, "#email", email)
        find(driver, "#password").send_keys("short")
        assert text_of(driver, "#strength-text") == t(language, "strength.0")
        fill(driver, "#password", PASSWORD)
        assert text_of(driver, "#strength-text") != t(language, "strength.0")
        assert find(driver, "#time_zone").get_attribute("value")  # detected from the browser
        accessible(driver, "signup")
        screenshot(driver, artifacts, f"{language}-signup")
        find(driver, "#signup button[type=submit]").click()

        # 2. Live progress until ready (server-sent events; the page never polls).
        wait_for(lambda: driver.execute_script("return location.pathname") == "/home", 30, "home")
        wait_for(lambda: driver.execute_script("return document.body.dataset.live") == "open", 30, "live stream")
        provisioning = t(language, "status.provisioning")
        wait_for(lambda: text_of(driver, "#status") == provisioning, 30, "provisioning shown")
        assert find(driver, "#progress-box").is_displayed()
        screenshot(driver, artifacts, f"{language}-home-provisioning")
        seen_steps = set()

        def ready() -> bool:
            seen_steps.update(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#steps li.done"))
            return text_of(driver, "#status") == t(language, "status.ready")

        wait_for(ready, READY_WITHIN, "the HA ready")
        assert seen_steps, "no provisioning step was shown live"
        accessible(driver, "home")
        screenshot(driver, artifacts, f"{language}-home-ready")

        # 3. Open the HA: a new tab with Home Assistant's own login page.
        ha_url = find(driver, "#open-ha").get_attribute("href")
        home_tab = driver.current_window_handle
        find(driver, "#open-ha").click()
        wait_for(lambda: len(driver.window_handles) == 2, 10, "a new tab")
        driver.switch_to.window(next(h for h in driver.window_handles if h != home_tab))
        wait_for(lambda: driver.execute_script("return !!document.querySelector('ha-authorize')"), 60, "HA's login")
        assert driver.current_url.startswith(ha_url.rstrip("/"))
        screenshot(driver, artifacts, f"{language}-home-assistant")
        driver.close()
        driver.switch_to.window(home_tab)

        # 4. Pair a device with the code the page shows, by the real edge command line.
        find(driver, "nav a[href='/devices']").click()
        wait_for(lambda: driver.execute_script("return document.body.dataset.live") == "open", 30, "live stream")
        fill(driver, "#device-name", "Nappali Pi")
        find(driver, "#pair-form button").click()
        code = visible(driver, "#code").text
        assert f"--code {code}" in text_of(driver, "#install-command")
        accessible(driver, "devices")
        screenshot(driver, artifacts, f"{language}-devices-code")
        device_file = tmp_path / "device.json"
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'edge'}"}
        paired = edge("--config", str(device_file), "pair", code, "--server", service.url, env=env)
        assert paired.returncode == 0, paired.stderr
        wait_for(lambda: text_of(driver, "#devices tbody .name") == "Nappali Pi", 20, "the device listed live")
        assert not find(driver, "#pairing").is_displayed()
        # The Pi's agent (`micropi-edge run`: satellite, relay, heartbeats) connects: online, seen, live.
        agent_log = (tmp_path / "agent.log").open("wb")
        speaker = speaker_command(tmp_path / "played.raw")
        audio = ["--mic-command", shlex.join(mic_command()), "--snd-command", shlex.join(speaker)]
        agent = subprocess.Popen(
            [sys.executable, "-m", "micropi_edge", "--config", str(device_file), "run", *audio,
             "--wake-uri", f"tcp://127.0.0.1:{free_port()}", "--satellite-port", str(free_port()),
             "--heartbeat-interval", "1"],
            env=env, stdout=agent_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        online = t(language, "device.online")
        wait_for(lambda: online in text_of(driver, "#devices tbody"), 30, "the device online")
        wait_for(lambda: t(language, "never") not in text_of(driver, "#devices tbody"), 30, "the device seen")
        # Through the relay the device's satellite is added to the household's own HA.
        wait_for(lambda: t(language, "devices.in_ha") in text_of(driver, "#devices tbody"), 60, "in the HA")

        # 5. Rename it, revoke it.
        click(driver, "#devices tbody .row-actions .secondary")
        fill(driver, "#rename-input", "Konyha Pi")
        confirm_dialog(driver)
        wait_for(lambda: text_of(driver, "#devices tbody .name") == "Konyha Pi", 10, "renamed")
        screenshot(driver, artifacts, f"{language}-devices-list")
        click(driver, "#devices tbody .row-actions .danger")
        confirm_dialog(driver)
        wait_for(lambda: find(driver, "#no-devices").is_displayed(), 10, "revoked")
        assert agent.wait(20) == 3, (tmp_path / "agent.log").read_text()  # cut off at once; no restart loop
        agent_log.close()
        token = json.loads(device_file.read_text())["token"]
        beat = service.call("POST", "/api/devices/heartbeat", {}, {"Authorization": f"Bearer {token}"})
        assert beat.status == 401  # the Pi is cut off

        # The usage page answers even before the gateway exists.
        find(driver, "nav a[href='/usage']").click()
        wait_for(lambda: driver.execute_script("return location.pathname") == "/usage", 10, "usage")
        wait_for(lambda: text_of(driver, "#usage"), 10, "usage shown")
        assert not find(driver, "#usage-missing").is_displayed()
        accessible(driver, "usage")
        screenshot(driver, artifacts, f"{language}-usage")

        # 6. Delete the account, with the password.
        find(driver, "nav a[href='/account']").click()
        wait_for(lambda: text_of(driver, "#me-email") == email, 10, "account")
        accessible(driver, "account")
        screenshot(driver, artifacts, f"{language}-account")
        fill(driver, "#delete_password", PASSWORD)
        find(driver, "#delete-form button[type=submit]").click()
        confirm_dialog(driver)
        wait_for(lambda: driver.execute_script("return location.pathname") == "/", 60, "deleted")
        assert text_of(driver, "#notice") == t(language, "login.deleted")
        screenshot(driver, artifacts, f"{language}-login")

    login = service.call("POST", "/api/auth/login", {"email": email, "password": PASSWORD})
    assert login.status == 401
