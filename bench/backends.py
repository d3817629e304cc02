"""Model back-ends for the bench, all served through `bench.ollama_wire.OllamaWireServer`.

Every agent under test talks to one local Ollama-API server whatever the back-end is, so the bench
sees every model call in one place (`Meter`): how many per sentence, the characters of what the
model reads, and the prompt tokens - as counted by the model's tokenizer when the back-end reports
them (llama.cpp, a real Ollama), else estimated (characters / 4) and marked so.

- `fake`: one fixed short text, no tool call, for every request; it never sees the expectations.
- `llamacpp`: real inference on this CPU (`bench.llamacpp`).
- a URL: a real Ollama, called through its own client, the answer relayed as is.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply

type Responder = Callable[[dict[str, Any]], Reply | Awaitable[Reply]]


def prompt_chars(body: dict[str, Any]) -> int:
    """Characters the model reads for one `/api/chat` request: every message and the tool definitions."""
    total = 0
    for message in body.get("messages") or []:
        total += len(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            total += len(json.dumps(call.get("function", call), ensure_ascii=False))
    if body.get("tools"):
        total += len(json.dumps(body["tools"], ensure_ascii=False))
    return total


@dataclass
class ModelCall:
    prompt_chars: int
    prompt_tokens: int
    estimated: bool
    seconds: float = 0.0


@dataclass
class Meter:
    calls: list[ModelCall] = field(default_factory=list)


@dataclass
class Backend:
    """A started back-end: the URL agents use, the model name, the meter."""

    name: str
    model: str
    responder: Responder
    meter: Meter = field(default_factory=Meter)
    server: OllamaWireServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start the back-end first"
        return self.server.url

    async def _metered(self, body: dict[str, Any]) -> Reply:
        import time

        started = time.perf_counter()
        reply = self.responder(body)
        if inspect.isawaitable(reply):
            reply = await reply
        chars = prompt_chars(body)
        counted = reply.prompt_eval_count
        self.meter.calls.append(
            ModelCall(
                prompt_chars=chars,
                prompt_tokens=counted if counted is not None else max(1, chars // 4),
                estimated=counted is None,
                seconds=time.perf_counter() - started,
            )
        )
        return reply

    async def start(self) -> str:
        self.server = OllamaWireServer(models=[self.model], responder=self._metered)
        return await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        close = getattr(self.responder, "close", None)
        if close is not None:
            close()


def fake_backend() -> Backend:
    """Answers every request with the wire server's one fixed short text and no tool call."""
    # No prompt_eval_count: the fake has no tokenizer, so the meter marks its counts as estimated.
    return Backend("fake", DEFAULT_MODEL, lambda _body: Reply())


def scripted_backend(count_tokens: Callable[[dict[str, Any]], int] | None = None) -> Backend:
    """For size measurements: a turn's first request gets one tool call, the request after the tool
    result a short text, so every turn includes one tool round trip. Token counts come from
    `count_tokens` (a real tokenizer) when given, else they are estimated."""

    def respond(body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        tools = [tool.get("function", {}).get("name") for tool in body.get("tools") or []]
        tokens = count_tokens(body) if count_tokens else None
        if tools and (not messages or messages[-1].get("role") != "tool"):
            name = "HassTurnOn" if "HassTurnOn" in tools else tools[0]
            call = {"name": name, "arguments": {"name": "bench probe"}}
            return Reply("", tool_calls=[call], prompt_eval_count=tokens)
        return Reply(prompt_eval_count=tokens)

    return Backend("scripted", DEFAULT_MODEL, respond)


class OllamaRelay:
    """Relays each request to a real Ollama and hands back its answer and token counts."""

    def __init__(self, url: str) -> None:
        import ollama

        self.client = ollama.AsyncClient(host=url)

    async def __call__(self, body: dict[str, Any]) -> Reply:
        import ollama

        try:
            response = await self.client.chat(
                model=body["model"],
                messages=body.get("messages") or [],
                tools=body.get("tools"),
                options=body.get("options"),
                keep_alive=body.get("keep_alive"),
                stream=False,
            )
        except ollama.ResponseError as err:
            return Reply(status=err.status_code, error=err.error)
        message = response.message
        calls = [{"name": c.function.name, "arguments": dict(c.function.arguments)} for c in message.tool_calls or []]
        return Reply(
            content=message.content or "",
            tool_calls=calls,
            prompt_eval_count=response.prompt_eval_count,
            eval_count=response.eval_count,
        )


async def url_backend(url: str, model: str | None) -> Backend:
    import ollama

    if not model:
        listed = await ollama.AsyncClient(host=url).list()
        names = [m.model for m in listed.models if m.model]
        if not names:
            raise SystemExit(f"{url} has no models; pull one there or pass --model NAME")
        model = names[0]
    return Backend(url, model, OllamaRelay(url))


async def make_backend(name: str, model: str | None = None) -> Backend:
    """`fake`, `llamacpp` or an Ollama URL; started, ready for agents."""
    if name == "fake":
        backend = fake_backend()
    elif name == "llamacpp":
        from bench.llamacpp import MODEL_NAME, LlamaResponder

        backend = Backend("llamacpp", MODEL_NAME, LlamaResponder.load())
    elif name.startswith(("http://", "https://")):
        backend = await url_backend(name, model)
    else:
        raise SystemExit(f"unknown back-end {name!r}: use fake, llamacpp or an Ollama URL like http://127.0.0.1:11434")
    await backend.start()
    return backend
