"""Making the model's tool calls usable: the stream as chat log deltas, with what small models get wrong repaired.

Small models often get the form wrong, so what can be repaired without guessing is repaired: JSON
encoded inside a string, trailing commas and Python literals, a tool call written out as text
(which Ollama then streams as speech). What cannot be read is marked (`INVALID_ARGUMENTS`) for the
guard to refuse with a reason the model can correct on.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import ollama
from homeassistant.components import conversation
from homeassistant.helpers import llm

_LOGGER = logging.getLogger(__name__)

# Marks a tool call whose arguments could not be read, so the guard can tell the model why.
INVALID_ARGUMENTS = "__micropi_invalid_arguments__"
# Nesting deeper than this in tool arguments is cut (no HA tool takes more than a list of names).
MAX_DEPTH = 8


def loads_lenient(text: str) -> Any:
    """JSON as small models write it: trailing commas, Python literals, missing closing brackets.

    Raises ValueError when it still cannot be read; what it returns is JSON-safe (`json_safe`).
    """
    fixed = re.sub(r",\s*([}\]])", r"\1", text.strip())
    fixed += _missing_closers(fixed)
    if fixed.startswith("{{") and fixed.endswith("}}"):
        fixed = fixed[1:-1]  # a template's doubled braces
    for read in (json.loads, ast.literal_eval):  # {'on': True}: a Python literal, evaluated, never run
        for candidate in dict.fromkeys((text, fixed)):
            try:
                return json_safe(read(candidate))
            # A Python literal can be a set of dicts (TypeError), too deep (RecursionError), ...
            except ValueError, SyntaxError, TypeError, MemoryError, RecursionError:
                continue
    raise ValueError(f"not valid JSON: {text[:80]!r}")


# The integers JSON encoders (and HA's) take; a larger one is kept as a float.
_INT64 = 2**63


def json_safe(value: Any, depth: int = 0) -> Any:
    """A value as JSON can carry it: tuples and sets as lists, keys as strings, NaN and infinity as
    None, integers beyond 64 bits as floats, bytes as text, other objects as their text."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, depth + 1) for item in value]
    return str(value)


def _missing_closers(text: str) -> str:
    """The brackets a truncated JSON text lacks, outside strings."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    return "".join(reversed(stack))


def repair_arguments(arguments: Any) -> dict[str, Any]:
    """Tool arguments as a dict: JSON in strings decoded, empty values dropped (they break intents)."""
    if isinstance(arguments, str):
        try:
            arguments = loads_lenient(arguments) if arguments.strip() else {}
        except ValueError as err:
            return {INVALID_ARGUMENTS: str(err)}
    if not isinstance(arguments, dict):
        return {INVALID_ARGUMENTS: f"arguments must be a JSON object, got {type(arguments).__name__}"}
    repaired: dict[str, Any] = {}
    for key, value in arguments.items():
        if value is None or value == "":
            continue
        repaired[str(key)] = json_safe(_decoded(value))
    return repaired


def _decoded(value: Any) -> Any:
    """A JSON list or object a model put inside a string, decoded; anything else as it is."""
    if isinstance(value, str) and value[:1] in "[{" and value[-1:] in "]}":
        try:
            return json.loads(value)
        except ValueError, RecursionError:
            return value
    return value


# Text a model wrote when Ollama did not recognise its tool call: Mistral's [TOOL_CALLS] forms,
# Qwen's <tool_call>, or a bare JSON object/list with "name" and "arguments", maybe in a fence.
_FENCE = re.compile(r"^```(?:json|tool_call)?\s*(.*?)\s*```$", re.DOTALL)
# "To open it, you can use the following command: ```json {...}```": the fenced call is what it meant.
_FENCE_INSIDE = re.compile(r"```(?:json|tool_call)?\s*(\{.*?\}|\[.*?\])\s*```", re.DOTALL)
_QWEN = re.compile(r"^<tool_call>\s*(.*?)\s*(?:</tool_call>)?$", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
# Where the first sentence of an answer ends (or enough of it to judge).
_FIRST_SENTENCE = re.compile(r"[.!?\n]\s|.{80}", re.DOTALL)


def looks_like_tool_call(text: str) -> bool:
    """Whether text like this may be a tool call written out (hold it back, don't speak it): it starts like
    one, or has a fence in it ("…use the following command: ```json {…}```")."""
    return text.lstrip()[:1] in ("[", "{", "`", "<") or "```" in text


def parse_text_tool_calls(text: str) -> list[llm.ToolInput] | None:
    """The tool calls written out in text, or None when the text is not a tool call."""
    body = text.strip()
    if match := _FENCE.match(body) or _FENCE_INSIDE.search(body):
        body = match.group(1)
    if match := _QWEN.match(body):
        body = match.group(1)
    if body.startswith("[TOOL_CALLS]"):
        calls = [part.strip() for part in body.split("[TOOL_CALLS]") if part.strip()]
        if all("[ARGS]" in call for call in calls):
            result = []
            for call in calls:
                name, _, raw = call.partition("[ARGS]")
                result.append(llm.ToolInput(tool_name=name.strip(), tool_args=repair_arguments(raw)))
            return result
        body = " ".join(calls)
    elif body[:1] not in "[{":
        return None
    try:
        value = loads_lenient(body)
    except ValueError as err:
        if found := _NAME.search(body):  # clearly a call of this tool, but unreadable
            return [llm.ToolInput(tool_name=found.group(1), tool_args={INVALID_ARGUMENTS: str(err)})]
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in items):
        return None
    return [
        llm.ToolInput(
            tool_name=item["name"], tool_args=repair_arguments(item.get("arguments", item.get("parameters", {})))
        )
        for item in items
    ]


async def repaired_deltas(
    stream: AsyncIterator[ollama.ChatResponse],
    final: list[ollama.ChatResponse],
    speakable: Callable[[str], bool] = lambda _text: True,
) -> AsyncGenerator[conversation.AssistantContentDeltaDict]:
    """Ollama's chunks as chat log deltas; the final chunk (with the figures) goes into `final`.

    Text that starts like a tool call written out (a model's tool call Ollama did not recognise)
    is held back instead of being spoken, then turned into the tool calls it is, if it is. Other
    text is held until its first sentence (`speakable` judges it), then streamed; text that is not
    speakable is dropped (the agent answers in its place) and logged.
    """
    yield {"role": "assistant"}
    held = ""
    holding: bool | None = None  # None until the first sentence decides
    async for part in stream:
        message = part.message
        if message.tool_calls:
            yield {
                "tool_calls": [
                    llm.ToolInput(tool_name=call.function.name, tool_args=repair_arguments(call.function.arguments))
                    for call in message.tool_calls
                ]
            }
        if message.content:
            if holding is None:
                held += message.content
                # A first sentence ending in a colon introduces what follows (often a call written
                # out): wait for it.
                introduces = held.rstrip().endswith(":")
                if held.strip() and (looks_like_tool_call(held) or (_FIRST_SENTENCE.search(held) and not introduces)):
                    holding = looks_like_tool_call(held) or not speakable(held)
                    if not holding:
                        yield {"content": held}
            elif holding:
                held += message.content
            else:
                yield {"content": message.content}
        if part.done:
            final.append(part)
    if holding is None and held.strip() and not looks_like_tool_call(held):
        holding = not speakable(held)
        if not holding:
            yield {"content": held}
    if holding:
        if calls := parse_text_tool_calls(held):
            _LOGGER.debug("Read tool calls written as text: %s", calls)
            yield {"tool_calls": calls}
        elif speakable(held):
            yield {"content": held}
        else:
            _LOGGER.info("Not spoken (meant for a machine, or in another language): %r", held[:300])
