"""Carry out sentences Home Assistant can match by itself, before any model is asked.

Matching is HA's own: hassil with HA's intents (and the user's custom sentences), through the
default agent, exposed entities only - exactly what the Assist pipeline's "prefer local intents"
does, but inside our agent, so it also covers `conversation.process` and the REST API.

When HA does not match a sentence as typed, it tries once more with each rewrite `hungarian.py`
makes of it (inflected and accent-less names and words). The original sentence always goes
first, so the rewrite can only add matches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

from hassil.intents import Intents
from hassil.recognize import RecognizeResult
from homeassistant.components import conversation
from homeassistant.components.conversation.agent_manager import get_agent_manager
from homeassistant.components.conversation.default_agent import DefaultAgent
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.helpers import intent
from homeassistant.util.hass_dict import HassKey

from .home_names import ASSISTANT, async_home_names
from .hungarian import HomeName, LanguageWords, NameIndex, learn_language, rewrites

_LOGGER = logging.getLogger(__name__)

# Intents the Assist pipeline leaves to an LLM that controls the home (HA's own
# `_async_local_fallback_intent_filter`): the model answers state questions from the live
# state in its prompt, and "play X" needs its judgement.
LEFT_TO_MODEL = frozenset({intent.INTENT_GET_STATE, "HassMediaSearchAndPlay"})

DATA_LANGUAGE_WORDS: HassKey[dict[str, tuple[Intents, LanguageWords]]] = HassKey("micropi_llm_language_words")


async def async_handle_locally(
    hass: HomeAssistant,
    user_input: conversation.ConversationInput,
    chat_log: conversation.ChatLog,
    *,
    model_controls_home: bool,
) -> conversation.ConversationResult | None:
    """Carry out the sentence with HA's own intents if they match it; None leaves it to the model.

    When the model controls the home (the agent gives it HA's API, and so the live state), the
    intents in `LEFT_TO_MODEL` are left to it, as HA's pipeline does; otherwise HA answers those
    too, since the model could not. A match whose intent fails also returns None, so the model
    can try; the failed attempt stays in the chat log for HA's trace.
    """
    agent = get_agent_manager(hass).default_agent
    if agent is None:
        return None
    language = user_input.language or hass.config.language
    if (lang_intents := await agent.async_get_or_load_intents(language)) is None:
        return None
    leave_to_model = LEFT_TO_MODEL if model_controls_home else frozenset()

    def left_to_model(result: RecognizeResult) -> bool:
        return result.intent.name in leave_to_model

    matched_input = await _async_matching_input(hass, agent, user_input, lang_intents.intents, language)
    if matched_input is None or left_to_model(matched_input[1]):
        return None
    response = await conversation.async_handle_intents(hass, matched_input[0], chat_log, intent_filter=left_to_model)
    if response is None or response.response_type is intent.IntentResponseType.ERROR:
        _LOGGER.debug("Local intent for %r did not succeed, leaving it to the model", user_input.text)
        return None
    speech: str = response.speech.get("plain", {}).get("speech", "")
    chat_log.async_add_assistant_content_without_tools(
        conversation.AssistantContent(agent_id=user_input.agent_id, content=speech)
    )
    return conversation.ConversationResult(response=response, conversation_id=chat_log.conversation_id)


async def _async_matching_input(
    hass: HomeAssistant,
    agent: DefaultAgent,
    user_input: conversation.ConversationInput,
    intents: Intents,
    language: str,
) -> tuple[conversation.ConversationInput, RecognizeResult] | None:
    """Return the input as typed, or rewritten, that HA matches, with what it matched."""
    result = await agent.async_recognize_intent(user_input, strict_intents_only=True)
    if result is None:
        language_words = await _async_language_words(hass, language, intents)
        index = async_home_names(hass).kept(NameIndex, lambda: NameIndex(_home_names(hass)))
        for text in rewrites(user_input.text, index, language_words, language):
            _LOGGER.debug("Trying %r as %r", user_input.text, text)
            rewritten = replace(user_input, text=text)
            if (result := await agent.async_recognize_intent(rewritten, strict_intents_only=True)) is not None:
                user_input = rewritten
                break
    if result is None:
        return None
    return user_input, result


async def _async_language_words(hass: HomeAssistant, language: str, intents: Intents) -> LanguageWords:
    """Return the language's template words, learnt again when its intents were reloaded."""
    cache = hass.data.setdefault(DATA_LANGUAGE_WORDS, {})
    if (cached := cache.get(language)) is None or cached[0] is not intents:
        cached = (intents, await hass.async_add_executor_job(learn_language, intents))
        cache[language] = cached
    return cached[1]


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
