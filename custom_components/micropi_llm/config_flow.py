"""Config flow of MicroPi LLM: the Ollama server is the config entry."""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_URL

from .const import DOMAIN


class MicroPiConfigFlow(ConfigFlow, domain=DOMAIN):
    """Ask for the Ollama server's URL."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Take the server URL."""
        if user_input is not None:
            return self.async_create_entry(title=user_input[CONF_URL], data=user_input)
        return self.async_show_form(step_id="user", data_schema=vol.Schema({vol.Required(CONF_URL): str}))
