"""Device endpoints: pairing codes and pairing, list/rename/revoke, heartbeats and the relay WebSocket.
What they do is in `hosting.devices` (`app[DEVICES_KEY]`)."""

from __future__ import annotations

import voluptuous as vol
from aiohttp import web
from sqlalchemy import select

from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.api.schemas import no_nul, number_between, stored_text
from hosting.db.models import Device
from hosting.devices import DEVICES_KEY, DeviceService
from hosting.errors import ApiError

_NAME = stored_text(128)
PAIRING_CODE_REQUEST = vol.Schema(
    {vol.Optional("name", default="Raspberry Pi", description="the device's name"): _NAME}
)
PAIR_REQUEST = vol.Schema(
    {
        vol.Required("code", description="the pairing code shown to the owner"): vol.All(
            str, vol.Length(min=4, max=32)
        ),
        vol.Optional("name", description="overrides the name given with the code"): _NAME,
    }
)
RENAME_REQUEST = vol.Schema({vol.Required("name"): _NAME})
# Telemetry is shown to the owner and exported to Prometheus: finite numbers in ranges a Pi can report.
HEARTBEAT_REQUEST = vol.Schema(
    {
        vol.Optional("version", default="", description="the edge agent's version"): vol.All(
            str, no_nul, vol.Length(max=64)
        ),
        vol.Optional("uptime", description="seconds since the agent started"): number_between(0, 10 * 365 * 86400),
        vol.Optional("cpu_temperature", description="degrees Celsius"): number_between(-60, 150),
        vol.Optional("load", description="1-minute load average"): number_between(0, 1000),
        vol.Optional("relay_rtt", description="relay round trip in seconds"): number_between(0, 600),
    }
)


def _service(call: Call) -> DeviceService:
    return call.app[DEVICES_KEY]


def _name(call: Call, default: str | None = None) -> str | None:
    name = call.body.get("name")
    if name is None:
        return default
    name = " ".join(str(name).split())
    if not name:
        raise ApiError(422, "validation_error", "field 'name': give the device a name that is not blank")
    return name


async def create_pairing_code(call: Call) -> web.Response:
    code, ttl = await _service(call).create_pairing_code(call.me.id, _name(call) or "Raspberry Pi")
    return web.json_response({"code": code, "expires_in": int(ttl)}, status=201)


async def pair_device(call: Call) -> web.Response:
    service = _service(call)
    device, token = await service.pair(call.body["code"], _name(call), call.ip)
    return web.json_response({"device": service.view(device), "token": token}, status=201)


async def list_devices(call: Call) -> web.Response:
    service = _service(call)
    async with call.sessions() as session:
        devices = (
            await session.scalars(
                select(Device)
                .where(Device.user_id == call.me.id, Device.revoked_at.is_(None))
                .order_by(Device.created_at)
            )
        ).all()
    return web.json_response({"devices": [service.view(d) for d in devices]})


async def list_fleet(call: Call) -> web.Response:
    service = _service(call)
    async with call.sessions() as session:
        devices = (
            await session.scalars(select(Device).where(Device.revoked_at.is_(None)).order_by(Device.created_at))
        ).all()
    return web.json_response({"devices": [{**service.view(d), "user_id": d.user_id} for d in devices]})


async def rename_device(call: Call) -> web.Response:
    service = _service(call)
    async with call.sessions() as session, session.begin():
        device = await service.owned_device(session, call.me.id, call.request.match_info["device_id"])
        device.name = _name(call) or device.name
    service.publish(device, "renamed")
    return web.json_response(service.view(device))


async def revoke_device(call: Call) -> web.Response:
    await _service(call).revoke(call.me.id, call.request.match_info["device_id"], call.ip)
    return web.Response(status=204)


async def device_heartbeat(call: Call) -> web.Response:
    service = _service(call)
    device = await service.authenticate_device(call.request)
    await service.heartbeat(device, call.body)
    return web.json_response({"silent_after": service.settings.device_silent_after})


async def device_relay(call: Call) -> web.StreamResponse:
    return await _service(call).relay_connection(call.request)


# Device ids are UUIDs: the pattern keeps `/api/devices/heartbeat` and the like out of this route (one
# path, one resource: aiohttp would otherwise also offer PATCH/DELETE in their Allow headers).
DEVICE_PATH = "/api/devices/{device_id:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}}"
_DEVICE = {200: Reply("the device"), 404: Reply("not one of the caller's devices", "Error")}
_DEVICE_AUTH = {401: Reply("the device token is missing, wrong or revoked", "Error")}

ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/devices/pairing-codes",
        create_pairing_code,
        "A short single-use code (10 minutes) to pair a Raspberry Pi with `micropi-edge pair CODE`",
        "devices",
        body=PAIRING_CODE_REQUEST,
        responses={
            201: Reply("the code and its lifetime in seconds"),
            409: Reply("the account has as many devices as it may have", "Error"),
            429: Reply("the account has as many open codes as it may have", "Error"),
        },
    ),
    Endpoint(
        "POST",
        "/api/devices/pair",
        pair_device,
        "The device exchanges a pairing code for its device token (shown once)",
        "devices",
        auth="public",
        body=PAIR_REQUEST,
        responses={
            201: Reply("the new device and its token"),
            404: Reply("the code is wrong or expired", "Error"),
            409: Reply("the account has as many devices as it may have", "Error"),
            429: Reply("too many wrong codes from this address", "Error"),
            503: Reply("no relay port is free (the code stays valid)", "Error"),
        },
    ),
    Endpoint(
        "GET",
        "/api/devices",
        list_devices,
        "The caller's devices: online, last seen, silent flag, relay endpoint, latest heartbeat",
        "devices",
        responses={200: Reply("the devices")},
    ),
    Endpoint(
        "GET",
        "/api/operator/devices",
        list_fleet,
        "Every paired device (the fleet), with its owner's id: online, silent, version, temperature, load, relay RTT",
        "operator",
        auth="operator",
        responses={200: Reply("the devices")},
    ),
    Endpoint(
        "PATCH",
        DEVICE_PATH,
        rename_device,
        "Rename a device",
        "devices",
        body=RENAME_REQUEST,
        responses=_DEVICE,
    ),
    Endpoint(
        "DELETE",
        DEVICE_PATH,
        revoke_device,
        "Revoke a device: its token stops working and its relay connections are cut at once",
        "devices",
        responses={204: Reply("revoked"), 404: _DEVICE[404]},
    ),
    Endpoint(
        "POST",
        "/api/devices/heartbeat",
        device_heartbeat,
        "The device's report every 30 s (device token): version, uptime, CPU temperature, load, relay RTT",
        "devices",
        auth="public",
        body=HEARTBEAT_REQUEST,
        responses={200: Reply("accepted"), **_DEVICE_AUTH},
    ),
    Endpoint(
        "GET",
        "/api/devices/relay",
        device_relay,
        "The device's relay WebSocket (device token); see hosting/relay.py for the protocol",
        "devices",
        auth="public",
        responses={
            101: Reply("switching to WebSocket"),
            400: Reply("not a WebSocket handshake", "Error"),
            **_DEVICE_AUTH,
        },
    ),
]
