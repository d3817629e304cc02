"""The aiohttp application factory: `create_app(settings)`.

Start-up order (cleanup contexts, torn down in reverse): database (migrations to head), the runtime (one,
shared by the instance manager and the devices' endpoints), instance manager (which starts the
reconciliation loop), devices. On shutdown aiohttp first stops accepting connections and
lets in-flight requests finish (`Settings.shutdown_timeout`); every handler writes inside one
`session.begin()` block, so a request cut off by the timeout rolls back whole - no half-written rows.
Home Assistant instances (containers and `hass` processes alike) are LEFT RUNNING by design: a restart or
upgrade of this service must not take every user's home offline; the next start re-adopts them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from hosting import metrics
from hosting.db import create_engine, migrate, session_factory
from hosting.devices import DEVICES_KEY, DeviceService
from hosting.errors import REQUEST_ID_HEADER, REQUEST_ID_KEY, error_middleware, error_response
from hosting.instances import INSTANCE_MANAGER_KEY, InstanceManager
from hosting.keys import (
    ENGINE_KEY,
    LIMITERS_KEY,
    PASSWORDS_KEY,
    RUNTIME_KEY,
    SECRET_BOX_KEY,
    SESSIONS_KEY,
    SETTINGS_KEY,
    STARTED_AT_KEY,
)
from hosting.ratelimit import SlidingWindowLimiter
from hosting.routes import add_routes
from hosting.runtime.registry import create_runtime
from hosting.security import Passwords, SecretBox
from hosting.settings import Settings

_CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
_CORS_MAX_AGE = "600"


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[metrics_middleware, cors_middleware, error_middleware])
    app[SETTINGS_KEY] = settings
    app[STARTED_AT_KEY] = time.monotonic()
    # The engine connects lazily; creating it here lets every part take the session factory at set-up.
    engine = create_engine(settings.effective_database_url)
    app[ENGINE_KEY] = engine
    app[SESSIONS_KEY] = session_factory(engine)
    app[SECRET_BOX_KEY] = SecretBox(settings.fernet_key)
    app[PASSWORDS_KEY] = Passwords.from_settings(settings)
    window = settings.rate_limit_window
    app[LIMITERS_KEY] = {
        "login_ip": SlidingWindowLimiter(settings.login_limit_per_ip, window),
        "login_account": SlidingWindowLimiter(settings.login_limit_per_account, window),
        "signup_ip": SlidingWindowLimiter(settings.signup_limit_per_ip, window),
        "signup_account": SlidingWindowLimiter(settings.signup_limit_per_account, window),
    }
    app[RUNTIME_KEY] = create_runtime(settings)  # connects lazily, at its first call
    app[DEVICES_KEY] = DeviceService(app[SESSIONS_KEY], app[SECRET_BOX_KEY], settings, app[RUNTIME_KEY])
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(runtime_context)
    if settings.provisioning_enabled:
        app.cleanup_ctx.append(instance_manager_context)
    app.cleanup_ctx.append(app[DEVICES_KEY].context)  # after the database: it reopens stored endpoints
    add_routes(app)
    return app


async def database_context(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE_KEY]
    await migrate(engine)
    yield
    await engine.dispose()


async def runtime_context(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[RUNTIME_KEY].close()  # its client only: instances keep running


async def instance_manager_context(app: web.Application) -> AsyncIterator[None]:
    manager = InstanceManager.from_settings(app[SETTINGS_KEY], app[SESSIONS_KEY], app[SECRET_BOX_KEY], app[RUNTIME_KEY])
    app[INSTANCE_MANAGER_KEY] = manager
    await manager.open()  # reconciles once, then keeps a periodic reconciliation task
    yield
    await manager.close()  # stops background tasks; instances keep running


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        # The route template, never the raw path: ids in paths would make unbounded label sets.
        route = resource.canonical if resource is not None else "unmatched"
        metrics.REQUEST_SECONDS.labels(request.method, route, str(status)).observe(time.perf_counter() - started)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the origins in `Settings.cors_origins` only (the API uses bearer tokens, no cookies)."""
    origin = request.headers.get(hdrs.ORIGIN)
    allowed = origin is not None and origin.rstrip("/") in request.app[SETTINGS_KEY].cors_origins
    if request.method == hdrs.METH_OPTIONS and origin and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        if not allowed:
            request[REQUEST_ID_KEY] = uuid.uuid4().hex
            denied = error_response(
                request, 403, "cors_origin_denied", f"origin {origin} is not allowed; add it to MICROPI_CORS_ORIGINS"
            )
            denied.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
            return denied
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, PUT, PATCH, DELETE",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: _CORS_ALLOW_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: _CORS_MAX_AGE,
                hdrs.VARY: "Origin",
            },
        )
    response: web.StreamResponse = await handler(request)
    if response.prepared:  # streamed responses (downloads, WebSockets) sent their headers already
        return response
    if allowed and origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = f"{REQUEST_ID_HEADER}, Retry-After"
    response.headers.add(hdrs.VARY, "Origin")
    return response
