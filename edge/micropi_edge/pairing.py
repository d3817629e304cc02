"""`micropi-edge pair CODE --server URL`: exchanges the owner's pairing code for this device's token."""

from __future__ import annotations

import aiohttp

from .config import DeviceIdentity

PAIR_PATH = "/api/devices/pair"


class PairingFailed(Exception):
    """The server refused the code or could not be reached; the message says what to do."""


async def pair(server: str, code: str, name: str | None = None) -> DeviceIdentity:
    server = server.rstrip("/")
    body: dict[str, str] = {"code": code}
    if name:
        body["name"] = name
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(server + PAIR_PATH, json=body) as response,
        ):
            payload = await response.json(content_type=None)
            if response.status != 201:
                message = (payload or {}).get("error", {}).get("message", f"HTTP {response.status}")
                raise PairingFailed(f"the server refused pairing: {message}")
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise PairingFailed(f"cannot reach {server} ({err}); check the URL and the network") from None
    device = payload["device"]
    return DeviceIdentity(server=server, device_id=device["id"], name=device["name"], token=payload["token"])
