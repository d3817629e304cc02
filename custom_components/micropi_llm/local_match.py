"""Carry out sentences Home Assistant can match by itself, before any model is asked.

Matching is HA's own: hassil with HA's intents for the language (the user's custom sentences
included) and the templates we ship (`sentences.py`), over the exposed entities, areas and floors
as HA's default agent lists them; HA's intent handlers act, and HA's response templates speak.
When the sentence as typed does not match, or matches only by its room where a rewrite finds a
device's name ("a konyhai lámpát" is the light of that name, not every light in the kitchen), the
rewrites `hungarian.py` makes of it are tried.

Beyond what HA's pipeline does:
- two commands joined by "és" are matched one by one, and carried out only when both match and
  both find their devices; otherwise the whole sentence is the model's;
- a question about one thing is answered here ("A Terasz hőmérséklet 3,5 °C.", yes/no for locks,
  doors and switches); a question about several, or an open one, is left to the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hassil.intents import Intents, SlotList, TextSlotList
from hassil.recognize import RecognizeResult
from hassil.util import remove_punctuation
from homeassistant.components import conversation
from homeassistant.components.conversation.agent_manager import get_agent_manager
from homeassistant.components.conversation.default_agent import LanguageIntents
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import TemplateError
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.helpers import intent, llm, template
from homeassistant.util.hass_dict import HassKey

from .home_names import ASSISTANT, async_home_names
from .hungarian import (
    HomeName,
    LanguageWords,
    NameIndex,
    learn_language,
    reading_answer,
    rewrites,
    split_commands,
    yes_no_answer,
)
from .sentences import METADATA_SINGLE_TARGET, best_match, load_sentences, recognize, with_sentences

_LOGGER = logging.getLogger(__name__)

# Intents the Assist pipeline leaves to an LLM that controls the home (HA's own
# `_async_local_fallback_intent_filter`): the model answers state questions from the live
# state in its prompt, and "play X" needs its judgement. A question about one thing is the
# exception: we answer it here.
LEFT_TO_MODEL = frozenset({intent.INTENT_GET_STATE, "HassMediaSearchAndPlay"})

# The domain an intent acts on when its slots name none (for finding its devices beforehand).
INTENT_GET_TEMPERATURE = "HassClimateGetTemperature"
INTENT_DOMAINS: Mapping[str, str] = {
    INTENT_GET_TEMPERATURE: "climate",
    "HassLightSet": "light",
    "HassClimateSetTemperature": "climate",
    "HassVacuumStart": "vacuum",
    "HassVacuumReturnToBase": "vacuum",
    "HassSetVolume": "media_player",
    "HassMediaPause": "media_player",
    "HassMediaUnpause": "media_player",
    "HassMediaNext": "media_player",
    "HassMediaPrevious": "media_player",
}
# Attributes HA's default agent puts in a name's matching context (`_DEFAULT_EXPOSED_ATTRIBUTES`).
CONTEXT_ATTRIBUTES = (ATTR_DEVICE_CLASS,)

DATA_MATCHERS: HassKey[dict[str, Matcher]] = HassKey("micropi_llm_matchers")


@dataclass(frozen=True, slots=True)
class Matcher:
    """A language's templates (HA's, the user's and ours) and the words the rewrite learns from them."""

    source: Intents  # HA's intents object these were built from, to notice a reload
    intents: Intents
    words: LanguageWords
    responses: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class IntentCall:
    """One intent to run, as HA's default agent passes it to `intent.async_handle`."""

    intent: str
    slots: Mapping[str, Any]  # slot name -> value
    texts: Mapping[str, str]  # slot name -> the words said for it, for HA's response template
    response: str | None  # the key of HA's response template
    text: str  # the sentence, as it was matched
    single_target: bool = False  # the words name one thing ("the TV"): act only if exactly one is meant

    @classmethod
    def of(cls, text: str, result: RecognizeResult) -> IntentCall:
        return cls(
            intent=result.intent.name,
            slots={entity.name: entity.value for entity in result.entities_list},
            texts={entity.name: entity.text or str(entity.value) for entity in result.entities_list},
            response=result.response,
            text=text,
            single_target=bool((result.intent_metadata or {}).get(METADATA_SINGLE_TARGET)),
        )


async def async_handle_locally(
    hass: HomeAssistant,
    user_input: conversation.ConversationInput,
    chat_log: conversation.ChatLog,
    *,
    model_controls_home: bool,
) -> conversation.ConversationResult | None:
    """Carry out the sentence locally if HA's and our templates match it; None leaves it to the model.

    When the model controls the home (the agent gives it HA's API, and so the live state), the
    intents in `LEFT_TO_MODEL` are left to it, as HA's pipeline does, except a question about
    one thing; otherwise HA answers those too, since the model could not. A match whose intent
    fails also returns None, so the model can try; the failed attempt stays in the chat log for
    HA's trace.
    """
    agent = get_agent_manager(hass).default_agent
    if agent is None:
        return None
    language = user_input.language or hass.config.language
    if (lang_intents := await agent.async_get_or_load_intents(language)) is None:
        return None
    matcher = await _async_matcher(hass, language, lang_intents)
    leave_to_model = LEFT_TO_MODEL if model_controls_home else frozenset()

    parts = split_commands(user_input.text)
    # Rewritten whole, a sentence of two commands would only find a name with "és" in it: not worth the time.
    if (match := await _async_match(hass, matcher, user_input, language, rewrite=parts is None)) is not None:
        matches = [match]
    elif parts is not None:
        found = [await _async_match(hass, matcher, replace(user_input, text=part), language) for part in parts]
        # Both commands, each with its devices, or neither: never half of what was asked.
        if None in found or any(m.intent in LEFT_TO_MODEL for m in found if m is not None):
            return None
        matches = [m for m in found if m is not None]
        if not all(_finds_its_devices(hass, call) for call in matches):
            return None
    else:
        return None

    speeches = []
    response: intent.IntentResponse | None = None
    for call in matches:
        response = await _async_carry_out(hass, matcher, call, user_input, chat_log, leave_to_model, language)
        if response is None:
            return None
        speeches.append(response.speech.get("plain", {}).get("speech", ""))
    assert response is not None
    speech = " ".join(s.strip() for s in speeches if s.strip())
    response.async_set_speech(speech)
    chat_log.async_add_assistant_content_without_tools(
        conversation.AssistantContent(agent_id=user_input.agent_id, content=speech)
    )
    return conversation.ConversationResult(response=response, conversation_id=chat_log.conversation_id)


async def _async_carry_out(  # noqa: PLR0917 - one turn's parts
    hass: HomeAssistant,
    matcher: Matcher,
    call: IntentCall,
    user_input: conversation.ConversationInput,
    chat_log: conversation.ChatLog,
    leave_to_model: frozenset[str],
    language: str,
) -> intent.IntentResponse | None:
    """Run one matched intent (or answer one matched question); None when it is the model's."""
    if call.intent == INTENT_GET_TEMPERATURE and call.slots.get("area") and _targets(hass, call) is None:
        # No thermostat in the room: its thermometer answers "how warm is it there".
        thermometer = replace(
            call,
            intent=intent.INTENT_GET_STATE,
            slots={"area": call.slots["area"], "domain": "sensor", "device_class": "temperature"},
            response="default",
        )
        if len(_targets(hass, thermometer) or ()) == 1:
            call = thermometer
    targets = _targets(hass, call)
    one_thing = targets[0] if targets is not None and len(targets) == 1 else None
    if call.intent == intent.INTENT_GET_STATE:
        if one_thing is None and call.intent in leave_to_model:
            # Several things, or none: the model sees the home and can tell which, or say so.
            return None
        response = await _async_run_intent(hass, matcher, call, user_input, chat_log, language)
        if response is None or one_thing is None:
            return response
        if (answer := _answer(call, one_thing)) is not None:
            response.async_set_speech(answer)
        elif call.intent in leave_to_model:
            return None
        return response
    if call.intent in leave_to_model:
        return None
    if call.single_target and one_thing is None:
        # "The TV" with two TVs in the home: which one is the model's question to ask.
        return None
    return await _async_run_intent(hass, matcher, call, user_input, chat_log, language)


def _answer(call: IntentCall, state: State) -> str | None:
    """The Hungarian answer about one thing: yes/no when a state was asked about, else its reading."""
    if state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    if (asked := call.slots.get("state")) is not None:
        wanted = asked if isinstance(asked, list) else [asked]
        return yes_no_answer(state.state in wanted, state.name, state.domain, state.state)
    return reading_answer(state.name, state.state, state.attributes.get(ATTR_UNIT_OF_MEASUREMENT))


async def _async_run_intent(  # noqa: PLR0917 - one turn's parts
    hass: HomeAssistant,
    matcher: Matcher,
    call: IntentCall,
    user_input: conversation.ConversationInput,
    chat_log: conversation.ChatLog,
    language: str,
) -> intent.IntentResponse | None:
    """Handle the intent as HA's default agent does (`_async_execute_intent`), the call in the chat log."""
    slots = {name: {"value": value, "text": call.texts.get(name, value)} for name, value in call.slots.items()}
    tool_input = llm.ToolInput(tool_name=call.intent, tool_args=dict(call.slots), external=True)
    chat_log.async_add_assistant_content_without_tools(
        conversation.AssistantContent(agent_id=user_input.agent_id, content=None, tool_calls=[tool_input])
    )
    area, device_id = _satellite_area(hass, user_input)
    if area is not None:
        slots["preferred_area_id"] = {"value": area.id}
    failed = False
    try:
        response = await intent.async_handle(
            hass,
            conversation.DOMAIN,
            call.intent,
            slots,
            call.text,
            user_input.context,
            language,
            assistant=conversation.DOMAIN,
            device_id=device_id,
            satellite_id=user_input.satellite_id,
            conversation_agent_id=user_input.agent_id,
        )
    except intent.IntentError as err:
        _LOGGER.debug("Local intent for %r did not succeed (%s), leaving it to the model", user_input.text, err)
        response = intent.IntentResponse(language=language)
        response.async_set_error(intent.IntentResponseErrorCode.NO_VALID_TARGETS, str(err))
        failed = True
    if not response.speech and call.response:
        response.async_set_speech(_speech(hass, matcher, call, response))
    chat_log.async_add_assistant_content_without_tools(
        conversation.ToolResultContent(
            agent_id=user_input.agent_id,
            tool_call_id=tool_input.id,
            tool_name=tool_input.tool_name,
            result=llm.ToolResult(data=llm.IntentResponseDict(response)),
        )
    )
    if failed or response.response_type is intent.IntentResponseType.ERROR:
        return None
    return response


def _speech(hass: HomeAssistant, matcher: Matcher, call: IntentCall, response: intent.IntentResponse) -> str:
    """HA's response template for the call, rendered as the default agent renders it (`_build_speech`)."""
    source = matcher.responses.get(call.intent, {}).get(call.response or "")
    if not source:
        return ""
    states = response.matched_states or response.unmatched_states
    first = states[0] if states else None
    try:
        rendered = template.Template(source, hass).async_render(
            {
                "slots": dict(call.texts) | response.speech_slots,
                "state": template.TemplateState(hass, first) if first is not None else None,
                "query": {
                    "matched": [template.TemplateState(hass, s) for s in response.matched_states],
                    "unmatched": [template.TemplateState(hass, s) for s in response.unmatched_states],
                },
            }
        )
    except TemplateError as err:  # HA's own templates may use what its sandbox forbids
        _LOGGER.debug("Response %s of %s did not render: %s", call.response, call.intent, err)
        return ""
    return " ".join(str(rendered).split())


def _finds_its_devices(hass: HomeAssistant, call: IntentCall) -> bool:
    """Whether the call names exposed devices (exactly one, where its words name one thing)."""
    targets = _targets(hass, call)
    return bool(targets) and (not call.single_target or len(targets or ()) == 1)


def _targets(hass: HomeAssistant, call: IntentCall) -> list[State] | None:
    """The exposed entities the call names (its state slot aside), or None when it names none."""
    slots = call.slots
    domains = slots.get("domain") or INTENT_DOMAINS.get(call.intent)
    device_classes = slots.get("device_class")
    constraints = intent.MatchTargetsConstraints(
        name=slots.get("name"),
        area_name=slots.get("area"),
        floor_name=slots.get("floor"),
        domains=[domains] if isinstance(domains, str) else domains,
        device_classes=[device_classes] if isinstance(device_classes, str) else device_classes,
        assistant=conversation.DOMAIN,
    )
    if not constraints.has_constraints:
        return None
    found = intent.async_match_targets(hass, constraints)
    return found.states if found.is_match else None


async def _async_match(
    hass: HomeAssistant,
    matcher: Matcher,
    user_input: conversation.ConversationInput,
    language: str,
    *,
    rewrite: bool = True,
) -> IntentCall | None:
    """The sentence as typed, or (with `rewrite`) rewritten, matched (see `best_match`)."""
    names = async_home_names(hass)
    slot_lists = names.kept(SlotList, lambda: _slot_lists(hass))
    index = names.kept(NameIndex, lambda: NameIndex(_home_names(hass)))
    context = _intent_context(hass, user_input)

    def attempt(text: str) -> RecognizeResult | None:
        return recognize(text, matcher.intents, slot_lists, context, language)

    def rewritten() -> Iterator[str]:
        for text in rewrites(user_input.text, index, matcher.words, language) if rewrite else ():
            _LOGGER.debug("Trying %r as %r", user_input.text, text)
            yield text

    found = await hass.async_add_executor_job(best_match, user_input.text, rewritten(), attempt)
    return None if found is None else IntentCall.of(*found)


async def _async_matcher(hass: HomeAssistant, language: str, lang_intents: LanguageIntents) -> Matcher:
    """The language's matcher, built again when HA reloaded its intents."""
    cache = hass.data.setdefault(DATA_MATCHERS, {})
    if (cached := cache.get(language)) is None or cached.source is not lang_intents.intents:
        cached = await hass.async_add_executor_job(_build_matcher, lang_intents, language)
        cache[language] = cached
    return cached


def _build_matcher(lang_intents: LanguageIntents, language: str) -> Matcher:
    ours = load_sentences(language)
    if ours is None:
        intents = lang_intents.intents
        return Matcher(intents, intents, learn_language(intents), lang_intents.intent_responses)
    intents = with_sentences(lang_intents.intents_dict, ours)
    responses = {
        name: {**lang_intents.intent_responses.get(name, {}), **keys}
        for name, keys in ((ours.get("responses") or {}).get("intents") or {}).items()
    }
    return Matcher(
        lang_intents.intents, intents, learn_language(intents), {**lang_intents.intent_responses, **responses}
    )


def _slot_lists(hass: HomeAssistant) -> dict[str, SlotList]:
    """The slot lists HA's default agent matches with (`_make_slot_lists`): exposed names, areas, floors."""
    names: dict[str, list[tuple[str, str, dict[str, Any]]]] = {"name": [], "area": [], "floor": []}
    entity_registry = er.async_get(hass)
    for state in hass.states.async_all():
        if not async_should_expose(hass, ASSISTANT, state.entity_id):
            continue
        context = {"domain": state.domain} | {
            k: state.attributes[k] for k in CONTEXT_ATTRIBUTES if k in state.attributes
        }
        for name in intent.async_get_entity_aliases(hass, entity_registry.async_get(state.entity_id), state=state):
            if spoken := remove_punctuation(name).strip():
                names["name"].append((spoken, name, context))
    for area in ar.async_get(hass).async_list_areas():
        names["area"] += [(spoken, area.name, {}) for a in (area.name, *area.aliases) if (spoken := _spoken(a))]
    for floor in fr.async_get(hass).async_list_floors():
        names["floor"] += [(spoken, floor.name, {}) for a in (floor.name, *floor.aliases) if (spoken := _spoken(a))]
    return {key: TextSlotList.from_tuples(values, allow_template=False) for key, values in names.items()}


def _spoken(name: str) -> str:
    return remove_punctuation(name).strip()


def _satellite_area(
    hass: HomeAssistant, user_input: conversation.ConversationInput
) -> tuple[ar.AreaEntry | None, str | None]:
    """The area of the satellite or device that heard the sentence, and that device (HA's way)."""
    device_id = user_input.device_id
    area_id = None
    if user_input.satellite_id and (entry := er.async_get(hass).async_get(user_input.satellite_id)):
        area_id, device_id = entry.area_id, entry.device_id
    if area_id is None and device_id and (device := dr.async_get(hass).async_get(device_id)):
        area_id = device.area_id
    return (ar.async_get(hass).async_get_area(area_id) if area_id else None), device_id


def _intent_context(hass: HomeAssistant, user_input: conversation.ConversationInput) -> dict[str, Any] | None:
    area, _ = _satellite_area(hass, user_input)
    return None if area is None else {"area": {"value": area.name, "text": area.name}}


def _home_names(hass: HomeAssistant) -> Iterator[HomeName]:
    """Yield the names HA's default agent matches: exposed entities' names and aliases, areas, floors."""
    entity_registry = er.async_get(hass)
    for state in hass.states.async_all():
        if not async_should_expose(hass, ASSISTANT, state.entity_id):
            continue
        entry = entity_registry.async_get(state.entity_id)
        for name in intent.async_get_entity_aliases(hass, entry, state=state):
            yield HomeName("name", name)
    for area in ar.async_get(hass).async_list_areas():
        for name in (area.name, *area.aliases):
            yield HomeName("area", name)
    for floor in fr.async_get(hass).async_list_floors():
        for name in (floor.name, *floor.aliases):
            yield HomeName("floor", name)
