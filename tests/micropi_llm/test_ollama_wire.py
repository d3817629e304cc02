"""The Ollama wire-format server answers the real `ollama` client the way Ollama does."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply

ROOT = Path(__file__).resolve().parents[2]


async def test_tags_show_version() -> None:
    async with OllamaWireServer(models=["a:1b", "b:2b"]) as server:
        client = ollama.AsyncClient(host=server.url)
        listed = await client.list()
        assert [m.model for m in listed.models] == ["a:1b", "b:2b"]
        assert listed.models[0].details is not None
        shown = await client.show("b:2b")
        assert shown.capabilities is not None and "tools" in shown.capabilities
        with pytest.raises(ollama.ResponseError) as err:
            await client.show("missing:1b")
        assert err.value.status_code == 404
        async with httpx.AsyncClient() as http:
            version = (await http.get(f"{server.url}/api/version")).json()
        assert version["version"]


async def test_chat_streams_text_tool_calls_and_final_figures() -> None:
    def responder(body: dict[str, Any]) -> Reply:
        return Reply("Felkapcsoltam.", tool_calls=[{"name": "HassTurnOn", "arguments": {"name": "Konyha"}}])

    async with OllamaWireServer(responder=responder) as server:
        client = ollama.AsyncClient(host=server.url)
        parts = [
            part
            async for part in await client.chat(
                model=DEFAULT_MODEL, messages=[{"role": "user", "content": "Kapcsold fel"}], stream=True
            )
        ]
        assert "".join(p.message.content or "" for p in parts) == "Felkapcsoltam."
        assert len(parts) > 2  # streamed in chunks
        calls = [c for p in parts for c in (p.message.tool_calls or [])]
        assert calls[0].function.name == "HassTurnOn"
        assert calls[0].function.arguments == {"name": "Konyha"}
        last = parts[-1]
        assert last.done and last.done_reason == "stop"
        assert last.prompt_eval_count and last.eval_count and last.total_duration and last.eval_duration
        assert server.requests[0]["messages"][0]["content"] == "Kapcsold fel"

        whole = await client.chat(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "x"}], stream=False)
        assert whole.message.content == "Felkapcsoltam." and whole.done


async def test_failures_look_like_ollama() -> None:
    replies = iter(
        [
            Reply(status=500, error="llama runner crashed"),
            Reply("abc def", break_stream=True),
            Reply(stream_error="oom"),
        ]
    )
    async with OllamaWireServer(responder=lambda _body: next(replies), token="s3cret") as server:
        unauthorised = ollama.AsyncClient(host=server.url)
        with pytest.raises(ollama.ResponseError) as err:
            await unauthorised.list()
        assert err.value.status_code == 401

        client = ollama.AsyncClient(host=server.url, headers={"Authorization": "Bearer s3cret"})
        with pytest.raises(ollama.ResponseError) as err:
            await client.chat(model=DEFAULT_MODEL, messages=[], stream=False)
        assert err.value.status_code == 500 and err.value.error == "llama runner crashed"

        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in await client.chat(model=DEFAULT_MODEL, messages=[], stream=True):
                pass

        with pytest.raises(ollama.ResponseError, match="oom"):
            async for _ in await client.chat(model=DEFAULT_MODEL, messages=[], stream=True):
                pass

        with pytest.raises(ollama.ResponseError) as err:
            await client.chat(model="gone:1b", messages=[], stream=False)
        assert err.value.status_code == 404 and "not found" in err.value.error


async def test_pull_progress_adds_the_model() -> None:
    async with OllamaWireServer(models=[], pullable=["new:1b"]) as server:
        client = ollama.AsyncClient(host=server.url)
        progress = [p async for p in await client.pull("new:1b", stream=True)]
        assert progress[-1].status == "success"
        assert any(p.total and p.completed == p.total for p in progress)
        assert server.models == ["new:1b"]
        with pytest.raises(ollama.ResponseError, match="file does not exist"):
            async for _ in await client.pull("unknown:1b", stream=True):
                pass


async def test_slow_reply_runs_past_a_client_timeout() -> None:
    async with OllamaWireServer(responder=lambda _body: Reply(delay=1.0)) as server:
        client = ollama.AsyncClient(host=server.url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.chat(model=DEFAULT_MODEL, messages=[], stream=False)


def test_in_thread_serves_sync_callers() -> None:
    with OllamaWireServer.in_thread(models=["t:1b"]) as server:
        tags = httpx.get(f"{server.url}/api/tags", timeout=5).json()
        assert tags["models"][0]["name"] == "t:1b"
        reply = httpx.post(
            f"{server.url}/api/chat", json={"model": "t:1b", "messages": [], "stream": False}, timeout=5
        ).json()
        assert reply["message"]["content"] == "Done."


def test_cli_prints_its_url_and_answers() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ollama_wire", "--port", "0", "--print-url", "--reply", "Szia!"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        reply = httpx.post(
            f"{url}/api/chat", json={"model": DEFAULT_MODEL, "messages": [], "stream": False}, timeout=5
        ).json()
        assert reply["message"]["content"] == "Szia!"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
