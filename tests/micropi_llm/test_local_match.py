"""Local-first matching through our agent in real Home Assistant core, with HA's own Hungarian and English intents.

The home is real: template lights, switches and a sensor (optimistic, so turning them on or
off changes their state), registry areas with aliases, one switch not exposed to Assist. The
agent (local first, its default) talks to the Ollama wire-format server; a sentence left to the
model reaches that server, one carried out locally does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from homeassistant.components import conversation
from homeassistant.components.conversation.agent_manager import get_agent_manager
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import CONF_LLM_HASS_API, STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import chat_session, intent
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from bench.ollama_wire import OllamaWireServer, Reply
from custom_components.micropi_llm.local_match import async_handle_locally

from .home import AGENT_ID, async_ask, async_setup_agent

# Registry unique ids of the template entities -> (name, area name or None).
LIGHTS = {
    "ceiling": ("Mennyezeti lámpa", "Hálószoba"),
    "counter": ("Pultvilágítás", "Konyha"),
    "floor_lamp": ("Állólámpa", "Nappali"),
    "broken": ("Hibás lámpa", None),
    # A name that is also a template word ("lámpát" = a light / this light).
    "lamp": ("Lámpa", "Dolgozószoba"),
}
SWITCHES = {
    "fan": ("Ventilátor", "Nappali"),
    "coffee": ("Kávéfőző", "Konyha"),  # not exposed to Assist
}
SENSORS = {"outside": ("Kinti hőmérséklet", None)}
MODEL_REPLY = "the model answered"


@dataclass
class SmallHome:
    hass: HomeAssistant
    wire: OllamaWireServer
    ids: dict[str, str]  # unique id -> entity id

    async def handle(
        self, text: str, language: str = "hu", conversation_id: str | None = None
    ) -> conversation.ConversationResult | None:
        """One turn through the agent: its result when carried out locally, None when the model was asked."""
        asked = len(self.wire.requests)
        result = await async_ask(self.hass, text, language, conversation_id)
        if len(self.wire.requests) > asked:
            assert _speech(result) == MODEL_REPLY
            return None
        return result

    def state(self, key: str) -> str:
        state = self.hass.states.get(self.ids[key])
        assert state is not None
        return state.state

    def states(self) -> dict[str, str]:
        return {key: self.state(key) for key in self.ids}


def _template_entity(unique_id: str, name: str) -> dict[str, Any]:
    # No state template: the entity is optimistic and takes the state it is switched to.
    return {"unique_id": unique_id, "name": name, "turn_on": [], "turn_off": []}


@pytest.fixture
async def small_home(hass: HomeAssistant, wire: OllamaWireServer) -> SmallHome:
    """The home, and our agent with its default settings (local first, HA's Assist API)."""
    wire.responder = lambda _body: Reply(MODEL_REPLY)
    built = await async_setup_small_home(hass, wire)
    await async_setup_agent(hass, wire.url)
    return built


async def async_setup_small_home(hass: HomeAssistant, wire: OllamaWireServer) -> SmallHome:
    hass.config.language = "hu"
    lights = [_template_entity(key, name) for key, (name, _) in LIGHTS.items()]
    # This lamp's switch-on fails inside HA (its action names a service that does not exist).
    lights[list(LIGHTS).index("broken")]["turn_on"] = [{"action": "script.does_not_exist"}]
    template_config = {
        "light": lights,
        "switch": [_template_entity(key, name) for key, (name, _) in SWITCHES.items()],
        "sensor": [
            {"unique_id": key, "name": name, "state": "21", "unit_of_measurement": "°C", "device_class": "temperature"}
            for key, (name, _) in SENSORS.items()
        ],
    }
    for domain in ("intent", "conversation"):
        assert await async_setup_component(hass, domain, {})
    assert await async_setup_component(hass, "template", {"template": [template_config]})
    await hass.async_block_till_done()

    floor = fr.async_get(hass).async_create("Földszint", aliases={"ground floor"})
    areas = ar.async_get(hass)
    area_ids = {
        "Hálószoba": areas.async_create("Hálószoba", aliases={"bedroom"}, floor_id=floor.floor_id).id,
        "Konyha": areas.async_create("Konyha", aliases={"kitchen"}, floor_id=floor.floor_id).id,
        "Nappali": areas.async_create("Nappali", aliases={"living room"}, floor_id=floor.floor_id).id,
        "Dolgozószoba": areas.async_create("Dolgozószoba").id,
    }
    areas.async_create("Fürdőszoba")  # no devices in it

    entities = er.async_get(hass)
    ids: dict[str, str] = {}
    for domain, table in (("light", LIGHTS), ("switch", SWITCHES), ("sensor", SENSORS)):
        for key, (_, area) in table.items():
            entity_id = entities.async_get_entity_id(domain, "template", key)
            assert entity_id is not None, f"template {domain} {key} was not set up"
            ids[key] = entity_id
            if area is not None:
                entities.async_update_entity(entity_id, area_id=area_ids[area])
    # Aliases besides its own name (COMPUTED_NAME), not instead of it.
    entities.async_update_entity(ids["ceiling"], aliases=[er.COMPUTED_NAME, "ceiling light"])
    async_expose_entity(hass, conversation.DOMAIN, ids["coffee"], False)
    await hass.async_block_till_done()

    built = SmallHome(hass, wire, ids)
    # Optimistic template entities know no state until first switched.
    assert set(built.states().values()) == {STATE_UNKNOWN, "21.0"}, built.states()
    return built


def _input(text: str, language: str = "hu") -> conversation.ConversationInput:
    return conversation.ConversationInput(
        text=text,
        context=Context(),
        conversation_id=None,
        device_id=None,
        satellite_id=None,
        language=language,
        agent_id=AGENT_ID,
    )


def _speech(result: conversation.ConversationResult) -> str:
    speech: str = result.response.speech["plain"]["speech"]
    return speech


async def _ha_alone_matches(hass: HomeAssistant, text: str, language: str = "hu") -> bool:
    """Whether HA's default agent matches the sentence as typed (what "prefer local" gets)."""
    agent = get_agent_manager(hass).default_agent
    assert agent is not None
    return await agent.async_recognize_intent(_input(text, language), strict_intents_only=True) is not None


@pytest.mark.parametrize(
    ("text", "key", "speech"),
    [
        # The brief's two sentences: lengthened stem + inessive, adjective + accent-less accusative.
        ("kapcsold fel a lámpát a hálószobában", "ceiling", "A lámpák bekapcsolva"),
        ("kapcsold fel a konyhai lampat", "counter", "A lámpák bekapcsolva"),
        # An inflected multi-word entity name without accents.
        ("Kapcsold fel a mennyezeti lampat!", "ceiling", "A lámpa bekapcsolva"),
        ("kapcsold be a ventilatort", "fan", "A kapcsoló bekapcsolva"),
        ("kapcsold fel a lampakat a nappaliban", "floor_lamp", "A lámpák bekapcsolva"),
        # "lámpát" is the kitchen's lights here, not the light named "Lámpa" ...
        ("oltsd fel a lámpát a konyhában", "counter", "A lámpák bekapcsolva"),
        # ... and here that light.
        ("kapcsold fel a lámpát", "lamp", "A lámpa bekapcsolva"),
    ],
)
async def test_inflected_and_accentless_hungarian_is_carried_out(
    small_home: SmallHome, text: str, key: str, speech: str
) -> None:
    before = small_home.states()
    result = await small_home.handle(text)
    assert result is not None, f"{text!r} was not matched locally"
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE
    assert _speech(result) == speech
    assert small_home.state(key) == STATE_ON
    # Nothing but the target (and, for an area, the other lights in it) changed.
    changed = {name for name, state in small_home.states().items() if state != before[name]}
    assert changed == {key}


@pytest.mark.parametrize(
    "text",
    ["kapcsold fel a lámpát a hálószobában", "kapcsold fel a konyhai lampat", "kapcsold fel a mennyezeti lampat"],
)
async def test_ha_alone_does_not_match_these(small_home: SmallHome, text: str) -> None:
    """Where HA's own matching fails: the reason this module rewrites sentences."""
    assert not await _ha_alone_matches(small_home.hass, text)


async def test_switching_off_and_on_again(small_home: SmallHome) -> None:
    assert await small_home.handle("kapcsold be a mennyezeti lámpát") is not None
    assert small_home.state("ceiling") == STATE_ON
    result = await small_home.handle("kapcsold le a mennyezeti lampat")
    assert result is not None
    assert _speech(result) == "A lámpa kikapcsolva"
    assert small_home.state("ceiling") == STATE_OFF


@pytest.mark.parametrize(
    ("text", "keys", "speech"),
    [
        ("turn on the ceiling light", {"ceiling"}, "Turned on the light"),
        ("Turn on the lights in the kitchen.", {"counter"}, "Turned on the lights"),
        ("turn on the lights on the ground floor", {"ceiling", "counter", "floor_lamp"}, "Turned on the lights"),
    ],
)
async def test_english_is_carried_out(small_home: SmallHome, text: str, keys: set[str], speech: str) -> None:
    result = await small_home.handle(text, language="en")
    assert result is not None
    assert _speech(result) == speech
    assert {key for key in keys if small_home.state(key) == STATE_ON} == keys


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("mesélj egy viccet a lámpákról", "hu"),  # no intent: the model's job
        ("melyik lámpák égnek?", "hu"),  # an open question: the model sees the home
        ("tell me a joke", "en"),
        ("kapcsold fel a lámpát", "tlh"),  # a language HA has no intents for
    ],
)
async def test_what_is_not_carried_out_is_left_to_the_model(small_home: SmallHome, text: str, language: str) -> None:
    before = small_home.states()
    assert await small_home.handle(text, language) is None
    assert small_home.states() == before


@pytest.mark.parametrize(
    ("text", "as_ha_matches_it"),
    [
        # No light in that room: HA answers "no such device", the model may know better.
        ("kapcsold fel a lámpát a fürdőszobában", "kapcsold fel a lámpát a Fürdőszobaban"),
        # Switching it on fails inside HA.
        ("kapcsold fel a hibás lámpát", "kapcsold fel a Hibás lámpat"),
    ],
)
async def test_matched_but_failed_is_left_to_the_model(small_home: SmallHome, text: str, as_ha_matches_it: str) -> None:
    assert await _ha_alone_matches(small_home.hass, as_ha_matches_it)
    before = small_home.states()
    assert await small_home.handle(text) is None
    assert small_home.states() == before


async def test_state_question_is_answered_locally_for_an_agent_without_the_home_api(
    hass: HomeAssistant, wire: OllamaWireServer
) -> None:
    """HA leaves state questions to a model that sees the home; an agent without HA's API gives it none."""
    wire.responder = lambda _body: Reply(MODEL_REPLY)
    small_home = await async_setup_small_home(hass, wire)
    assert await _ha_alone_matches(hass, "mi a kinti hőmérséklet")
    await async_setup_agent(hass, wire.url, {CONF_LLM_HASS_API: []})
    result = await small_home.handle("mi a kinti homerseklet")
    assert result is not None
    assert result.response.response_type is intent.IntentResponseType.QUERY_ANSWER
    assert "21" in _speech(result)


@pytest.mark.parametrize("text", ["kapcsold be a kávéfőzőt", "kapcsold be a kavefozot", "Kávéfőző"])
async def test_unexposed_entity_is_not_acted_upon(small_home: SmallHome, text: str) -> None:
    assert await small_home.handle(text) is None
    assert small_home.state("coffee") == STATE_UNKNOWN
    # Exposed, the same sentence is carried out: the refusal above is the exposure's doing.
    async_expose_entity(small_home.hass, conversation.DOMAIN, small_home.ids["coffee"], True)
    await small_home.hass.async_block_till_done()
    assert await small_home.handle(text) is not None
    assert small_home.state("coffee") == STATE_ON


async def test_a_local_turn_goes_into_the_conversations_chat_log(small_home: SmallHome) -> None:
    """A new conversation (no id yet) and one going on under its id both get the turn in their chat log."""
    first = await small_home.handle("kapcsold be a ventilatort")
    assert first is not None
    assert first.conversation_id
    _assert_local_turn(
        _chat_log(small_home.hass, first.conversation_id), "kapcsold be a ventilatort", "A kapcsoló bekapcsolva"
    )
    again = await small_home.handle("kapcsold ki a ventilatort", conversation_id=first.conversation_id)
    assert again is not None
    assert again.conversation_id == first.conversation_id
    _assert_local_turn(
        _chat_log(small_home.hass, first.conversation_id),
        "kapcsold ki a ventilatort",
        "A kapcsoló kikapcsolva",
        "HassTurnOff",
    )


def _chat_log(hass: HomeAssistant, conversation_id: str) -> conversation.ChatLog:
    """The chat log HA keeps for the conversation."""
    with (
        chat_session.async_get_chat_session(hass, conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        assert session.conversation_id == conversation_id
        return chat_log


def _assert_local_turn(chat_log: conversation.ChatLog, said: str, answer: str, tool: str = "HassTurnOn") -> None:
    """The turn is in the chat log as HA's pipeline records a local match: tool call, result, answer."""
    user, call, tool_result, reply = chat_log.content[-4:]
    assert isinstance(user, conversation.UserContent)
    assert user.content == said
    assert isinstance(call, conversation.AssistantContent)
    assert call.tool_calls is not None
    assert call.tool_calls[0].tool_name == tool
    assert isinstance(tool_result, conversation.ToolResultContent)
    assert isinstance(reply, conversation.AssistantContent)
    assert reply.content == answer


async def test_conversation_process_service_is_handled_locally(small_home: SmallHome) -> None:
    response = await small_home.hass.services.async_call(
        conversation.DOMAIN,
        "process",
        {"text": "kapcsold fel a konyhai lampat", "language": "hu", "agent_id": AGENT_ID},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["response"]["speech"]["plain"]["speech"] == "A lámpák bekapcsolva"
    assert small_home.state("counter") == STATE_ON
    assert response["conversation_id"]  # a conversation to go on with


async def test_rest_api_is_handled_locally(small_home: SmallHome, hass_client: ClientSessionGenerator) -> None:
    client = await hass_client()
    for text, expected in (
        ("kapcsold fel a lámpát a hálószobában", "A lámpák bekapcsolva"),
        ("mesélj egy viccet", MODEL_REPLY),
    ):
        reply = await client.post(
            "/api/conversation/process", json={"text": text, "language": "hu", "agent_id": AGENT_ID}
        )
        assert reply.status == HTTPStatus.OK
        body = await reply.json()
        assert body["response"]["speech"]["plain"]["speech"] == expected
    assert small_home.state("ceiling") == STATE_ON


async def test_without_the_conversation_integration_nothing_is_matched(hass: HomeAssistant) -> None:
    """No default agent (conversation not set up): nothing to match with, the model decides."""
    chat_log = conversation.ChatLog(hass, "no-conversation")
    assert await async_handle_locally(hass, _input("kapcsold fel a lámpát"), chat_log, model_controls_home=True) is None
    assert len(chat_log.content) == 1  # only the system prompt: nothing was tried


async def test_renamed_device_is_found_on_the_next_turn(small_home: SmallHome) -> None:
    """The folded names are kept between sentences, and rebuilt when a name changes."""
    hass = small_home.hass
    assert await small_home.handle("kapcsold fel a mennyezeti lampat") is not None
    assert small_home.state("ceiling") == STATE_ON
    er.async_get(hass).async_update_entity(small_home.ids["ceiling"], name="Hátsó lámpa", aliases=[er.COMPUTED_NAME])
    await hass.async_block_till_done()
    assert not await _ha_alone_matches(hass, "kapcsold le a hatso lampat")
    assert await small_home.handle("kapcsold le a hatso lampat") is not None
    assert small_home.state("ceiling") == STATE_OFF


async def test_two_commands_joined_by_es_are_carried_out_together(small_home: SmallHome) -> None:
    result = await small_home.handle("kapcsold fel az állólámpát és kapcsold be a ventilatort")
    assert result is not None
    assert (small_home.state("floor_lamp"), small_home.state("fan")) == (STATE_ON, STATE_ON)
    assert _speech(result) == "A lámpa bekapcsolva A kapcsoló bekapcsolva"
    # The second command may borrow the first one's verb.
    assert await small_home.handle("kapcsold le az állólámpát és a ventilátort is") is not None
    assert (small_home.state("floor_lamp"), small_home.state("fan")) == (STATE_OFF, STATE_OFF)


@pytest.mark.parametrize(
    "text",
    [
        "kapcsold fel az állólámpát és mesélj egy viccet",  # the second is no command
        "kapcsold fel az állólámpát és kapcsold fel a lámpát a fürdőszobában",  # no light there
        "kapcsold fel az állólámpát és kapcsold be a kávéfőzőt",  # not exposed
    ],
)
async def test_two_commands_of_which_one_fails_go_to_the_model_whole(small_home: SmallHome, text: str) -> None:
    before = small_home.states()
    assert await small_home.handle(text) is None
    assert small_home.states() == before  # not half of it


async def test_a_question_about_one_thing_is_answered_in_hungarian(small_home: SmallHome) -> None:
    result = await small_home.handle("mi a kinti hőmérséklet?")
    assert result is not None
    assert result.response.response_type is intent.IntentResponseType.QUERY_ANSWER
    assert _speech(result) == "A Kinti hőmérséklet 21,0 °C."
    # Thermometer of a room without a thermostat answers "how warm is it there".
    entities = er.async_get(small_home.hass)
    area = ar.async_get(small_home.hass).async_get_area_by_name("Konyha")
    assert area is not None
    entities.async_update_entity(small_home.ids["outside"], area_id=area.id)
    await small_home.hass.async_block_till_done()
    result = await small_home.handle("hány fok van a konyhában?")
    assert result is not None
    assert _speech(result) == "A Kinti hőmérséklet 21,0 °C."


async def test_yes_no_about_one_thing(small_home: SmallHome) -> None:
    # A state HA does not know yet is not guessed at: the model says what it can.
    assert await small_home.handle("be van kapcsolva a ventilátor?") is None
    assert await small_home.handle("kapcsold be a ventilátort") is not None
    result = await small_home.handle("be van kapcsolva a ventilátor?")
    assert result is not None
    assert _speech(result) == "Igen, a Ventilátor be van kapcsolva."
    assert await small_home.handle("kapcsold ki a ventilátort") is not None
    result = await small_home.handle("be van kapcsolva a ventilátor?")
    assert result is not None
    assert _speech(result) == "Nem, a Ventilátor ki van kapcsolva."


async def test_state_question_about_several_things_goes_to_the_model(small_home: SmallHome) -> None:
    """Matched (HassGetState for the room's lights), but two lights: the model, which sees the home, answers."""
    assert await small_home.handle("kapcsold fel a mennyezeti lámpát") is not None
    text = "ég a villany a hálószobában?"
    result = await small_home.handle(text)
    assert result is not None
    assert _speech(result) == "Igen, a Mennyezeti lámpa be van kapcsolva."
    area = ar.async_get(small_home.hass).async_get_area_by_name("Hálószoba")
    assert area is not None
    er.async_get(small_home.hass).async_update_entity(small_home.ids["broken"], area_id=area.id)
    await small_home.hass.async_block_till_done()
    assert await small_home.handle(text) is None


async def test_colloquial_words_and_short_room_names(small_home: SmallHome) -> None:
    assert not await _ha_alone_matches(small_home.hass, "gyújtsd fel a villanyt a hálóban")
    assert await small_home.handle("gyújtsd fel a villanyt a hálóban") is not None
    assert small_home.state("ceiling") == STATE_ON
    assert await small_home.handle("a hálószobában oltsd le a villanyt légyszi") is not None
    assert small_home.state("ceiling") == STATE_OFF
