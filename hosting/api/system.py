"""Unauthenticated service endpoints: /health, /metrics (Prometheus) and the OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from hosting import metrics
from hosting.api.endpoint import ROUTES_KEY, Call, Endpoint, Reply
from hosting.db.models import INSTANCE_STATUSES, Instance
from hosting.instances import INSTANCE_MANAGER_KEY
from hosting.keys import ENGINE_KEY, STARTED_AT_KEY
from hosting.openapi import build_document
from hosting.ports import free_port_count, port_pool

HEALTH_TIMEOUT = 3.0


def service_version() -> str:
    try:
        return version("micropi")
    except PackageNotFoundError:
        return "0.0.0+unknown"


async def _database_check(call: Call) -> dict[str, Any]:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT), call.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001  # any failure means "unreachable"; the kind is the detail
        return {"ok": False, "detail": f"unreachable: {type(err).__name__}"}
    return {"ok": True, "detail": call.app[ENGINE_KEY].dialect.name}


async def _runtime_check(call: Call) -> dict[str, Any]:
    manager = call.app.get(INSTANCE_MANAGER_KEY)
    if manager is None:
        return {"ok": True, "detail": "provisioning disabled"}
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            detail = await manager.runtime_check()
    except Exception as err:  # noqa: BLE001
        return {"ok": False, "detail": f"unreachable: {err}"}
    return {"ok": True, "detail": detail}


async def health(call: Call) -> web.Response:
    database, runtime = await asyncio.gather(_database_check(call), _runtime_check(call))
    ok = database["ok"] and runtime["ok"]
    body = {
        "status": "ok" if ok else "degraded",
        "version": service_version(),
        "database": database,
        "runtime": runtime,
        "uptime_seconds": round(time.monotonic() - call.app[STARTED_AT_KEY], 3),
    }
    # 503 lets load balancers and compose health checks act on it; the body says what is wrong.
    return web.json_response(body, status=200 if ok else 503)


async def prometheus_metrics(call: Call) -> web.Response:
    # Gauges that describe the database's state are read from it at scrape time.
    async with call.sessions() as session:
        rows = (await session.execute(select(Instance.status, func.count()).group_by(Instance.status))).all()
        counts: dict[str, int] = {status: count for status, count in rows}
    metrics.FREE_PORTS.set(await free_port_count(call.sessions, port_pool(call.settings.port_range)))
    for status in INSTANCE_STATUSES:
        metrics.INSTANCES.labels(status).set(counts.get(status, 0))
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_document(call: Call) -> web.Response:
    routes: list[Endpoint] = call.app[ROUTES_KEY]
    return web.json_response(build_document(routes, service_version()))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/health",
        health,
        "Liveness and readiness: database and runtime reachable, version, uptime",
        "service",
        auth="public",
        responses={200: Reply("healthy", "Health"), 503: Reply("degraded; the body says what", "Health")},
    ),
    Endpoint(
        "GET",
        "/metrics",
        prometheus_metrics,
        "Prometheus metrics (keep this port internal)",
        "service",
        auth="public",
        responses={200: Reply("metrics in Prometheus' text format", content_type="text/plain")},
    ),
    Endpoint(
        "GET",
        "/api/openapi.json",
        openapi_document,
        "This API's OpenAPI 3.1 document",
        "service",
        auth="public",
        responses={200: Reply("the document")},
    ),
]
