"""Shared device resources no household can exhaust: open pairing codes and devices per account, relay
ports back to the pool on revocation, no phantom device when the pool is empty; telemetry that must be
finite and sane; device input that is no text; the device routes' Allow headers."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from hosting.settings import Settings
from tests.hosting.conftest import free_port_range
from tests.hosting.device_service import Hosting, running_hosting
from tests.hosting.helpers import assert_error


@pytest.fixture
def devices_config() -> dict[str, Any]:
    return {"max_open_pairing_codes": 3, "max_devices_per_account": 2}


async def test_open_pairing_codes_are_capped_per_account(hosting: Hosting) -> None:
    alice, bob = await hosting.sign_up(), await hosting.sign_up()
    codes = [await hosting.pairing_code(alice) for _ in range(3)]
    refused = await hosting.client.post("/api/devices/pairing-codes", json={}, headers=alice.headers)
    assert refused.status == 429
    assert_error(await refused.json(), "too_many_pairing_codes")
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    # Bob is not affected by Alice's codes; and a used code makes room for a new one.
    await hosting.pairing_code(bob)
    paired = await hosting.client.post("/api/devices/pair", json={"code": codes[0]})
    assert paired.status == 201
    await hosting.pairing_code(alice)


async def test_devices_are_capped_per_account(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    first = await hosting.pair(owner)
    await hosting.pair(owner)
    refused = await hosting.client.post("/api/devices/pairing-codes", json={}, headers=owner.headers)
    assert refused.status == 409
    assert "revoke one" in (await refused.json())["error"]["message"]
    # A code made before the cap was reached does not get past it either.
    await hosting.client.delete(f"/api/devices/{first['device']['id']}", headers=owner.headers)
    code = await hosting.pairing_code(owner)
    await hosting.pair(owner)
    late = await hosting.client.post("/api/devices/pair", json={"code": code})
    assert late.status == 409
    assert len(await hosting.list_devices(owner)) == 2


async def test_revoked_devices_free_their_relay_port(hosting_settings: Settings) -> None:
    low, high = free_port_range(2)
    settings = dataclasses.replace(hosting_settings, relay_ports=(low, high), max_devices_per_account=10)
    async with running_hosting(settings) as hosting:
        alice, bob = await hosting.sign_up(), await hosting.sign_up()
        # Pair and revoke far more often than the pool is large: the ports come back each time.
        for _ in range(5):
            paired = await hosting.pair(alice)
            assert low <= paired["device"]["relay"]["port"] <= high
            response = await hosting.client.delete(f"/api/devices/{paired['device']['id']}", headers=alice.headers)
            assert response.status == 204
        await hosting.pair(alice)
        await hosting.pair(bob)
        # The pool is empty now: a 503 that says so, no phantom device, and the code stays good.
        code = await hosting.pairing_code(bob)
        full = await hosting.client.post("/api/devices/pair", json={"code": code})
        assert full.status == 503
        assert_error(await full.json(), "relay_ports_exhausted")
        assert len(await hosting.list_devices(bob)) == 1
        (alices,) = await hosting.list_devices(alice)
        await hosting.client.delete(f"/api/devices/{alices['id']}", headers=alice.headers)
        retried = await hosting.client.post("/api/devices/pair", json={"code": code})
        assert retried.status == 201, await retried.text()


async def test_heartbeats_must_be_finite_and_sane(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    token = (await hosting.pair(owner))["token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in (b'{"cpu_temperature": NaN}', b'{"load": Infinity}', b'{"uptime": -Infinity}'):
        response = await hosting.client.post("/api/devices/heartbeat", data=body, headers=headers)
        assert response.status == 400, body
        assert "finite number" in (await response.json())["error"]["message"]
    for report in ({"cpu_temperature": 1e308}, {"load": -1}, {"relay_rtt": 1e9}, {"uptime": "12"}, {"load": True}):
        response = await hosting.client.post("/api/devices/heartbeat", json=report, headers=headers)
        assert response.status == 422, report
    good = {"cpu_temperature": 48.5, "load": 0.3, "uptime": 12, "relay_rtt": 0.01}
    assert (await hosting.client.post("/api/devices/heartbeat", json=good, headers=headers)).status == 200
    # What the owner and Prometheus read back is valid JSON and finite.
    listing = await hosting.client.get("/api/devices", headers=owner.headers)
    (device,) = (await listing.json(loads=_strict_json))["devices"]
    assert device["heartbeat"]["cpu_temperature"] == 48.5
    metrics = await (await hosting.client.get("/metrics")).text()
    gauges = [line for line in metrics.splitlines() if line.startswith("micropi_device_")]
    assert gauges
    assert all(math.isfinite(float(line.rpartition(" ")[2])) for line in gauges), gauges


def _strict_json(text: str) -> Any:
    import json

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a response")

    value = json.loads(text, parse_constant=refuse)
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(value))
    return value


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


async def test_device_input_that_is_no_text(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    headers = {**owner.headers, "Content-Type": "application/json"}
    surrogate = await hosting.client.post("/api/devices/pairing-codes", data=b'{"name": "Pi \\ud800"}', headers=headers)
    assert surrogate.status == 400
    assert "surrogate" in (await surrogate.json())["error"]["message"]
    nul = await hosting.client.post("/api/devices/pairing-codes", json={"name": "Pi\u0000"}, headers=owner.headers)
    assert nul.status == 422
    code = await hosting.pairing_code(owner)
    pair = await hosting.client.post(
        "/api/devices/pair",
        data=b'{"code": "%s", "name": "\\udfff"}' % code.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert pair.status == 400
    # The raw bytes of a device token that is no ASCII: a 401, as any wrong token.
    beat = await hosting.client.post("/api/devices/heartbeat", json={}, headers={"Authorization": "Bearer mpd_ž"})
    assert beat.status == 401
    device = await hosting.pair(owner)
    rename = await hosting.client.patch(
        f"/api/devices/{device['device']['id']}", data=b'{"name": "\\ud83d"}', headers=headers
    )
    assert rename.status == 400


async def test_device_routes_offer_only_their_own_methods(hosting: Hosting) -> None:
    owner = await hosting.sign_up()
    for path, allowed in (
        ("/api/devices/heartbeat", {"POST"}),
        ("/api/devices/pair", {"POST"}),
        ("/api/devices/pairing-codes", {"POST"}),
        ("/api/devices/relay", {"GET"}),
        ("/api/devices/0b8a7a3c-6a0e-4d8e-9a57-2f0d6b9f4c11", {"PATCH", "DELETE"}),
    ):
        response = await hosting.client.put(path, json={}, headers=owner.headers)
        assert response.status == 405, path
        assert set(response.headers["Allow"].split(",")) == allowed, path
    not_an_id = await hosting.client.delete("/api/devices/not-a-uuid", headers=owner.headers)
    assert not_an_id.status == 404
