"""The one client for a user's Home Assistant: REST, the WebSocket API, config flows and "wait until the
entity appears". Provisioning (`hosting.provision`) and the voice pipeline (`hosting.voice_pipeline`) both
talk to HA through it.

A connection per call: the service sends HA only a handful of commands, at set-up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

_ids = itertools.count(1)


class HomeAssistantError(Exception):
    """HA answered, but not as expected (the message says what). `retryable`: it may well work later
    (HA answered 5xx while starting up or overloaded, or was slow to set something up)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class HomeAssistantClient:
    """HA's REST and WebSocket APIs with one access token (`token=None`: unauthenticated REST)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One REST call; its JSON (None for other content). HTTP errors raise HomeAssistantError."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.request(method, self.url + path, json=body, params=params, headers=self._headers()) as response,
        ):
            if response.status >= 400:
                text = (await response.text())[:300]
                raise HomeAssistantError(
                    f"HA could not {method} {path}: HTTP {response.status}: {text}", retryable=response.status >= 500
                )
            return await response.json() if response.content_type == "application/json" else None

    async def ws(self, *commands: dict[str, Any]) -> list[Any]:
        """Sends WebSocket API commands in order over one connection; their results (fails on the first error)."""
        results: list[Any] = []
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.ws_connect(self.url + "/api/websocket") as socket,
        ):
            if (await socket.receive_json())["type"] != "auth_required":
                raise HomeAssistantError("HA's websocket did not ask for authentication")
            await socket.send_json({"type": "auth", "access_token": self._token})
            if (reply := await socket.receive_json())["type"] != "auth_ok":
                raise HomeAssistantError(f"HA's websocket refused the token: {reply.get('message')}")
            for command in commands:
                message_id = next(_ids)
                await socket.send_json({"id": message_id, **command})
                while True:
                    reply = await socket.receive_json()
                    if reply.get("id") == message_id and reply.get("type") == "result":
                        break
                if not reply.get("success"):
                    error = reply.get("error") or {}
                    raise HomeAssistantError(
                        f"HA refused {command['type']}: {error.get('code')}: {error.get('message')}"
                    )
                results.append(reply.get("result"))
        return results

    async def command(self, command: dict[str, Any]) -> Any:
        """One WebSocket command; its result."""
        (result,) = await self.ws(command)
        return result

    async def config_flow(
        self,
        handler: str,
        answers: Mapping[str, dict[str, Any]],
        *,
        start: Mapping[str, Any] | None = None,
        refused_hint: str = "",
        on_refused: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        """Runs `handler`'s config flow through HA's REST API, answering each form by its step id; waits
        through progress steps (e.g. a model being pulled). A form that refused the input is given
        `on_refused`'s answer instead, if it has one. Returns the created entry."""
        pending = dict(answers)
        result = await self.request("POST", "/api/config/config_entries/flow", {"handler": handler, **(start or {})})
        while True:
            kind = result.get("type")
            flow_id = result.get("flow_id")
            if kind == "create_entry":
                entry: dict[str, Any] = result["result"]
                return entry
            if kind == "abort":
                raise HomeAssistantError(f"the {handler} flow aborted: {result.get('reason')}")
            if kind == "progress":  # wait for the flow to move on
                await asyncio.sleep(1)
                result = await self.request("GET", f"/api/config/config_entries/flow/{flow_id}")
                continue
            if kind != "form":
                raise HomeAssistantError(f"the {handler} flow gave an unexpected result {kind!r}")
            if result.get("errors"):
                if on_refused is not None and (answer := on_refused(result)) is not None:
                    result = await self.request("POST", f"/api/config/config_entries/flow/{flow_id}", answer)
                    continue
                raise HomeAssistantError(
                    f"the {handler} form {result.get('step_id')!r} refused the input: {result['errors']}{refused_hint}"
                )
            step_id = result.get("step_id", "")
            if step_id not in pending:
                raise HomeAssistantError(f"the {handler} flow asks for an unknown step {step_id!r}")
            result = await self.request("POST", f"/api/config/config_entries/flow/{flow_id}", pending.pop(step_id))

    async def remove_entry(self, entry_id: str) -> None:
        await self.request("DELETE", f"/api/config/config_entries/entry/{entry_id}")

    async def language(self) -> str:
        config = await self.request("GET", "/api/config")
        return str(config.get("language") or "en")

    async def state(self, entity_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/api/states/{entity_id}")
        return result

    async def entities_of(self, entry_id: str) -> list[dict[str, Any]]:
        registry = await self.command({"type": "config/entity_registry/list"})
        return [e for e in registry if e.get("config_entry_id") == entry_id]

    async def wait_for_entity(
        self,
        entry_id: str,
        fits: Callable[[dict[str, Any]], Awaitable[bool]],
        *,
        within: float,
        missing: str,
    ) -> str:
        """The id of the first entity of config entry `entry_id` that `fits`: entities appear once HA has
        set the entry up, a moment after its flow ended. Raises HomeAssistantError(`missing`) after `within` s."""
        deadline = time.monotonic() + within
        while True:
            for entity in await self.entities_of(entry_id):
                if await fits(entity):
                    return str(entity["entity_id"])
            if time.monotonic() > deadline:
                raise HomeAssistantError(missing, retryable=True)  # HA was slow to set the entry up
            await asyncio.sleep(0.5)


def in_domain(domain: str) -> Callable[[dict[str, Any]], Awaitable[bool]]:
    """An entity filter for `wait_for_entity`: entities of `domain` (e.g. "conversation")."""

    async def fits(entity: dict[str, Any]) -> bool:
        return str(entity["entity_id"]).startswith(f"{domain}.")

    return fits
