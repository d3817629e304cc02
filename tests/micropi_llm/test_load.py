"""Set-up, unload, retry, the missing-model repair issue and diagnostics, in real Home Assistant core."""

import logging

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_API_KEY, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply
from custom_components.micropi_llm.const import DOMAIN
from custom_components.micropi_llm.server_status import RECHECK

from .home import Home, async_ask, async_setup_agent, is_error, script, speech


async def test_integration_is_found(hass: HomeAssistant) -> None:
    integration = await async_get_integration(hass, DOMAIN)
    assert integration.domain == DOMAIN
    assert integration.config_flow is True
    assert "conversation" in integration.dependencies
    assert integration.requirements == ["ollama==0.6.2"]
    assert integration.manifest["iot_class"] == "local_polling"
    assert integration.manifest["integration_type"] == "service"
    assert integration.manifest["version"]
    assert integration.manifest["issue_tracker"]


async def test_entry_loads_and_unloads(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    entry = await async_setup_agent(hass, wire.url)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.client is not None
    assert hass.states.get("conversation.micropi") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get("conversation.micropi").state == "unavailable"


async def test_server_down_at_start_up_degrades_and_recovers_without_a_restart(hass: HomeAssistant, home: Home) -> None:
    server = OllamaWireServer()
    await server.start()
    port = int(server.url.rsplit(":", 1)[1])
    await server.stop()
    entry = await async_setup_agent(hass, server.url)
    # Unlike core ollama (ConfigEntryNotReady), the agent is there: local commands work without the server.
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("conversation.micropi") is not None
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}")
    assert issue is not None and issue.translation_key == "server_unreachable"
    assert issue.translation_placeholders == {"url": server.url, "error": "cannot_connect"}
    result = await async_ask(hass, "Kapcsold fel a konyhai lámpát")
    assert not is_error(result), speech(result)
    assert hass.states.get(home.kitchen_light).state == "on"
    # A sentence for the model gets the short spoken error, in the user's language.
    assert speech(await async_ask(hass, "Mesélj egy viccet")) == "Sajnos most nem érem el a nyelvi modell szerverét."

    # The server comes back on the same address: the periodic check clears the issue by itself...
    await server.start(port)
    async_fire_time_changed(hass, dt_util.utcnow() + RECHECK)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}") is None
    # ...and the model answers, with no reload.
    server.responder = script(Reply("Itt vagyok."))
    assert speech(await async_ask(hass, "Mesélj egy viccet")) == "Itt vagyok."
    # Down again while nobody talks: the check raises the issue again.
    await server.stop()
    async_fire_time_changed(hass, dt_util.utcnow() + RECHECK)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}") is not None


async def test_a_turn_that_reaches_the_server_clears_the_issue(hass: HomeAssistant) -> None:
    server = OllamaWireServer()
    await server.start()
    port = int(server.url.rsplit(":", 1)[1])
    await server.stop()
    entry = await async_setup_agent(hass, server.url)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}") is not None
    await server.start(port)
    server.responder = script(Reply("Megvagyok."))
    assert speech(await async_ask(hass, "Hogy vagy?")) == "Megvagyok."  # before any periodic check
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}") is None
    await server.stop()


async def test_wrong_key_at_start_up_asks_for_a_new_one(hass: HomeAssistant) -> None:
    async with OllamaWireServer(token="s3cret") as server:
        entry = await async_setup_agent(hass, server.url, api_key="wrong")
        assert entry.state is ConfigEntryState.SETUP_ERROR  # ConfigEntryAuthFailed: a reauth flow starts
        assert [flow["context"]["source"] for flow in hass.config_entries.flow.async_progress()] == ["reauth"]


async def test_server_error_at_start_up_degrades(hass: HomeAssistant) -> None:
    async with OllamaWireServer() as server:
        entry = await async_setup_agent(hass, f"{server.url}/behind-a-broken-proxy")
        assert entry.state is ConfigEntryState.LOADED
        assert ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}") is not None


async def test_missing_model_raises_a_repair_issue_that_clears(hass: HomeAssistant, home: Home) -> None:
    async with OllamaWireServer(models=["other:1b"]) as server:
        entry = await async_setup_agent(hass, server.url)
        assert entry.state is ConfigEntryState.LOADED  # other agents may still work
        [subentry_id] = entry.subentries
        issue = ir.async_get(hass).async_get_issue(DOMAIN, f"model_not_found_{subentry_id}")
        assert issue is not None
        assert issue.translation_key == "model_not_found"
        assert issue.translation_placeholders == {"model": DEFAULT_MODEL, "agent": "MicroPi", "url": server.url}

        server.models.append(DEFAULT_MODEL)  # pulled on the server
        server.responder = script(Reply("Itt vagyok."))
        result = await async_ask(hass, "Mi a helyzet?")
        assert result.response.speech["plain"]["speech"] == "Itt vagyok."
        assert ir.async_get(hass).async_get_issue(DOMAIN, f"model_not_found_{subentry_id}") is None

        await hass.config_entries.async_remove(entry.entry_id)


async def test_removing_the_entry_drops_its_issues(hass: HomeAssistant) -> None:
    async with OllamaWireServer(models=[]) as server:
        entry = await async_setup_agent(hass, server.url)
        assert len(ir.async_get(hass).issues) == 1
        await hass.config_entries.async_remove(entry.entry_id)
        assert not [i for i in ir.async_get(hass).issues if i[0] == DOMAIN]


async def test_diagnostics_redact_and_report_turns(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    async with OllamaWireServer(token="s3cret") as server:
        url_with_credentials = server.url.replace("http://", "http://user:pw@")
        entry = await async_setup_agent(hass, url_with_credentials, api_key="s3cret")
        assert entry.state is ConfigEntryState.LOADED
        server.responder = script(Reply("Kész.", prompt_eval_count=321, eval_count=7))
        caplog.set_level(logging.DEBUG, logger="custom_components.micropi_llm")
        result = await async_ask(hass, "Mesélj egy viccet")
        assert result.response.speech["plain"]["speech"] == "Kész.", result.response.speech

        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        text = str(diagnostics)
        assert "s3cret" not in text and "pw" not in text and "user:" not in text
        assert diagnostics["entry"]["data"][CONF_API_KEY] == "**REDACTED**"
        assert diagnostics["entry"]["data"][CONF_URL] == server.url.replace("http://", "http://**REDACTED**@")
        assert diagnostics["server"]["reachable"] is True
        assert diagnostics["server"]["models"] == [DEFAULT_MODEL]
        assert diagnostics["agents"][0]["options"]["model"] == DEFAULT_MODEL
        [turn] = diagnostics["turns"]
        assert turn["prompt_eval_count"] == 321 and turn["eval_count"] == 7
        assert turn["eval_ms"] == 70.0  # Ollama's eval_duration, in ms
        assert turn["total_ms"] > 0 and turn["wall_ms"] > 0 and turn["done_reason"] == "stop"
        assert "prompt 321 tokens" in caplog.text and "answer 7 tokens" in caplog.text

        await server.stop()
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        assert diagnostics["server"] == {
            "url": server.url.replace("http://", "http://**REDACTED**@"),
            "reachable": False,
            "error": "cannot_connect",
        }


def test_entry_title_hides_credentials() -> None:
    from custom_components.micropi_llm.client import redact_url

    assert redact_url("https://a:b@host:8443/x") == "https://**REDACTED**@host:8443/x"
    assert redact_url("http://host:11434") == "http://host:11434"


async def test_setup_with_mock_entry_without_subentries(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_URL: wire.url})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
