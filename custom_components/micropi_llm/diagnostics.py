"""Diagnostics: the server's reachability and models, the agents' settings, the last turns' figures."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_API_KEY, CONF_URL
from homeassistant.core import HomeAssistant

from .client import OLLAMA_ERRORS, MicroPiConfigEntry, async_list_models, classify, redact_url

TO_REDACT = {CONF_API_KEY}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: MicroPiConfigEntry) -> dict[str, Any]:
    """Everything needed to see why an agent is slow or silent; never the key or URL credentials."""
    data = entry.runtime_data
    server: dict[str, Any] = {"url": redact_url(entry.data[CONF_URL])}
    try:
        server["models"] = await async_list_models(data.client)
        server["reachable"] = True
    except OLLAMA_ERRORS as err:
        server["reachable"] = False
        server["error"] = classify(err).value
    return {
        "entry": {
            "title": redact_url(entry.title),
            "data": async_redact_data({**entry.data, CONF_URL: redact_url(entry.data[CONF_URL])}, TO_REDACT),
        },
        "server": server,
        "agents": [
            {"title": subentry.title, "type": subentry.subentry_type, "options": dict(subentry.data)}
            for subentry in entry.subentries.values()
        ],
        "turns": [turn.as_dict() for turn in data.turns],
    }
