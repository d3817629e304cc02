"""The event bus fanned out as server-sent events (`GET /api/events`), and the metrics history at its
downsampled resolutions (`GET /api/operator/history`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from hosting import events
from hosting.events import EVENTS_KEY
from hosting.history import HISTORY_KEY, RESOLUTIONS
from tests.hosting.helpers import bearer, make_operator, sign_up


async def next_event(response: ClientResponse, within: float = 5.0) -> tuple[str, dict[str, Any]]:
    """The next `event:`/`data:` block of the stream (pings skipped)."""
    kind, data = "message", ""
    async with asyncio.timeout(within):
        while True:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data += line.partition(":")[2].strip()
            elif line == "" and data:
                return kind, json.loads(data)


async def test_events_reach_their_household_and_operators_only(client: TestClient[Any, Any]) -> None:
    alice = (await sign_up(client, "alice@example.com"))["tokens"]["access_token"]
    bob = (await sign_up(client, "bob@example.com"))["tokens"]["access_token"]
    operator = (await make_operator(client, "ops@example.com"))["access_token"]
    bus = client.app[EVENTS_KEY]
    streams = {name: await client.get("/api/events", headers=bearer(token)) for name, token in
               (("alice", alice), ("bob", bob), ("operator", operator))}  # fmt: skip
    for response in streams.values():
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert (await next_event(response))[0] == "hello"
    assert bus.subscribers == 4  # one per stream and the metrics history's, all on the one bus

    # A real change: Alice renames her device; only she and the operators hear of it.
    asked = await client.post("/api/devices/pairing-codes", json={"name": "Hall"}, headers=bearer(alice))
    code = await asked.json()
    paired = await (await client.post("/api/devices/pair", json={"code": code["code"]})).json()
    for name in ("alice", "operator"):
        kind, data = await next_event(streams[name])
        assert (kind, data["action"], data["device"]["name"]) == ("device", "paired", "Hall")
    device_id = paired["device"]["id"]
    await client.patch(f"/api/devices/{device_id}", json={"name": "<b>Hall</b>"}, headers=bearer(alice))
    kind, data = await next_event(streams["alice"])
    assert (kind, data["action"], data["device"]["name"]) == ("device", "renamed", "<b>Hall</b>")
    # Bob's stream got nothing of it: the next thing on it is what the bus sends Bob himself.
    bus.publish(events.INSTANCE, {"for": "bob"}, user_id=await user_id(client, bob))
    assert await next_event(streams["bob"]) == ("instance", {"for": "bob", "at": await_any()})

    # Shutting down ends every stream (nothing keeps the service from stopping).
    bus.close()
    for response in streams.values():
        async with asyncio.timeout(5):
            await response.read()
    assert bus.subscribers == 0  # the history's listener too


class await_any:  # compares equal to any number: the event's timestamp
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float)

    __hash__ = object.__hash__


async def user_id(client: TestClient[Any, Any], token: str) -> str:
    me: dict[str, Any] = await (await client.get("/api/me", headers=bearer(token))).json()
    return str(me["id"])


async def test_events_need_a_login_and_a_slow_subscriber_is_dropped(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/events")).status == 401
    bus = client.app[EVENTS_KEY]
    async with bus.subscribe("someone") as slow:
        for n in range(events.QUEUE_SIZE + 5):
            bus.publish(events.DEVICE, {"n": n}, user_id="someone")
        assert slow.dropped and bus.subscribers == 0
        received = []
        while (event := await slow.next()) is not None:
            received.append(event)
        assert len(received) < events.QUEUE_SIZE + 5  # it ends instead of blocking the publisher


async def test_history_downsamples_keeps_and_serves(client: TestClient[Any, Any]) -> None:
    history = client.app[HISTORY_KEY]
    now = datetime.now(UTC).replace(second=10, microsecond=0)
    # Two gauge samples and two counter samples within one minute, one more a minute later.
    await history.write({"instances.ready": [2.0, 1], "signups": [1.0, 1]}, now)
    await history.write({"instances.ready": [4.0, 1], "signups": [2.0, 1]}, now + timedelta(seconds=20))
    await history.write({"instances.ready": [6.0, 1]}, now + timedelta(seconds=70))
    per_minute = await history.read(["instances.ready", "signups"], "24h")
    assert per_minute["resolution_seconds"] == 60
    assert [v for _, v in per_minute["series"]["instances.ready"]] == [3.0, 6.0]  # gauges: the average
    assert [v for _, v in per_minute["series"]["signups"]] == [3.0]  # counters: the sum
    raw = await history.read(["instances.ready"], "1h")
    assert [v for _, v in raw["series"]["instances.ready"]] == [2.0, 4.0, 6.0]

    # Past its retention a bucket goes (each resolution keeps its own span), at the next write.
    long_ago = now - timedelta(days=40)
    await history.write({"devices.online": [1.0, 1]}, long_ago)
    await history.write({}, now)
    kept = {r.range: await history.read(["devices.online"], r.range) for r in RESOLUTIONS}
    assert [len(kept[r]["series"]["devices.online"]) for r in ("1h", "24h", "7d", "30d", "1y")] == [0, 0, 0, 0, 1]

    # Served to operators only, with a clear 422 for an unknown series or range.
    operator = (await make_operator(client, "ops@example.com"))["access_token"]
    household = (await sign_up(client, "home@example.com"))["tokens"]["access_token"]
    response = await client.get("/api/operator/history?range=24h&series=signups", headers=bearer(operator))
    assert response.status == 200
    assert (await response.json())["series"]["signups"][0][1] == 3.0
    assert (await client.get("/api/operator/history", headers=bearer(household))).status == 403
    for query in ("range=2h", "series=passwords"):
        response = await client.get(f"/api/operator/history?{query}", headers=bearer(operator))
        assert response.status == 422, query
        assert "range" in (body := await response.json())["error"]["message"] or "series" in body["error"]["message"]


async def test_signups_are_counted_from_the_bus(client: TestClient[Any, Any]) -> None:
    history = client.app[HISTORY_KEY]
    await sign_up(client, "one@example.com")
    await sign_up(client, "two@example.com")
    await asyncio.sleep(0.1)  # the history's listener takes them off the bus
    await history.sample()
    raw = await history.read(["signups", "instances.ready"], "1h")
    assert sum(v for _, v in raw["series"]["signups"]) == 2.0
    assert raw["series"]["instances.ready"]  # gauges are sampled too (zero instances here)
