"""Our satellite in a REAL Home Assistant (a `hass` process, HA 2026.11 with its real `wyoming` integration),
connected through the real relay; and the device provisioned into the owner's HA by the hosting service."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hosting.db.models import Device
from hosting.devices import PIPELINE_NAME
from hosting.settings import Settings
from tests.edge.device import eventually, running_device
from tests.edge.peers import CountingWakeService, SpeechServiceInfo
from tests.hosting.device_service import Hosting, running_hosting

from .hass import HassProcess

pytestmark = pytest.mark.hass

# HA pings a satellite 2 s after each pong and drops it when no pong comes within 5 s; 15 s of idling
# is several ping rounds (the "idle minutes", shortened).
IDLE_SECONDS = 15


@pytest.fixture
async def hass(tmp_path: Path) -> AsyncIterator[HassProcess]:
    process = HassProcess(tmp_path / "ha")
    try:
        await process.start()
        yield process
    finally:
        await process.stop()


@pytest.fixture
async def wake() -> AsyncIterator[CountingWakeService]:
    # Never wakes: these tests are about the connection, not about a voice command.
    service = CountingWakeService(chunks_to_detect=10**9)
    await service.start()
    yield service
    await service.stop()


async def entities_of(hass: HassProcess, entry_id: str) -> list[str]:
    registry = await hass.ws({"type": "config/entity_registry/list"})
    return [e["entity_id"] for e in registry if e.get("config_entry_id") == entry_id]


async def wyoming_flow(hass: HassProcess, host: str, port: int) -> dict[str, Any]:
    flow = await hass.rest("POST", "/api/config/config_entries/flow", {"handler": "wyoming"})
    result: dict[str, Any] = await hass.rest(
        "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"host": host, "port": port}
    )
    return result


async def test_real_ha_keeps_the_satellite_through_the_relay_until_revoked(
    hosting: Hosting, hass: HassProcess, wake: CountingWakeService, tmp_path: Path
) -> None:
    owner = await hosting.sign_up()
    paired = await hosting.pair(owner, "Living room")
    device_id = paired["device"]["id"]
    async with running_device(hosting, paired["token"], "Living room", wake, tmp_path) as (satellite, relay, task):
        port = (await hosting.list_devices(owner))[0]["relay"]["port"]

        # The owner's HA adds the satellite at the relay endpoint, through its own config flow.
        result = await wyoming_flow(hass, "127.0.0.1", port)
        assert result["type"] == "create_entry", result
        assert result["title"] == "Living room"
        entry_id = result["result"]["entry_id"]

        async def satellite_entity() -> bool:
            return any(e.startswith("assist_satellite.") for e in await entities_of(hass, entry_id))

        await eventually(satellite_entity, within=30)
        (entity_id,) = [e for e in await entities_of(hass, entry_id) if e.startswith("assist_satellite.")]
        # HA's satellite task connects (run-satellite) and keeps one connection through the relay.
        await eventually(lambda: satellite.connections == 1, within=20)
        await eventually(lambda: satellite.pings_answered >= 1, within=10)

        # Idle: HA keeps pinging, we keep answering; the same single connection stays up.
        pings_before = satellite.pings_answered
        await asyncio.sleep(IDLE_SECONDS)
        assert satellite.connections == 1
        assert satellite.pings_answered - pings_before >= IDLE_SECONDS // 5
        state = await hass.state(entity_id)
        assert state is not None
        assert state["state"] == "idle", state
        assert hosting.devices.relay.stats().active_tunnels == 1

        # Revoking the device cuts HA's connection at once, and HA cannot get back in.
        response = await hosting.client.delete(f"/api/devices/{device_id}", headers=owner.headers)
        assert response.status == 204
        await eventually(lambda: satellite.connections == 0, within=2)
        async with asyncio.timeout(5):
            await asyncio.wait({task})
        assert relay.revoked.is_set()
        await asyncio.sleep(4)  # HA retries after 3 s (its reconnect delay); it must find nothing
        assert satellite.connections == 0


@pytest.fixture
def devices_config() -> dict[str, Any]:
    # Our agent is not installed in this HA; its built-in agent stands in for `conversation.micropi`.
    return {"conversation_agent": "conversation.home_assistant"}


async def test_pairing_provisions_the_device_into_the_owners_ha(
    hosting_settings: Settings, hass: HassProcess, wake: CountingWakeService, tmp_path: Path
) -> None:
    stt, tts = SpeechServiceInfo("stt", "faster-whisper"), SpeechServiceInfo("tts", "piper")
    await stt.start()
    await tts.start()
    settings = dataclasses.replace(
        hosting_settings, conversation_agent="conversation.home_assistant", stt_uri=stt.uri, tts_uri=tts.uri
    )
    async with running_hosting(settings) as hosting:
        owner = await hosting.sign_up()
        await hosting.add_ready_instance(owner, "micropi-ha-kitchen", hass.port, hass.token)
        paired = await hosting.pair(owner, "Kitchen")
        device_id = paired["device"]["id"]

        async def ha_entry_of(device_id: str) -> str | None:
            async with hosting.devices.sessions() as session:
                row = await session.get(Device, device_id)
            assert row is not None
            return row.ha_entry_id

        async def in_home_assistant(device_id: str) -> bool:
            return await ha_entry_of(device_id) is not None

        async def pipeline_chosen(entry_id: str) -> bool:
            selects = [e for e in await entities_of(hass, entry_id) if e.startswith("select.")]
            states = [await hass.state(s) for s in selects]
            return any(s is not None and s["state"] == PIPELINE_NAME for s in states)

        async def our_pipelines() -> list[dict[str, Any]]:
            pipelines = await hass.ws({"type": "assist_pipeline/pipeline/list"})
            return [p for p in pipelines["pipelines"] if p["name"] == PIPELINE_NAME]

        async def wyoming_entries() -> list[str]:
            return [e["entry_id"] for e in await hass.rest("GET", "/api/config/config_entries/entry?domain=wyoming")]

        try:
            async with running_device(hosting, paired["token"], "Kitchen", wake, tmp_path) as (satellite, _, _):
                await eventually(lambda: in_home_assistant(device_id), within=60)
                (device,) = await hosting.list_devices(owner)
                assert device["in_home_assistant"] is True
                entry_id = await ha_entry_of(device_id)
                assert entry_id

                # HA now has the satellite, connected through the relay, on our pipeline in the owner's language.
                await eventually(lambda: satellite.connections == 1, within=20)
                await eventually(lambda: pipeline_chosen(entry_id), within=30)
                (pipeline,) = await our_pipelines()
                assert pipeline["language"] == "en"
                assert pipeline["conversation_engine"] == "conversation.home_assistant"
                assert pipeline["stt_engine"].startswith("stt.")
                assert pipeline["tts_engine"].startswith("tts.")

                # A second device of the owner joins the same pipeline (not a second one).
                hall = await hosting.pair(owner, "Hall")
                hall_id = hall["device"]["id"]
                async with running_device(hosting, hall["token"], "Hall", wake, tmp_path):
                    await eventually(lambda: in_home_assistant(hall_id), within=60)
                    hall_entry_id = await ha_entry_of(hall_id)
                    assert hall_entry_id
                    await eventually(lambda: pipeline_chosen(hall_entry_id), within=30)
                    assert [p["id"] for p in await our_pipelines()] == [pipeline["id"]]

                    # Revoking removes the device's satellite from the owner's HA; the pipeline stays for the Hall.
                    response = await hosting.client.delete(f"/api/devices/{device_id}", headers=owner.headers)
                    assert response.status == 204
                    assert entry_id not in await wyoming_entries()
                    assert hall_entry_id in await wyoming_entries()
                    assert [p["id"] for p in await our_pipelines()] == [pipeline["id"]]

                    # The last device's revocation takes the pipeline with it.
                    response = await hosting.client.delete(f"/api/devices/{hall_id}", headers=owner.headers)
                    assert response.status == 204
                    assert hall_entry_id not in await wyoming_entries()
                    assert await our_pipelines() == []
        finally:
            await stt.stop()
            await tts.stop()
