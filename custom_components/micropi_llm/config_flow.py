"""Config flow of MicroPi LLM: the Ollama server is the config entry, each agent a subentry.

One pass through the server flow (URL, optional API key, model) yields a working agent: the entry
is created with a default "MicroPi" agent. More agents come from the subentry flow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, override

import ollama
import probatio as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_API_KEY, CONF_LLM_HASS_API, CONF_MODEL, CONF_NAME, CONF_PROMPT, CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import llm
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    TemplateSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .client import (
    OLLAMA_ERRORS,
    Failure,
    MicroPiConfigEntry,
    async_close,
    async_list_models,
    async_pull,
    classify,
    create_client,
    redact_url,
    refused_by_operator,
)
from .const import (
    CONF_KEEP_ALIVE,
    CONF_MAX_HISTORY,
    CONF_MAX_TOOL_ITERATIONS,
    CONF_NUM_CTX,
    CONF_PREFER_LOCAL,
    CONF_TEMPERATURE,
    CONF_TIMEOUT,
    DEFAULT_AGENT_TITLE,
    DEFAULT_MODEL,
    DOMAIN,
    SUBENTRY_CONVERSATION,
    default_prompt,
)
from .options import AgentOptions

_LOGGER = logging.getLogger(__name__)

SERVER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        vol.Optional(CONF_API_KEY): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
    }
)
# Offered once the server failed the check: add the entry anyway and let the agent connect later.
CONF_CONNECT_LATER = "connect_later"
CONNECT_LATER_SCHEMA = SERVER_SCHEMA.extend({vol.Optional(CONF_CONNECT_LATER, default=False): BooleanSelector()})
REAUTH_SCHEMA = vol.Schema(
    {vol.Optional(CONF_API_KEY): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))}
)


def _clean_server_input(user_input: Mapping[str, Any]) -> tuple[str, str | None]:
    """The URL (validated, without a trailing slash) and the API key (None when blank).

    Raises vol.Invalid for a URL that is not http(s)://host[:port][/path].
    """
    url = cv.url(str(user_input[CONF_URL]).strip()).rstrip("/")
    api_key = str(user_input.get(CONF_API_KEY) or "").strip() or None
    return url, api_key


def _server_data(url: str, api_key: str | None) -> dict[str, Any]:
    """A server entry's data: the URL, and the API key only when there is one."""
    return {CONF_URL: url} | ({CONF_API_KEY: api_key} if api_key else {})


def _server_failure(err: BaseException) -> Failure:
    """The error (or abort reason) for a server that could not list its models, the same in both flows."""
    return Failure.INVALID_AUTH if classify(err) is Failure.INVALID_AUTH else Failure.CANNOT_CONNECT


def _pull_failure(err: BaseException) -> str:
    """The error (or abort reason) for a model that could not be pulled, the same in both flows."""
    if refused_by_operator(err):
        return "models_by_operator"  # a hosted MicroPi: its operator offers the models there are
    if isinstance(err, ollama.ResponseError) and any(
        words in str(err.error) for words in ("does not exist", "not found")
    ):
        return Failure.MODEL_NOT_FOUND  # no such model in the library
    return Failure.CANNOT_CONNECT if classify(err) is Failure.CANNOT_CONNECT else "pull_failed"


async def _async_check_server(url: str, api_key: str | None) -> tuple[list[str], dict[str, str]]:
    """The server's models, or the form errors that say why they could not be had."""
    client = create_client(url, api_key)
    try:
        return await async_list_models(client), {}
    except OLLAMA_ERRORS as err:
        _LOGGER.debug("Ollama server %s failed the check: %s (%r)", redact_url(url), classify(err), err)
        return [], {"base": _server_failure(err)}
    finally:
        await async_close(client)


def _model_selector(models: list[str], current: str | None) -> SelectSelector:
    """Models on the server first; the default and the current choice offered even when missing."""
    names = sorted(models)
    for extra in (current, DEFAULT_MODEL):
        if extra and extra not in names:
            names.append(extra)
    options = [SelectOptionDict(value=name, label=name if name in models else f"{name} (pull)") for name in names]
    return SelectSelector(SelectSelectorConfig(options=options, custom_value=True, sort=False))


class _PullStepMixin[FlowResultT]:
    """The pull step, shared by the server flow and the agent flow: pull a missing model, with progress.

    When the pull ends, the flow goes on to its own `finish` step, or to its `pull_failed` step
    with `_pull_error` set.
    """

    hass: HomeAssistant
    _pull_task: asyncio.Task[None] | None = None
    _pull_model: str = ""
    _pull_error: str | None = None

    # The flow's own helpers (ConfigFlow's and ConfigSubentryFlow's have the same shape).
    async_show_progress: Callable[..., FlowResultT]
    async_show_progress_done: Callable[..., FlowResultT]
    async_update_progress: Callable[[float], None]

    def _start_pull(self, client: ollama.AsyncClient, model: str, *, close: bool = False) -> None:
        """Pull in the background; `close` the client afterwards when it was made for this pull."""

        async def pull() -> None:
            try:
                await async_pull(client, model, self.async_update_progress)
            finally:
                if close:
                    await async_close(client)

        self._pull_model = model
        self._pull_task = self.hass.async_create_task(pull(), f"{DOMAIN} pull {model}")

    async def async_step_pull(self, user_input: dict[str, Any] | None = None) -> FlowResultT:
        """Wait for the pull, showing its progress."""
        assert self._pull_task is not None
        if not self._pull_task.done():
            return self.async_show_progress(
                step_id="pull",
                progress_action="pull",
                progress_task=self._pull_task,
                description_placeholders={"model": self._pull_model},
            )
        err = self._pull_task.exception()
        self._pull_task = None
        if err is None:
            return self.async_show_progress_done(next_step_id="finish")
        _LOGGER.warning("Pulling model %s failed: %s", self._pull_model, err)
        self._pull_error = _pull_failure(err)
        return self.async_show_progress_done(next_step_id="pull_failed")


class MicroPiConfigFlow(_PullStepMixin[ConfigFlowResult], ConfigFlow, domain=DOMAIN):
    """Set up an Ollama server: URL and key, then the first agent's model."""

    VERSION = 1

    def __init__(self) -> None:
        super().__init__()
        self._url = ""
        self._api_key: str | None = None
        self._models: list[str] = []
        self._connect_later = False

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the server's URL and optional API key, and check them.

        A server that cannot be reached is refused, as HA's flows do, with one way on: once told, the
        person (or the hosting service provisioning a new home) may add it anyway. The agent then
        starts without the server, answers what HA understands by itself, and says so in a repair
        issue until the server answers (see server_status).
        """
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                url, api_key = _clean_server_input(user_input)
            except vol.Invalid:
                errors["base"] = "invalid_url"
            else:
                self._async_abort_entries_match({CONF_URL: url})
                models, errors = await _async_check_server(url, api_key)
                later = errors == {"base": Failure.CANNOT_CONNECT} and bool(user_input.get(CONF_CONNECT_LATER))
                if not errors or later:
                    self._url, self._api_key, self._models, self._connect_later = url, api_key, models, later
                    return await self.async_step_model()
        schema = CONNECT_LATER_SCHEMA if errors.get("base") == Failure.CANNOT_CONNECT else SERVER_SCHEMA
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_model(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the first agent's model from the server's list; a missing one is pulled."""
        if user_input is not None:
            model = str(user_input[CONF_MODEL]).strip()
            # Without the server nothing can be pulled: a missing model is flagged once it answers.
            if model in self._models or self._connect_later:
                return self._create(model)
            self._start_pull(create_client(self._url, self._api_key), model, close=True)
            return await self.async_step_pull()
        errors = {"base": self._pull_error} if self._pull_error else {}
        self._pull_error = None
        schema = vol.Schema({vol.Required(CONF_MODEL, default=DEFAULT_MODEL): _model_selector(self._models, None)})
        return self.async_show_form(step_id="model", data_schema=schema, errors=errors)

    async def async_step_pull_failed(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The model could not be pulled: choose again, with the reason shown."""
        return await self.async_step_model()

    async def async_step_finish(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The pulled model is there: create the entry."""
        return self._create(self._pull_model)

    def _create(self, model: str) -> ConfigFlowResult:
        return self.async_create_entry(
            title=redact_url(self._url),
            data=_server_data(self._url, self._api_key),
            subentries=[
                {
                    "subentry_type": SUBENTRY_CONVERSATION,
                    "title": DEFAULT_AGENT_TITLE,
                    "data": AgentOptions.from_data(
                        {CONF_PROMPT: default_prompt(self.hass.config.language), CONF_MODEL: model}
                    ).as_data(),
                    "unique_id": None,
                }
            ],
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The server moved (or got a new key): check the new address and reload."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                url, api_key = _clean_server_input(user_input)
            except vol.Invalid:
                errors["base"] = "invalid_url"
            else:
                if url != entry.data[CONF_URL]:
                    self._async_abort_entries_match({CONF_URL: url})
                _models, errors = await _async_check_server(url, api_key)
                if not errors:
                    return self.async_update_reload_and_abort(
                        entry, title=redact_url(url), data=_server_data(url, api_key)
                    )
        suggested = user_input if user_input is not None else {CONF_URL: entry.data[CONF_URL]}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(SERVER_SCHEMA, suggested),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The server refused our key."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for a new API key and check it."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            api_key = str(user_input.get(CONF_API_KEY) or "").strip() or None
            _models, errors = await _async_check_server(entry.data[CONF_URL], api_key)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=_server_data(entry.data[CONF_URL], api_key))
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            errors=errors,
            description_placeholders={"url": redact_url(entry.data[CONF_URL])},
        )

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(cls, config_entry: ConfigEntry) -> dict[str, type[ConfigSubentryFlow]]:
        return {SUBENTRY_CONVERSATION: AgentSubentryFlow}


def agent_schema(hass: HomeAssistant, models: list[str], shown: AgentOptions, *, new: bool) -> vol.Schema:
    """The agent's settings form, filled with its current options (a new agent's: the defaults, and a name)."""
    apis = [SelectOptionDict(value=api.id, label=api.name) for api in llm.async_get_apis(hass)]
    valid_api_ids = {api["value"] for api in apis}

    def number(low: float, high: float, step: float, unit: str | None = None) -> NumberSelector:
        config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
        if unit:
            config["unit_of_measurement"] = unit
        return NumberSelector(config)

    fields: dict[vol.Marker, Any] = {}
    if new:
        fields[vol.Required(CONF_NAME, default=DEFAULT_AGENT_TITLE)] = str
    fields.update(
        {
            vol.Required(CONF_MODEL, default=shown.model): _model_selector(models, shown.model),
            vol.Optional(CONF_PROMPT, description={"suggested_value": shown.prompt}): TemplateSelector(),
            vol.Optional(
                CONF_LLM_HASS_API,
                description={"suggested_value": [a for a in shown.llm_hass_api if a in valid_api_ids]},
            ): SelectSelector(SelectSelectorConfig(options=apis, multiple=True)),
            vol.Required(CONF_MAX_HISTORY, default=shown.max_history): number(0, 100, 1),
            vol.Required(CONF_NUM_CTX, default=shown.num_ctx): number(2048, 131072, 1024),
            vol.Required(CONF_KEEP_ALIVE, default=shown.keep_alive): number(-1, 86400, 1, "s"),
            vol.Required(CONF_TEMPERATURE, default=shown.temperature): number(0, 2, 0.05),
            vol.Required(CONF_TIMEOUT, default=shown.timeout): number(5, 600, 1, "s"),
            vol.Required(CONF_MAX_TOOL_ITERATIONS, default=shown.max_tool_iterations): number(1, 20, 1),
            vol.Required(CONF_PREFER_LOCAL, default=shown.prefer_local): BooleanSelector(),
        }
    )
    return vol.Schema(fields)


class AgentSubentryFlow(_PullStepMixin[SubentryFlowResult], ConfigSubentryFlow):
    """Add or change a conversation agent of a server."""

    def __init__(self) -> None:
        super().__init__()
        self._title = ""
        self._data: dict[str, Any] = {}

    @property
    def _client(self) -> ollama.AsyncClient:
        entry: MicroPiConfigEntry = self._get_entry()
        return entry.runtime_data.client

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """A new agent."""
        return await self._async_settings(user_input, new=True)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """An existing agent's settings."""
        return await self._async_settings(user_input, new=False)

    async def _async_settings(self, user_input: dict[str, Any] | None, *, new: bool) -> SubentryFlowResult:
        if self._get_entry().state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        try:
            models = await async_list_models(self._client)
        except OLLAMA_ERRORS as err:
            _LOGGER.warning("Could not list the models of the Ollama server: %s", err)
            return self.async_abort(reason=_server_failure(err))
        if user_input is not None:
            form = dict(user_input)
            self._title = form.pop(CONF_NAME, "") or (DEFAULT_AGENT_TITLE if new else "")
            agent = self._agent_options({CONF_LLM_HASS_API: [], **form})  # no API selected means none
            self._data = agent.as_data()
            if agent.model not in models:
                self._start_pull(self._client, agent.model)
                return await self.async_step_pull()
            return self._save()
        current = self._agent_options({} if new else self._get_reconfigure_subentry().data)
        return self.async_show_form(
            step_id="user" if new else "reconfigure", data_schema=agent_schema(self.hass, models, current, new=new)
        )

    def _agent_options(self, data: Mapping[str, Any]) -> AgentOptions:
        """Options from the form or a subentry; without instructions, the default ones in HA's language."""
        return AgentOptions.from_data({CONF_PROMPT: default_prompt(self.hass.config.language), **data})

    async def async_step_pull_failed(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The model could not be pulled; nothing was saved."""
        return self.async_abort(
            reason=self._pull_error or "pull_failed", description_placeholders={"model": self._pull_model}
        )

    async def async_step_finish(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The model is there now: save the agent."""
        return self._save()

    def _save(self) -> SubentryFlowResult:
        if self.source == "user":
            return self.async_create_entry(title=self._title, data=self._data)
        return self.async_update_and_abort(self._get_entry(), self._get_reconfigure_subentry(), data=self._data)
