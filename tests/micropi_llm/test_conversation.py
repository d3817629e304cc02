"""The agent in real HA core, answering and acting through the Ollama wire-format server."""

import json
import logging

import pytest
from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply
from custom_components.micropi_llm.const import DEFAULT_PROMPT

from .home import AGENT_ID, Home, async_ask, call, is_error, script, speech, system_prompt, tool_names, tool_results

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
