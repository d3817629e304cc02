"""Every path of the server flow, the agent (subentry) flow, reconfigure and reauth, against a real wire server."""

from typing import Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_API_KEY, CONF_LLM_HASS_API, CONF_MODEL, CONF_NAME, CONF_PROMPT, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer
from custom_components.micropi_llm.const import (
    CONF_KEEP_ALIVE,
    CONF_MAX_HISTORY,
    CONF_MAX_TOOL_ITERATIONS,
    CONF_NUM_CTX,
    CONF_PREFER_LOCAL,
    CONF_TEMPERATURE,
    CONF_TIMEOUT,
    DEFAULT_AGENT_OPTIONS,
    DEFAULT_PROMPT,
    DEFAULT_PROMPT_HU,
    DOMAIN,
)

from .home import async_setup_agent


async def _start(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    return str(result["flow_id"])


async def _configure(hass: HomeAssistant, flow_id: str, data: dict[str, Any] | None = None) -> Any:
    return await hass.config_entries.flow.async_configure(flow_id, data)


async def test_one_flow_yields_a_working_agent(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, {CONF_URL: f" {wire.url}/ "})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "model"
    result = await _configure(hass, flow_id, {CONF_MODEL: DEFAULT_MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.data == {CONF_URL: wire.url}
    assert entry.title == wire.url
    [agent] = entry.subentries.values()
    assert agent.subentry_type == "conversation" and agent.title == "MicroPi"
    assert dict(agent.data) == {**DEFAULT_AGENT_OPTIONS, CONF_MODEL: DEFAULT_MODEL}
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("conversation.micropi") is not None
    assert wire.hits.count(("POST", "/api/pull")) == 0


async def test_defaults(hass: HomeAssistant) -> None:
    assert DEFAULT_AGENT_OPTIONS == {
        CONF_PROMPT: DEFAULT_PROMPT,
        CONF_LLM_HASS_API: ["assist"],
        CONF_MAX_HISTORY: 10,
        CONF_NUM_CTX: 8192,
        CONF_KEEP_ALIVE: -1,
        CONF_TEMPERATURE: 0.2,
        CONF_TIMEOUT: 30,
        CONF_MAX_TOOL_ITERATIONS: 5,
        CONF_PREFER_LOCAL: True,
    }


async def test_bad_url_then_unreachable_then_fixed_loses_nothing(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, {CONF_URL: "not a url"})
    assert result["errors"] == {"base": "invalid_url"}
    # Nothing listens on a port of a server that has just stopped.
    async with OllamaWireServer() as gone:
        dead_url = gone.url
    result = await _configure(hass, flow_id, {CONF_URL: dead_url, CONF_API_KEY: "k"})
    assert result["errors"] == {"base": "cannot_connect"}
    suggested = {str(key): (key.description or {}).get("suggested_value") for key in result["data_schema"].schema}
    assert suggested == {CONF_URL: dead_url, CONF_API_KEY: "k", "connect_later": None}  # what was typed stays
    result = await _configure(hass, flow_id, {CONF_URL: wire.url})
    assert result["step_id"] == "model"


async def test_unreachable_server_can_be_added_anyway_and_is_used_once_it_answers(hass: HomeAssistant) -> None:
    server = OllamaWireServer(models=[DEFAULT_MODEL])
    await server.start()
    port = int(server.url.rsplit(":", 1)[1])
    await server.stop()
    flow_id = await _start(hass)
    assert "connect_later" not in {str(key) for key in (await _start_schema(hass))}  # only after a failed check
    result = await _configure(hass, flow_id, {CONF_URL: server.url})
    assert result["errors"] == {"base": "cannot_connect"}
    assert "connect_later" in {str(key) for key in result["data_schema"].schema}
    result = await _configure(hass, flow_id, {CONF_URL: server.url, "connect_later": True})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "model"
    result = await _configure(hass, flow_id, {CONF_MODEL: DEFAULT_MODEL})  # nothing to pull from: saved as is
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("conversation.micropi") is not None
    await server.start(port)
    assert server.hits.count(("POST", "/api/pull")) == 0
    await server.stop()


async def _start_schema(hass: HomeAssistant) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    hass.config_entries.flow.async_abort(result["flow_id"])
    return result["data_schema"].schema


async def test_something_else_than_ollama_cannot_connect(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, {CONF_URL: f"{wire.url}/not-ollama"})
    assert result["errors"] == {"base": "cannot_connect"}


async def test_bearer_token(hass: HomeAssistant) -> None:
    async with OllamaWireServer(token="s3cret") as server:
        flow_id = await _start(hass)
        result = await _configure(hass, flow_id, {CONF_URL: server.url, CONF_API_KEY: "wrong"})
        assert result["errors"] == {"base": "invalid_auth"}
        result = await _configure(hass, flow_id, {CONF_URL: server.url, CONF_API_KEY: " s3cret "})
        result = await _configure(hass, flow_id, {CONF_MODEL: DEFAULT_MODEL})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["result"].data == {CONF_URL: server.url, CONF_API_KEY: "s3cret"}
        await hass.async_block_till_done()
        assert result["result"].state is ConfigEntryState.LOADED


async def test_same_server_twice_is_refused(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    await async_setup_agent(hass, wire.url)
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, {CONF_URL: wire.url})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_missing_model_is_pulled_with_progress(hass: HomeAssistant) -> None:
    async with OllamaWireServer(models=["other:1b"], pull_step_delay=0.05) as server:
        flow_id = await _start(hass)
        result = await _configure(hass, flow_id, {CONF_URL: server.url})
        options = [o["value"] for o in result["data_schema"].schema[CONF_MODEL].config["options"]]
        assert options == ["other:1b", DEFAULT_MODEL]  # the default is offered although missing
        result = await _configure(hass, flow_id, {CONF_MODEL: DEFAULT_MODEL})
        assert result["type"] is FlowResultType.SHOW_PROGRESS and result["progress_action"] == "pull"
        assert result["description_placeholders"] == {"model": DEFAULT_MODEL}
        await hass.async_block_till_done()
        result = await _configure(hass, flow_id)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert DEFAULT_MODEL in server.models
        [agent] = result["result"].subentries.values()
        assert agent.data[CONF_MODEL] == DEFAULT_MODEL


async def test_pull_of_an_unknown_model_says_model_not_found(hass: HomeAssistant) -> None:
    async with OllamaWireServer(models=["other:1b"], pullable=[]) as server:
        flow_id = await _start(hass)
        await _configure(hass, flow_id, {CONF_URL: server.url})
        result = await _configure(hass, flow_id, {CONF_MODEL: "nonexistent:7b"})
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await hass.async_block_till_done()
        result = await _configure(hass, flow_id)
        assert result["type"] is FlowResultType.FORM and result["step_id"] == "model"
        assert result["errors"] == {"base": "model_not_found"}
        result = await _configure(hass, flow_id, {CONF_MODEL: "other:1b"})
        assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_pull_that_breaks_says_pull_failed(hass: HomeAssistant) -> None:
    async with OllamaWireServer(models=["other:1b"], pull_step_delay=0.2) as server:
        flow_id = await _start(hass)
        await _configure(hass, flow_id, {CONF_URL: server.url})
        result = await _configure(hass, flow_id, {CONF_MODEL: "big:70b"})
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await server.stop()  # the server goes away mid-pull
        await hass.async_block_till_done()
        result = await _configure(hass, flow_id)
        assert result["step_id"] == "model"
        assert result["errors"]["base"] in ("pull_failed", "cannot_connect")


async def test_reconfigure_moves_the_server(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    entry = await async_setup_agent(hass, wire.url)
    async with OllamaWireServer(token="new-key") as moved:
        result = await entry.start_reconfigure_flow(hass)
        assert result["step_id"] == "reconfigure"
        result = await _configure(hass, result["flow_id"], {CONF_URL: "ftp://x"})
        assert result["errors"] == {"base": "invalid_url"}
        result = await _configure(hass, result["flow_id"], {CONF_URL: moved.url})
        assert result["errors"] == {"base": "invalid_auth"}
        result = await _configure(hass, result["flow_id"], {CONF_URL: moved.url, CONF_API_KEY: "new-key"})
        assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.data == {CONF_URL: moved.url, CONF_API_KEY: "new-key"}
        assert entry.state is ConfigEntryState.LOADED
        assert len(entry.subentries) == 1  # the agent kept its settings


async def test_reconfigure_to_an_address_already_set_up_is_refused(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    async with OllamaWireServer() as other:
        entry = await async_setup_agent(hass, wire.url)
        await async_setup_agent(hass, other.url)
        result = await entry.start_reconfigure_flow(hass)
        result = await _configure(hass, result["flow_id"], {CONF_URL: other.url})
        assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_refused_key_at_start_up_asks_for_a_new_one(hass: HomeAssistant) -> None:
    async with OllamaWireServer(token="rotated") as server:
        entry = await async_setup_agent(hass, server.url, api_key="old")
        assert entry.state is ConfigEntryState.SETUP_ERROR
        [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert flow["step_id"] == "reauth_confirm"
        result = await _configure(hass, flow["flow_id"], {CONF_API_KEY: "still-wrong"})
        assert result["errors"] == {"base": "invalid_auth"}
        result = await _configure(hass, flow["flow_id"], {CONF_API_KEY: "rotated"})
        assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
        await hass.async_block_till_done()
        assert entry.data[CONF_API_KEY] == "rotated"
        assert entry.state is ConfigEntryState.LOADED


async def _agent_flow(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, "conversation"), context={"source": config_entries.SOURCE_USER}
    )


async def test_second_agent_with_every_option(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    wire.models.append("qwen3:4b")
    entry = await async_setup_agent(hass, wire.url)
    result = await _agent_flow(hass, entry)
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    fields = {str(key) for key in result["data_schema"].schema}
    assert fields == {CONF_NAME, CONF_MODEL, *DEFAULT_AGENT_OPTIONS}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "English",
            CONF_MODEL: "qwen3:4b",
            CONF_PROMPT: "Answer in English.",
            CONF_LLM_HASS_API: [],
            CONF_MAX_HISTORY: 4.0,
            CONF_NUM_CTX: 16384.0,
            CONF_KEEP_ALIVE: 600.0,
            CONF_TEMPERATURE: 0.5,
            CONF_TIMEOUT: 10.0,
            CONF_MAX_TOOL_ITERATIONS: 3.0,
            CONF_PREFER_LOCAL: False,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    english = next(s for s in entry.subentries.values() if s.title == "English")
    assert dict(english.data) == {
        CONF_MODEL: "qwen3:4b",
        CONF_PROMPT: "Answer in English.",
        CONF_LLM_HASS_API: [],
        CONF_MAX_HISTORY: 4,
        CONF_NUM_CTX: 16384,
        CONF_KEEP_ALIVE: 600,
        CONF_TEMPERATURE: 0.5,
        CONF_TIMEOUT: 10,
        CONF_MAX_TOOL_ITERATIONS: 3,
        CONF_PREFER_LOCAL: False,
    }
    assert hass.states.get("conversation.english") is not None  # the entry reloaded with the new agent


async def test_agent_reconfigure_pulls_a_missing_model(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    entry = await async_setup_agent(hass, wire.url)
    [agent] = entry.subentries.values()
    result = await entry.start_subentry_reconfigure_flow(hass, agent.subentry_id)
    assert result["step_id"] == "reconfigure"
    assert CONF_NAME not in {str(key) for key in result["data_schema"].schema}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**DEFAULT_AGENT_OPTIONS, CONF_MODEL: "llama3.2:3b", CONF_TIMEOUT: 12}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    result = await hass.config_entries.subentries.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
    assert entry.subentries[agent.subentry_id].data[CONF_MODEL] == "llama3.2:3b"
    assert entry.subentries[agent.subentry_id].data[CONF_TIMEOUT] == 12


async def test_agent_pull_failure_saves_nothing(hass: HomeAssistant) -> None:
    async with OllamaWireServer(pullable=[]) as server:
        entry = await async_setup_agent(hass, server.url)
        result = await _agent_flow(hass, entry)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_NAME: "X", **DEFAULT_AGENT_OPTIONS, CONF_MODEL: "nope:1b"}
        )
        await hass.async_block_till_done()
        result = await hass.config_entries.subentries.async_configure(result["flow_id"])
        # The same reason the server flow gives for this failure (no such model in the library).
        assert result["type"] is FlowResultType.ABORT and result["reason"] == "model_not_found"
        assert result["description_placeholders"] == {"model": "nope:1b"}
        assert len(entry.subentries) == 1


async def test_agent_flow_needs_a_loaded_and_reachable_server(hass: HomeAssistant) -> None:
    server = OllamaWireServer()
    await server.start()
    entry = await async_setup_agent(hass, server.url)
    await server.stop()
    result = await _agent_flow(hass, entry)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "cannot_connect"
    await hass.config_entries.async_unload(entry.entry_id)
    result = await _agent_flow(hass, entry)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "entry_not_loaded"


async def test_hungarian_home_gets_hungarian_instructions(hass: HomeAssistant, wire: OllamaWireServer) -> None:
    hass.config.language = "hu"
    flow_id = await _start(hass)
    await _configure(hass, flow_id, {CONF_URL: wire.url})
    result = await _configure(hass, flow_id, {CONF_MODEL: DEFAULT_MODEL})
    [agent] = result["result"].subentries.values()
    assert agent.data[CONF_PROMPT] == DEFAULT_PROMPT_HU
    await hass.async_block_till_done()
    result = await _agent_flow(hass, result["result"])
    prompt_key = next(key for key in result["data_schema"].schema if str(key) == CONF_PROMPT)
    assert prompt_key.description["suggested_value"] == DEFAULT_PROMPT_HU
