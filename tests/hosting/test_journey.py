"""The newcomer's journey, where a person goes: the embedded default (process runtime, real `hass` from
.venv-ha), a sign-up through the API, then Home Assistant's own frontend in a real headless Chromium.

1. sign up (with the demo home)      2. ready             3. open the URL, log in with the sign-up's email
4. the frontend loads, the overview shows the demo devices   5. Assist: MicroPi is the agent
6. "Kapcsold fel a nappali lámpát": the light turns on (read through HA's REST API), the answer shows

Once with no model server at all (a sentence for the model gets the short Hungarian error, and HA's
repairs page says, in Hungarian, that the server does not answer; then the Ollama wire-format server
starts on the configured address and Assist gets the model's answer, with no restart), once with the
wire server from the start (then it goes down and comes back, local commands working throughout). Both
check that HA's own load is clean: every WebSocket command the frontend sends at start-up succeeds,
and no integration failed to import or set up (HA's config entries and log). A screenshot of each step
goes to the test's temporary directory (`screenshots/`); the timeline is printed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import JavascriptException, WebDriverException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from bench.ollama_wire import OllamaWireServer, Reply
from hosting.db.models import Instance
from hosting.keys import SESSIONS_KEY
from hosting.runtime.process import default_hass_command
from hosting.security import SecretBox
from tests.browser import artifacts, chromium, screenshot
from tests.hosting import ha_client
from tests.hosting.conftest import free_port, start_client, unavailable
from tests.hosting.helpers import PASSWORD, bearer, port_pool, process_settings, sign_up, wait_for

pytestmark = [pytest.mark.hass, pytest.mark.browser]
__all__ = ["artifacts"]  # the fixture

MODEL = "ministral-3:3b-instruct-2512-q4_K_M"
READY_WITHIN = 300.0
FRONTEND_WITHIN = 60.0
ANSWER_WITHIN = 45.0
LIGHT = "light.nappali_lampa"
AGENT = "conversation.micropi"
LOCAL_SENTENCE = "Kapcsold fel a nappali lámpát"
MODEL_SENTENCE = "Mesélj egy rövid viccet a lámpákról"
MODEL_ANSWER = "Miért ment a lámpa iskolába? Hogy felvilágosodjon."
UNREACHABLE_ANSWER = "Sajnos most nem érem el a nyelvi modell szerverét."
UNREACHABLE_ISSUE = "A nyelvi modell szervere nem válaszol"  # the repair issue's title
DEMO_AREAS = ("Nappali", "Konyha", "Hálószoba", "Előszoba")
LIVING_ROOM = ("Nappali lámpa", "Termosztát", "Nappali redőny", "Nappali tévé")

# Records what the frontend sends over HA's WebSocket and what it gets back (never the auth message).
RECORD_WEBSOCKET = """
(() => {
  const log = (window.__micropiWs = []);
  const Native = window.WebSocket;
  const each = (data, f) => {
    try { const m = JSON.parse(data); (Array.isArray(m) ? m : [m]).forEach(f); } catch (e) {}
  };
  function Recording(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      each(data, (m) => { if (m.type !== "auth") log.push({ out: true, id: m.id, type: m.type }); });
      return send(data);
    };
    ws.addEventListener("message", (event) => each(event.data, (m) => {
      if (m.type === "result") log.push({ out: false, id: m.id, success: m.success, error: m.error || null });
    }));
    return ws;
  }
  Recording.prototype = Native.prototype;
  Object.assign(Recording, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Recording;
})();
"""
# The one refusal in any fresh HA: no saved dashboard, which tells the frontend to generate the overview.
EXPECTED_REFUSALS = {("lovelace/config", "config_not_found")}
# Text and elements inside HA's web components (shadow roots all the way down).
DEEP = """
const deepAll = (root, selector, out = []) => {
  root.querySelectorAll(selector).forEach((e) => out.push(e));
  root.querySelectorAll("*").forEach((e) => { if (e.shadowRoot) deepAll(e.shadowRoot, selector, out); });
  return out;
};
const deepText = (root) => {
  let text = "";
  for (const node of root.childNodes) {
    if (node.nodeType === 3) text += node.textContent + " ";
    else if (node.nodeType === 1) { if (node.shadowRoot) text += deepText(node.shadowRoot); text += deepText(node); }
  }
  return text;
};
"""


@pytest.fixture(autouse=True)
def need_hass() -> None:
    if not Path(default_hass_command()).exists():
        unavailable("no .venv-ha/bin/hass; run `bash scripts/setup.sh`")


def model_answers(body: dict[str, Any]) -> Reply:
    """The model's side of a sentence HA cannot match by itself: a plain answer."""
    return Reply(content=MODEL_ANSWER)


def js(driver: WebDriver, script: str, *args: Any) -> Any:
    return driver.execute_script(DEEP + script, *args)


def page_text(driver: WebDriver) -> str:
    try:
        return str(js(driver, "return deepText(document.body);"))
    except JavascriptException, WebDriverException:
        return ""


async def until_page(driver: WebDriver, check: Callable[[str], bool], within: float, what: str, shots: Path) -> str:
    """Wait for the page's text to pass `check`; on time-out, a picture of what it showed instead."""

    async def ready() -> str | None:
        text = await asyncio.to_thread(page_text, driver)
        return text if check(text) else None

    try:
        found: str = await wait_for(ready, within, what)
    except AssertionError:
        await asyncio.to_thread(screenshot, driver, shots, "failed-" + re.sub(r"\W+", "-", what)[:60])
        raise AssertionError(f"{what}; the page shows: {(await asyncio.to_thread(page_text, driver))[:2000]}") from None
    return found


class Journey:
    """One newcomer: the service, their sign-up, their HA and their browser."""

    def __init__(self, tmp_path: Path, shots: Path, ollama_url: str, time_zone: str | None = None) -> None:
        self.time_zone = time_zone  # what the browser reported at sign-up (None: the service's default)
        self.settings = process_settings(tmp_path, ollama_url, MODEL, port_range=port_pool(5))
        self.shots = shots
        self.email = f"uj-{uuid.uuid4().hex[:6]}@example.hu"
        self.timeline: dict[str, float] = {}
        self.started = time.monotonic()

    def mark(self, what: str) -> None:
        self.timeline[what] = round(time.monotonic() - self.started, 1)

    async def sign_up_and_wait(self) -> None:
        self.client = await start_client(self.settings)
        self.started = time.monotonic()
        extra = {"time_zone": self.time_zone} if self.time_zone else {}
        signed = await sign_up(self.client, self.email, demo=True, **extra)
        assert signed["instance"]["status"] == "provisioning"
        self.instance_id = signed["instance"]["id"]
        self.headers = bearer(signed["tokens"]["access_token"])
        self.mark("signed up")

        async def settled() -> dict[str, Any] | None:
            body: dict[str, Any] = await (await self.client.get("/api/me/instance", headers=self.headers)).json()
            return body if body["status"] != "provisioning" else None

        instance = await wait_for(settled, READY_WITHIN, "provisioning")
        assert instance["status"] == "ready", instance
        self.mark("ready")
        self.url = instance["url"]
        async with self.client.app[SESSIONS_KEY]() as session:
            row = await session.get(Instance, self.instance_id)
        assert row is not None and row.ha_token_encrypted is not None
        self.token = SecretBox(self.settings.fernet_key).decrypt(row.ha_token_encrypted)
        self.log = self.settings.data_dir / "instances" / instance["name"] / "hass.log"

    async def assistant(self) -> dict[str, str]:
        body: dict[str, Any] = await (await self.client.get("/api/me/instance", headers=self.headers)).json()
        state: dict[str, str] = body["assistant"]
        return state

    async def state(self, entity_id: str) -> str:
        status, body = await ha_client.rest(self.url, self.token, "GET", f"/api/states/{entity_id}")
        assert status == 200, body
        return str(body["state"])

    async def our_issues(self) -> set[str]:
        issues = await ha_client.ws(self.url, self.token, {"type": "repairs/list_issues"})
        return {issue["translation_key"] for issue in issues["issues"] if issue["domain"] == "micropi_llm"}

    async def ask(self, text: str) -> str:
        """A sentence to our agent through HA's conversation API (as an app or a satellite sends it)."""
        body = {"text": text, "language": "hu", "agent_id": AGENT}
        status, body = await ha_client.rest(self.url, self.token, "POST", "/api/conversation/process", body)
        assert status == 200, body
        return str(body["response"]["speech"]["plain"]["speech"])


def waits_for_internet(entry: dict[str, Any]) -> bool:
    """A cloud service's entry (onboarding adds radio_browser) retrying set-up: this machine has no internet.
    Whether an integration is one is HA's own word: its manifest's iot_class."""
    venv = Path(default_hass_command()).parents[1]  # .venv-ha: the HA the instance runs
    manifest = next(
        venv.glob(f"lib/python*/site-packages/homeassistant/components/{entry['domain']}/manifest.json"), None
    )
    cloud = manifest is not None and json.loads(manifest.read_text()).get("iot_class", "").startswith("cloud")
    return cloud and entry["state"] in {"setup_in_progress", "setup_retry"}


async def assert_ha_loaded_cleanly(journey: Journey, driver: WebDriver) -> None:
    """HA's own load: every WebSocket command of the frontend's start succeeded; every config entry is
    loaded; the log has no integration that failed to import or set up."""
    log = await asyncio.to_thread(driver.execute_script, "return window.__micropiWs || [];")
    sent = {m["id"]: m["type"] for m in log if m["out"]}
    results = {m["id"]: m for m in log if not m["out"]}
    assert len(sent) >= 10, f"the frontend sent only {sorted(sent.values())}"
    failed = {
        sent[i]: results[i]["error"]
        for i in sent
        if i in results
        and not results[i]["success"]
        and (sent[i], results[i]["error"]["code"]) not in EXPECTED_REFUSALS
    }
    assert not failed, f"frontend WebSocket commands failed: {failed}"
    unanswered = [sent[i] for i in sent if i not in results]
    assert not unanswered, f"frontend WebSocket commands never answered: {unanswered}"
    status, entries = await ha_client.rest(journey.url, journey.token, "GET", "/api/config/config_entries/entry")
    assert status == 200, entries
    not_loaded = {e["domain"]: e["state"] for e in entries if e["state"] != "loaded" and not waits_for_internet(e)}
    assert not not_loaded, f"config entries not loaded: {not_loaded}"
    # Any ERROR at all (an integration that failed to import or set up logs one), and the set-up warnings.
    problems = [
        line
        for line in journey.log.read_text(errors="replace").splitlines()
        if " ERROR (" in line
        or re.search(r"Setup failed for|Unable to (import|install|set up)|ModuleNotFoundError", line)
    ]
    assert not problems, "HA's log:\n" + "\n".join(problems[:20])
    # Nothing HA itself would ask the household to repair (ours say what they say, and are checked apart).
    issues = await ha_client.ws(journey.url, journey.token, {"type": "repairs/list_issues"})
    theirs = [issue["issue_id"] for issue in issues["issues"] if issue["domain"] != "micropi_llm"]
    assert not theirs, f"HA raised repair issues: {theirs}"


async def open_and_log_in(journey: Journey, driver: WebDriver) -> None:
    """Steps 3-4: the instance URL, HA's login page, the overview with the demo devices."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_WEBSOCKET})
    await asyncio.to_thread(driver.get, journey.url)
    await until_page(
        driver, lambda text: "Jelszó" in text or "Password" in text, FRONTEND_WITHIN, "HA's login page", journey.shots
    )
    fields = await asyncio.to_thread(js, driver, "return deepAll(document, 'input');")
    by_name = {await asyncio.to_thread(f.get_attribute, "name"): f for f in fields}
    assert {"username", "password"} <= set(by_name), f"login form fields: {list(by_name)}"
    await asyncio.to_thread(by_name["username"].send_keys, journey.email)
    await asyncio.to_thread(by_name["password"].send_keys, PASSWORD)
    await asyncio.to_thread(screenshot, driver, journey.shots, "3-login")
    await asyncio.to_thread(by_name["password"].send_keys, Keys.ENTER)
    journey.mark("logged in")
    # HA's overview: the demo's rooms, and summaries of its lights, climate, security and media.
    await until_page(
        driver, lambda text: all(area in text for area in DEMO_AREAS), FRONTEND_WITHIN, "the overview", journey.shots
    )
    journey.mark("overview shown")
    assert "Could not load" not in page_text(driver) and "Nem sikerült betölteni" not in page_text(driver)
    await asyncio.sleep(1)  # the last cards' icons
    await asyncio.to_thread(screenshot, driver, journey.shots, "4-overview")
    # The living room's card: its devices.
    cards = await asyncio.to_thread(
        js, driver, "return deepAll(document, 'ha-tile-container').filter((e) => deepText(e).includes('Nappali'));"
    )
    assert cards, "no card for the room Nappali on the overview"
    await asyncio.to_thread(cards[0].click)
    await until_page(
        driver,
        lambda text: all(name in text for name in LIVING_ROOM),
        FRONTEND_WITHIN,
        "the room Nappali",
        journey.shots,
    )
    await asyncio.sleep(1)
    await asyncio.to_thread(screenshot, driver, journey.shots, "4-nappali")


async def open_assist(journey: Journey, driver: WebDriver) -> None:
    """Step 5: the Assist dialog (the toolbar's Assist button) shows our pipeline, MicroPi."""
    labels = "(b.label || b.getAttribute('label') || b.getAttribute('aria-label') || b.title || '')"
    buttons = await asyncio.to_thread(
        js, driver, f"return deepAll(document, 'ha-icon-button, ha-button, mwc-icon-button')"
        f".filter((b) => /^Assist\\b/.test({labels}) && b.offsetParent !== null);",
    )  # fmt: skip
    if not buttons:
        seen = await asyncio.to_thread(js, driver, f"return deepAll(document, 'ha-icon-button').map((b) => {labels});")
        raise AssertionError(f"no Assist button in the toolbar; buttons: {seen}")
    await asyncio.to_thread(buttons[0].click)
    await until_page(driver, lambda text: "MicroPi" in text, 30, "the Assist dialog with MicroPi", journey.shots)
    dialog = await asyncio.to_thread(js, driver, "return deepAll(document, 'ha-voice-command-dialog').length;")
    assert dialog, "the Assist dialog did not open"
    await asyncio.to_thread(screenshot, driver, journey.shots, "5-assist")


async def say(journey: Journey, driver: WebDriver, text: str, expect: str, shot: str) -> None:
    """Type a sentence into the Assist dialog; wait for `expect` in the conversation shown."""
    inputs = await asyncio.to_thread(
        js, driver, "return deepAll(document, 'ha-voice-command-dialog').flatMap((d) => deepAll(d.shadowRoot || d, "
        "'input, textarea')).filter((i) => i.offsetParent !== null);",
    )  # fmt: skip
    assert inputs, "no text field in the Assist dialog"
    await asyncio.to_thread(inputs[-1].send_keys, text)
    await asyncio.to_thread(inputs[-1].send_keys, Keys.ENTER)
    await until_page(
        driver, lambda page: expect in page, ANSWER_WITHIN, f"the answer {expect!r} in the dialog", journey.shots
    )
    await asyncio.to_thread(screenshot, driver, journey.shots, shot)


async def light_turns_on(journey: Journey) -> None:
    async def on() -> bool:
        return await journey.state(LIGHT) == "on"

    await wait_for(on, 10, f"{LIGHT} to turn on")
    assert await journey.state("light.haloszoba_lampa") == "off"  # only the living room's
    assert await journey.state("light.konyha_lampa") == "off"


async def steps_3_to_6(journey: Journey, driver: WebDriver) -> None:
    """Log in, the overview, HA's clean load, Assist, the first sentence (HA's own: it needs no model)."""
    await open_and_log_in(journey, driver)
    await assert_ha_loaded_cleanly(journey, driver)
    await open_assist(journey, driver)
    await say(journey, driver, LOCAL_SENTENCE, "bekapcsol", "6-local-command")
    journey.mark("first answer")
    await light_turns_on(journey)


async def start_journey(journey: Journey) -> None:
    await journey.sign_up_and_wait()
    _status, entries = await ha_client.rest(journey.url, journey.token, "GET", "/api/config/config_entries/entry")
    assert {"micropi_llm", "micropi_demo"} <= {e["domain"] for e in entries}, entries
    pipelines = await ha_client.ws(journey.url, journey.token, {"type": "assist_pipeline/pipeline/list"})
    preferred = next(p for p in pipelines["pipelines"] if p["id"] == pipelines["preferred_pipeline"])
    assert (preferred["name"], preferred["conversation_engine"]) == ("MicroPi", AGENT)  # what the dialog shows

    async def demo_light() -> bool:  # the demo entry is set up a moment after its flow ends
        status, _body = await ha_client.rest(journey.url, journey.token, "GET", f"/api/states/{LIGHT}")
        return status == 200

    try:
        await wait_for(demo_light, 30, "the demo home's light")
    except AssertionError:
        _status, states = await ha_client.rest(journey.url, journey.token, "GET", "/api/states")
        raise AssertionError(f"no {LIGHT}; HA has {sorted(s['entity_id'] for s in states)}") from None
    assert await journey.state(LIGHT) == "off"


async def finish(journey: Journey) -> None:
    from hosting.instances import INSTANCE_MANAGER_KEY

    print(f"\ntimeline (s after sign-up): {json.dumps(journey.timeline)}; screenshots: {journey.shots}")
    if getattr(journey, "log", None) and journey.log.exists():  # kept for a look after the instance is gone
        shutil.copy(journey.log, journey.shots.parent / "hass.log")
    await journey.client.app[INSTANCE_MANAGER_KEY].delete(journey.instance_id)
    await journey.client.close()


async def test_journey_without_a_model_server(tmp_path: Path, artifacts: Path) -> None:
    ollama_port = free_port()  # nothing listens there until the model server "comes up" below
    journey = Journey(tmp_path, artifacts, f"http://127.0.0.1:{ollama_port}")
    ollama = OllamaWireServer(models=[MODEL], responder=model_answers)
    try:
        await start_journey(journey)
        # The household is told: in the service's API and in HA's repairs.
        assert (await journey.assistant())["state"] == "model_server_unreachable"
        assert "server_unreachable" in await journey.our_issues()
        with chromium(language="hu") as driver:
            await steps_3_to_6(journey, driver)
            await say(journey, driver, MODEL_SENTENCE, UNREACHABLE_ANSWER, "7-model-sentence-without-server")
            assert not ollama.requests
            # HA's repairs say the same, in Hungarian.
            await asyncio.to_thread(driver.get, f"{journey.url}/config/repairs")
            await until_page(driver, lambda text: UNREACHABLE_ISSUE in text, 30, "the repair issue", journey.shots)
            await asyncio.to_thread(screenshot, driver, journey.shots, "7-repairs")
            await asyncio.to_thread(driver.get, journey.url)
            await until_page(driver, lambda text: "Nappali" in text, FRONTEND_WITHIN, "the overview", journey.shots)
            await open_assist(journey, driver)

            # The model server comes up at the configured address: the next sentence gets its answer.
            await ollama.start(ollama_port)
            await say(journey, driver, MODEL_SENTENCE + "!", MODEL_ANSWER, "8-model-sentence-server-back")
            journey.mark("model answer after the server came up")
        assert ollama.requests and ollama.requests[-1]["model"] == MODEL
        assert "server_unreachable" not in await journey.our_issues()

        async def ready() -> bool:
            return (await journey.assistant())["state"] == "ready"

        await wait_for(ready, 20, "the service to show the assistant as ready")
    finally:
        await finish(journey)
        await ollama.stop()


async def test_journey_with_the_model_server_going_down_and_back(tmp_path: Path, artifacts: Path) -> None:
    ollama = OllamaWireServer(models=[MODEL], responder=model_answers)
    await ollama.start()
    port = int(ollama.url.rsplit(":", 1)[1])
    # UTC, as a privacy-minded browser reports it: a zone of no country. HA gets the service's country
    # (Hungary), so it raises no "country not configured" repair (checked with HA's other repairs).
    journey = Journey(tmp_path, artifacts, ollama.url, time_zone="UTC")
    try:
        await start_journey(journey)
        _status, config = await ha_client.rest(journey.url, journey.token, "GET", "/api/config")
        assert (config["time_zone"], config["country"]) == ("UTC", "HU"), config
        assert (await journey.assistant())["state"] == "ready"
        assert not await journey.our_issues()
        with chromium(language="hu") as driver:
            await steps_3_to_6(journey, driver)
            await say(journey, driver, MODEL_SENTENCE, MODEL_ANSWER, "7-model-sentence")
            journey.mark("model answer")
        assert ollama.requests and ollama.requests[-1]["model"] == MODEL

        # Down: local commands keep working, model sentences get the short error, the household is told.
        await ollama.stop()
        assert "kikapcsol" in (await journey.ask("Kapcsold le a nappali lámpát")).lower()
        assert await journey.state(LIGHT) == "off"
        assert await journey.ask(MODEL_SENTENCE) == UNREACHABLE_ANSWER
        assert "server_unreachable" in await journey.our_issues()
        # Back on the same address: the model answers again, with no restart and no manual step.
        await ollama.start(port)
        assert await journey.ask(MODEL_SENTENCE) == MODEL_ANSWER
        assert "server_unreachable" not in await journey.our_issues()
        assert "bekapcsol" in (await journey.ask(LOCAL_SENTENCE)).lower()

        # The demo goes in one step (its entry, as Settings > Devices & services > Delete does it): its
        # devices, entities and the room it made (Előszoba; onboarding made the other three); the assistant stays.
        _status, entries = await ha_client.rest(journey.url, journey.token, "GET", "/api/config/config_entries/entry")
        [demo] = [e["entry_id"] for e in entries if e["domain"] == "micropi_demo"]
        status, _body = await ha_client.rest(
            journey.url, journey.token, "DELETE", f"/api/config/config_entries/entry/{demo}"
        )
        assert status == 200
        _status, states = await ha_client.rest(journey.url, journey.token, "GET", "/api/states")
        assert not [s["entity_id"] for s in states if s.get("attributes", {}).get("device_class") == "shutter"]
        assert LIGHT not in {s["entity_id"] for s in states}
        areas = await ha_client.ws(journey.url, journey.token, {"type": "config/area_registry/list"})
        assert {a["name"] for a in areas} == {"Nappali", "Konyha", "Hálószoba"}, areas
        devices = await ha_client.ws(journey.url, journey.token, {"type": "config/device_registry/list"})
        assert not [d["name"] for d in devices if d["manufacturer"] == "MicroPi (demó)"]
        assert AGENT in {s["entity_id"] for s in states}
    finally:
        await finish(journey)
        await ollama.stop()
