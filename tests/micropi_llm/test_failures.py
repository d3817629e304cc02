"""Every way the server can fail mid-conversation: a short spoken error in time, one warning, and the talk goes on."""

import logging
import time

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply
from custom_components.micropi_llm.const import CONF_MAX_TOOL_ITERATIONS, CONF_PREFER_LOCAL, CONF_TIMEOUT, DOMAIN

from .home import Home, async_ask, async_setup_agent, call, is_error, script, speech

TIMEOUT = 1  # seconds; the agent's timeout option, kept short for the test

SPOKEN = {
    "cannot_connect": (
        "Sajnos most nem érem el a nyelvi modell szerverét.",
        "Sorry, I cannot reach the language model server right now.",
    ),
    "timeout": (
        "Sajnos a nyelvi modell túl sokáig gondolkodott.",
        "Sorry, the language model took too long to answer.",
    ),
    "server_error": (
        "Sajnos hiba történt a nyelvi modell szerverén.",
        "Sorry, the language model server had a problem.",
    ),
    "broken_stream": (
        "Sajnos megszakadt a nyelvi modell válasza.",
        "Sorry, the answer from the language model was cut off.",
    ),
    "model_not_found": (
        "Sajnos a nyelvi modellem hiányzik a szerverről.",
        "Sorry, my language model is missing from the server.",
    ),
    "invalid_auth": (
        "Sajnos a nyelvi modell szervere elutasította a kulcsomat.",
        "Sorry, the language model server refused my key.",
    ),
}


@pytest.fixture
async def entry(hass: HomeAssistant, wire: OllamaWireServer, home: Home) -> MockConfigEntry:
    return await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_TIMEOUT: TIMEOUT})


def _our_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("custom_components.micropi_llm")
    ]


async def _fails_then_recovers(
    hass: HomeAssistant, wire: OllamaWireServer, caplog: pytest.LogCaptureFixture, failure: str, language: str
) -> None:
    caplog.clear()
    started = time.monotonic()
    result = await async_ask(hass, "Mennyi az idő?" if language == "hu" else "What's up?", language=language)
    elapsed = time.monotonic() - started
    assert elapsed <= TIMEOUT + 1
    assert is_error(result)
    assert speech(result) == SPOKEN[failure][0 if language == "hu" else 1]
    [warning] = _our_warnings(caplog)
    assert f"failed ({failure})" in warning

    # The conversation goes on: the next turn in the same conversation works and carries the error.
    wire.responder = script(Reply("Most már működik."))
    again = await async_ask(hass, "És most?", language=language, conversation_id=result.conversation_id)
    assert speech(again) == "Most már működik."
    roles = [m["role"] for m in wire.requests[-1]["messages"]]
    assert roles[-2:] == ["assistant", "user"]
    assert wire.requests[-1]["messages"][-2]["content"] == speech(result)


@pytest.mark.parametrize("language", ["hu", "en"])
async def test_timeout(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture, language: str
) -> None:
    wire.responder = script(Reply("késő", delay=TIMEOUT + 5))
    await _fails_then_recovers(hass, wire, caplog, "timeout", language)


async def test_timeout_counts_the_whole_turn(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_TIMEOUT: TIMEOUT})
    # Two slow-ish rounds, each under the timeout, together over it.
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa")], delay=0.6),
        Reply("Kész.", delay=0.6),
    )
    await _fails_then_recovers(hass, wire, caplog, "timeout", "hu")


async def test_server_error(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    wire.responder = script(Reply(status=500, error="llama runner process has terminated"))
    await _fails_then_recovers(hass, wire, caplog, "server_error", "hu")


async def test_broken_stream(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    wire.responder = script(Reply("Ez egy hosszú válasz lenne", break_stream=True))
    await _fails_then_recovers(hass, wire, caplog, "broken_stream", "hu")


async def test_error_line_inside_the_stream(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    wire.responder = script(Reply("Ez egy", stream_error="CUDA error: out of memory"))
    await _fails_then_recovers(hass, wire, caplog, "broken_stream", "en")


async def test_unauthorised_at_runtime(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    wire.token = "rotated"
    caplog.clear()
    result = await async_ask(hass, "Szia?")
    assert speech(result) == SPOKEN["invalid_auth"][0]
    assert len(_our_warnings(caplog)) == 1


async def test_vanished_model_raises_the_repair_issue(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    [subentry_id] = entry.subentries
    wire.models.remove(DEFAULT_MODEL)
    caplog.clear()
    result = await async_ask(hass, "Mennyi az idő?")
    assert speech(result) == SPOKEN["model_not_found"][0]
    assert len(_our_warnings(caplog)) == 1
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"model_not_found_{subentry_id}") is not None
    wire.models.append(DEFAULT_MODEL)
    wire.responder = script(Reply("Megvan."))
    assert speech(await async_ask(hass, "Most?")) == "Megvan."
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"model_not_found_{subentry_id}") is None


async def test_unreachable(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    await wire.stop()
    caplog.clear()
    started = time.monotonic()
    result = await async_ask(hass, "Mennyi az idő?")
    assert time.monotonic() - started <= TIMEOUT + 1
    assert speech(result) == SPOKEN["cannot_connect"][0]
    [warning] = _our_warnings(caplog)
    assert "failed (cannot_connect)" in warning
    issue_id = f"server_unreachable_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None  # the household is told
    # Back on the same port: the conversation goes on, and the issue goes.
    port = int(wire.url.rsplit(":", 1)[1])
    await wire.start(port)
    wire.responder = script(Reply("Újra itt."))
    assert speech(await async_ask(hass, "Itt vagy?", conversation_id=result.conversation_id)) == "Újra itt."
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_tool_loop_is_bounded(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_MAX_TOOL_ITERATIONS: 3})
    lamps = ["Konyhai lámpa", "Nappali lámpa", "Hálószoba lámpa"]  # a new action each round: no repeat
    wire.responder = lambda body: Reply("", tool_calls=[call("intent__HassTurnOn", name=lamps[len(wire.requests) % 3])])
    caplog.clear()
    result = await async_ask(hass, "Kapcsolgasd a lámpát")
    assert len(wire.requests) == 3
    assert speech(result) == "Sajnos ezt nem sikerült befejeznem."
    [warning] = _our_warnings(caplog)
    assert "3 tool rounds" in warning


async def test_an_action_made_again_ends_the_turn_as_done(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home
) -> None:
    # A small model that does not see its action is done makes it again and again (to the round limit).
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False})
    wire.responder = lambda body: Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa")])
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert len(wire.requests) == 2
    assert speech(result) == "Rendben."
    assert hass.states.get(home.kitchen_light).state == "on"


async def test_unknown_language_falls_back_to_english(
    hass: HomeAssistant, wire: OllamaWireServer, entry: MockConfigEntry
) -> None:
    wire.responder = script(Reply(status=503, error="busy"))
    result = await async_ask(hass, "Wie spät ist es?", language="de-DE")
    assert speech(result) == SPOKEN["server_error"][1]
