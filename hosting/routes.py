"""The route table: it registers the aiohttp routes and writes the OpenAPI document (`/api/openapi.json`).

A new endpoint is an `Endpoint` in its area's `ENDPOINTS` list, added here. The device endpoints register
themselves in `hosting.devices.setup` (with the device service they need) and are documented from here;
tests/hosting/test_openapi.py checks that the router and the document agree.
"""

from __future__ import annotations

from aiohttp import web

from hosting import devices
from hosting.api import accounts, my_instance, operator, system
from hosting.api.endpoint import Endpoint

CORE_ENDPOINTS: list[Endpoint] = [*accounts.ENDPOINTS, *my_instance.ENDPOINTS, *operator.ENDPOINTS, *system.ENDPOINTS]
ENDPOINTS: list[Endpoint] = [*CORE_ENDPOINTS, *devices.ENDPOINTS]


def add_routes(app: web.Application) -> None:
    for endpoint in CORE_ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.aiohttp_handler(), name=endpoint.handler.__name__)
