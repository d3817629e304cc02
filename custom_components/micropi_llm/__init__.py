"""MicroPi LLM: a conversation agent backed by a shared Ollama server.

The config entry is the server; each conversation agent is a subentry of it.
"""

from __future__ import annotations

import logging

from homeassistant.const import CONF_API_KEY, CONF_URL, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .client import (
    OLLAMA_ERRORS,
    Failure,
    MicroPiConfigEntry,
    MicroPiData,
    async_close,
    async_list_models,
    classify,
    create_client,
    redact_url,
)
from .const import DOMAIN
from .server_status import ServerStatus, async_delete_issues
from .turn_report import TurnReporter

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [Platform.CONVERSATION]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Nothing to set up outside config entries."""
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MicroPiConfigEntry) -> bool:
    """Start the agents, with the server or without it (see server_status: local commands never wait
    for the model server); flag agents whose model is missing."""
    client = create_client(entry.data[CONF_URL], entry.data.get(CONF_API_KEY))
    status = ServerStatus(hass, entry, client)
    try:
        models = await async_list_models(client)
    except OLLAMA_ERRORS as err:
        failure = classify(err)
        if failure is Failure.INVALID_AUTH:  # the household must act (reauth); the server is there
            await async_close(client)
            placeholders = {"url": redact_url(entry.data[CONF_URL]), "error": str(err) or type(err).__name__}
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth", translation_placeholders=placeholders
            ) from err
        status.async_failed(failure, err)
    else:
        status.async_answered(models)

    reporter = TurnReporter(hass, entry.data[CONF_URL], entry.data.get(CONF_API_KEY))
    entry.runtime_data = MicroPiData(client=client, status=status, reporter=reporter)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    status.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: MicroPiConfigEntry) -> bool:
    """Stop the agents and close the connection."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    await async_close(entry.runtime_data.client)
    return True


async def async_remove_entry(hass: HomeAssistant, entry: MicroPiConfigEntry) -> None:
    """Drop the repair issues of a removed server and its agents."""
    async_delete_issues(hass, entry)


async def _async_reload(hass: HomeAssistant, entry: MicroPiConfigEntry) -> None:
    """Options, subentries or the server changed: start again with them."""
    await hass.config_entries.async_reload(entry.entry_id)
