"""The integration behind the hosting service's real gateway (hosting.gateway), in real HA core: a limit's
429 becomes a short spoken "busy, try again in N seconds" at once (Hungarian and English), and a model pull
on the hosted server tells the user, translated, that the operator chooses the models."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_MODEL, CONF_NAME, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.translation import async_get_translations

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply
from custom_components.micropi_llm.const import CONF_PREFER_LOCAL, DEFAULT_AGENT_OPTIONS, DOMAIN, SUBENTRY_CONVERSATION
from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import GatewayLimits, Instance, User
from hosting.gateway.service import Gateway
from hosting.gateway.settings import GatewaySettings
from hosting.gateway.tokens import instance_token
from hosting.gateway.turns import TURNS_PATH, turns_handler
from hosting.gateway.usage import UsageStore
from hosting.security import SecretBox

from .home import Home, async_ask, async_setup_agent, is_error, speech


@dataclass
class Hosted:
    url: str
    token: str
    backend: OllamaWireServer
    store: UsageStore
    user_id: str


@pytest.fixture
async def hosted(tmp_path: Path) -> AsyncIterator[Hosted]:
    """A gateway with one household allowed one request per minute, in front of a wire-format server."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    box = SecretBox(Fernet.generate_key().decode())
    async with sessions() as session, session.begin():
        user = User(email="anna@example.hu", password_hash="!")  # no login in this test
        session.add(user)
        await session.flush()
        instance = Instance(user_id=user.id, name="micropi-ha-anna", port=8200)
        session.add(instance)
        await session.flush()
        session.add(GatewayLimits(user_id=user.id, requests_per_minute=1))
        token = await instance_token(session, box, instance)
    backend = OllamaWireServer(models=[DEFAULT_MODEL, "other:1b"], responder=lambda _b: Reply("Rendben."))
    await backend.start()
    gateway = Gateway(GatewaySettings(backend_urls=(backend.url,), models=(DEFAULT_MODEL,), port=0), sessions)
    store = UsageStore(sessions)
    gateway.extra_routes.append(("POST", TURNS_PATH, turns_handler(store)))  # as hosting.gateway.setup does
    await gateway.start()
    port = await gateway.open_site("local", "127.0.0.1", 0)
    yield Hosted(f"http://127.0.0.1:{port}", token, backend, store, user.id)
    await gateway.close()
    await backend.stop()
    await engine.dispose()


@pytest.mark.parametrize(
    ("language", "pattern"),
    [
        ("hu", r"^Bocsánat, most túl sok a dolgom\. Próbáld újra (\d+) másodperc múlva\.$"),
        ("en", r"^Sorry, I am busy right now\. Try again in (\d+) seconds\.$"),
    ],
)
async def test_over_the_limit_the_agent_says_busy_at_once(
    hass: HomeAssistant, home: Home, hosted: Hosted, language: str, pattern: str
) -> None:
    await async_setup_agent(hass, hosted.url, {CONF_PREFER_LOCAL: False}, api_key=hosted.token)
    first = await async_ask(hass, "Mennyi az idő?", language=language)
    assert speech(first) == "Rendben."
    started = time.monotonic()
    second = await async_ask(hass, "És most?", language=language, conversation_id=first.conversation_id)
    assert time.monotonic() - started < 2  # refused at the door: no waiting for the model
    assert is_error(second)
    match = re.match(pattern, speech(second))
    assert match is not None, speech(second)
    assert 50 <= int(match.group(1)) <= 60  # the minute's window, as the gateway's Retry-After says
    assert len(hosted.backend.requests) == 1  # the refused turn never reached the model


async def test_hosted_server_refuses_pulls_with_a_translated_reason(hass: HomeAssistant, hosted: Hosted) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: hosted.url, "api_key": hosted.token}
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "model"
    # Only the operator's model is listed; the back-end's other one is not.
    options = [o["value"] for o in result["data_schema"].schema[CONF_MODEL].config["options"]]
    assert "other:1b" not in options and DEFAULT_MODEL in options
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: "llama3.2:3b"})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "models_by_operator"}
    assert ("POST", "/api/pull") not in hosted.backend.hits
    hungarian = await async_get_translations(hass, "hu", "config", {DOMAIN})
    assert "üzemeltető" in hungarian[f"component.{DOMAIN}.config.error.models_by_operator"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: DEFAULT_MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY

    # The same for a new agent on the hosted server.
    entry = hass.config_entries.async_get_entry(result["result"].entry_id)
    assert entry is not None
    flow = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONVERSATION), context={"source": SOURCE_USER}
    )
    flow = await hass.config_entries.subentries.async_configure(
        flow["flow_id"], {CONF_NAME: "Másik", **DEFAULT_AGENT_OPTIONS, CONF_MODEL: "llama3.2:3b"}
    )
    await hass.async_block_till_done()
    flow = await hass.config_entries.subentries.async_configure(flow["flow_id"])
    assert flow["type"] is FlowResultType.ABORT and flow["reason"] == "models_by_operator"


async def test_every_turn_is_reported_to_the_households_log(hass: HomeAssistant, home: Home, hosted: Hosted) -> None:
    """Local turns never reach the model, so the agent reports each turn itself (with the same token)."""
    await async_setup_agent(hass, hosted.url, api_key=hosted.token)  # local first, as by default
    await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert hass.states.get(home.kitchen_light).state == "on"
    assert not hosted.backend.requests
    await async_ask(hass, "Mesélj valamit a lámpákról")
    assert len(hosted.backend.requests) == 1
    log = await _log_of(hosted, 2)
    model, local = log["items"]
    assert local["handled"] == "local" and local["text"] == "Kapcsold fel a konyhai lámpát"
    assert local["intents"][0]["name"] == "HassTurnOn" and local["status"] == "ok" and local["result"]
    assert model["handled"] == "model" and model["result"] == "Rendben." and model["eval_tokens"] > 0
    assert model["latency_ms"] >= 0 and model["prompt_tokens"] > 0


async def _log_of(hosted: Hosted, turns: int) -> dict[str, Any]:
    """The household's log once `turns` reports are in (they go in the background, after the answer)."""
    async with asyncio.timeout(10):
        while (log := await hosted.store.conversations(hosted.user_id, 10, 0))["total"] < turns:  # noqa: ASYNC110  # a database row, no event to wait on
            await asyncio.sleep(0.05)
    return log


async def test_a_self_hosted_server_gets_no_reports(hass: HomeAssistant, home: Home, wire: OllamaWireServer) -> None:
    """A plain Ollama (no key, or no gateway) is never sent turn reports; one with a key is tried once."""
    entry = await async_setup_agent(hass, wire.url, api_key="proxy-key")
    await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    async with asyncio.timeout(10):
        while entry.runtime_data.reporter.enabled:  # noqa: ASYNC110  # 404 from a plain Ollama stops the reports
            await asyncio.sleep(0.05)
    assert wire.hits.count(("POST", TURNS_PATH)) == 1
    await async_ask(hass, "Kapcsold le a konyhai lámpát")
    await asyncio.sleep(0.3)
    assert wire.hits.count(("POST", TURNS_PATH)) == 1

    await hass.config_entries.async_unload(entry.entry_id)
    keyless = await async_setup_agent(hass, wire.url)
    assert keyless.runtime_data.reporter.enabled is False  # no key: a self-hosted Ollama, never asked
