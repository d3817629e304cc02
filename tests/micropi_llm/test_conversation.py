"""The agent in real HA core, answering and acting through the Ollama wire-format server."""

import json
import logging

import pytest
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply
from custom_components.micropi_llm.const import CONF_NUM_CTX, CONF_PREFER_LOCAL, DEFAULT_PROMPT

from .home import (
    AGENT_ID,
    Home,
    async_ask,
    async_setup_agent,
    async_setup_home,
    call,
    is_error,
    script,
    speech,
    system_prompt,
    tool_names,
    tool_results,
)

CAPTURE = logging.getLogger("micropi_llm.capture")


def _abbreviated(body: dict) -> str:
    """A request body for the report: long texts cut, tools by name only."""

    def cut(text: str) -> str:
        return text if len(text) < 400 else f"{text[:400]}... [{len(text)} chars]"

    messages = [{**m, "content": cut(m.get("content", ""))} for m in body["messages"]]
    return json.dumps({**body, "messages": messages, "tools": sorted(tool_names(body))}, ensure_ascii=False, indent=1)


async def test_hungarian_state_question_is_answered_from_the_prompt(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(Reply("Igen, a nappali lámpa ég, 80 százalékon."))
    result = await async_ask(hass, "Ég a lámpa a nappaliban?")
    assert speech(result) == "Igen, a nappali lámpa ég, 80 százalékon."
    assert not is_error(result)

    body = wire.requests[0]
    CAPTURE.warning("HU request: %s", _abbreviated(body))
    prompt = system_prompt(body)
    assert prompt.startswith(DEFAULT_PROMPT)
    assert "- Nappali lámpa [light] on, 80% (aliases: mennyezeti lámpa)" in prompt
    assert "- Termosztát [climate] heat, now 21.5 °C, target 22 °C" in prompt
    assert "Nappali (aliases: living room):" in prompt
    assert "Garázs lámpa" not in prompt  # not exposed
    assert "Current time" not in prompt  # nothing per request: HA's llm__GetDateTime tool tells the time
    print(prompt)
    assert body["messages"][-1] == {"role": "user", "content": "Ég a lámpa a nappaliban?"}
    assert body["model"] == DEFAULT_MODEL
    assert body["stream"] is True
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.2}
    assert body["keep_alive"] == -1  # kept loaded
    assert "intent__HassTurnOn" in tool_names(body)
    assert not any(name.endswith("GetLiveContext") for name in tool_names(body))
    assert result.response.language == "hu"


async def test_english_command_turns_a_real_light_on(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa", domain=["light"])]),
        Reply("The kitchen light is on."),
    )
    assert hass.states.get(home.kitchen_light).state == "off"
    result = await async_ask(hass, "Turn on the kitchen light please", language="en")
    assert speech(result) == "The kitchen light is on."
    assert hass.states.get(home.kitchen_light).state == "on"

    second = wire.requests[1]
    CAPTURE.warning("EN request (after the tool call): %s", _abbreviated(second))
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "intent__HassTurnOn"
    [result_message] = tool_results(second)
    assert result_message["data"]["success"] == [{"name": "Konyhai lámpa", "type": "entity", "id": home.kitchen_light}]
    # Within a turn the prompt stays the same (Ollama's cache holds); the tool result has the news.
    assert system_prompt(second) == system_prompt(wire.requests[0])


async def test_relative_temperature_needs_no_extra_round_trip(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    def two_degrees_lower(body: dict) -> Reply:
        assert "target 22 °C" in system_prompt(body)  # the model sees the current target
        return Reply("", tool_calls=[call("climate__HassClimateSetTemperature", name="Termosztát", temperature=20)])

    wire.responder = script(two_degrees_lower, Reply("Levettem 20 fokra."))
    result = await async_ask(hass, "Vedd lejjebb két fokkal a fűtést")
    assert speech(result) == "Levettem 20 fokra."
    assert hass.states.get(home.thermostat).attributes["temperature"] == 20
    assert len(wire.requests) == 2


async def test_history_follows_the_conversation_id(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(Reply("Szia!"), Reply("Azt, hogy szia."))
    first = await async_ask(hass, "Szia")
    await async_ask(hass, "Mit mondtál?", conversation_id=first.conversation_id)
    messages = wire.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "Szia!"


@pytest.mark.parametrize("agent_id", [AGENT_ID])
async def test_agent_is_a_streaming_conversation_entity(
    hass: HomeAssistant, agent_entry: MockConfigEntry, agent_id: str
) -> None:
    state = hass.states.get(agent_id)
    assert state is not None
    assert state.attributes["supported_features"] == conversation.ConversationEntityFeature.CONTROL
    entity = hass.data["entity_components"]["conversation"].get_entity(agent_id)
    assert entity.supports_streaming is True
    assert intent  # HA's intents are set up by the home fixture


@pytest.mark.parametrize("change", ["rename", "alias", "unexpose", "area", "friendly_name"])
async def test_prompt_follows_name_and_exposure_changes_between_turns(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry, change: str
) -> None:
    """HA's overview (names without states) is cut from the prompt, also after the names changed.

    What is built from the names is kept between turns; a stale copy would leave HA's overview in.
    """
    wire.responder = lambda _body: Reply("Rendben.")
    # An entity without a registry entry is named by its state alone.
    hass.states.async_set("sensor.kinti", "12", {"friendly_name": "Kinti hőmérő"})
    async_expose_entity(hass, conversation.DOMAIN, "sensor.kinti", True)
    await async_ask(hass, "Mesélj valamit")
    entities = er.async_get(hass)
    if change == "rename":
        entities.async_update_entity(home.kitchen_light, name="Sütő lámpa")
    elif change == "alias":
        entities.async_update_entity(home.kitchen_light, aliases=[er.COMPUTED_NAME, "pult"])
    elif change == "unexpose":
        async_expose_entity(hass, conversation.DOMAIN, home.kitchen_light, False)
    elif change == "area":
        entities.async_update_entity(home.kitchen_light, area_id=ar.async_get(hass).async_create("Kamra").id)
    else:
        hass.states.async_set("sensor.kinti", "12", {"friendly_name": "Kerti hőmérő"})
    await hass.async_block_till_done()
    await async_ask(hass, "Mesélj még")
    first, second = system_prompt(wire.requests[0]), system_prompt(wire.requests[1])
    for prompt in (first, second):
        assert "Static Context" not in prompt
    assert first != second


async def test_home_too_large_for_the_context_lists_the_named_areas_and_counts_the_rest(
    hass: HomeAssistant, wire: OllamaWireServer
) -> None:
    """500 devices do not fit num_ctx 8192 (Ollama would cut the prompt's start, instructions included)."""
    await async_setup_home(hass, extra=500)
    entry = await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False})
    wire.responder = lambda _body: Reply("Rendben.")
    await async_ask(hass, "Kapcsold le a lámpákat a konyhában")
    body = wire.requests[0]
    prompt = system_prompt(body)
    assert "This home has too many devices to list here" in prompt
    assert "- Konyhai lámpa [light] off" in prompt  # the area the user named, in full
    assert "- Nappali lámpa" not in prompt  # another area: counted only
    assert "- Nappali (aliases: living room): " in prompt and " light" in prompt
    assert any(name.endswith("GetLiveContext") for name in tool_names(body))  # states of the rest on request
    assert len(json.dumps(body["messages"]) + json.dumps(body["tools"])) // 3 < 8192 - 512

    # Said to a satellite in the living room: its own area is listed in full.
    satellite = dr.async_get(hass).async_get_or_create(config_entry_id=entry.entry_id, identifiers={("test", "sat")})
    living = ar.async_get(hass).async_get_area_by_name("Nappali")
    assert living is not None
    dr.async_get(hass).async_update_device(satellite.id, area_id=living.id)
    await conversation.async_converse(
        hass, "Kapcsold le a lámpákat", None, Context(), language="hu", agent_id=AGENT_ID, device_id=satellite.id
    )
    prompt = system_prompt(wire.requests[1])
    assert "- Nappali lámpa [light] on, 80%" in prompt
    assert "- Konyhai lámpa" not in prompt


async def test_home_that_fits_a_larger_context_is_listed_in_full(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    await async_setup_home(hass, extra=500)
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False, CONF_NUM_CTX: 32768})
    wire.responder = lambda _body: Reply("Rendben.")
    await async_ask(hass, "Kapcsold le a lámpákat a konyhában")
    body = wire.requests[0]
    prompt = system_prompt(body)
    assert "This home has too many devices" not in prompt
    assert "- Nappali lámpa [light] on, 80%" in prompt
    assert not any(name.endswith("GetLiveContext") for name in tool_names(body))
