"""No model output crashes a turn: arbitrary tool names, JSON arguments and text-written calls (hypothesis).

The pure steps (lenient JSON, argument repair, text-written calls, the stream parser) are pushed
through directly; the guard and whole turns run in real HA core. Hypothesis runs in a worker thread
there and hands each example to HA's event loop, so examples shrink as usual.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

import ollama
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.compare import machine_text
from bench.ollama_wire import OllamaWireServer, Reply
from custom_components.micropi_llm.guard import GuardedAPIInstance
from custom_components.micropi_llm.live_state import home_api
from custom_components.micropi_llm.tool_repair import (
    loads_lenient,
    parse_text_tool_calls,
    repair_arguments,
    repaired_deltas,
)

from .home import Home, async_ask, speech

NAMES = ["Nappali lámpa", "Konyhai lámpa", "Garázs lámpa", "Termosztát", "Nappali", "Konyha", "light.nappali_lampa"]
KEYS = ["name", "area", "floor", "domain", "device_class", "entity_id", "brightness", "temperature", "position"]
TOOLS = ["intent__HassTurnOn", "intent__HassTurnOff", "intent__HassLightSet", "HassTurnOn", "GetLiveContext"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(NAMES)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
arguments = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=5)
tool_names = st.sampled_from(TOOLS) | st.text(max_size=30)


@st.composite
def written_calls(draw: st.DrawFn) -> str:
    """Text a model may write for a tool call: JSON (maybe broken, maybe templated), fenced, tagged."""
    body = json.dumps({"name": draw(tool_names), "arguments": draw(arguments)}, ensure_ascii=False, default=str)
    body = draw(st.sampled_from([body, "{" + body + "}", "[" + body + "]", body.replace('"', "'")]))
    body = body[: draw(st.integers(0, len(body)))] if draw(st.booleans()) else body
    wrap = draw(st.sampled_from(["{}", "```json\n{}\n```", "<tool_call>{}</tool_call>", "[TOOL_CALLS]{}"]))
    return wrap.replace("{}", body, 1)


model_text = st.text(max_size=60) | written_calls()
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(st.one_of(st.text(max_size=80), written_calls()))
@example("{{}}")  # a templated double brace: Python reads a set of a dict (TypeError, the crash seen)
@example("[" * 500)
def test_lenient_json_reads_or_says_why(text: str) -> None:
    with contextlib.suppress(ValueError):
        loads_lenient(text)


@PROPERTY
@given(st.one_of(json_values, st.text(max_size=40), written_calls()))
def test_repaired_arguments_are_always_a_dict(raw: Any) -> None:
    repaired = repair_arguments(raw)
    assert isinstance(repaired, dict)
    assert all(isinstance(key, str) for key in repaired)


@PROPERTY
@given(model_text)
@example("{{'name': 'intent__HassTurnOn', 'arguments': {}}}")
def test_text_written_calls_are_calls_or_none(text: str) -> None:
    calls = parse_text_tool_calls(text)
    assert calls is None or all(isinstance(c.tool_name, str) and isinstance(c.tool_args, dict) for c in calls)


def _chunk(content: str, calls: list[tuple[str, dict[str, Any]]], done: bool) -> ollama.ChatResponse:
    tool_calls = [
        ollama.Message.ToolCall(function=ollama.Message.ToolCall.Function(name=name, arguments=args))
        for name, args in calls
    ]
    return ollama.ChatResponse(
        model="m", message=ollama.Message(role="assistant", content=content, tool_calls=tool_calls or None), done=done
    )


@PROPERTY
@given(st.lists(st.tuples(model_text, st.lists(st.tuples(tool_names, arguments), max_size=2)), min_size=1, max_size=4))
def test_stream_parser_takes_any_chunks(chunks: list[tuple[str, list[tuple[str, dict[str, Any]]]]]) -> None:
    async def parse() -> list[dict[str, Any]]:
        async def stream() -> Any:
            for n, (content, calls) in enumerate(chunks):
                yield _chunk(content, calls, n == len(chunks) - 1)

        final: list[ollama.ChatResponse] = []
        deltas = [dict(delta) async for delta in repaired_deltas(stream(), final)]
        assert len(final) == 1
        return deltas

    for delta in asyncio.run(parse()):
        for tool_call in delta.get("tool_calls", []):
            assert isinstance(tool_call, llm.ToolInput)
            assert isinstance(tool_call.tool_args, dict)


def _on_hass_loop(hass: HomeAssistant) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, hass.loop).result(timeout=60)

    return run


async def test_the_guard_takes_any_call(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    """Any tool name and arguments: the guard refuses or runs the call; nothing is raised."""
    context = llm.LLMContext(platform="test", context=None, language="hu", assistant="conversation", device_id=None)
    api = await home_api(hass, [llm.LLM_API_ASSIST], sentence="Kapcsold fel a lámpát").async_get_api_instance(context)
    assert isinstance(api, GuardedAPIInstance)
    on_loop = _on_hass_loop(hass)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(tool_names | st.sampled_from([tool.name for tool in api.tools]), arguments)
    def call_any(name: str, args: dict[str, Any]) -> None:
        result = on_loop(api.async_call_tool(llm.ToolInput(tool_name=name, tool_args=repair_arguments(args))))
        assert isinstance(result, llm.ToolResult)

    await hass.async_add_executor_job(call_any)


async def test_no_model_output_escapes_the_turn(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    """Whatever the model sends, the household hears an answer in its language, never machine text."""
    on_loop = _on_hass_loop(hass)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(tool_names, arguments), min_size=1, max_size=2), model_text, model_text)
    @example([("x", {})], '[{"nam', "")  # a call cut short: not a call, and not to be spoken
    def turn(calls: list[tuple[str, dict[str, Any]]], written: str, last: str) -> None:
        replies = [
            Reply("", tool_calls=[{"name": name, "arguments": args} for name, args in calls]),
            Reply(written),
        ]

        def respond(_body: dict[str, Any]) -> Reply:
            return replies.pop(0) if replies else Reply(last)

        wire.responder = respond
        result = on_loop(async_ask(hass, "Kapcsold fel a lámpát"))
        answer = speech(result)
        assert isinstance(answer, str)
        assert machine_text(answer, "hu") is None, answer

    await hass.async_add_executor_job(turn)
