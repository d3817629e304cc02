"""An HTTP server that speaks Ollama's wire protocol, for tests and the `fake` bench back-end.

It is the one allowed test double: it sits at the network boundary, so the code under test uses the
real `ollama` client over real HTTP. The JSON shapes follow Ollama's API (`/api/tags`, `/api/show`,
`/api/chat` streamed as NDJSON or whole, `/api/pull` progress, `/api/version`, `{"error": ...}`
bodies) as parsed by the `ollama` Python client and Home Assistant.

    async with OllamaWireServer(models=["m:1b"], responder=lambda body: Reply("Szia!")) as server:
        client = ollama.AsyncClient(host=server.url)

    with OllamaWireServer.in_thread() as server:  # for sync code or another event loop
        ...

    # A GPU's timing: 4 requests at once, the rest wait; 0.2 ms per prompt token, 20 ms per generated one.
    OllamaWireServer(gpu=GpuEmulation(slots=4, prompt_token_seconds=0.0002, eval_token_seconds=0.02))

    python -m bench.ollama_wire --port 0 --print-url --reply "Done."
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import inspect
import json
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import web

DEFAULT_MODEL = "ministral-3:3b-instruct-2512-q4_K_M"
DEFAULT_REPLY = "Done."
OLLAMA_VERSION = "0.12.10"


@dataclass
class Reply:
    """What the fake model answers to one `/api/chat` request."""

    content: str = DEFAULT_REPLY
    # Each {"name": str, "arguments": dict}; sent as `message.tool_calls[].function`.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # HTTP failure: a status other than 200 answers `{"error": error}` with that status.
    status: int = 200
    error: str | None = None
    # Seconds to wait before answering (to run past a client's timeout).
    delay: float = 0.0
    # Cut the NDJSON stream mid-way (connection closed without the final chunk).
    break_stream: bool = False
    # Send Ollama's in-stream error line `{"error": ...}` after the first chunk (status stays 200).
    stream_error: str | None = None
    # Token counts for the final chunk; estimated from the request and reply when None.
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    done_reason: str = "stop"


@dataclass(frozen=True)
class GpuEmulation:
    """Answer with a GPU's timing: `slots` requests run at once (Ollama's OLLAMA_NUM_PARALLEL), the others
    wait their turn in arrival order; a running one spends `prompt_token_seconds` per prompt token before
    the first chunk, then streams one chunk per generated token every `eval_token_seconds`."""

    slots: int = 4
    prompt_token_seconds: float = 0.0002
    eval_token_seconds: float = 0.02


type Responder = Callable[[dict[str, Any]], Reply | Awaitable[Reply]]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _details(name: str) -> dict[str, Any]:
    family = name.split(":", 1)[0].split("-", 1)[0]
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": "3.8B",
        "quantization_level": "Q4_K_M",
    }


def _split(text: str, parts: int = 3) -> list[str]:
    """Split a reply into a few stream chunks, the way tokens arrive."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


class OllamaWireServer:
    """An aiohttp server with Ollama's HTTP API, scripted by a responder."""

    def __init__(
        self,
        models: list[str] | None = None,
        responder: Responder | None = None,
        token: str | None = None,
        *,
        pullable: list[str] | None = None,
        pull_step_delay: float = 0.0,
        gpu: GpuEmulation | None = None,
    ) -> None:
        # The models the server "has"; tests may add or remove names while it runs.
        self.models: list[str] = list(models) if models is not None else [DEFAULT_MODEL]
        self.responder: Responder = responder or (lambda _body: Reply())
        self.token = token
        # Names /api/pull can fetch; None means any name.
        self.pullable = pullable
        self.pull_step_delay = pull_step_delay
        self.gpu = gpu
        self._gpu_slots = asyncio.Semaphore(gpu.slots) if gpu else None
        # Chats answered to the end, and chats whose client went away mid-answer.
        self.finished_chats = 0
        self.cancelled_chats = 0
        self.running_chats = 0
        # Every /api/chat request body received, in order.
        self.requests: list[dict[str, Any]] = []
        # Every (method, path) received, authorised or not.
        self.hits: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # ----- lifecycle -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (an ephemeral port unless given) and return the base URL."""
        app = web.Application(middlewares=[self._auth_middleware])
        app.router.add_get("/", self._root)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/pull", self._pull)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            # Requests still sleeping on a `delay` are cancelled, so nothing outlives the server.
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, *args: Any, **kwargs: Any) -> Iterator[OllamaWireServer]:
        """Run a server on its own event loop in a daemon thread (for sync code or other loops).

        An async responder runs on the server's loop, not the caller's.
        """
        server = cls(*args, **kwargs)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ollama-wire", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
            yield server
        finally:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    # ----- HTTP ----------------------------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.hits.append((request.method, request.path))
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await handler(request)
        finally:
            self._handlers.discard(task)

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as err:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"invalid JSON: {err}"}), content_type="application/json"
            ) from err
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text=json.dumps({"error": "body must be an object"}))
        return body

    def _model_missing(self, name: str) -> web.Response:
        return web.json_response({"error": f"model '{name}' not found"}, status=404)

    async def _root(self, _request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, _request: web.Request) -> web.Response:
        return web.json_response({"version": OLLAMA_VERSION})

    async def _tags(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2026-01-01T00:00:00Z",
                        "size": 2_300_000_000,
                        "digest": _digest(name),
                        "details": _details(name),
                    }
                    for name in self.models
                ]
            }
        )

    async def _show(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        name = body.get("model") or body.get("name") or ""
        if name not in self.models:
            return self._model_missing(name)
        return web.json_response(
            {
                "license": "Apache-2.0",
                "modelfile": f"FROM {name}",
                "parameters": "temperature 0.15",
                "template": "{{ .Prompt }}",
                "details": _details(name),
                "model_info": {"general.architecture": "mistral3", "mistral3.context_length": 262144},
                "capabilities": ["completion", "tools"],
                "modified_at": "2026-01-01T00:00:00Z",
            }
        )

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        name = body.get("model") or body.get("name") or ""
        stream = body.get("stream", True)
        known = self.pullable is None or name in self.pullable
        if not stream:
            if not known:
                return web.json_response({"error": "pull model manifest: file does not exist"}, status=500)
            await asyncio.sleep(self.pull_step_delay * 4)
            self._add_model(name)
            return web.json_response({"status": "success"})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await self._ndjson(response, {"status": "pulling manifest"})
        if not known:
            await self._ndjson(response, {"error": "pull model manifest: file does not exist"})
            await response.write_eof()
            return response
        total = 2_300_000_000
        digest = f"sha256:{_digest(name)}"
        for completed in (0, total // 3, 2 * total // 3, total):
            await asyncio.sleep(self.pull_step_delay)
            status = f"pulling {digest[7:19]}"
            await self._ndjson(response, {"status": status, "digest": digest, "total": total, "completed": completed})
        for status in ("verifying sha256 digest", "writing manifest"):
            await self._ndjson(response, {"status": status})
        self._add_model(name)
        await self._ndjson(response, {"status": "success"})
        await response.write_eof()
        return response

    def _add_model(self, name: str) -> None:
        if name not in self.models:
            self.models.append(name)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.running_chats += 1
        try:
            response = await self._answer_chat(request)
        except asyncio.CancelledError, ConnectionError:
            self.cancelled_chats += 1
            raise
        finally:
            self.running_chats -= 1
        self.finished_chats += 1
        return response

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        self.requests.append(body)
        name = body.get("model") or ""
        if name not in self.models:
            return self._model_missing(name)
        reply = self.responder(body)
        if inspect.isawaitable(reply):
            reply = await reply
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return web.json_response({"error": reply.error or "internal error"}, status=reply.status)
        if self.gpu is not None and body.get("stream", True) is not False:
            return await self._gpu_stream(request, body, name, reply)

        started = time.monotonic_ns()
        prompt_tokens = reply.prompt_eval_count
        if prompt_tokens is None:
            prompt_tokens = max(1, len(json.dumps(body.get("messages", []), ensure_ascii=False)) // 4)
        eval_tokens = reply.eval_count if reply.eval_count is not None else max(1, len(reply.content) // 4)
        tool_calls = [
            {"function": {"index": i, "name": call["name"], "arguments": call.get("arguments", {})}}
            for i, call in enumerate(reply.tool_calls)
        ]

        def final(message: dict[str, Any]) -> dict[str, Any]:
            total = max(1, time.monotonic_ns() - started)
            return {
                "model": name,
                "created_at": _now(),
                "message": message,
                "done": True,
                "done_reason": reply.done_reason,
                "total_duration": total + 2_000_000,
                "load_duration": 1_000_000,
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": prompt_tokens * 200_000,
                "eval_count": eval_tokens,
                "eval_duration": eval_tokens * 10_000_000,
            }

        if body.get("stream", True) is False:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return web.json_response(final(message))

        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        chunks: list[dict[str, Any]] = [{"role": "assistant", "content": part} for part in _split(reply.content)]
        if tool_calls:
            chunks.append({"role": "assistant", "content": "", "tool_calls": tool_calls})
        for index, chunk in enumerate(chunks):
            await self._ndjson(response, {"model": name, "created_at": _now(), "message": chunk, "done": False})
            if index == 0 and reply.stream_error is not None:
                await self._ndjson(response, {"error": reply.stream_error})
                await response.write_eof()
                return response
            if index == 0 and reply.break_stream:
                # Half a JSON line, then the connection drops: what a crashed server looks like.
                await response.write(b'{"model": "')
                assert request.transport is not None
                request.transport.abort()
                return response
        await self._ndjson(response, final({"role": "assistant", "content": ""}))
        await response.write_eof()
        return response

    async def _gpu_stream(
        self, request: web.Request, body: dict[str, Any], name: str, reply: Reply
    ) -> web.StreamResponse:
        assert self.gpu is not None and self._gpu_slots is not None
        prompt_tokens = reply.prompt_eval_count
        if prompt_tokens is None:
            prompt_tokens = max(1, len(json.dumps(body.get("messages", []), ensure_ascii=False)) // 4)
        words = reply.content.split(" ")
        eval_tokens = reply.eval_count if reply.eval_count is not None else len(words)
        pieces = [words[i % len(words)] + " " for i in range(eval_tokens)]
        async with self._gpu_slots:
            started = time.monotonic_ns()
            await asyncio.sleep(prompt_tokens * self.gpu.prompt_token_seconds)
            prompt_done = time.monotonic_ns()
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await response.prepare(request)
            for piece in pieces:
                chunk = {"role": "assistant", "content": piece}
                await self._ndjson(response, {"model": name, "created_at": _now(), "message": chunk, "done": False})
                await asyncio.sleep(self.gpu.eval_token_seconds)
            ended = time.monotonic_ns()
            await self._ndjson(
                response,
                {
                    "model": name,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": reply.done_reason,
                    "total_duration": ended - started,
                    "load_duration": 0,
                    "prompt_eval_count": prompt_tokens,
                    "prompt_eval_duration": prompt_done - started,
                    "eval_count": eval_tokens,
                    "eval_duration": max(1, ended - prompt_done),
                },
            )
            await response.write_eof()
        return response

    @staticmethod
    async def _ndjson(response: web.StreamResponse, obj: dict[str, Any]) -> None:
        await response.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")


def main(argv: list[str] | None = None) -> None:
    """CLI: serve until SIGINT/SIGTERM; with --print-url the first stdout line is the base URL."""
    parser = argparse.ArgumentParser(prog="python -m bench.ollama_wire", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: ephemeral)")
    parser.add_argument("--print-url", action="store_true", help="print the base URL once listening")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="the text every chat answers")
    parser.add_argument("--model", action="append", help="a model the server has (repeatable)")
    parser.add_argument("--token", help="require `Authorization: Bearer TOKEN`")
    parser.add_argument("--gpu-slots", type=int, default=0, help="emulate a GPU with this many parallel slots")
    parser.add_argument("--prompt-token-ms", type=float, default=0.2, help="GPU: milliseconds per prompt token")
    parser.add_argument("--eval-token-ms", type=float, default=20.0, help="GPU: milliseconds per generated token")
    args = parser.parse_args(argv)
    gpu = (
        GpuEmulation(args.gpu_slots, args.prompt_token_ms / 1000, args.eval_token_ms / 1000) if args.gpu_slots else None
    )

    async def serve() -> None:
        reply_text: str = args.reply
        server = OllamaWireServer(
            models=args.model, responder=lambda _body: Reply(reply_text), token=args.token, gpu=gpu
        )
        url = await server.start(args.port)
        if args.print_url:
            print(url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
