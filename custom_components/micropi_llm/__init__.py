"""MicroPi LLM: a conversation agent backed by a shared Ollama server.

The config entry is the server; each conversation agent is a subentry of it.
"""

from __future__ import annotations

import logging

from homeassistant.const import CONF_API_KEY, CONF_MODEL, CONF_URL, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import issue_registry as ir
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
from .const import DOMAIN, SUBENTRY_CONVERSATION

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [Platform.CONVERSATION]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Nothing to set up outside config entries."""
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MicroPiConfigEntry) -> bool:
    """Connect to the server, flag agents whose model is missing, and start the agents."""
    client = create_client(entry.data[CONF_URL], entry.data.get(CONF_API_KEY))
    try:
        models = await async_list_models(client)
    except OLLAMA_ERRORS as err:
        await async_close(client)
        failure = classify(err)
        placeholders = {"url": redact_url(entry.data[CONF_URL]), "error": str(err) or type(err).__name__}
        if failure is Failure.INVALID_AUTH:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth", translation_placeholders=placeholders
            ) from err
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="not_ready", translation_placeholders=placeholders
        ) from err

    for subentry in entry.subentries.values():
        if subentry.subentry_type != SUBENTRY_CONVERSATION:
            continue
        present = subentry.data[CONF_MODEL] in models
        if not present:
            _LOGGER.warning(
                "Model %s of agent %s is not on the Ollama server %s; pull it or choose another model for the agent",
                subentry.data[CONF_MODEL],
                subentry.title,
                redact_url(entry.data[CONF_URL]),
            )
        async_update_model_issue(hass, entry, subentry.subentry_id, present=present)

    entry.runtime_data = MicroPiData(client=client)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: MicroPiConfigEntry) -> bool:
    """Stop the agents and close the connection."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    await async_close(entry.runtime_data.client)
    return True


async def async_remove_entry(hass: HomeAssistant, entry: MicroPiConfigEntry) -> None:
    """Drop the repair issues of a removed server's agents."""
    for subentry_id in entry.subentries:
        ir.async_delete_issue(hass, DOMAIN, _model_issue_id(subentry_id))


async def _async_reload(hass: HomeAssistant, entry: MicroPiConfigEntry) -> None:
    """Options, subentries or the server changed: start again with them."""
    await hass.config_entries.async_reload(entry.entry_id)


def _model_issue_id(subentry_id: str) -> str:
    return f"model_not_found_{subentry_id}"


def async_update_model_issue(
    hass: HomeAssistant, entry: MicroPiConfigEntry, subentry_id: str, *, present: bool
) -> None:
    """Raise (or clear) the repair issue that says an agent's model is not on the server."""
    issue_id = _model_issue_id(subentry_id)
    if present:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    subentry = entry.subentries[subentry_id]
    model = subentry.data[CONF_MODEL]
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="model_not_found",
        translation_placeholders={"model": model, "agent": subentry.title, "url": redact_url(entry.data[CONF_URL])},
    )
