"""The gateway in front of Ollama-wire back-ends (bench/ollama_wire.py over real HTTP, the real `ollama`
client on the tenant's side): tokens, the allow-list, limits, clamps, streaming, disconnects, failover."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import ollama
import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.ollama_wire import GpuEmulation, OllamaWireServer, Reply
from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import GatewayLimits, Instance, User
from hosting.gateway.backends import Backend
from hosting.gateway.scheduler import FairScheduler, Unavailable
from hosting.gateway.service import MIDSTREAM_ERROR, Gateway
from hosting.gateway.settings import GatewaySettings, TenantLimits
from hosting.gateway.speech import SpeechProxy
from hosting.gateway.tokens import instance_token, rotate_token
from hosting.security import SecretBox
from tests.edge.device import eventually

_PORTS = itertools.count(8200)
MODEL = "ministral-3:3b-instruct-2512-q4_K_M"
OTHER = "llama3.2:1b"
MESSAGES = [{"role": "user", "content": "Kapcsold fel a lámpát"}]


@dataclass
class Home:
    user_id: str
    instance: Instance
    token: str


async def add_home(sessions: async_sessionmaker[AsyncSession], box: SecretBox, name: str) -> Home:
    async with sessions() as session, session.begin():
        user = User(email=f"{name}@example.com", password_hash="x")
        session.add(user)
        await session.flush()
        instance = Instance(user_id=user.id, name=f"micropi-ha-{name}", port=next(_PORTS))
        session.add(instance)
        await session.flush()
        token = await instance_token(session, box, instance)
    return Home(user.id, instance, token)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key().decode())


class Running:
    def __init__(self, gateway: Gateway, url: str) -> None:
        self.gateway = gateway
        self.url = url

    def client(self, token: str | None) -> ollama.AsyncClient:
        return ollama.AsyncClient(host=self.url, headers={"Authorization": f"Bearer {token}"} if token else None)


async def start_gateway(db: async_sessionmaker[AsyncSession], urls: list[str], **settings: Any) -> Running:
    settings = {"health_interval": 0.5, **settings}
    gateway = Gateway(GatewaySettings(backend_urls=tuple(urls), models=(MODEL,), **settings), db)
    await gateway.start()
    port = await gateway.open_site("local", "127.0.0.1", 0)
    return Running(gateway, f"http://127.0.0.1:{port}")


@pytest.fixture
async def backend() -> AsyncIterator[OllamaWireServer]:
    async with OllamaWireServer(models=[MODEL, OTHER], responder=lambda _b: Reply("Felkapcsoltam.")) as server:
        yield server


@pytest.fixture
async def gw(db: async_sessionmaker[AsyncSession], backend: OllamaWireServer) -> AsyncIterator[Running]:
    running = await start_gateway(db, [backend.url])
    yield running
    await running.gateway.close()


async def test_tokens_decide_who_gets_in(
    gw: Running, db: async_sessionmaker[AsyncSession], box: SecretBox, backend: OllamaWireServer
) -> None:
    home = await add_home(db, box, "anna")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer mpg_forged"}, {"Authorization": f"Basic {home.token}"}):
            async with http.get(f"{gw.url}/api/tags", headers=headers) as response:
                assert response.status == 401
                body = await response.json()
                assert body["error"]["code"] in {"unauthorized", "invalid_token"}
                assert body["request_id"]
    listed = await gw.client(home.token).list()
    # The back-end has two models; the tenant sees the operator's allow-list only.
    assert [m.model for m in listed.models] == [MODEL]
    assert (await gw.client(home.token).show(MODEL)).capabilities == ["completion", "tools"]
    with pytest.raises(ollama.ResponseError) as refused:
        await gw.client(home.token).show(OTHER)
    assert refused.value.status_code == 404
    assert (await _version(gw, home.token)) == "0.12.10"

    # Rotation: the old token stops working at once, the new one works.
    async with db() as session, session.begin():
        instance = await session.get(Instance, home.instance.id)
        assert instance is not None
        fresh = await rotate_token(session, box, instance)
    gw.gateway.directory.forget(home.user_id)
    with pytest.raises(ollama.ResponseError) as stale:
        await gw.client(home.token).list()
    assert stale.value.status_code == 401
    assert [m.model for m in (await gw.client(fresh).list()).models] == [MODEL]
    # At rest the token is Fernet ciphertext, never the token itself.
    async with db() as session:
        from hosting.db.models import GatewayToken

        row = await session.get(GatewayToken, home.instance.id)
        assert row is not None and fresh not in row.token_encrypted and box.decrypt(row.token_encrypted) == fresh


async def _version(gw: Running, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/api/version", headers=headers) as response:
        assert response.status == 200
        return str((await response.json())["version"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:abc"),
        ("HEAD", "/api/blobs/sha256:abc"),
        ("GET", "/api/ps"),
        ("POST", "/api/generate"),
        ("POST", "/api/embed"),
        ("GET", "/"),
    ],
)
async def test_everything_else_is_forbidden(  # noqa: PLR0917  # fixtures and parameters
    gw: Running, db: async_sessionmaker[AsyncSession], box: SecretBox, backend: OllamaWireServer, method: str, path: str
) -> None:
    home = await add_home(db, box, "bela")
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {home.token}"}
        async with http.request(method, f"{gw.url}{path}", json={"model": OTHER}, headers=headers) as response:
            assert response.status == 403
            if method != "HEAD":
                body = await response.json()
                assert body["error"]["code"] == "forbidden"
                assert "operator chooses the models" in body["error"]["message"]
    assert all(hit[1] != path for hit in backend.hits)  # never reached the back-end


async def test_pull_through_the_ollama_client_is_refused(
    gw: Running, db: async_sessionmaker[AsyncSession], box: SecretBox, backend: OllamaWireServer
) -> None:
    home = await add_home(db, box, "cili")
    with pytest.raises(ollama.ResponseError) as refused:
        await gw.client(home.token).pull(OTHER)
    assert refused.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as deleted:
        await gw.client(home.token).delete(MODEL)
    assert deleted.value.status_code == 403
    assert OTHER in backend.models and MODEL in backend.models


async def test_chat_streams_and_clamps(
    gw: Running, db: async_sessionmaker[AsyncSession], box: SecretBox, backend: OllamaWireServer
) -> None:
    home = await add_home(db, box, "dora")
    parts = [
        part.message.content
        async for part in await gw.client(home.token).chat(
            MODEL, MESSAGES, stream=True, options={"num_ctx": 999_999, "num_predict": -1}
        )
    ]
    assert "".join(parts) == "Felkapcsoltam."
    sent = backend.requests[-1]["options"]
    assert sent["num_ctx"] == TenantLimits().max_num_ctx
    assert sent["num_predict"] == TenantLimits().max_num_predict
    whole = await gw.client(home.token).chat(MODEL, MESSAGES, stream=False, options={"num_ctx": 2048})
    assert whole.message.content == "Felkapcsoltam."
    assert backend.requests[-1]["options"]["num_ctx"] == 2048
    with pytest.raises(ollama.ResponseError) as other:
        await gw.client(home.token).chat(OTHER, MESSAGES)
    assert other.value.status_code == 404 and "model" in str(other.value.error)


async def test_limits_answer_429_with_retry_after(db: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
    gpu = GpuEmulation(slots=4, prompt_token_seconds=0, eval_token_seconds=0.05)
    async with OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("egy ketto harom"), gpu=gpu) as server:
        running = await start_gateway(db, [server.url])
        try:
            home = await add_home(db, box, "emma")
            async with db() as session, session.begin():
                session.add(GatewayLimits(user_id=home.user_id, concurrency=1, requests_per_minute=3))
            client = running.client(home.token)
            first = await client.chat(MODEL, MESSAGES, stream=True)
            await anext(first)  # running now
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{running.url}/api/chat",
                    json={"model": MODEL, "messages": MESSAGES},
                    headers={"Authorization": f"Bearer {home.token}"},
                ) as response,
            ):
                assert response.status == 429
                assert int(response.headers["Retry-After"]) >= 1
                body = await response.json()
                assert body["error"]["code"] == "rate_limited" and body["error"]["retry_after"] >= 1
            async for _part in first:
                pass
            await client.chat(MODEL, MESSAGES)
            await client.chat(MODEL, MESSAGES)
            with pytest.raises(ollama.ResponseError) as per_minute:
                await client.chat(MODEL, MESSAGES)  # the fourth within a minute
            assert per_minute.value.status_code == 429
            assert 50 <= per_minute.value.error["retry_after"] <= 61  # type: ignore[index]

            # Tokens per day: the first answer spends the budget, the next is refused until midnight.
            other = await add_home(db, box, "feri")
            async with db() as session, session.begin():
                session.add(GatewayLimits(user_id=other.user_id, tokens_per_day=5))
            await running.client(other.token).chat(MODEL, MESSAGES)
            with pytest.raises(ollama.ResponseError) as daily:
                await running.client(other.token).chat(MODEL, MESSAGES)
            assert daily.value.status_code == 429 and "tokens" in str(daily.value.error)
        finally:
            await running.gateway.close()


async def test_streaming_is_unbuffered_and_a_disconnect_cancels_upstream(
    db: async_sessionmaker[AsyncSession], box: SecretBox
) -> None:
    gpu = GpuEmulation(slots=2, prompt_token_seconds=0, eval_token_seconds=0.05)
    async with OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("szo", eval_count=20), gpu=gpu) as server:
        running = await start_gateway(db, [server.url])
        try:
            home = await add_home(db, box, "gabi")
            started = time.perf_counter()
            arrivals = []
            async for _part in await running.client(home.token).chat(MODEL, MESSAGES, stream=True):
                arrivals.append(time.perf_counter() - started)
            # 20 tokens at 50 ms: the first chunk comes long before the last (nothing waits for the end).
            assert len(arrivals) == 21
            assert arrivals[0] < 0.3 * arrivals[-1]

            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    f"{running.url}/api/chat",
                    json={"model": MODEL, "messages": MESSAGES},
                    headers={"Authorization": f"Bearer {home.token}"},
                )
                await response.content.readline()
                response.close()  # the tenant hangs up after the first chunk
            await eventually(lambda: server.cancelled_chats > 0)
            assert server.cancelled_chats == 1  # the back-end stopped generating
            assert server.finished_chats == 1
            await eventually(lambda: all(b.in_flight == 0 for b in running.gateway.pool.backends))
            assert all(b.in_flight == 0 for b in running.gateway.pool.backends)  # its slot was given back
        finally:
            await running.gateway.close()


async def test_failover_between_two_backends(db: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
    slow = GpuEmulation(slots=4, prompt_token_seconds=0.002, eval_token_seconds=0.05)
    first = OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("elso", eval_count=40), gpu=slow)
    second = OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("masodik", eval_count=2), gpu=slow)
    await first.start()
    await second.start()
    running = await start_gateway(db, [first.url, second.url])
    try:
        homes = [await add_home(db, box, f"h{i}") for i in range(4)]
        # Two requests take one slot on each back-end (least busy first).
        streaming = [await running.client(homes[i].token).chat(MODEL, MESSAGES, stream=True) for i in range(2)]
        got = [await anext(s) for s in streaming]
        assert all(part.message.content for part in got)
        assert {b.in_flight for b in running.gateway.pool.backends} == {1}

        # A request still waiting for its first token (a long prompt) on `first`, then `first` dies.
        first.responder = lambda _b: Reply("elso", prompt_eval_count=1000, eval_count=5)
        pending = asyncio.create_task(_streamed(running.client(homes[2].token)))
        await eventually(lambda: len(first.requests) >= 2)
        await first.stop()

        # Not streamed yet: retried on `second`, and answered in full.
        assert (await pending).startswith("masodik")
        # Already streaming from `first`: ends with a clear error instead of hanging or a silent cut.
        outcomes = []
        for stream in streaming:
            try:
                async for _part in stream:
                    pass
                outcomes.append("ok")
            except ollama.ResponseError as err:
                outcomes.append(str(err.error))
        assert sorted(outcomes) == sorted(["ok", MIDSTREAM_ERROR])
        # New requests go to the living back-end only.
        assert not running.gateway.pool.backends[0].healthy
        for home in homes:
            assert (await running.client(home.token).chat(MODEL, MESSAGES)).message.content.strip()
        # Back on its port, the health checks find it again and it takes work.
        await first.start(int(first.url.rsplit(":", 1)[1]))
        await eventually(lambda: running.gateway.pool.backends[0].healthy)
        asked = len(first.requests)
        await asyncio.gather(*(_streamed(running.client(h.token)) for h in homes[:2]))
        assert len(first.requests) > asked
    finally:
        await running.gateway.close()
        await first.stop()
        await second.stop()


async def test_a_backend_back_on_its_port_answers_the_very_next_request(
    db: async_sessionmaker[AsyncSession], box: SecretBox
) -> None:
    # The periodic checks are an hour apart here: only the request's own check can find the server back.
    server = OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("Itt vagyok."))
    await server.start()
    port = int(server.url.rsplit(":", 1)[1])
    running = await start_gateway(db, [server.url], health_interval=3600)
    try:
        home = await add_home(db, box, "back")
        client = running.client(home.token)
        await server.stop()
        with pytest.raises((ollama.ResponseError, httpx.HTTPError)):
            await client.chat(MODEL, MESSAGES)
        assert not running.gateway.pool.backends[0].healthy
        for _ in range(3):  # at once, again and again: no second's wait between checks
            await server.start(port)
            assert (await client.chat(MODEL, MESSAGES)).message.content == "Itt vagyok."
            await server.stop()
            with pytest.raises(ollama.ResponseError):
                await client.chat(MODEL, MESSAGES)
    finally:
        await running.gateway.close()
        await server.stop()


async def _streamed(client: ollama.AsyncClient) -> str:
    return "".join([part.message.content or "" async for part in await client.chat(MODEL, MESSAGES, stream=True)])


def _backends(count: int, slots: int = 1) -> list[Backend]:
    return [Backend(f"http://b{i}", slots, healthy=True, models=frozenset({MODEL})) for i in range(count)]


async def test_scheduler_serves_tenants_in_turn() -> None:
    backends = _backends(1)
    scheduler = FairScheduler(backends, queue_per_tenant=10, queue_wait=5)
    held = await scheduler.acquire("noisy", MODEL)
    served: list[str] = []

    async def ask(tenant: str) -> None:
        backend = await scheduler.acquire(tenant, MODEL)
        served.append(tenant)
        await asyncio.sleep(0)
        scheduler.release(backend)

    tasks = [asyncio.create_task(ask("noisy")) for _ in range(5)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(ask("quiet-1")), asyncio.create_task(ask("quiet-2"))]
    await asyncio.sleep(0)
    scheduler.release(held)
    await asyncio.gather(*tasks)
    # Round robin: the quiet tenants come second and third, not after the noisy one's whole burst.
    assert served[:3] == ["noisy", "quiet-1", "quiet-2"]
    assert served.count("noisy") == 5 and backends[0].in_flight == 0

    fifo = FairScheduler(_backends(1), fair=False)
    held = await fifo.acquire("noisy", MODEL)
    served.clear()

    async def ask_fifo(tenant: str) -> None:
        backend = await fifo.acquire(tenant, MODEL)
        served.append(tenant)
        fifo.release(backend)

    tasks = [asyncio.create_task(ask_fifo("noisy")) for _ in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(ask_fifo("quiet-1")))
    await asyncio.sleep(0)
    fifo.release(held)
    await asyncio.gather(*tasks)
    assert served[-1] == "quiet-1"  # the baseline really is first come, first served


async def test_scheduler_picks_the_least_busy_backend_that_has_the_model() -> None:
    small, large = _backends(2, slots=2)
    large.models = frozenset({MODEL, OTHER})
    scheduler = FairScheduler([small, large])
    assert await scheduler.acquire("a", OTHER) is large  # only one has it
    assert await scheduler.acquire("a", MODEL) is small  # the other is busier
    assert await scheduler.acquire("a", MODEL) is small  # equally busy now: the first
    assert await scheduler.acquire("a", MODEL) is large  # then both are full
    waiting = asyncio.create_task(scheduler.acquire("b", OTHER))
    await asyncio.sleep(0)
    scheduler.release(small)  # a slot where OTHER is not: the waiter keeps waiting
    await asyncio.sleep(0)
    assert not waiting.done()
    scheduler.release(large)
    assert await waiting is large


async def test_scheduler_bounds_the_queue_and_the_wait() -> None:
    backends = _backends(1)
    scheduler = FairScheduler(backends, queue_per_tenant=2, queue_total=3, queue_wait=0.2)
    held = await scheduler.acquire("a", MODEL)
    waiting = [asyncio.create_task(scheduler.acquire("a", MODEL)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Unavailable) as full:
        await scheduler.acquire("a", MODEL)
    assert full.value.code == "queue_full"
    with pytest.raises(Unavailable) as late:
        await scheduler.acquire("b", MODEL)
    assert late.value.code == "queue_timeout"
    for task in waiting:
        with pytest.raises(Unavailable):
            await task
    assert scheduler.waiting == 0
    # A waiter whose caller goes away leaves the queue; the slot goes to the next.
    gone = asyncio.create_task(scheduler.acquire("c", MODEL))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert scheduler.waiting == 0
    scheduler.release(held)
    assert backends[0].in_flight == 0
    backends[0].healthy = False
    with pytest.raises(Unavailable) as down:
        await scheduler.acquire("a", MODEL)
    assert down.value.code == "no_backend"


async def test_speech_endpoint_splices_and_limits_connections() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    proxy = SpeechProxy({"stt": ("127.0.0.1", port), "tts": None}, limit=2)
    try:
        ports = await proxy.open("tenant", "127.0.0.1", {"stt": 0})
        assert set(ports) == {"stt"}  # no piper configured: no endpoint for it

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", ports["stt"])

        held = [await connect() for _ in range(2)]
        for reader, writer in held:
            writer.write(b'{"type": "describe"}\n')
            assert await reader.readline() == b'{"type": "describe"}\n'  # spliced to the upstream
        reader, writer = await connect()
        assert await reader.read() == b""  # the third at once is hung up on
        writer.close()
        held[0][1].close()
        await eventually(lambda: len(proxy._endpoints["tenant"]["stt"].writers) == 1)
        reader, writer = await connect()
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        writer.close()
        held[1][1].close()
    finally:
        await proxy.close_all()
        upstream.close()
        await upstream.wait_closed()
