"""Metering and the conversation log through the running service (SQLite and PostgreSQL), under the security
matrix: each household sees and deletes only its own turns, operators see figures and never text."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import ollama
import pytest
from aiohttp.test_utils import TestClient

from bench.ollama_wire import OllamaWireServer, Reply
from hosting.db.models import ConversationTurn, GatewayRequest, GatewayUsageDaily, Instance
from hosting.gateway.setup import GATEWAY_HOST_KEY, USAGE_KEY
from hosting.gateway.tokens import instance_token
from hosting.keys import SECRET_BOX_KEY, SESSIONS_KEY
from hosting.settings import Settings

from .conftest import start_client
from .helpers import assert_error, bearer, make_operator, sign_up

_PORTS = itertools.count(8200)
MODEL = "ministral-3:3b-instruct-2512-q4_K_M"


@pytest.fixture
async def backend() -> AsyncIterator[OllamaWireServer]:
    async with OllamaWireServer(models=[MODEL], responder=lambda _b: Reply("Felkapcsoltam.", eval_count=7)) as server:
        yield server


@pytest.fixture
async def app_client(
    settings: Settings, backend: OllamaWireServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TestClient[Any, Any]]:
    monkeypatch.setenv("MICROPI_OLLAMA_URLS", backend.url)
    monkeypatch.setenv("MICROPI_OLLAMA_MODELS", MODEL)
    client = await start_client(settings)
    try:
        yield client
    finally:
        await client.close()


async def home_of(client: TestClient[Any, Any], email: str) -> tuple[str, str, str]:
    """(access token, gateway URL, gateway token) of a signed-up household with an instance row."""
    signed = await sign_up(client, email)
    async with client.app[SESSIONS_KEY]() as session, session.begin():
        instance = Instance(user_id=signed["user"]["id"], name=f"micropi-ha-{email[:4]}", port=next(_PORTS))
        session.add(instance)
        await session.flush()
        token = await instance_token(session, client.app[SECRET_BOX_KEY], instance)
    return signed["tokens"]["access_token"], client.app[GATEWAY_HOST_KEY].url_for(instance.id), token


async def report(url: str, token: str | None, turn: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/gateway/v1/turns", json=turn, headers=headers) as r:
        return r.status, await r.json()


LOCAL_TURN = {"text": "Kapcsold fel a konyhai lámpát", "device": "Konyha Pi", "handled": "local", "status": "ok",
              "intents": [{"name": "HassTurnOn", "arguments": {"name": "konyhai lámpa"}}], "result": "Felkapcsoltam.",
              "latency_ms": 40}  # fmt: skip
MODEL_TURN = {"text": "Kapcsold ki a riasztót, a kód 4711", "handled": "model", "status": "ok",
              "intents": [{"name": "HassAlarmDisarm", "arguments": {"name": "riasztó", "code": "4711"}}],
              "result": "Kikapcsoltam.", "latency_ms": 900, "prompt_tokens": 1200, "eval_tokens": 7,
              "request_id": "turn-1"}  # fmt: skip


async def test_usage_and_conversations_per_household(app_client: TestClient[Any, Any]) -> None:
    client = app_client
    anna, url, anna_gw = await home_of(client, "anna@example.com")
    bela, _url, bela_gw = await home_of(client, "bela@example.com")
    operator = (await make_operator(client, "op@example.com"))["access_token"]

    await ollama.AsyncClient(host=url, headers=bearer(anna_gw)).chat(MODEL, [{"role": "user", "content": "szia"}])
    assert (await report(url, anna_gw, LOCAL_TURN))[0] == 201
    assert (await report(url, anna_gw, MODEL_TURN))[0] == 201
    assert (await report(url, bela_gw, {**LOCAL_TURN, "text": "Béla kérdése"}))[0] == 201
    # The report door is the gateway's: no token or a forged one gets nowhere, bad input is a clear 4xx.
    assert (await report(url, None, LOCAL_TURN))[0] == 401
    assert (await report(url, "mpg_forged", LOCAL_TURN))[0] == 401
    status, body = await report(url, anna_gw, {"text": "x", "handled": "somewhere", "status": "ok"})
    assert status == 422 and "handled" in body["error"]["message"]
    await client.app[USAGE_KEY].flush()

    usage = await (await client.get("/api/me/usage", headers=bearer(anna))).json()
    assert usage["month"] == datetime.now(UTC).strftime("%Y-%m")
    assert usage["questions"] == {"local": 1, "model": 1}
    assert usage["model_requests"] == 1 and usage["eval_tokens"] == 7 and usage["prompt_tokens"] > 0
    assert usage["daily"][0]["requests"] == 1 and usage["limits"]["concurrency"] == 2
    # After a restart the day's budget is not fresh: it is seeded from these rollups.
    tokens_today = await client.app[USAGE_KEY].tokens_today()
    assert sorted(tokens_today.values()) == [0, usage["prompt_tokens"] + usage["eval_tokens"]]  # Béla, Anna
    other = await (await client.get("/api/me/usage", headers=bearer(bela))).json()
    assert other["questions"] == {"local": 1, "model": 0} and other["model_requests"] == 0
    bad = await client.get("/api/me/usage?month=2026-13", headers=bearer(anna))
    assert bad.status == 422

    mine = await (await client.get("/api/me/conversations", headers=bearer(anna))).json()
    assert mine["total"] == 2
    newest = mine["items"][0]
    assert newest["text"] == MODEL_TURN["text"] and newest["handled"] == "model"
    # The alarm code the model passed on is not kept (the household's own words are: they said them).
    assert newest["intents"] == [{"name": "HassAlarmDisarm", "arguments": {"name": "riasztó", "code": "***"}}]
    assert {"id", "time", "device", "text", "intents", "result", "status", "handled", "latency_ms",
            "prompt_tokens", "eval_tokens", "request_id"} <= set(newest)  # fmt: skip
    theirs = await (await client.get("/api/me/conversations", headers=bearer(bela))).json()
    assert [item["text"] for item in theirs["items"]] == ["Béla kérdése"]

    # Anna cannot delete Béla's turn; she deletes one of hers, then all.
    response = await client.delete(f"/api/me/conversations/{theirs['items'][0]['id']}", headers=bearer(anna))
    assert response.status == 404
    assert_error(await response.json(), "not_found")
    response = await client.delete(f"/api/me/conversations/{newest['id']}", headers=bearer(anna))
    assert (await response.json()) == {"deleted": 1}
    response = await client.delete("/api/me/conversations", headers=bearer(anna))
    assert (await response.json()) == {"deleted": 1}
    assert (await (await client.get("/api/me/conversations", headers=bearer(bela))).json())["total"] == 1

    # The operator: figures by tenant and back-end, never a word of the text; no household's log.
    response = await client.get("/api/operator/usage", headers=bearer(operator))
    assert response.status == 200
    figures = await response.json()
    dumped = json.dumps(figures, ensure_ascii=False)
    assert "Béla kérdése" not in dumped and "lámpát" not in dumped and "riasztó" not in dumped
    by_email = {row["email"]: row for row in figures["tenants"]}
    assert by_email["anna@example.com"]["model_requests"] == 1
    assert by_email["bela@example.com"]["questions"] == {"local": 1, "model": 0}
    assert figures["backends"][0]["requests"] == 1
    assert (await (await client.get("/api/me/conversations", headers=bearer(operator))).json())["total"] == 0
    for path in ("/api/operator/usage", "/api/operator/gateway/backends"):
        assert (await client.get(path, headers=bearer(anna))).status == 403
        assert (await client.get(path)).status == 401
    backends = await (await client.get("/api/operator/gateway/backends", headers=bearer(operator))).json()
    assert backends["backends"][0]["healthy"] is True and backends["backends"][0]["models"] == [MODEL]
    assert {"url", "healthy", "in_flight", "queued", "models", "tokens_per_second"} <= set(backends["backends"][0])

    # Prometheus: aggregated, no tenant in any label.
    metrics = await (await client.get("/metrics")).text()
    assert re.search(r'micropi_gateway_requests_total\{endpoint="chat",outcome="ok"\} [1-9]', metrics)
    assert anna_gw not in metrics and "anna" not in metrics


async def test_operator_limits_and_token_rotation(app_client: TestClient[Any, Any]) -> None:
    client = app_client
    _anna, url, anna_gw = await home_of(client, "cili@example.com")
    operator = (await make_operator(client, "op2@example.com"))["access_token"]
    signed = await (await client.get("/api/operator/users", headers=bearer(operator))).json()
    user_id = next(u["id"] for u in signed["users"] if u["email"] == "cili@example.com")
    response = await client.put(
        f"/api/operator/users/{user_id}/gateway-limits",
        json={"requests_per_minute": 1, "max_num_predict": 64},
        headers=bearer(operator),
    )
    assert response.status == 200
    body = await response.json()
    assert body["limits"]["requests_per_minute"] == 1 and body["limits"]["concurrency"] == 2
    bad = await client.put(
        f"/api/operator/users/{user_id}/gateway-limits", json={"concurrency": 0}, headers=bearer(operator)
    )
    assert bad.status == 422
    gateway = ollama.AsyncClient(host=url, headers=bearer(anna_gw))
    await gateway.chat(MODEL, [{"role": "user", "content": "szia"}], options={"num_predict": 500})
    with pytest.raises(ollama.ResponseError) as limited:
        await gateway.chat(MODEL, [{"role": "user", "content": "szia"}])
    assert limited.value.status_code == 429

    async with client.app[SESSIONS_KEY]() as session:
        instance_id = (await session.scalars(Instance.__table__.select().with_only_columns(Instance.id))).first()
    response = await client.post(f"/api/operator/instances/{instance_id}/gateway-token", headers=bearer(operator))
    assert response.status == 202
    with pytest.raises(ollama.ResponseError) as stale:
        await gateway.list()
    assert stale.value.status_code == 401
    missing = await client.post("/api/operator/instances/nope/gateway-token", headers=bearer(operator))
    assert missing.status == 404


async def test_retention(app_client: TestClient[Any, Any]) -> None:
    client = app_client
    _anna, url, token = await home_of(client, "dora@example.com")
    await ollama.AsyncClient(host=url, headers=bearer(token)).chat(MODEL, [{"role": "user", "content": "szia"}])
    assert (await report(url, token, LOCAL_TURN))[0] == 201
    store = client.app[USAGE_KEY]
    await store.flush()

    async def count(model: type[Any]) -> int:
        async with client.app[SESSIONS_KEY]() as session:
            return len(list(await session.scalars(model.__table__.select())))

    await store.prune(datetime.now(UTC) + timedelta(days=8))  # raw requests go after 7 days
    assert await count(GatewayRequest) == 0
    assert await count(GatewayUsageDaily) == 1 and await count(ConversationTurn) == 1
    await store.prune(datetime.now(UTC) + timedelta(days=31))  # turns after the 30-day default
    assert await count(ConversationTurn) == 0 and await count(GatewayUsageDaily) == 1
    await store.prune(datetime.now(UTC) + timedelta(days=367))  # daily figures after a year
    assert await count(GatewayUsageDaily) == 0
