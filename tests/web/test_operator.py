"""The operator's journey in a real Chromium: log in, see the new user, restart their instance, download a
backup, see the fleet, the system page and a chart with data. Instances are real (rows, ports, processes)
with `hass` = /bin/false (tests/web/conftest.py `quick_instances`), so nothing waits for a real HA."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.browser import chromium, screenshot
from tests.web.browse import axe_violations, click, confirm_dialog, fill, find, t, text_of, visible, wait_for
from tests.web.service import PASSWORD, Service, bearer

OPERATOR = "admin@example.com"


def rows(driver, table: str) -> list[str]:
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")]


def test_operator_journey(quick_instances: Service, tmp_path: Path, artifacts: Path) -> None:
    service = quick_instances
    email, token = service.sign_up("new-home@example.com")
    # One device that reports, one that stays silent (silent after 5 s here).
    code = service.call("POST", "/api/devices/pairing-codes", {"name": "Hall Pi"}, bearer(token)).body["code"]
    device_token = service.call("POST", "/api/devices/pair", {"code": code}).body["token"]
    report = {"version": "0.3.1", "cpu_temperature": 47.5, "load": 0.42, "relay_rtt": 0.018, "uptime": 60}
    assert service.call("POST", "/api/devices/heartbeat", report, bearer(device_token)).status == 200
    code = service.call("POST", "/api/devices/pairing-codes", {"name": "Attic Pi"}, bearer(token)).body["code"]
    assert service.call("POST", "/api/devices/pair", {"code": code}).status == 201
    service.create_operator(OPERATOR)
    instance = service.call("GET", "/api/me/instance", headers=bearer(token)).body
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    with chromium(language="en") as driver:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get(service.url + "/")
        fill(driver, "#email", OPERATOR)
        fill(driver, "#password", PASSWORD)
        find(driver, "#login button[type=submit]").click()

        # Users: the new household is there, and the search finds it.
        wait_for(lambda: any(email in row for row in rows(driver, "users")), 20, "the new user listed")
        fill(driver, "#q", "new-home")
        find(driver, "#search button").click()
        wait_for(lambda: len(rows(driver, "users")) == 1 and email in rows(driver, "users")[0], 10, "search")
        assert text_of(driver, "#users-count") == t("en", "users.count", total=1)
        assert axe_violations(driver) == []
        screenshot(driver, artifacts, "operator-users")

        # Instances: restart theirs (confirmed), then download a backup (confirmed).
        find(driver, "nav a[href='/operator/instances']").click()
        row = f"#instances tbody tr[data-user='{instance['user_id']}']"
        visible(driver, row)
        assert email in text_of(driver, row)
        click(driver, f"{row} button[aria-label^='{t('en', 'action.restart')}']")
        assert instance["name"] in text_of(driver, "#confirm-text")
        confirm_dialog(driver)
        wait_for(lambda: t("en", "action.restart") in text_of(driver, "#toast"), 20, "restarted")
        after = service.call("GET", "/api/me/instance", headers=bearer(token)).body
        assert after["updated_at"] > instance["updated_at"]

        def settled() -> bool:  # provisioning again (hass is /bin/false: it ends in error at once)
            return service.call("GET", "/api/me/instance", headers=bearer(token)).body["status"] != "provisioning"

        wait_for(settled, 30, "the restart done")
        click(driver, f"{row} button[aria-label^='{t('en', 'action.backup')}']")
        confirm_dialog(driver)
        archive = downloads / f"{instance['name']}.tar.gz"
        wait_for(lambda: archive.exists() and archive.stat().st_size > 0, 30, "the backup downloaded")
        time.sleep(0.5)  # the download's last bytes
        with tarfile.open(archive) as tar:
            assert tar.getnames(), "an empty backup"
        assert axe_violations(driver) == []
        screenshot(driver, artifacts, "operator-instances")

        # The fleet: versions and temperatures; the silent device is highlighted.
        def attic_silent() -> bool:
            listed = service.call("GET", "/api/devices", headers=bearer(token)).body["devices"]
            return any(d["name"] == "Attic Pi" and d["silent"] for d in listed)

        wait_for(attic_silent, 20, "the attic device silent")
        assert service.call("POST", "/api/devices/heartbeat", report, bearer(device_token)).status == 200
        find(driver, "nav a[href='/operator/devices']").click()
        wait_for(lambda: "47.5 °C" in " ".join(rows(driver, "fleet")), 20, "the fleet")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#fleet tr.silent"), 20, "silent highlighted")
        assert "Attic Pi" in text_of(driver, "#fleet tr.silent")
        assert axe_violations(driver) == []
        screenshot(driver, artifacts, "operator-fleet")

        # System: orphans, back-ends (404 until the gateway exists: a clear "not available yet"), health.
        find(driver, "nav a[href='/operator/system']").click()
        wait_for(lambda: text_of(driver, "#health"), 20, "health shown")
        assert axe_violations(driver) == []
        screenshot(driver, artifacts, "operator-system")

        # History: the instances chart has data (sampled every second here), drawn as SVG.
        find(driver, "nav a[href='/operator/history']").click()
        select = "#range"
        visible(driver, select)
        driver.execute_script(
            "document.querySelector('#range').value = '1h'; document.querySelector('#range')"
            ".dispatchEvent(new Event('change'))"
        )
        chart = ".chart[data-series^='instances.ready']"
        wait_for(lambda: int(find(driver, chart).get_attribute("data-points") or 0) > 0, 30, "a chart with data")
        assert driver.find_elements(By.CSS_SELECTOR, f"{chart} svg polyline, {chart} svg circle")
        assert axe_violations(driver) == []
        screenshot(driver, artifacts, "operator-history")
