"""Reporting each turn to a hosted MicroPi's gateway, for the household's own conversation log.

Turns HA matched locally never reach the model server, so only the agent can tell the hosting service about
them. A hosted MicroPi's gateway takes the report at `POST /gateway/v1/turns` with the entry's API key; a
self-hosted Ollama has no such endpoint (404): then reporting stops for the entry. Reports go in the
background and never delay or break a turn.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import intent
from homeassistant.helpers.httpx_client import get_async_client
from homeassistant.helpers.json import json_dumps

_LOGGER = logging.getLogger(__name__)

TURNS_PATH = "/gateway/v1/turns"
_TIMEOUT = 5.0
_TEXT_LIMIT = 2000


class TurnReporter:
    def __init__(self, hass: HomeAssistant, url: str, api_key: str | None) -> None:
        self.hass = hass
        self.url = url.rstrip("/") + TURNS_PATH
        self.api_key = api_key
        # Only a server that asks for a key can be a hosted gateway.
        self.enabled = bool(api_key)

    def report(self, turn: dict[str, Any]) -> None:
        if self.enabled:
            self.hass.async_create_background_task(self._send(turn), "micropi_llm turn report")

    async def _send(self, turn: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        try:
            response = await get_async_client(self.hass).post(
                self.url, content=json_dumps(turn), headers=headers, timeout=_TIMEOUT
            )
        except httpx.HTTPError as err:
            _LOGGER.debug("Turn report to %s failed: %s", self.url, err)
            return
        if response.status_code in (404, 405):  # not a MicroPi gateway: nobody keeps a log there
            self.enabled = False
        elif response.status_code >= 400:
            _LOGGER.debug("Turn report refused (HTTP %s): %s", response.status_code, response.text[:200])


def turn_summary(
    hass: HomeAssistant,
    user_input: conversation.ConversationInput,
    chat_log: conversation.ChatLog,
    result: conversation.ConversationResult,
    **figures: Any,
) -> dict[str, Any]:
    """What the household's log keeps of one turn: the words, the intents (tool calls), HA's answer."""
    intents: list[dict[str, Any]] = []
    for content in reversed(chat_log.content):
        if isinstance(content, conversation.UserContent):
            break
        if isinstance(content, conversation.AssistantContent):
            intents[:0] = [{"name": c.tool_name, "arguments": c.tool_args} for c in content.tool_calls or ()]
    matched = result.response.intent
    if not intents and matched is not None:  # matched by HA itself
        slots = {name: slot.get("value") for name, slot in matched.slots.items() if isinstance(slot, dict)}
        intents = [{"name": matched.intent_type, "arguments": slots}]
    device = ""
    if user_input.device_id and (found := dr.async_get(hass).async_get(user_input.device_id)):
        device = found.name_by_user or found.name or ""
    speech = result.response.speech.get("plain", {}).get("speech", "")
    failed = result.response.response_type is intent.IntentResponseType.ERROR
    return {
        "text": user_input.text[:_TEXT_LIMIT],
        "device": device[:255],
        "intents": intents[:20],
        "result": str(speech)[:_TEXT_LIMIT],
        "status": "error" if failed else "ok",
        "request_id": (result.conversation_id or "")[:64],
        **figures,
    }
