"""The route table: every endpoint of the service, in one list. `add_routes` registers them with aiohttp and
keeps the table in `app[ROUTES_KEY]`, where the OpenAPI handler (`/api/openapi.json`) reads it.

A new endpoint is an `Endpoint` in its area's `ENDPOINTS` list (`hosting.api.<area>`), added here;
tests/hosting/test_openapi.py checks that the router and the document agree.
"""

from __future__ import annotations

from aiohttp import web

from hosting import history
from hosting.api import accounts, devices, my_instance, operator, system, usage
from hosting.api.endpoint import ROUTES_KEY, Endpoint
from hosting.web import live

ENDPOINTS: list[Endpoint] = [
    *accounts.ENDPOINTS,
    *my_instance.ENDPOINTS,
    *operator.ENDPOINTS,
    *system.ENDPOINTS,
    *devices.ENDPOINTS,
    *usage.ENDPOINTS,
    *live.ENDPOINTS,
    *history.ENDPOINTS,
]


def add_routes(app: web.Application) -> None:
    app[ROUTES_KEY] = ENDPOINTS
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.aiohttp_handler(), name=endpoint.handler.__name__)
