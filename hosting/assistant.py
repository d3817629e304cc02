"""The voice assistant's state in a household's HA, as `GET /api/me/instance` shows it.

The truth is in that HA: our integration keeps a repair issue while the model server does not answer,
and one per agent whose model is missing (custom_components/micropi_llm/server_status.py). They are read
with the service's token (`repairs/list_issues`, through `hosting.ha_client`), with a short timeout, and
kept for a few seconds so a page polling the status does not become a load on the HA.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from hosting.ha_client import HomeAssistantClient, HomeAssistantError

_LOGGER = logging.getLogger(__name__)

DOMAIN = "micropi_llm"
ASK_TIMEOUT = 3.0  # seconds; the status answer must not wait on a slow HA
KEEP = 10.0  # seconds an answer is reused

# Our issues' translation keys -> the state shown, and what it means for the household.
ISSUE_STATES = {
    "server_unreachable": (
        "model_server_unreachable",
        "The language model server does not answer. Commands Home Assistant understands by itself (such as "
        '"Kapcsold fel a nappali lámpát") work; other sentences get a short spoken error until it answers '
        "again, with nothing to do on your side.",
    ),
    "model_not_found": (
        "model_missing",
        "The assistant's language model is missing from the server. Commands Home Assistant understands by "
        "itself work; other sentences get a short spoken error.",
    ),
}
READY = ("ready", "The voice assistant is ready.")


@dataclass(frozen=True, slots=True)
class AssistantState:
    state: str  # ready, model_server_unreachable, model_missing, not_set_up, unknown
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "message": self.message}


NOT_SET_UP = AssistantState("not_set_up", "The voice assistant is set up together with your Home Assistant.")
UNKNOWN = AssistantState("unknown", "Your Home Assistant does not answer right now, so neither does its assistant.")


class AssistantStates:
    """Asks each HA for its assistant's state; answers are kept for KEEP seconds."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, AssistantState]] = {}

    async def state(self, base_url: str, token: str) -> AssistantState:
        kept = self._kept.get(base_url)
        if kept is not None and time.monotonic() - kept[0] < KEEP:
            return kept[1]
        try:
            async with asyncio.timeout(ASK_TIMEOUT):
                issues = await _list_issues(base_url, token)
        except (aiohttp.ClientError, HomeAssistantError, TimeoutError, ValueError, KeyError) as err:
            _LOGGER.debug("could not read the repair issues of %s: %s", base_url, err)
            return UNKNOWN
        state = from_issues(issues)
        self._kept[base_url] = (time.monotonic(), state)
        return state

    def forget(self, base_url: str) -> None:
        self._kept.pop(base_url, None)


def from_issues(issues: list[dict[str, Any]]) -> AssistantState:
    """The state our integration's active issues describe (the worst first: no server before no model)."""
    keys = {
        issue.get("translation_key")
        for issue in issues
        if issue.get("domain") == DOMAIN and not issue.get("dismissed_version") and issue.get("active", True)
    }
    for key, (state, message) in ISSUE_STATES.items():
        if key in keys:
            return AssistantState(state, message)
    return AssistantState(*READY)


async def _list_issues(base_url: str, token: str) -> list[dict[str, Any]]:
    listing = await HomeAssistantClient(base_url, token).command({"type": "repairs/list_issues"})
    issues: list[dict[str, Any]] = listing["issues"]
    return issues
