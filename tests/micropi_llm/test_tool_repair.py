"""Tool calls repaired before the guard sees them: written out as text, or with JSON as small models write it."""

from collections.abc import AsyncIterator

import ollama
import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import OllamaWireServer, Reply
from custom_components.micropi_llm.tool_repair import (
    loads_lenient,
    parse_text_tool_calls,
    repair_arguments,
    repaired_deltas,
)

from .home import Home, async_ask, call, script, speech, tool_results


@pytest.mark.parametrize(
    "text",
    [
        '[TOOL_CALLS]intent__HassTurnOn[ARGS]{"name": "Konyhai lámpa", "domain": ["light"],}',
        '```json\n{"name": "intent__HassTurnOn", "arguments": {"name": "Konyhai lámpa"}}\n```',
        '[TOOL_CALLS] [{"name": "intent__HassTurnOn", "arguments": {"name": "Konyhai lámpa"}}]',
        "<tool_call>{'name': 'intent__HassTurnOn', 'arguments': {'name': 'Konyhai lámpa'}}</tool_call>",
        # Seen from a small model: the call explained, then written in a fence.
        "To turn on the kitchen light, you can use the following command:\n```json\n"
        '{\n  "name": "intent__HassTurnOn",\n  "arguments": {"name": "Konyhai lámpa", "domain": ["light"]}\n}\n```',
    ],
)
async def test_tool_call_written_as_text_is_run_not_spoken(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry, text: str
) -> None:
    wire.responder = script(Reply(text), Reply("Felkapcsoltam."))
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert speech(result) == "Felkapcsoltam."
    assert hass.states.get(home.kitchen_light).state == "on"
    assert "TOOL_CALLS" not in str(wire.requests[-1]["messages"])  # stored as a real tool call


async def test_unreadable_tool_call_is_refused_so_the_model_can_retry(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply('[TOOL_CALLS]intent__HassTurnOn[ARGS]{"name": "Konyhai'),
        Reply("", tool_calls=[call("intent__HassTurnOn", name="Konyhai lámpa")]),
        Reply("Most sikerült."),
    )
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert speech(result) == "Most sikerült."
    first_result = tool_results(wire.requests[1])[0]
    assert first_result["error_text"].startswith("The arguments of intent__HassTurnOn could not be read")
    assert hass.states.get(home.kitchen_light).state == "on"


async def test_text_that_only_looks_like_json_is_spoken(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    wire.responder = script(Reply("[1] Az első lépés."))
    assert speech(await async_ask(hass, "Mondj valamit")) == "[1] Az első lépés."
    wire.responder = script(Reply('{"answer": 42}'))  # JSON is never spoken
    assert speech(await async_ask(hass, "Mondj valamit")) == "Ezt nem értettem pontosan. Elmondanád másképp?"


def test_lenient_json() -> None:
    assert loads_lenient('{"a": [1, 2,], }') == {"a": [1, 2]}
    assert loads_lenient('{"a": {"b": 1') == {"a": {"b": 1}}
    assert loads_lenient("{'a': True, 'b': None}") == {"a": True, "b": None}
    with pytest.raises(ValueError, match="not valid JSON"):
        loads_lenient("{a: b}")


def test_repair_arguments() -> None:
    assert repair_arguments('{"name": "x"}') == {"name": "x"}
    assert repair_arguments("") == {}
    assert "__micropi_invalid_arguments__" in repair_arguments("{nope")
    assert "__micropi_invalid_arguments__" in repair_arguments(["a"])
    assert repair_arguments({"a": "{broken", "b": "[1]"}) == {"a": "{broken", "b": [1]}


def test_parse_text_tool_calls() -> None:
    assert parse_text_tool_calls("Szia!") is None
    assert parse_text_tool_calls("[]") is None
    assert parse_text_tool_calls("{not json at all") is None
    assert parse_text_tool_calls('Így néz ki:\n```json\n{"answer": 42}\n```') is None  # a fence, but no call
    [unreadable] = parse_text_tool_calls('{"name": "intent__HassTurnOn", "arguments": {"name": x}}') or []
    assert unreadable.tool_name == "intent__HassTurnOn"
    assert "__micropi_invalid_arguments__" in unreadable.tool_args
    [a, b] = parse_text_tool_calls('[TOOL_CALLS]A[ARGS]{}[TOOL_CALLS]B[ARGS]{"x": 1}') or []
    assert (a.tool_name, a.tool_args, b.tool_name, b.tool_args) == ("A", {}, "B", {"x": 1})


async def test_a_sentence_introducing_a_written_call_is_held_with_it() -> None:
    # "…the following command:" came in its own chunk and was spoken, the fenced call after it too.
    chunks = [
        "To turn on the kitchen light, you can use the following command:\n\n",
        '```json\n{"name": "intent__HassTurnOn", "arguments": {"name": "Konyhai lámpa"}}\n```',
    ]

    async def stream() -> AsyncIterator[ollama.ChatResponse]:
        for n, text in enumerate(chunks):
            yield ollama.ChatResponse(message=ollama.Message(role="assistant", content=text), done=n == len(chunks) - 1)

    deltas = [delta async for delta in repaired_deltas(stream(), [])]
    assert not [delta for delta in deltas if delta.get("content")], deltas
    [calls] = [delta["tool_calls"] for delta in deltas if "tool_calls" in delta]
    assert [(c.tool_name, c.tool_args) for c in calls] == [("intent__HassTurnOn", {"name": "Konyhai lámpa"})]
