"""Whether the model server answers, and the repair issues that say so.

An entry is set up even while its server is down (unlike core `ollama`, whose ConfigEntryNotReady would
take the agent - and with it the commands HA matches locally - down too). While the server does not
answer, one repair issue says so in the household's language, and the agent answers model sentences
with its short spoken error. Every turn still tries the server, so the first sentence after it is back
gets its answer; a check every `RECHECK` keeps the issue (and the model-missing issues) true while
nobody talks. The hosting service reads the same issues to show the assistant's state.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import ollama
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_MODEL, CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval

from .client import OLLAMA_ERRORS, Failure, async_list_models, classify, redact_url
from .const import DOMAIN, SUBENTRY_CONVERSATION

_LOGGER = logging.getLogger(__name__)

RECHECK = timedelta(seconds=30)


def unreachable_issue_id(entry_id: str) -> str:
    return f"server_unreachable_{entry_id}"


def model_issue_id(subentry_id: str) -> str:
    return f"model_not_found_{subentry_id}"


class ServerStatus:
    """The last word on the entry's server: answered (None) or the failure; kept as a repair issue."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: ollama.AsyncClient) -> None:
        self._hass = hass
        self._entry = entry
        self._client = client
        self.failure: Failure | None = None

    @callback
    def async_start(self) -> None:
        """Check again every RECHECK until the entry is unloaded."""
        self._entry.async_on_unload(async_track_time_interval(self._hass, self._async_recheck, RECHECK))

    async def _async_recheck(self, _now: datetime) -> None:
        try:
            models = await async_list_models(self._client)
        except OLLAMA_ERRORS as err:
            self.async_failed(classify(err), err)
            return
        self.async_answered(models)

    @callback
    def async_answered(self, models: list[str] | None = None) -> None:
        """The server answered (with its model list, when that was the question)."""
        if self.failure is not None:
            _LOGGER.info("The model server %s answers again", redact_url(self._entry.data[CONF_URL]))
            self.failure = None
            ir.async_delete_issue(self._hass, DOMAIN, unreachable_issue_id(self._entry.entry_id))
        if models is not None:
            async_check_models(self._hass, self._entry, models)

    @callback
    def async_failed(self, failure: Failure, err: BaseException | None = None, *, log: bool = True) -> None:
        """The server's list of models could not be had (at set-up, or a check): logged once per outage.
        A turn reports only a connection that failed, and logs that itself (`log=False`); its other
        failures (a slow model, a cut stream, a runner's error) say nothing about the server being there."""
        if log and self.failure is None:
            _LOGGER.warning(
                "The model server %s does not answer (%s: %s); commands Home Assistant understands by itself "
                "keep working, and the agent answers again as soon as the server does",
                redact_url(self._entry.data[CONF_URL]),
                failure,
                (str(err) or type(err).__name__) if err is not None else "",
            )
        self.failure = failure
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            unreachable_issue_id(self._entry.entry_id),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="server_unreachable",
            translation_placeholders={"url": redact_url(self._entry.data[CONF_URL]), "error": failure.value},
        )


@callback
def async_check_models(hass: HomeAssistant, entry: ConfigEntry, models: list[str]) -> None:
    """Flag (or clear) each agent whose model the server does not have."""
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


@callback
def async_update_model_issue(hass: HomeAssistant, entry: ConfigEntry, subentry_id: str, *, present: bool) -> None:
    """Raise (or clear) the repair issue that says an agent's model is not on the server."""
    issue_id = model_issue_id(subentry_id)
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


@callback
def async_delete_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """A removed server's issues go with it."""
    ir.async_delete_issue(hass, DOMAIN, unreachable_issue_id(entry.entry_id))
    for subentry_id in entry.subentries:
        ir.async_delete_issue(hass, DOMAIN, model_issue_id(subentry_id))
