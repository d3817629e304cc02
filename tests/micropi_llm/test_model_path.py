"""A small or confused model through the whole agent: no action nobody asked for, no loops, no machine text."""

from typing import Any

import pytest
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, setup_test_component_platform

from bench.ollama_wire import OllamaWireServer, Reply

from .home import AGENT_ID, Home, HomeLock, async_ask, call, script, speech, tool_results

NOT_UNDERSTOOD = "Ezt nem értettem pontosan. Elmondanád másképp?"


@pytest.fixture
async def front_door(hass: HomeAssistant, home: Home) -> str:
    """The home's front door lock, exposed, locked (set up before the agent)."""
    setup_test_component_platform(hass, "lock", [HomeLock("Bejárati ajtó", "front_door")])
    assert await async_setup_component(hass, "lock", {"lock": {"platform": "test"}})
    await hass.async_block_till_done()
    async_expose_entity(hass, conversation.DOMAIN, "lock.bejarati_ajto", True)
    return "lock.bejarati_ajto"


def refusals(body: dict[str, Any]) -> list[str]:
    return [result["error_text"] for result in tool_results(body) if "error" in result]


async def test_chit_chat_does_not_act(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Vendég mód")]), Reply("Jó reggelt neked is!")
    )
    result = await async_ask(hass, "Jó reggelt!")
    assert speech(result) == "Jó reggelt neked is!"
    assert refusals(wire.requests[1]) == [
        "The user did not ask about 'Vendég mód'. Act only on what the user asked for; if unsure, ask."
    ]
    assert hass.states.get(home.guest_mode).state == "off"


async def test_only_the_device_asked_for_changes(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply(
            "",
            tool_calls=[
                call("intent__HassTurnOn", name="Konyhai lámpa"),
                call("climate__HassClimateSetTemperature", name="Termosztát", temperature=20),
            ],
        ),
        Reply("Lejjebb vettem a fűtést."),
    )
    result = await async_ask(hass, "Vedd lejjebb a fűtést két fokkal")
    assert speech(result) == "Lejjebb vettem a fűtést."
    assert hass.states.get(home.kitchen_light).state == "off"
    assert hass.states.get(home.thermostat).attributes["temperature"] == 20

    wire.responder = script(
        Reply("", tool_calls=[call("climate__HassClimateSetTemperature", name="Termosztát", temperature=25)]),
        Reply("Rendben."),
    )
    await async_ask(hass, "Kapcsold fel a konyhai lámpát")  # no word of heating: a tool without a domain too
    assert hass.states.get(home.thermostat).attributes["temperature"] == 20


async def test_the_same_refused_call_twice_ends_with_a_question_naming_the_closest(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = lambda _body: Reply("", tool_calls=[call("intent__HassTurnOn", name="Kamra lámpa")])
    result = await async_ask(hass, "Kapcsold fel a kamra lámpát")
    assert speech(result) == "Melyikre gondolsz: Hálószoba lámpa, Konyhai lámpa vagy Nappali lámpa?"
    assert result.continue_conversation
    assert len(wire.requests) == 2


async def test_invented_tools_twice_end_the_turn(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("sensor__HassSensorGetTemperature", name="Kint")]),
        Reply("", tool_calls=[call("media_player__HassMediaSetVolumeRelative", name="Konyhai lámpa")]),
    )
    result = await async_ask(hass, "Legyen világosabb a konyhában")
    assert speech(result) == NOT_UNDERSTOOD
    assert len(wire.requests) == 2


async def test_refusals_in_a_row_end_the_turn(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = lambda body: Reply(
        "", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa", floor=f"Emelet {len(body['messages'])}")]
    )
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert speech(result) == NOT_UNDERSTOOD
    assert len(wire.requests) == 3
    assert hass.states.get(home.kitchen_light).state == "off"


async def test_a_correction_read_out_is_not_spoken(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa", floor="1st Floor")]),
        Reply("There is no floor '1st Floor'. Floors: none."),
    )
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert speech(result) == NOT_UNDERSTOOD
    assert hass.states.get(home.kitchen_light).state == "off"


async def test_an_english_answer_to_a_hungarian_request_is_replaced(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOn", name="kitchen light")]),
        Reply("I have turned on the kitchen light for you."),
    )
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert speech(result) == "Rendben."
    assert hass.states.get(home.kitchen_light).state == "on"
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="kitchen light")]),
        Reply("I have turned off the kitchen light for you."),
    )
    english = await async_ask(hass, "Turn off the kitchen light", language="en")
    assert speech(english) == "I have turned off the kitchen light for you."  # English is fine for English
    assert hass.states.get(home.kitchen_light).state == "off"


async def test_a_question_answered_unfit_is_not_told_done(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    # The model read something (a tool that changes nothing), then answered in English: "Rendben." would be
    # no answer to a question.
    wire.responder = script(
        Reply("", tool_calls=[call("llm__GetDateTime")]), Reply("The time is shown on the clock now.")
    )
    result = await async_ask(hass, "Mennyi az idő?")
    assert speech(result) == NOT_UNDERSTOOD


async def test_an_earlier_turn_grounds_a_follow_up_and_its_tool_chatter_is_dropped(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Nappali lámpa")]),
        Reply("Lekapcsoltam."),
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa")]),
        Reply("A konyhait felkapcsoltam."),
    )
    first = await async_ask(hass, "Kapcsold le a lámpát a nappaliban")
    assert speech(first) == "Lekapcsoltam."
    second = await async_ask(hass, "A konyhait pedig kapcsold fel", conversation_id=first.conversation_id)
    assert speech(second) == "A konyhait felkapcsoltam."
    assert hass.states.get(home.kitchen_light).state == "on"
    follow_up = wire.requests[2]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]  # no earlier tool chatter
    assert follow_up[2]["content"] == "Lekapcsoltam."

    wire.responder = script(Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa")]), Reply("Kész."))
    await async_ask(hass, "A konyhait pedig kapcsold fel")  # a new conversation: no lamp was spoken of
    assert refusals(wire.requests[-1]) == [
        "The user did not ask about 'Konyhai lámpa'. Act only on what the user asked for; if unsure, ask."
    ]


async def test_the_satellites_area_grounds_a_command_naming_only_a_kind(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    kitchen = ar.async_get(hass).async_get_area_by_name("Konyha")
    assert kitchen is not None
    satellite = dr.async_get(hass).async_get_or_create(
        config_entry_id=agent_entry.entry_id, identifiers={("test", "satellite")}, name="Konyhai hangszóró"
    )
    dr.async_get(hass).async_update_device(satellite.id, area_id=kitchen.id)
    for area, state in (("Konyha", "on"), ("Hálószoba", "off")):
        wire.responder = script(
            Reply("", tool_calls=[call("intent__HassTurnOn", area=area, domain=["light"])]), Reply("Rendben.")
        )
        await conversation.async_converse(
            hass, "Kapcsold fel a lámpát", None, Context(), language="hu", agent_id=AGENT_ID, device_id=satellite.id
        )
        assert hass.states.get(home.kitchen_light if area == "Konyha" else home.bedroom_light).state == state


async def test_tools_list_only_the_homes_device_classes(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(Reply("Rendben."))
    await async_ask(hass, "Mi a helyzet?")
    tools = {tool["function"]["name"]: tool["function"]["parameters"] for tool in wire.requests[0]["tools"]}
    # The home's only device class is a sensor's (temperature), which no turn-on tool takes.
    assert "device_class" not in tools["intent__HassTurnOn"]["properties"]
    assert "domain" in tools["intent__HassTurnOn"]["properties"]


async def test_a_sentence_telling_of_a_forgotten_lock_unlocks_nothing(
    hass: HomeAssistant, wire: OllamaWireServer, front_door: str, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Bejárati ajtó")]), Reply("Szeretnéd, hogy bezárjam?")
    )
    result = await async_ask(hass, "tegnap elfelejtettem bezárni az ajtót")
    assert speech(result) == "Szeretnéd, hogy bezárjam?"
    assert refusals(wire.requests[1]) == [
        "The user told you something; they did not ask for an action. Answer them; do not act."
    ]
    assert hass.states.get(front_door).state == "locked"

    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Bejárati ajtó")]),
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Bejárati ajtó")]),
        Reply("Bezártam."),
    )
    await async_ask(hass, "zárd be a bejárati ajtót")  # the opposite is refused, the model tries again
    assert refusals(wire.requests[-2]) == [
        "The user asked to close or lock, not to open or unlock. Call the tool that does that."
    ]
    assert hass.states.get(front_door).state == "locked"

    wire.responder = script(Reply("", tool_calls=[call("intent__HassTurnOff", name="Bejárati ajtó")]), Reply("Kész."))
    await async_ask(hass, "nyisd ki a bejárati ajtót")
    assert refusals(wire.requests[-1]) == []
    assert hass.states.get(front_door).state == "unlocked"
