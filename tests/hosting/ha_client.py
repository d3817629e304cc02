"""Talking to a real Home Assistant from the tests, the way a person's browser or app does."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

_ids = itertools.count(1)


async def login(base_url: str, username: str, password: str) -> str:
    """HA's own login form (`/auth/login_flow`) then `/auth/token`: an access token, or AssertionError."""
    client_id = f"{base_url}/"
    async with aiohttp.ClientSession(base_url=base_url) as http:
        async with http.post(
            "/auth/login_flow",
            json={"client_id": client_id, "handler": ["homeassistant", None], "redirect_uri": client_id},
        ) as response:
            flow = await response.json()
        async with http.post(
            f"/auth/login_flow/{flow['flow_id']}",
            json={"client_id": client_id, "username": username, "password": password},
        ) as response:
            result = await response.json()
        assert result.get("type") == "create_entry", result
        async with http.post(
            "/auth/token", data={"grant_type": "authorization_code", "code": result["result"], "client_id": client_id}
        ) as response:
            tokens = await response.json()
    return str(tokens["access_token"])


async def ws(base_url: str, token: str, command: dict[str, Any]) -> Any:
    """One websocket command; its result, or AssertionError with HA's error."""
    async with aiohttp.ClientSession(base_url=base_url) as http, http.ws_connect("/api/websocket") as socket:
        assert (await socket.receive_json())["type"] == "auth_required"
        await socket.send_json({"type": "auth", "access_token": token})
        assert (await socket.receive_json())["type"] == "auth_ok"
        message_id = next(_ids)
        await socket.send_json({"id": message_id, **command})
        while (reply := await socket.receive_json()).get("id") != message_id:
            pass
    assert reply["success"], reply
    return reply["result"]


async def rest(base_url: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(base_url=base_url) as http,
        http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return response.status, await response.json(content_type=None)
