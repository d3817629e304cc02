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
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import ollama
from homeassistant.components import conversation
from homeassistant.helpers import llm

_LOGGER = logging.getLogger(__name__)

# Marks a tool call whose arguments could not be read, so the guard can tell the model why.
INVALID_ARGUMENTS = "__micropi_invalid_arguments__"


def loads_lenient(text: str) -> Any:
    """JSON as small models write it: trailing commas, Python literals, missing closing brackets.

    Raises ValueError when it still cannot be read.
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", text.strip())
    fixed += _missing_closers(fixed)
    try:
        return json.loads(fixed)
    except ValueError:
        pass
    try:  # {'name': 'x', 'on': True}: a Python literal, evaluated without running anything
        return ast.literal_eval(fixed)
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"not valid JSON: {text[:80]!r}") from err


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
        repaired[str(key)] = _decoded(value)
    return repaired


def _decoded(value: Any) -> Any:
    """A JSON list or object a model put inside a string, decoded; anything else as it is."""
    if isinstance(value, str) and value[:1] in "[{" and value[-1:] in "]}":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# Text a model wrote when Ollama did not recognise its tool call: Mistral's [TOOL_CALLS] forms,
# Qwen's <tool_call>, or a bare JSON object/list with "name" and "arguments", maybe in a fence.
_FENCE = re.compile(r"^```(?:json|tool_call)?\s*(.*?)\s*```$", re.DOTALL)
_QWEN = re.compile(r"^<tool_call>\s*(.*?)\s*(?:</tool_call>)?$", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')


def looks_like_tool_call(text: str) -> bool:
    """Whether text starting like this may be a tool call written out (hold it back, don't speak it)."""
    return text.lstrip()[:1] in ("[", "{", "`", "<")


def parse_text_tool_calls(text: str) -> list[llm.ToolInput] | None:
    """The tool calls written out in text, or None when the text is not a tool call."""
    body = text.strip()
    if match := _FENCE.match(body):
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
    stream: AsyncIterator[ollama.ChatResponse], final: list[ollama.ChatResponse]
) -> AsyncGenerator[conversation.AssistantContentDeltaDict]:
    """Ollama's chunks as chat log deltas; the final chunk (with the figures) goes into `final`.

    Text that starts like a tool call written out (a model's tool call Ollama did not recognise)
    is held back instead of being spoken, then turned into the tool calls it is, if it is.
    """
    yield {"role": "assistant"}
    held = ""
    holding: bool | None = None  # None until the first visible character decides
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
                if held.strip():
                    holding = looks_like_tool_call(held)
                    if not holding:
                        yield {"content": held}
            elif holding:
                held += message.content
            else:
                yield {"content": message.content}
        if part.done:
            final.append(part)
    if holding:
        if calls := parse_text_tool_calls(held):
            _LOGGER.debug("Read tool calls written as text: %s", calls)
            yield {"tool_calls": calls}
        else:
            yield {"content": held}
