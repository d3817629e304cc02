"""Pairing, the device token file, rename/revoke, tenants kept apart, heartbeats and silent devices, metrics.

`micropi-edge pair` runs as a real child process against the real hosting service on loopback."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from micropi_edge import config, heartbeat

from tests.edge.device import run_cli
from tests.hosting.device_service import Hosting


async def test_pair_stores_token_owner_only_and_lists_device(hosting: Hosting, tmp_path: Path) -> None:
    owner = await hosting.sign_up()
    code = await hosting.pairing_code(owner, "Kitchen Pi")
    device_file = tmp_path / "etc" / "micropi-edge" / "device.json"

    rc, out, err = await run_cli("--config", str(device_file), "pair", code.lower(), "--server", hosting.url)
    assert rc == 0, err
    assert "Kitchen Pi" in out

    assert stat.S_IMODE(device_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(device_file.parent.stat().st_mode) == 0o700
    identity = config.load(device_file)
    assert identity.token.startswith("mpd_")
    assert identity.token not in out + err  # never printed
    assert identity.token not in repr(identity)

    devices = await hosting.list_devices(owner)
    assert [(d["id"], d["name"]) for d in devices] == [(identity.device_id, "Kitchen Pi")]
    assert devices[0]["relay"]["port"] > 0
    assert devices[0]["online"] is False  # paired, but not connected yet

    # The code is single-use: a second pairing with it fails with a clear message, and writes nothing.
    other_file = tmp_path / "second.json"
    rc, _, err = await run_cli("--config", str(other_file), "pair", code, "--server", hosting.url)
    assert rc == 2
    assert "wrong or has expired" in err
    assert not other_file.exists()


async def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.json"
    config.save(config.DeviceIdentity("http://x", "id", "name", "mpd_secret"), path)
    assert config.load(path).token == "mpd_secret"
    path.chmod(0o644)
    with pytest.raises(config.NotPaired, match="chmod 600"):
        config.load(path)
    with pytest.raises(config.NotPaired, match="not paired"):
        config.load(tmp_path / "missing.json")


@pytest.mark.parametrize("devices_config", [{"pairing_code_ttl": 0.2}])
async def test_wrong_and_expired_codes(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    response = await hosting.client.post("/api/devices/pair", json={"code": "AAAA-BBBB"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "invalid_pairing_code"

    code = await hosting.pairing_code(owner)
    await asyncio.sleep(0.3)
    response = await hosting.client.post("/api/devices/pair", json={"code": code})
    assert response.status == 404

    # Pairing codes need the owner's login.
    response = await hosting.client.post("/api/devices/pairing-codes", json={})
    assert response.status == 401


async def test_rename_revoke_and_tenants_apart(hosting: Hosting) -> None:
    alice, bob = await hosting.sign_up(), await hosting.sign_up()
    paired = await hosting.pair(alice, "Hall")
    device_id, token = paired["device"]["id"], paired["token"]

    # Bob sees nothing of Alice's device and cannot touch it (404, not 403: existence is not disclosed).
    assert await hosting.list_devices(bob) == []
    for method, body in (("PATCH", {"name": "mine"}), ("DELETE", None)):
        response = await hosting.client.request(method, f"/api/devices/{device_id}", json=body, headers=bob.headers)
        assert response.status == 404, method

    response = await hosting.client.patch(
        f"/api/devices/{device_id}", json={"name": "  Hall   Pi "}, headers=alice.headers
    )
    assert response.status == 200
    assert (await response.json())["name"] == "Hall Pi"
    response = await hosting.client.patch(f"/api/devices/{device_id}", json={"name": "   "}, headers=alice.headers)
    assert response.status == 422

    beat = await hosting.client.post("/api/devices/heartbeat", json={}, headers={"Authorization": f"Bearer {token}"})
    assert beat.status == 200

    response = await hosting.client.delete(f"/api/devices/{device_id}", headers=alice.headers)
    assert response.status == 204
    assert await hosting.list_devices(alice) == []
    beat = await hosting.client.post("/api/devices/heartbeat", json={}, headers={"Authorization": f"Bearer {token}"})
    assert beat.status == 401
    assert "pair the device again" in (await beat.json())["error"]["message"]
    assert hosting.devices.relay.port_of(device_id) is None  # its endpoint is closed


@pytest.fixture
def devices_config() -> dict[str, Any]:
    return {"device_silent_after": 1.0}


async def test_heartbeat_shows_online_and_silent_devices_are_flagged(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    paired = await hosting.pair(owner)
    device_id, token = paired["device"]["id"], paired["token"]

    import aiohttp

    async with aiohttp.ClientSession() as session:
        report = await heartbeat.collect(None)
        report["relay_rtt"] = 0.012
        await heartbeat.send(session, hosting.url, token, report)

    (device,) = await hosting.list_devices(owner)
    assert device["last_seen_at"] is not None
    assert device["silent"] is False
    assert device["heartbeat"]["version"] == report["version"]
    assert device["heartbeat"]["relay_rtt"] == 0.012
    assert device["heartbeat"]["uptime"] >= 0
    assert await hosting.devices.check_devices() == []

    metrics = await (await hosting.client.get("/metrics")).text()
    assert f'micropi_device_relay_rtt_seconds{{device_id="{device_id}"}} 0.012' in metrics

    # Silent for longer than `silent_after` (1 s here, 120 s in production): flagged once, shown, counted.
    await asyncio.sleep(1.3)
    assert await hosting.devices.check_devices() == [device_id]
    assert await hosting.devices.check_devices() == []  # not flagged twice
    (device,) = await hosting.list_devices(owner)
    assert device["silent"] is True
    metrics = await (await hosting.client.get("/metrics")).text()
    assert 'micropi_devices{state="silent"} 1.0' in metrics

    # Reporting again clears the flag.
    async with aiohttp.ClientSession() as session:
        await heartbeat.send(session, hosting.url, token, await heartbeat.collect(None))
    (device,) = await hosting.list_devices(owner)
    assert device["silent"] is False


async def test_heartbeat_rejects_bad_input_and_tokens(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    token = (await hosting.pair(owner))["token"]
    headers = {"Authorization": f"Bearer {token}"}
    response = await hosting.client.post("/api/devices/heartbeat", json={"uptime": "soon"}, headers=headers)
    assert response.status == 422
    response = await hosting.client.post("/api/devices/heartbeat", json={}, headers={"Authorization": "Bearer mpd_x"})
    assert response.status == 401
    # An owner's access token is not a device token.
    response = await hosting.client.post("/api/devices/heartbeat", json={}, headers=owner.headers)
    assert response.status == 401


async def test_audit_trail_holds_no_token(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    paired = await hosting.pair(owner)
    await hosting.client.delete(f"/api/devices/{paired['device']['id']}", headers=owner.headers)
    from sqlalchemy import select

    from hosting.db.models import AuditEvent

    async with hosting.devices.sessions() as session:
        events = (await session.scalars(select(AuditEvent))).all()
    actions = [e.action for e in events]
    assert "device_paired" in actions
    assert "device_revoked" in actions
    assert all(paired["token"] not in json.dumps([e.details, e.target]) for e in events)


async def test_guessing_codes_is_rate_limited(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    valid = await hosting.pairing_code(owner)
    for _ in range(20):
        response = await hosting.client.post("/api/devices/pair", json={"code": "WRONG-CODE"})
        assert response.status == 404
    # Over the limit even a right code is refused (else a guesser would learn which guess was right)...
    response = await hosting.client.post("/api/devices/pair", json={"code": valid})
    assert response.status == 429
    assert "Retry-After" in response.headers
    # ...and it is not spent: the owner's device pairs with it once the window has passed.
    assert await hosting.list_devices(owner) == []
