"""Fixtures for the integration's tests in real Home Assistant core."""

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/micropi_llm in every test."""


@pytest.fixture(autouse=True)
async def setup_homeassistant_core(hass: HomeAssistant) -> None:
    """Conversation needs the core integration (exposed entities) set up first, as in a real HA."""
    assert await async_setup_component(hass, "homeassistant", {})
