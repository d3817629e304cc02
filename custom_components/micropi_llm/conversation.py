"""The conversation agent: HA's chat log and LLM API, Ollama's /api/chat with tools, streamed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, override

import ollama
import probatio as vol
from homeassistant.components import conversation
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_URL, MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import intent, llm
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.json import json_dumps
from homeassistant.helpers.translation import async_get_translations

from .budget import ContextBudget
from .client import (
    TURN_ERRORS,
    Failure,
    IncompleteStreamError,
    LLMAPIUnavailableError,
    MicroPiConfigEntry,
    ToolLoopError,
    TurnStats,
    classify,
    redact_url,
    retry_after,
)
from .const import DOMAIN, SUBENTRY_CONVERSATION
from .home_names import ASSISTANT, async_exposed_states
from .live_state import home_api
from .local_match import async_handle_locally
from .options import AgentOptions
from .rounds import RoundWatch, machine_text, spoken_choices
from .server_status import async_update_model_issue
from .tool_repair import repaired_deltas
from .turn_report import turn_summary

_LOGGER = logging.getLogger(__name__)

# Turns of different conversations run side by side; the server queues what it must.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: MicroPiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One agent entity per conversation subentry."""
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_CONVERSATION:
            async_add_entities([MicroPiAgent(entry, subentry)], config_subentry_id=subentry.subentry_id)


def format_tool(
    tool: llm.Tool, custom_serializer: Callable[[Any], Any] | None, device_classes: set[str] | None = None
) -> dict[str, Any]:
    """An HA LLM tool in Ollama's (OpenAI's) function format.

    With `device_classes` (those of the exposed devices), a `device_class` parameter lists only
    those, or goes when there are none: HA lists every class of every domain, which costs each
    model call a few hundred tokens and tempts a small model to name classes the home lacks. A
    `domain` that can only be the tool's own (media_player__HassMediaPause) goes as well.
    """
    parameters = vol.to_openapi(tool.parameters, custom_serializer=custom_serializer, openapi_version="3.1.0")
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if isinstance(properties, dict) and len((properties.get("domain", {}).get("items") or {}).get("enum") or ()) == 1:
        del properties["domain"]
    if device_classes is not None and isinstance(properties, dict) and "device_class" in properties:
        items = properties["device_class"].get("items") or {}
        if isinstance(items.get("enum"), list):
            kept = [value for value in items["enum"] if value in device_classes]
            if kept:
                properties["device_class"] = {**properties["device_class"], "items": {**items, "enum": kept}}
            else:
                del properties["device_class"]
    function: dict[str, Any] = {"name": tool.name, "parameters": parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def to_ollama_message(content: conversation.Content) -> dict[str, Any]:
    """One chat log entry as an Ollama chat message."""
    if isinstance(content, conversation.ToolResultContent):
        data = content.result.data if content.result is not None else {}
        return {"role": "tool", "tool_name": content.tool_name, "content": json_dumps(data)}
    if isinstance(content, conversation.AssistantContent):
        message: dict[str, Any] = {"role": "assistant", "content": content.content or ""}
        if content.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": call.tool_name, "arguments": call.tool_args}} for call in content.tool_calls
            ]
        return message
    return {"role": content.role, "content": content.content or ""}


def _failed_local_calls(contents: list[conversation.Content]) -> set[str]:
    """The ids of HA's own intent calls (local matching) that failed.

    The model does not see them: small models read a failed call in the history as their own and
    repeat its error ("there are multiple devices called ...") instead of making a call of their
    own, which our guard can repair. The chat log keeps them for HA's trace.
    """
    external = {
        call.id
        for content in contents
        if isinstance(content, conversation.AssistantContent)
        for call in content.tool_calls or ()
        if call.external
    }
    return {
        content.tool_call_id
        for content in contents
        if isinstance(content, conversation.ToolResultContent)
        and content.tool_call_id in external
        and (
            content.result.error
            or (isinstance(content.result.data, dict) and content.result.data.get("response_type") == "error")
        )
    }


def build_messages(
    chat_log: conversation.ChatLog, tools: list[dict[str, Any]] | None, max_history: int, budget: ContextBudget
) -> list[dict[str, Any]]:
    """The chat log as Ollama messages: the system prompt, then the newest turns that fit.

    A turn is a user message with everything that answered it. At most `max_history` earlier turns
    are kept (0: all that fit), and the oldest go first until they fit the budget.
    """
    system, *rest = chat_log.content
    failed_locally = _failed_local_calls(rest)
    turns: list[list[dict[str, Any]]] = []
    for content in rest:
        if isinstance(content, conversation.UserContent) or not turns:
            turns.append([])
        if isinstance(content, conversation.ToolResultContent) and content.tool_call_id in failed_locally:
            continue
        shown = content
        if isinstance(content, conversation.AssistantContent) and content.tool_calls:
            calls = [call for call in content.tool_calls if call.id not in failed_locally]
            if not calls and not content.content:
                continue
            shown = replace(content, tool_calls=calls or None)
        turns[-1].append(to_ollama_message(shown))
    if max_history > 0:
        turns = turns[-(max_history + 1) :]
    # An earlier turn's tool calls and results no longer matter (the live state says how things
    # are now): what the user said and the answer they heard are kept.
    turns = [_said_and_heard(turn) for turn in turns[:-1]] + turns[-1:]
    head = [to_ollama_message(system)]
    return head + [message for turn in budget.fit_history(head, tools, turns) for message in turn]


def _said_and_heard(turn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A finished turn as the user's message and the last answer they heard."""
    said = [message for message in turn if message["role"] == "user"]
    heard = [
        message
        for message in turn
        if message["role"] == "assistant" and message.get("content") and not message.get("tool_calls")
    ]
    return said + heard[-1:]


class MicroPiAgent(conversation.ConversationEntity):
    """A conversation agent answering from the home's live state, acting through HA's tools."""

    _attr_has_entity_name = True
    _attr_name = None
    _attr_supports_streaming = True

    def __init__(self, entry: MicroPiConfigEntry, subentry: ConfigSubentry) -> None:
        self.entry = entry
        self.subentry = subentry
        self.options = AgentOptions.from_data(subentry.data)
        self.budget = ContextBudget(self.options.num_ctx)
        self._attr_unique_id = subentry.subentry_id
        model, _, tag = self.options.model.partition(":")
        self._attr_device_info = dr.DeviceInfo(
            identifiers={(DOMAIN, subentry.subentry_id)},
            name=subentry.title,
            manufacturer="MicroPi",
            model=model,
            sw_version=tag or "latest",
            entry_type=dr.DeviceEntryType.SERVICE,
        )
        if self.options.llm_hass_api:
            self._attr_supported_features = conversation.ConversationEntityFeature.CONTROL

    @property
    @override
    def supported_languages(self) -> list[str] | Literal["*"]:
        return MATCH_ALL

    @override
    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        """Answer one user message, then report the turn (a hosted MicroPi keeps the household's log)."""
        started = time.monotonic()
        stats: list[TurnStats] = []
        result, handled, status = await self._async_answer(user_input, chat_log, stats)
        figures: dict[str, Any] = {
            "handled": handled,
            "latency_ms": round((time.monotonic() - started) * 1000),
            "prompt_tokens": sum(s.prompt_eval_count or 0 for s in stats),
            "eval_tokens": sum(s.eval_count or 0 for s in stats),
        }
        if status is not None:
            figures["status"] = status
        self.entry.runtime_data.reporter.report(turn_summary(self.hass, user_input, chat_log, result, **figures))
        return result

    async def _async_answer(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog, stats: list[TurnStats]
    ) -> tuple[conversation.ConversationResult, str, str | None]:
        """Locally when HA matches it, else with the model; (result, "local"|"model", failure or None)."""
        if self.options.prefer_local and (
            result := await async_handle_locally(
                self.hass, user_input, chat_log, model_controls_home=bool(self.options.llm_hass_api)
            )
        ):
            return result, "local", None
        try:
            await self._async_provide_llm_data(user_input, chat_log)
            # One deadline for the whole turn, tool rounds included: the user hears something in time.
            async with asyncio.timeout(self.options.timeout):
                watch = await self._async_run_model(chat_log, user_input, stats)
        except conversation.ConverseError as err:  # e.g. the instructions are a broken template
            return err.as_conversation_result(), "model", "converse_error"
        except TURN_ERRORS as err:
            return await self._async_failed(user_input, chat_log, err), "model", str(classify(err))
        last = chat_log.content[-1]
        if watch.stopped or not (
            isinstance(last, conversation.AssistantContent)
            and last.content
            and not machine_text(last.content, user_input.language, watch.corrections, user_input.text)
        ):
            # Nothing fit to be spoken (or a loop was cut short): a short answer of our own.
            text = await async_answer_instead(self.hass, user_input.language, watch)
            chat_log.async_add_assistant_content_without_tools(
                conversation.AssistantContent(agent_id=self.entity_id or DOMAIN, content=text)
            )
        return conversation.async_get_result_from_chat_log(user_input, chat_log), "model", None

    async def _async_provide_llm_data(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> None:
        """Instructions, the home and the tools into the chat log; LLMAPIUnavailableError if an API is gone."""
        api_ids = list(self.options.llm_hass_api)
        said = [content.content for content in chat_log.content if isinstance(content, conversation.UserContent)]
        if said and said[-1] == user_input.text:
            said.pop()
        try:
            await chat_log.async_provide_llm_data(
                user_input.as_llm_context(DOMAIN),
                home_api(self.hass, api_ids, budget=self.budget, sentence=user_input.text, earlier=tuple(said))
                if api_ids
                else None,
                self.options.prompt,
                user_input.extra_system_prompt,
            )
        except conversation.ConverseError:
            raise
        except HomeAssistantError as err:  # an HA LLM API chosen for the agent is gone
            raise LLMAPIUnavailableError(f"cannot use its Home Assistant API {api_ids}: {err}") from err

    async def _async_run_model(
        self, chat_log: conversation.ChatLog, user_input: conversation.ConversationInput, stats: list[TurnStats]
    ) -> RoundWatch:
        """Ask the model until it answers without tool calls, or its refusals say to stop.

        ToolLoopError when the rounds run out. Text not fit to be spoken is not streamed.
        """
        client = self.entry.runtime_data.client
        options = self.options
        watch = RoundWatch(seen=len(chat_log.content))

        def speakable(text: str) -> bool:
            return not machine_text(text, user_input.language, watch.corrections, user_input.text)

        tools = None
        if chat_log.llm_api:
            exposed = async_exposed_states(self.hass, chat_log.llm_api.llm_context.assistant or ASSISTANT)
            classes = {str(state.attributes["device_class"]) for state in exposed if "device_class" in state.attributes}
            tools = [
                format_tool(tool, chat_log.llm_api.custom_serializer, classes) for tool in chat_log.llm_api.tools
            ] or None
        for iteration in range(1, options.max_tool_iterations + 1):
            messages = build_messages(chat_log, tools, options.max_history, self.budget)
            started = time.monotonic()
            stream = await client.chat(
                model=options.model,
                messages=messages,
                tools=tools,
                stream=True,
                # -1 (keep loaded) must go as the number; other values as a duration string.
                keep_alive=options.keep_alive if options.keep_alive < 0 else f"{options.keep_alive}s",
                options={"num_ctx": options.num_ctx, "temperature": options.temperature},
            )
            final: list[ollama.ChatResponse] = []
            before = len(chat_log.content)
            async for _content in chat_log.async_add_delta_content_stream(
                self.entity_id, repaired_deltas(stream, final, speakable)
            ):
                pass
            if not final:
                raise IncompleteStreamError("the stream ended without its final chunk")
            stats.append(self._record(options.model, iteration, final[0], (time.monotonic() - started) * 1000))
            # Nothing added: the answer was empty or not fit to be spoken (it was not streamed).
            if not chat_log.unresponded_tool_results or len(chat_log.content) == before:
                return watch
            if stop := watch.observe(chat_log.content):
                _LOGGER.info("Agent %s stopped the turn after round %d: %s", self.subentry.title, iteration, stop)
                return watch
        raise ToolLoopError(f"stopped after {options.max_tool_iterations} tool rounds without an answer")

    def _record(self, model: str, iteration: int, final: ollama.ChatResponse, wall_ms: float) -> TurnStats:
        """Keep Ollama's own figures for diagnostics, and log them."""
        stats = TurnStats.from_final(self.subentry.title, model, iteration, final, wall_ms)
        self.entry.runtime_data.turns.append(stats)
        _LOGGER.debug(
            "Agent %s round %d: prompt %s tokens in %s ms, answer %s tokens in %s ms, load %s ms, "
            "total %s ms (%s ms here), %s",
            stats.agent,
            iteration,
            stats.prompt_eval_count,
            stats.prompt_eval_ms,
            stats.eval_count,
            stats.eval_ms,
            stats.load_ms,
            stats.total_ms,
            stats.wall_ms,
            stats.done_reason,
        )
        if iteration == 1:
            self.entry.runtime_data.status.async_answered()
            async_update_model_issue(self.hass, self.entry, self.subentry.subentry_id, present=True)
        return stats

    async def _async_failed(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog, err: BaseException
    ) -> conversation.ConversationResult:
        """Say briefly, in the user's language, that it did not work; log it once; carry on."""
        failure = classify(err)
        if failure in (Failure.LLM_API, Failure.TOOL_LOOP):
            _LOGGER.warning("Agent %s %s", self.subentry.title, err)
        else:
            _LOGGER.warning(
                "Agent %s: the Ollama server %s failed (%s): %s",
                self.subentry.title,
                redact_url(self.entry.data[CONF_URL]),
                failure,
                str(err) or type(err).__name__,
            )
        if failure is Failure.CANNOT_CONNECT:
            self.entry.runtime_data.status.async_failed(Failure.CANNOT_CONNECT, err, log=False)
        if failure is Failure.MODEL_NOT_FOUND:
            async_update_model_issue(self.hass, self.entry, self.subentry.subentry_id, present=False)
        text = await async_spoken_error(
            self.hass, user_input.language, failure, {"seconds": str(retry_after(err) or 10)}
        )
        # The answer joins the chat log, so a follow-up in this conversation still makes sense.
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=self.entity_id or DOMAIN, content=text)
        )
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, text)
        return conversation.ConversationResult(
            response=response, conversation_id=chat_log.conversation_id, continue_conversation=False
        )


async def async_spoken(
    hass: HomeAssistant, language: str | None, what: str, placeholders: dict[str, str] | None = None
) -> str:
    """A short text for the user, `spoken_<what>` of translations/<language>.json (English if missing)."""
    language = (language or hass.config.language or "en").replace("_", "-")
    key = f"component.{DOMAIN}.exceptions.spoken_{what}.message"
    for candidate in dict.fromkeys((language, language.split("-")[0], "en")):
        translations = await async_get_translations(hass, candidate, "exceptions", {DOMAIN})
        if text := translations.get(key):
            return text.format(**placeholders) if placeholders else text
    return "Sorry, something went wrong."


async def async_spoken_error(
    hass: HomeAssistant, language: str | None, failure: Failure, placeholders: dict[str, str] | None = None
) -> str:
    """The short error for the user, in their language."""
    return await async_spoken(hass, language, failure, placeholders)


async def async_answer_instead(hass: HomeAssistant, language: str | None, watch: RoundWatch) -> str:
    """What the household hears when the model's answer is not fit to be spoken.

    "Done" when something was done; which one they mean, when the guard found close matches; else
    a request to say it another way.
    """
    if watch.acted:  # a question answered only by tools' data is not "done"
        return await async_spoken(hass, language, "done")
    if watch.choices:
        or_word = await async_spoken(hass, language, "or")
        return await async_spoken(hass, language, "which_one", {"choices": spoken_choices(watch.choices, or_word)})
    return await async_spoken(hass, language, "not_understood")
