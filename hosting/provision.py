"""Provisioning a fresh Home Assistant through HA's own APIs - resumable.

Steps, in order (`STEPS`); each one is recorded when done (`Instance.provision_state`), and a run on a
half-provisioned instance skips what is recorded, and also what HA itself reports as done (a crash
between HA doing a step and us recording it), so nothing is repeated:

  owner          POST /api/onboarding/users: the owner account, the user's email as username and the
                 password they signed up with, language hu
  core_config    websocket config/core/update (time zone, its country, language hu, metric), then
                 POST /api/onboarding/core_config
  analytics      POST /api/onboarding/analytics without opting in: analytics stays off
  integration    POST /api/onboarding/integration (the last onboarding step)
  token          websocket auth/long_lived_access_token: the service's own token (stored encrypted)
  ollama_entry   our `micropi_llm` entry (URL, key, model) through /api/config/config_entries/flow; it
                 comes with its default agent. A model server that does not answer does not stop a new
                 home: the flow refuses it once, as it does for a person, and offers "connect later",
                 which we take (the agent then answers what HA understands by itself and says the rest
                 is unavailable until the server answers; the entry needs no later step of ours)
  agent          the agent's conversation entity, looked up in the entity registry
  assist         the preferred Assist pipeline uses the agent, language hu
  demo           when the sign-up asked for it: the `micropi_demo` entry (a few simulated devices in
                 Hungarian-named rooms; deleting that one entry in HA removes them all)

A step recorded as done is checked against HA before it is skipped (the token still works, the entry and
the entity still exist...): HA writes part of its state (users, tokens) a second after a change, so an
HA killed right then comes back without it, and the step is done again.

The onboarding steps need the owner's own (credential-bearing) session, got with the auth code of the
owner step or, on a resumed run, through HA's login flow with the still-stored password. That is why the
caller keeps the password (encrypted) until provisioning has finished, and erases it then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hosting.ha_client import HomeAssistantClient, HomeAssistantError, in_domain

_LOGGER = logging.getLogger(__name__)

STEPS = ("owner", "core_config", "analytics", "integration", "token", "ollama_entry", "agent", "assist", "demo")
ONBOARDING_STEPS = {"owner": "user", "core_config": "core_config", "analytics": "analytics",
                    "integration": "integration"}  # fmt: skip
LANGUAGE = "hu"
INTEGRATION_DOMAIN = "micropi_llm"
DEMO_DOMAIN = "micropi_demo"
CONNECT_LATER = "connect_later"  # the micropi_llm flow's field, offered after a failed connection check
SERVICE_CLIENT_NAME = "MicroPi hosting"  # what HA lists the service's long-lived token as


# What a household reads when provisioning failed (the instance's `status_reason`). The web app shows each
# in the page's language (`reason.<sentence>` in hosting/web/i18n); a test holds every one translated.
HOUSEHOLD_SLOW = (
    "Setting up your Home Assistant is taking longer than it should; we try again by ourselves, nothing to do "
    "on your side."
)
HOUSEHOLD_FAILED = (
    "Your Home Assistant could not be set up; this is on our side. Ask the operator, who has the details, or "
    "try again later (POST /api/me/instance/restart)."
)
HOUSEHOLD_NOT_CONNECTED = (
    "Your Home Assistant is there, but its voice assistant could not be connected to our language model "
    "service. This is on our side: the operator has the details."
)
HOUSEHOLD_CANNOT_RESUME = (
    "Setting up your Home Assistant stopped half-way and cannot be resumed. Ask the operator to create it "
    "again; your account is fine."
)
HOUSEHOLD_MESSAGES = (HOUSEHOLD_SLOW, HOUSEHOLD_FAILED, HOUSEHOLD_NOT_CONNECTED, HOUSEHOLD_CANNOT_RESUME)


class ProvisionError(Exception):
    """A provisioning step failed; the message names the step and why (the operator's detail).

    `retryable`: the same run may well succeed later (HA was slow or went away, a connection failed);
    reconciliation retries those. `household` says, in words a household can act on, what happened and
    what to do (the operator's detail stays for operators)."""

    def __init__(self, message: str, *, retryable: bool = False, household: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.household = household or (HOUSEHOLD_SLOW if retryable else HOUSEHOLD_FAILED)


@dataclass(frozen=True)
class ProvisionTarget:
    base_url: str  # HA as this service reaches it (`Runtime.service_url`)
    email: str
    time_zone: str
    ollama_url: str
    ollama_model: str
    ollama_api_key: str = ""
    demo: bool = False  # add the demo home
    # For a zone of no country (UTC, Etc/GMT+1: what privacy-minded browsers report): the country of the
    # service's own zone, so HA does not open with a "country not configured" repair.
    fallback_country: str | None = None


# Persists progress: (step name, data to keep for it, service token when the `token` step made one).
Recorder = Callable[[str, dict[str, Any], str | None], Awaitable[None]]


class Provisioner:
    def __init__(
        self,
        target: ProvisionTarget,
        *,
        done: Mapping[str, dict[str, Any]],
        password: str | None,
        service_token: str | None,
        record: Recorder,
        step_timeout: float = 120.0,
    ) -> None:
        self.target = target
        self.done = dict(done)
        self._password = password
        self._service_token = service_token
        self._record = record
        self._step_timeout = step_timeout
        self._session_token: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._client_id = f"{target.base_url}/"

    async def run(self) -> None:
        async with aiohttp.ClientSession(
            base_url=self.target.base_url, timeout=aiohttp.ClientTimeout(total=60)
        ) as self._http:
            ha_done = await self._onboarding_status()
            for step in STEPS:
                try:
                    async with asyncio.timeout(self._step_timeout):
                        if await self._still_done(step, ha_done):
                            continue
                        _LOGGER.info("provisioning %s: %s", self.target.base_url, step)
                        data = await getattr(self, f"_step_{step}")()
                except ProvisionError:
                    raise
                except HomeAssistantError as err:
                    raise ProvisionError(f"step {step}: {err}", retryable=err.retryable) from err
                except (aiohttp.ClientError, TimeoutError) as err:  # HA went away or was too slow: again later
                    raise ProvisionError(f"step {step}: {type(err).__name__}: {err}", retryable=True) from err
                except (ValueError, KeyError, TypeError) as err:  # HA answered something we do not understand
                    raise ProvisionError(f"step {step}: {type(err).__name__}: {err}") from err
                # The `token` step's record carries the new token: it is stored (encrypted) at once.
                await self._mark(step, data, self._service_token if step == "token" else None)

    async def _still_done(self, step: str, ha_done: Mapping[str, bool]) -> bool:
        """Whether the step was done before (recorded by us, or - onboarding - by HA) and HA still has
        it. HA saves some of its state a moment after changing it, so an HA killed right after a step
        can come back without it: then the step is done again."""
        if step in ONBOARDING_STEPS:
            if not ha_done.get(ONBOARDING_STEPS[step], False):
                return False
            if step not in self.done:  # HA did it, the record was lost (a crash in between)
                await self._mark(step, {"by": "found done in HA"})
            return True
        if step not in self.done:
            return False
        match step:
            case "token":
                async with self._session().get("/api/", headers={"Authorization": f"Bearer {self._token()}"}) as r:
                    if r.status == 401:  # HA no longer knows it
                        return False
                    await _json(r, "check the service's token")
                    return True
            case "ollama_entry":
                entries = await self._get("/api/config/config_entries/entry", params={"domain": INTEGRATION_DOMAIN})
                return any(entry["entry_id"] == self.done[step]["entry_id"] for entry in entries)
            case "agent":
                entities = await self._ws(self._token(), {"type": "config/entity_registry/list"})
                return any(entity["entity_id"] == self.done[step]["entity_id"] for entity in entities)
            case "assist":
                listing = await self._ws(self._token(), {"type": "assist_pipeline/pipeline/list"})
                preferred = [p for p in listing["pipelines"] if p["id"] == listing.get("preferred_pipeline")]
                return bool(preferred) and preferred[0]["conversation_engine"] == self.done["agent"]["entity_id"]
            case "demo" if self.done[step].get("entry_id"):
                entries = await self._get("/api/config/config_entries/entry", params={"domain": DEMO_DOMAIN})
                return any(entry["entry_id"] == self.done[step]["entry_id"] for entry in entries)
        return True

    async def _mark(self, step: str, data: dict[str, Any], token: str | None = None) -> None:
        self.done[step] = data
        await self._record(step, data, token)

    # ---- the steps -----------------------------------------------------------------------------------

    async def _step_owner(self) -> dict[str, Any]:
        body = {
            "client_id": self._client_id,
            "name": self.target.email.split("@", 1)[0],
            "username": self.target.email,
            "password": self._require_password(),
            "language": LANGUAGE,
        }
        async with self._session().post("/api/onboarding/users", json=body) as response:
            if response.status == 403:  # HA made the owner before a crash: log in instead, below
                return {"by": "found done in HA"}
            result = await _json(response, "create the owner")
        self._session_token = await self._exchange_code(result["auth_code"])
        return {}

    async def _step_core_config(self) -> dict[str, Any]:
        update = {"type": "config/core/update", "time_zone": self.target.time_zone, "language": LANGUAGE,
                  "unit_system": "metric"}  # fmt: skip
        if country := country_of(self.target.time_zone) or self.target.fallback_country:
            update["country"] = country  # without one HA asks the household for it (a repair)
        await self._ws(await self._owner_token(), update)
        await self._onboarding_post("core_config", {})
        return {"time_zone": self.target.time_zone}

    async def _step_analytics(self) -> dict[str, Any]:
        # Finishing the step without opting in leaves analytics off (HA's default: nothing is sent).
        await self._onboarding_post("analytics", {})
        return {}

    async def _step_integration(self) -> dict[str, Any]:
        await self._onboarding_post(
            "integration", {"client_id": self._client_id, "redirect_uri": f"{self._client_id}?auth_callback=1"}
        )
        return {}

    async def _step_token(self) -> dict[str, Any]:
        token = await self._ws(
            await self._owner_token(),
            {"type": "auth/long_lived_access_token", "client_name": SERVICE_CLIENT_NAME, "lifespan": 3650},
        )
        if not isinstance(token, str):
            raise ProvisionError("step token: HA returned no long-lived token")
        self._service_token = token
        self._password = None
        return {}

    async def _step_ollama_entry(self) -> dict[str, Any]:
        existing = await self._get("/api/config/config_entries/entry", params={"domain": INTEGRATION_DOMAIN})
        if existing:
            return {"entry_id": existing[0]["entry_id"]}
        answers: dict[str, dict[str, Any]] = {
            "user": {"url": self.target.ollama_url}
            | ({"api_key": self.target.ollama_api_key} if self.target.ollama_api_key else {}),
            "model": {"model": self.target.ollama_model},
        }
        later: list[bool] = []

        def connect_later(form: dict[str, Any]) -> dict[str, Any] | None:
            """The model server does not answer (yet): the home is set up all the same (once asked)."""
            fields = [item.get("name") for item in form.get("data_schema") or []]
            if form.get("step_id") != "user" or CONNECT_LATER not in fields or later:
                return None
            _LOGGER.info("%s: no model server answers at %s yet; the agent connects when one does",
                         self.target.base_url, self.target.ollama_url)  # fmt: skip
            later.append(True)
            return {**answers["user"], CONNECT_LATER: True}

        try:
            entry = await self._ha().config_flow(
                INTEGRATION_DOMAIN,
                answers,
                start={"show_advanced_options": False},
                refused_hint=f" (model server {self.target.ollama_url}, model {self.target.ollama_model})",
                on_refused=connect_later,
            )
        except HomeAssistantError as err:
            if err.retryable:
                raise
            raise ProvisionError(
                f"step ollama_entry: {err}",
                household=HOUSEHOLD_NOT_CONNECTED,
            ) from err
        return {"entry_id": entry["entry_id"], "connected": not later}

    async def _step_agent(self) -> dict[str, Any]:
        entry_id = self.done["ollama_entry"]["entry_id"]
        entity_id = await self._ha().wait_for_entity(
            entry_id,
            in_domain("conversation"),
            within=30,
            missing=f"entry {entry_id} made no conversation entity within 30 s",
        )
        return {"entity_id": entity_id}

    async def _step_assist(self) -> dict[str, Any]:
        agent = self.done["agent"]["entity_id"]
        token = self._token()
        listing = await self._ws(token, {"type": "assist_pipeline/pipeline/list"})
        preferred = next((p for p in listing["pipelines"] if p["id"] == listing.get("preferred_pipeline")), None)
        fields = {
            "name": "MicroPi",
            "conversation_engine": agent,
            "conversation_language": LANGUAGE,
            "language": LANGUAGE,
        }
        if preferred is None:
            none = dict.fromkeys(("stt_engine", "stt_language", "tts_engine", "tts_language", "tts_voice",
                                  "wake_word_entity", "wake_word_id"))  # fmt: skip
            created = await self._ws(token, {"type": "assist_pipeline/pipeline/create", **none, **fields})
            await self._ws(token, {"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": created["id"]})
            return {"pipeline_id": created["id"]}
        keep = ("stt_engine", "stt_language", "tts_engine", "tts_language", "tts_voice", "wake_word_entity",
                "wake_word_id", "prefer_local_intents")  # fmt: skip
        update = {key: preferred[key] for key in keep if key in preferred}
        await self._ws(
            token, {"type": "assist_pipeline/pipeline/update", "pipeline_id": preferred["id"], **update, **fields}
        )
        return {"pipeline_id": preferred["id"]}

    async def _step_demo(self) -> dict[str, Any]:
        if not self.target.demo:
            return {"entry_id": None}
        existing = await self._get("/api/config/config_entries/entry", params={"domain": DEMO_DOMAIN})
        if existing:
            return {"entry_id": existing[0]["entry_id"]}
        entry = await self._ha().config_flow(DEMO_DOMAIN, {"user": {}})  # its one confirmation
        return {"entry_id": entry["entry_id"]}

    # ---- HA's APIs -----------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http

    def _require_password(self) -> str:
        if self._password is None:
            raise ProvisionError(
                "the owner's password is no longer stored, so the owner cannot log in to finish onboarding; "
                "delete and re-create the instance",
                household=HOUSEHOLD_CANNOT_RESUME,
            )
        return self._password

    def _token(self) -> str:
        if self._service_token is None:
            raise ProvisionError("the service's long-lived token is missing; the `token` step must run first")
        return self._service_token

    async def _owner_token(self) -> str:
        """The owner's session token: from the owner step, or a fresh login with the stored password."""
        if self._session_token is None:
            self._session_token = await self._login()
        return self._session_token

    async def _onboarding_status(self) -> dict[str, bool]:
        async with self._session().get("/api/onboarding") as response:
            if response.status == 404:  # fully onboarded: HA no longer serves the onboarding views
                return dict.fromkeys(ONBOARDING_STEPS.values(), True)
            steps = await _json(response, "read the onboarding status")
        return {item["step"]: bool(item["done"]) for item in steps}

    async def _onboarding_post(self, step: str, body: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {await self._owner_token()}"}
        async with self._session().post(f"/api/onboarding/{step}", json=body, headers=headers) as response:
            if response.status == 403 and "already done" in await response.text():
                return
            await _json(response, f"finish the onboarding step {step}")

    async def _exchange_code(self, code: str) -> str:
        form = {"grant_type": "authorization_code", "code": code, "client_id": self._client_id}
        async with self._session().post("/auth/token", data=form) as response:
            tokens = await _json(response, "exchange the auth code")
        return str(tokens["access_token"])

    async def _login(self) -> str:
        """HA's login flow with the owner's email and password (what a person does in the login form)."""
        flow = await self._post_unauthenticated(
            "/auth/login_flow",
            {"client_id": self._client_id, "handler": ["homeassistant", None], "redirect_uri": self._client_id},
        )
        result = await self._post_unauthenticated(
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self._client_id, "username": self.target.email, "password": self._require_password()},
        )
        if result.get("type") != "create_entry":
            raise ProvisionError(f"the owner could not log in to HA: {result.get('errors') or result.get('reason')}")
        return await self._exchange_code(result["result"])

    def _ha(self, token: str | None = None) -> HomeAssistantClient:
        """HA's APIs with the service's token (or the given one: the owner's session token)."""
        return HomeAssistantClient(self.target.base_url, token or self._token())

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._ha().request("GET", path, params=params)

    async def _post_unauthenticated(self, path: str, body: dict[str, Any]) -> Any:
        async with self._session().post(path, json=body) as response:
            return await _json(response, f"POST {path}")

    async def _ws(self, token: str, command: dict[str, Any]) -> Any:
        return await self._ha(token).command(command)


async def reconfigure_model_server(ha: HomeAssistantClient, entry_id: str, url: str, api_key: str) -> None:
    """The agent entry's reconfigure flow (as a person would run it): a new server URL and key."""
    flow = await ha.request(
        "POST", "/api/config/config_entries/flow", {"handler": INTEGRATION_DOMAIN, "entry_id": entry_id}
    )
    if flow.get("type") != "form":
        raise HomeAssistantError(f"the reconfigure flow did not start: {flow.get('reason') or flow.get('type')}")
    result = await ha.request(
        "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"url": url, "api_key": api_key}
    )
    if result.get("type") != "abort" or result.get("reason") != "reconfigure_successful":
        raise HomeAssistantError(f"the reconfigure flow refused: {result.get('errors') or result.get('reason')}")


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    if response.status >= 400:
        text = (await response.text())[:300]
        # 5xx: HA is starting up or overloaded, worth another go; 4xx: it refused what we sent.
        raise ProvisionError(f"HA could not {what}: HTTP {response.status}: {text}", retryable=response.status >= 500)
    return await response.json()


ZONE_TABLES = (Path("/usr/share/zoneinfo/zone.tab"),)  # IANA's zone -> country table (Debian's tzdata)


def country_of(time_zone: str) -> str | None:
    """The ISO country code IANA's table gives the time zone (Europe/Budapest -> HU), if it gives one."""
    for table in ZONE_TABLES:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines():
                fields = line.split("\t")
                if len(fields) >= 3 and not line.startswith("#") and fields[2] == time_zone:
                    return fields[0]
    return None
