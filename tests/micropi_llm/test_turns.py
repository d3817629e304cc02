"""History trimming, streaming, local-first, the live-state text, and the system prompt's size."""

import logging
from typing import Any

import pytest
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import CONF_LLM_HASS_API, CONF_PROMPT
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import chat_session, intent
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import OllamaWireServer, Reply
from custom_components.micropi_llm.const import CONF_MAX_HISTORY, CONF_NUM_CTX, CONF_PREFER_LOCAL
from custom_components.micropi_llm.live_state import async_render_home

from .home import AGENT_ID, Home, async_ask, async_setup_agent, async_setup_home, script, speech, system_prompt, users


async def test_history_keeps_the_newest_turns(hass: HomeAssistant, wire: OllamaWireServer, home: Home) -> None:
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_MAX_HISTORY: 2})
    wire.responder = lambda body: Reply(f"Válasz {users(body)[-1].split()[-1]}")
    conversation_id = None
    for n in range(1, 6):
        result = await async_ask(hass, f"Kérdés {n}", conversation_id=conversation_id)
        conversation_id = result.conversation_id
    assert users(wire.requests[-1]) == ["Kérdés 3", "Kérdés 4", "Kérdés 5"]
    assert [m["content"] for m in wire.requests[-1]["messages"] if m["role"] == "assistant"] == ["Válasz 3", "Válasz 4"]


async def test_history_is_trimmed_to_the_context_window(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    # No HA API: the prompt is just the instructions, so the sizes below are easy to reason about.
    await async_setup_agent(
        hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_MAX_HISTORY: 0, CONF_NUM_CTX: 2048, CONF_LLM_HASS_API: []}
    )
    wire.responder = lambda body: Reply("Értem.")
    long = "szó " * 400  # about 1600 characters, some 530 tokens by our estimate
    conversation_id = None
    for n in range(1, 5):
        result = await async_ask(hass, f"{n}. {long}", conversation_id=conversation_id)
        conversation_id = result.conversation_id
    sent = users(wire.requests[-1])
    assert sent[-1].startswith("4. ")
    assert 1 <= len(sent) < 4  # the oldest turns were dropped ...
    assert [s[:2] for s in sent] == [f"{n}." for n in range(5 - len(sent), 5)]  # ... and only the oldest
    assert "tools" not in wire.requests[-1] or not wire.requests[-1]["tools"]

    caplog.clear()
    await async_ask(hass, "x" * 9000, conversation_id=conversation_id)
    assert users(wire.requests[-1]) == ["x" * 9000]  # the current message always goes
    assert "does not fit num_ctx 2048" in caplog.text


async def test_reply_is_streamed_in_chunks(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    answer = "A nappali lámpa ég. A konyhai és a hálószobai lámpa nem ég, a termosztát 22 fokra van állítva."
    wire.responder = script(Reply(answer))
    deltas: list[dict[str, Any]] = []
    with (
        chat_session.async_get_chat_session(hass) as session,
        conversation.async_get_chat_log(
            hass, session, chat_log_delta_listener=lambda _log, delta: deltas.append(delta)
        ),
    ):
        result = await conversation.async_converse(
            hass, "Mi ég?", session.conversation_id, Context(), language="hu", agent_id=AGENT_ID
        )
    assert speech(result) == answer
    chunks = [d["content"] for d in deltas if d.get("content")]
    assert len(chunks) >= 3 and "".join(chunks) == answer


async def test_local_first_skips_the_model(hass: HomeAssistant, wire: OllamaWireServer, home: Home) -> None:
    await async_setup_agent(hass, wire.url)  # prefer_local is on by default
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert hass.states.get(home.kitchen_light).state == "on"
    assert not wire.requests
    assert speech(result)

    # Inflected and without accents: still HA's own match, still no model.
    await async_ask(hass, "kapcsold fel a lampat a haloszobaban")
    assert hass.states.get(home.bedroom_light).state == "on"
    assert not wire.requests

    # What HA cannot match goes to the model.
    wire.responder = script(Reply("Fél kettő van."))
    assert speech(await async_ask(hass, "Mesélj valamit a lámpákról")) == "Fél kettő van."
    assert len(wire.requests) == 1


async def test_local_first_off_asks_the_model(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(Reply("Nem kapcsoltam."))
    await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert len(wire.requests) == 1
    assert hass.states.get(home.kitchen_light).state == "off"


async def test_live_state_of_every_kind(hass: HomeAssistant, home: Home) -> None:
    extra: dict[str, tuple[str, dict[str, Any]]] = {
        "cover.redony": ("open", {"friendly_name": "Redőny", "current_position": 40, "current_tilt_position": 10}),
        "media_player.tv": (
            "playing",
            {"friendly_name": "TV", "volume_level": 0.25, "is_volume_muted": True, "media_title": "Híradó"},
        ),
        "media_player.radio": (
            "playing",
            {"friendly_name": "Rádió", "media_title": "Dal", "media_artist": "Előadó"},
        ),
        "fan.ventilator": ("on", {"friendly_name": "Ventilátor", "percentage": 66}),
        "humidifier.parasito": ("on", {"friendly_name": "Párásító", "current_humidity": 38, "humidity": 45}),
        "weather.otthon": (
            "rainy",
            {"friendly_name": "Időjárás", "temperature": 7.04, "temperature_unit": "°C", "humidity": 90},
        ),
        "water_heater.bojler": ("eco", {"friendly_name": "Bojler", "current_temperature": 48, "temperature": 55}),
        "binary_sensor.ajto": ("on", {"friendly_name": "Bejárati ajtó", "device_class": "door"}),
        "lock.bejarat": ("locked", {"friendly_name": "Bejárati zár"}),
        "sensor.aram": ("unavailable", {"friendly_name": "Áram", "unit_of_measurement": "W"}),
        "climate.klima": (
            "heat_cool",
            {"friendly_name": "Klíma", "target_temp_low": 20, "target_temp_high": 24.5, "current_humidity": 40},
        ),
    }
    for entity_id, (state, attributes) in extra.items():
        hass.states.async_set(entity_id, state, attributes)
        async_expose_entity(hass, conversation.DOMAIN, entity_id, True)
    rendered = async_render_home(hass, conversation.DOMAIN)
    assert not rendered.summarised
    text = rendered.text
    for line in [
        "- Redőny [cover] open, position 40%, tilt 10%",
        "- TV [media_player] playing, volume 25%, muted, playing Híradó",
        "- Rádió [media_player] playing, playing Előadó - Dal",
        "- Ventilátor [fan] on, speed 66%",
        "- Párásító [humidifier] on, now 38%, target 45%",
        "- Időjárás [weather] rainy, 7 °C, humidity 90%",
        "- Bojler [water_heater] eco, now 48 °C, target 55 °C",
        "- Bejárati ajtó [binary_sensor] on, door",
        "- Bejárati zár [lock] locked",
        "- Áram [sensor] unavailable",
        "- Klíma [climate] heat_cool, target 20-24.5 °C, humidity 40%",
        "- Vendég mód [input_boolean] off",
    ]:
        assert line in text.splitlines(), line
    assert text.splitlines()[-1].startswith("- ")  # areas first, the rest under "Other" at the end
    assert text == async_render_home(hass, conversation.DOMAIN).text  # stable


async def test_nothing_exposed(hass: HomeAssistant) -> None:
    assert async_render_home(hass, conversation.DOMAIN).text.startswith("No devices are exposed to you.")


@pytest.mark.parametrize("exposed", [25, 200])
async def test_system_prompt_size(
    hass: HomeAssistant, wire: OllamaWireServer, exposed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Measures the system prompt for a home of 25 and of 200 exposed entities (printed, bounded)."""
    await async_setup_home(hass, extra=exposed - 5)  # the base home exposes 5
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False})
    wire.responder = script(Reply("Rendben."))
    await async_ask(hass, "Mi a helyzet otthon?")
    prompt = system_prompt(wire.requests[0])
    lines = [line for line in prompt.splitlines() if line.startswith("- ")]
    assert len(lines) == exposed
    logging.getLogger("micropi_llm.capture").warning(
        "System prompt for %d exposed entities: %d characters (%d tools)",
        exposed,
        len(prompt),
        len(wire.requests[0]["tools"]),
    )
    assert len(prompt) < 1500 + 60 * exposed  # compact: well under a line of 60 characters per entity


async def test_broken_instructions_template_is_reported(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home
) -> None:
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_PROMPT: "{{ nincs_lezarva"})
    result = await async_ask(hass, "Szia")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert not wire.requests


async def test_vanished_llm_api_is_reported_in_the_users_language(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_LLM_HASS_API: ["assist", "gone_api"]})
    result = await async_ask(hass, "Szia")
    assert speech(result) == "Sajnos most nem tudom használni a Home Assistant eszközeit."
    assert not wire.requests
    assert "cannot use its Home Assistant API" in caplog.text
