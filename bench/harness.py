"""A fresh, real Home Assistant core per sentence, the home built in it, an agent asked, states compared.

HA runs in-process through pytest-homeassistant-custom-component's `async_test_home_assistant` (the
same core the integration's tests use, in a temporary config directory): starting one costs well under
a second, so every sentence gets a home of its own and no state leaks from one sentence to the next.
The home comes from the `fixture_home` integration under `bench/`, loaded as a custom integration.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from homeassistant import loader
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent, llm
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_test_home_assistant

from bench import compare
from bench.backends import Backend
from bench.datasets import Case, Home
from bench.fixture_home import DOMAIN as FIXTURE_DOMAIN
from bench.fixture_home import HomeRuntime
from bench.fixture_home.entity import enum_value

# Attributes an intent oracle's expectation keeps: what the user asked for, not what a device
# reports along with it (colour mode, xy/rgb twins of a colour, ...).
ORACLE_ATTRIBUTES = {
    "brightness",
    "hs_color",
    "color_temp_kelvin",
    "current_position",
    "percentage",
    "temperature",
    "volume_level",
    "is_volume_muted",
    "media_track",
}


# Seconds our agent may take for a turn on the llamacpp back-end (see install_micropi).
CPU_TIMEOUT = 900


class AgentUnavailable(RuntimeError):
    """The agent cannot be set up here; the message says why and what to do."""


@asynccontextmanager
async def home_assistant(language: str = "en") -> AsyncIterator[HomeAssistant]:
    """A started HA core with our two custom integrations loadable (the bench home and the agent)."""
    with tempfile.TemporaryDirectory(prefix="micropi-bench-") as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.config.language = language
            hass.config.country = "HU" if language == "hu" else "US"
            custom: dict[str, loader.Integration] = {}
            for root_name, domain in (("bench", FIXTURE_DOMAIN), ("custom_components", "micropi_llm")):
                integration = loader.Integration.resolve_from_root(hass, importlib.import_module(root_name), domain)
                if integration is not None:
                    custom[domain] = integration
            hass.data[loader.DATA_CUSTOM_COMPONENTS] = custom
            try:
                yield hass
            finally:
                await hass.async_stop(force=True)


async def build_home(hass: HomeAssistant, home: Home) -> HomeRuntime:
    """Areas, floors, devices and entities of `home` in `hass`, every entity exposed to Assist."""
    for component in ("homeassistant", "conversation", "intent"):
        if not await async_setup_component(hass, component, {}):
            raise RuntimeError(f"HA component {component} did not set up")
    hass.data[FIXTURE_DOMAIN] = home
    entry = MockConfigEntry(domain=FIXTURE_DOMAIN, title="Bench home")
    entry.add_to_hass(hass)
    if not await hass.config_entries.async_setup(entry.entry_id):
        raise RuntimeError("the bench home did not set up; see the log above")
    await hass.async_block_till_done()
    runtime: HomeRuntime = entry.runtime_data
    for entity_id in runtime.entities:
        async_expose_entity(hass, conversation.DOMAIN, entity_id, True)
    return runtime


def apply_setup(runtime: HomeRuntime, setup: dict[str, dict[str, Any]]) -> list[str]:
    """A test's `setup` applied to the entities; returns the entity ids the home does not have."""
    missing = []
    for entity_id, spec in setup.items():
        entity = runtime.entities.get(entity_id)
        if entity is None:
            missing.append(entity_id)
            continue
        attributes = {key: enum_value(value) for key, value in (spec.get("attributes") or {}).items()}
        entity.apply(spec.get("state"), attributes)
        entity.async_write_ha_state()
    return missing


def home_snapshot(hass: HomeAssistant, runtime: HomeRuntime) -> compare.Snapshot:
    return compare.snapshot_states(s for s in hass.states.async_all() if s.entity_id in runtime.entities)


# ----- agents -------------------------------------------------------------------------------------

type AgentInstaller = Callable[[HomeAssistant, Backend | None], Awaitable[str]]


async def install_default(hass: HomeAssistant, backend: Backend | None) -> str:
    return conversation.HOME_ASSISTANT_AGENT


def _conversation_entity(hass: HomeAssistant, platform: str) -> str:
    for entry in er.async_get(hass).entities.values():
        if entry.platform == platform and entry.domain == conversation.DOMAIN:
            return entry.entity_id
    raise AgentUnavailable(f"the {platform} integration set up no conversation entity")


async def install_core_ollama(hass: HomeAssistant, backend: Backend | None) -> str:
    """HA core's `ollama` integration against the back-end, with the options its config flow suggests."""
    if backend is None:
        raise AgentUnavailable("core-ollama needs a back-end (--backend fake|llamacpp|URL)")
    from homeassistant.components import ollama
    from homeassistant.components.ollama import const as ollama_const

    entry = MockConfigEntry(
        domain=ollama.DOMAIN,
        title="Ollama",
        data={"url": backend.url},
        version=3,
        minor_version=3,
        subentries_data=[
            ConfigSubentryData(
                data={
                    "model": backend.model,
                    "prompt": llm.DEFAULT_INSTRUCTIONS_PROMPT,
                    "llm_hass_api": [llm.LLM_API_ASSIST],
                    "num_ctx": ollama_const.DEFAULT_NUM_CTX,
                    "max_history": ollama_const.DEFAULT_MAX_HISTORY,
                    "keep_alive": ollama_const.DEFAULT_KEEP_ALIVE,
                    "think": False,
                },
                subentry_type="conversation",
                title="Ollama Conversation",
                unique_id=None,
            )
        ],
    )
    entry.add_to_hass(hass)
    if not await hass.config_entries.async_setup(entry.entry_id):
        raise AgentUnavailable(f"core ollama did not set up against {backend.url}")
    await hass.async_block_till_done()
    return _conversation_entity(hass, ollama.DOMAIN)


async def install_micropi(hass: HomeAssistant, backend: Backend | None) -> str:
    """Our agent, through its own config flow (server URL, then model), as a user would."""
    if backend is None:
        raise AgentUnavailable("micropi needs a back-end (--backend fake|llamacpp|URL)")
    domain = "micropi_llm"
    if domain not in hass.data[loader.DATA_CUSTOM_COMPONENTS]:
        raise AgentUnavailable("custom_components/micropi_llm is missing; run the bench from the repository root")
    result: Any = await hass.config_entries.flow.async_init(domain, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"url": backend.url})
    if result.get("type") == "form" and result.get("step_id") == "model":
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": backend.model})
    if result.get("type") != "create_entry":
        raise AgentUnavailable(f"micropi_llm config flow did not create an entry: {result.get('errors') or result}")
    await hass.async_block_till_done()
    if backend.name == "llamacpp":
        # One CPU thread needs minutes for a long prompt; core ollama waits as long as it takes, so
        # ours must too, or the comparison would measure our 30 s turn timeout instead of answers.
        entry = result["result"]
        for subentry in entry.subentries.values():
            hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, "timeout": CPU_TIMEOUT})
        await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
    return _conversation_entity(hass, domain)


AGENTS: dict[str, AgentInstaller] = {
    "default": install_default,
    "core-ollama": install_core_ollama,
    "micropi": install_micropi,
}
# Agents that call a model; `default` needs none.
MODEL_AGENTS = {"core-ollama", "micropi"}


# ----- one sentence -------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: Case
    passed: bool
    latency_ms: float
    answer: str = ""
    problems: list[str] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    got: dict[str, Any] = field(default_factory=dict)
    model_calls: int = 0
    prompt_chars: int = 0
    prompt_tokens: int = 0
    tokens_estimated: bool = False
    error: str | None = None
    # Entities that changed though nothing asked for it (an action nobody wanted).
    unasked_actions: list[str] = field(default_factory=list)
    # Why the answer is not for the household (json, correction, language), if it is not.
    machine_text: str | None = None


async def oracle_changes(case: Case) -> dict[str, dict[str, Any]]:
    """The state changes HA's own intent handler makes for the expected intent and slots."""
    assert case.expected_intent is not None
    async with home_assistant(case.language) as hass:
        runtime = await build_home(hass, case.home)
        apply_setup(runtime, case.setup)
        await hass.async_block_till_done()
        before = home_snapshot(hass, runtime)
        slots = {name: {"value": value, "text": str(value)} for name, value in case.expected_intent.slots.items()}
        try:
            await intent.async_handle(
                hass,
                "bench",
                case.expected_intent.name,
                slots,
                language=case.language,
                assistant=conversation.DOMAIN,
                device_id=runtime.device_ids.get(case.context_device or ""),
            )
        except intent.IntentError as err:
            raise ValueError(f"expected intent {case.expected_intent.name} {slots} fails in HA: {err}") from err
        await hass.async_block_till_done()
        diff = compare.changes(before, home_snapshot(hass, runtime))
    expected: dict[str, dict[str, Any]] = {}
    for entity_id, entry in diff.items():
        kept = {k: v for k, v in (entry.get("attributes") or {}).items() if k in ORACLE_ATTRIBUTES}
        expected[entity_id] = ({"state": entry["state"]} if "state" in entry else {}) | (
            {"attributes": kept} if kept else {}
        )
    if not expected:
        raise ValueError(f"expected intent {case.expected_intent.name} changes nothing in this home")
    return expected


async def expected_changes(case: Case) -> dict[str, dict[str, Any]]:
    """The dataset's `expect_changes`, or for an expected intent what HA's handler of it changes."""
    return case.expect_changes if case.expect_changes is not None else await oracle_changes(case)


async def run_case(
    case: Case, agent: str, backend: Backend | None, expected: dict[str, dict[str, Any]] | None = None
) -> CaseResult:
    if expected is None:
        expected = await expected_changes(case)
    async with home_assistant(case.language) as hass:
        runtime = await build_home(hass, case.home)
        agent_id = await AGENTS[agent](hass, backend)
        missing = apply_setup(runtime, case.setup)
        await hass.async_block_till_done()
        before = home_snapshot(hass, runtime)
        device_id = runtime.device_ids.get(case.context_device) if case.context_device else None
        calls_before = len(backend.meter.calls) if backend else 0
        started = time.perf_counter()
        error = None
        answer = ""
        try:
            result = await conversation.async_converse(
                hass,
                case.sentence,
                None,
                Context(),
                language=case.language,
                agent_id=agent_id,
                device_id=device_id,
            )
            answer = str(result.response.speech.get("plain", {}).get("speech", ""))
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
        latency_ms = (time.perf_counter() - started) * 1000
        await hass.async_block_till_done()
        after = home_snapshot(hass, runtime)
    problems = [f"{entity_id}: in the test's setup but not in the home" for entity_id in missing]
    problems += compare.mismatches(expected, case.ignore_changes, before, after)
    if not compare.response_matches(case.expect_response, answer):
        problems.append(f"answer contains none of {list(case.expect_response)}")
    if error:
        problems.append(error)
    calls = backend.meter.calls[calls_before:] if backend else []
    got = compare.without_ignored(compare.changes(before, after), case.ignore_changes)
    return CaseResult(
        case=case,
        passed=not problems,
        latency_ms=latency_ms,
        answer=answer,
        problems=problems,
        expected=expected,
        got=got,
        model_calls=len(calls),
        prompt_chars=sum(c.prompt_chars for c in calls),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        tokens_estimated=any(c.estimated for c in calls),
        error=error,
        unasked_actions=sorted(entity_id for entity_id in got if entity_id not in expected),
        machine_text=compare.machine_text(answer, case.language),
    )


def quiet_logs() -> None:
    """HA logs every entity and integration set-up; the bench prints its own table."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("homeassistant", "bench"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The core ollama agent pulls in `camera`, which logs a traceback when libturbojpeg (only used
    # for camera snapshots, which no agent here takes) is not installed.
    logging.getLogger("homeassistant.components.camera.img_util").setLevel(logging.CRITICAL)
