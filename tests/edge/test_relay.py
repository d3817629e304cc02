"""The relay end to end on loopback: the real hosting service, the Pi's relay client and our satellite,
and a Wyoming client on the HA side of the device's endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path

import pytest
from micropi_edge.relay import DeviceRevoked
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.satellite import RunSatellite

from hosting.relay import DeviceRelay
from tests.hosting.device_service import Hosting

from .device import eventually, read_until, running_device
from .peers import CountingWakeService


@pytest.fixture
async def wake() -> AsyncIterator[CountingWakeService]:
    service = CountingWakeService(chunks_to_detect=3)
    await service.start()
    yield service
    await service.stop()


async def test_ha_reaches_the_satellite_through_the_relay(
    hosting: Hosting, wake: CountingWakeService, tmp_path: Path
) -> None:
    owner = await hosting.sign_up()
    paired = await hosting.pair(owner, "Living room")
    device_id = paired["device"]["id"]
    async with running_device(hosting, paired["token"], "Living room", wake, tmp_path) as (satellite, relay, _):
        (device,) = await hosting.list_devices(owner)
        assert device["online"] is True
        port = device["relay"]["port"]

        async with AsyncTcpClient("127.0.0.1", port) as ha:
            # HA's describe must be answered quickly: the WebSocket is already open.
            started = time.perf_counter()
            await ha.write_event(Describe().event())
            event, _ = await read_until(ha, "info", within=1.0)
            assert time.perf_counter() - started < 1.0
            info = Info.from_event(event)
            assert info.satellite is not None
            assert info.satellite.name == "Living room"

            await ha.write_event(Ping(text="through the relay").event())
            await read_until(ha, "pong", within=1.0)

            # Audio flows the other way: the wake word and the command's audio reach "HA".
            await ha.write_event(RunSatellite().event())
            await read_until(ha, "detection")
            await read_until(ha, "run-pipeline")
            await read_until(ha, "audio-chunk")

            # The pool is refilled while this connection is in use.
            await eventually(lambda: relay.idle_connections == 2)
            assert hosting.devices.relay.stats().active_tunnels == 1
            rtt = await relay.measure_rtt()
            assert rtt is not None and 0 < rtt < 1.0

        # HA hung up: the satellite's connection closes too, and the tunnel is gone.
        await eventually(lambda: satellite.connections == 0)
        await eventually(lambda: hosting.devices.relay.stats().active_tunnels == 0)

        # Two HA connections at once each get their own tunnel.
        async with AsyncTcpClient("127.0.0.1", port) as first, AsyncTcpClient("127.0.0.1", port) as second:
            for client in (first, second):
                await client.write_event(Describe().event())
                await read_until(client, "info", within=1.0)
            assert satellite.connections == 2
        assert hosting.devices.relay.is_connected(device_id)


async def test_satellite_going_away_closes_ha_side(hosting: Hosting, wake: CountingWakeService, tmp_path: Path) -> None:
    owner = await hosting.sign_up()
    paired = await hosting.pair(owner)
    async with running_device(hosting, paired["token"], "Pi", wake, tmp_path) as (satellite, _, _):
        port = (await hosting.list_devices(owner))[0]["relay"]["port"]
        async with AsyncTcpClient("127.0.0.1", port) as ha:
            await ha.write_event(Describe().event())
            await read_until(ha, "info", within=1.0)
            await satellite.stop()  # the Pi's satellite goes away
            async with asyncio.timeout(2):
                assert await ha.read_event() is None


async def test_revoking_disconnects_at_once(hosting: Hosting, wake: CountingWakeService, tmp_path: Path) -> None:
    owner = await hosting.sign_up()
    paired = await hosting.pair(owner)
    device_id = paired["device"]["id"]
    async with running_device(hosting, paired["token"], "Pi", wake, tmp_path) as (_, relay, task):
        port = (await hosting.list_devices(owner))[0]["relay"]["port"]
        async with AsyncTcpClient("127.0.0.1", port) as ha:
            await ha.write_event(Describe().event())
            await read_until(ha, "info", within=1.0)

            response = await hosting.client.delete(f"/api/devices/{device_id}", headers=owner.headers)
            assert response.status == 204
            async with asyncio.timeout(1):
                assert await ha.read_event() is None  # HA's connection is cut at once
        # The Pi learns it was revoked and stops (the service exits 3, and systemd does not restart it).
        async with asyncio.timeout(5):
            with pytest.raises(DeviceRevoked):
                await task
        assert relay.revoked.is_set()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_tenants_reach_only_their_own_device(hosting: Hosting, wake: CountingWakeService, tmp_path: Path) -> None:
    alice, bob = await hosting.sign_up(), await hosting.sign_up()
    alice_device = await hosting.pair(alice, "Alice Pi")
    bob_device = await hosting.pair(bob, "Bob Pi")
    async with (
        running_device(hosting, alice_device["token"], "Alice Pi", wake, tmp_path),
        running_device(hosting, bob_device["token"], "Bob Pi", wake, tmp_path),
    ):
        ports = {}
        for owner, name in ((alice, "Alice Pi"), (bob, "Bob Pi")):
            (device,) = await hosting.list_devices(owner)
            ports[name] = device["relay"]["port"]
        assert ports["Alice Pi"] != ports["Bob Pi"]
        for name, port in ports.items():
            async with AsyncTcpClient("127.0.0.1", port) as ha:
                await ha.write_event(Describe().event())
                event, _ = await read_until(ha, "info", within=1.0)
                satellite_info = Info.from_event(event).satellite
                assert satellite_info is not None
                assert satellite_info.name == name

    # A relay WebSocket needs a device token: none, an owner's access token or a made-up one are refused.
    for headers in ({}, alice.headers, {"Authorization": "Bearer mpd_made-up"}):
        response = await hosting.client.get("/api/devices/relay", headers=headers)
        assert response.status == 401


async def test_endpoint_refuses_peers_other_than_the_owners_ha() -> None:
    relay = DeviceRelay(claim_timeout=0.5)
    # Only the owner's HA network may connect (in production: the subnet of its private docker network).
    port = await relay.open_endpoint("device", "127.0.0.1", 0, allowed_network=ip_network("127.0.0.2/32"))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(1):
            assert await reader.read(1) == b""  # closed at once
        writer.close()
        # From the allowed address it is accepted, and closed only after waiting for the (absent) device.
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
        started = time.perf_counter()
        async with asyncio.timeout(2):
            assert await reader.read(1) == b""
        assert time.perf_counter() - started >= 0.4
        writer.close()
    finally:
        await relay.close()
