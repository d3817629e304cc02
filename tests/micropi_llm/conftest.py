"""Fixtures for the integration's tests in real Home Assistant core."""

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer
from custom_components.micropi_llm.const import CONF_PREFER_LOCAL

from .home import Home, async_setup_agent, async_setup_home


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/micropi_llm in every test."""


@pytest.fixture(autouse=True)
def allow_loopback_sockets(socket_enabled: None) -> None:
    """The Ollama wire-format server listens on 127.0.0.1 (HA's plugin still blocks other hosts)."""


@pytest.fixture(autouse=True)
async def setup_homeassistant_core(hass: HomeAssistant) -> None:
    """Conversation needs the core integration (exposed entities) set up first, as in a real HA."""
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture(autouse=True)
async def close_abandoned_stream_iterators() -> AsyncIterator[None]:
    """Run the closes of async generators a test abandoned, before HA's lingering-task check.

    When Ollama sends an error line mid-stream, the ollama client raises out of httpx's line
    iterator without closing it; asyncio closes it in a new task only once the garbage collector
    frees it, which may happen after the test ended (a flaky "Lingering task" error in CI).
    """
    yield
    gc.collect()
    await asyncio.sleep(0)  # the finaliser's close tasks start here
    closing = [t for t in asyncio.all_tasks() if type(t.get_coro()).__name__ == "async_generator_athrow"]
    if closing:
        await asyncio.wait(closing, timeout=5)


@pytest.fixture
async def wire() -> AsyncIterator[OllamaWireServer]:
    """An Ollama wire-format server with the default model; tests script its replies."""
    async with OllamaWireServer(models=[DEFAULT_MODEL]) as server:
        yield server


@pytest.fixture
async def home(hass: HomeAssistant) -> Home:
    """A small real home: areas, lights, a thermostat, an input_boolean; one light not exposed."""
    return await async_setup_home(hass)


@pytest.fixture
async def agent_entry(hass: HomeAssistant, wire: OllamaWireServer, home: Home) -> MockConfigEntry:
    """A loaded server entry with the default agent (model only, local-first off: tests of the model)."""
    return await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False})
