"""/health (no auth) and Prometheus /metrics."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hosting.settings import Settings
from tests.hosting.conftest import PostgresServer, start_client
from tests.hosting.helpers import bearer, settled_instance, sign_up

Client = TestClient[Any, Any]


async def test_health(client: Client) -> None:
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["detail"] in ("sqlite", "postgresql")
    assert body["runtime"] == {"ok": True, "detail": "provisioning disabled"}
    assert body["version"] == "0.1.0"
    assert 0 <= body["uptime_seconds"] < 600


async def test_health_reports_the_runtime(instance_client: Client) -> None:
    body = await (await instance_client.get("/health")).json()
    assert body["runtime"]["ok"] is True
    assert body["runtime"]["detail"].startswith("process:")


@pytest.mark.postgres
async def test_health_and_requests_when_the_database_is_gone(
    postgres_server: PostgresServer, settings: Settings
) -> None:
    """A database that disappears under a running service: /health says 503 and why, requests get a 503 in
    the error shape (not a 500)."""
    name = "t_vanishing"
    await postgres_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await postgres_server.admin(f'CREATE DATABASE "{name}"')
    client = await start_client(dataclasses.replace(settings, database_url=postgres_server.url(name)))
    try:
        signed = await sign_up(client, "before@example.com")
        await postgres_server.admin(f'DROP DATABASE "{name}" WITH (FORCE)')
        health = await client.get("/health")
        body = await health.json()
        assert health.status == 503
        assert body["status"] == "degraded"
        assert body["database"]["ok"] is False
        me = await client.get("/api/me", headers=bearer(signed["tokens"]["access_token"]))
        assert me.status == 503
        assert (await me.json())["error"]["code"] == "database_unavailable"
    finally:
        await client.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics(instance_client: Client) -> None:
    client = instance_client
    signed = await sign_up(client, "metrics@example.com")
    await settled_instance(client, signed["tokens"]["access_token"])  # ends in error (hass is /bin/false)
    for _ in range(3):
        await client.get("/api/me", headers=bearer(signed["tokens"]["access_token"]))
    await client.get("/api/operator/instances/some-id/backup")

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert sample(text, "micropi_http_request_duration_seconds_count", method="GET", route="/api/me", status="200") >= 3
    # Templates, never raw ids, as route labels.
    assert "some-id" not in text
    assert (
        sample(
            text,
            "micropi_http_request_duration_seconds_count",
            route="/api/operator/instances/{instance_id}/backup",
            status="401",
        )
        >= 1
    )
    assert sample(text, "micropi_instances", status="error") == 1
    assert sample(text, "micropi_instances", status="ready") == 0
    assert sample(text, "micropi_free_ports") == 9  # a pool of 10, one taken
    assert sample(text, "micropi_provisioning_failures_total", runtime="process") >= 1
    assert "# TYPE micropi_provisioning_duration_seconds histogram" in text
