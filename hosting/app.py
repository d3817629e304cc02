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
from collections.abc import AsyncIterator

from aiohttp import web

from hosting import web as web_app
from hosting.db import create_engine, migrate, session_factory
from hosting.db.callers import open_caller_reader
from hosting.devices import DEVICES_KEY, DeviceService
from hosting.events import EVENTS_KEY, EventBus
from hosting.gateway.settings import GatewaySettings
from hosting.gateway.setup import GATEWAY_HOST_KEY, USAGE_KEY
from hosting.gateway.setup import setup as setup_gateway
from hosting.history import HISTORY_KEY, MetricsHistory
from hosting.instances import INSTANCE_MANAGER_KEY, InstanceManager
from hosting.keys import (
    CALLERS_KEY,
    ENGINE_KEY,
    LIMITERS_KEY,
    LOGIN_THROTTLE_KEY,
    PASSWORDS_KEY,
    RUNTIME_KEY,
    SECRET_BOX_KEY,
    SESSIONS_KEY,
    SETTINGS_KEY,
    STARTED_AT_KEY,
)
from hosting.middleware import quiet_protocol_errors, request_middleware
from hosting.ratelimit import LoginThrottle, SlidingWindowLimiter
from hosting.routes import add_routes
from hosting.runtime.registry import create_runtime
from hosting.security import Passwords, SecretBox
from hosting.settings import Settings


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[request_middleware])
    quiet_protocol_errors()
    app[SETTINGS_KEY] = settings
    app[STARTED_AT_KEY] = time.monotonic()
    # The engine connects lazily; creating it here lets every part take the session factory at set-up.
    engine = create_engine(settings.effective_database_url)
    app[ENGINE_KEY] = engine
    app[SESSIONS_KEY] = session_factory(engine)
    app[SECRET_BOX_KEY] = SecretBox(settings.fernet_key)
    app[PASSWORDS_KEY] = Passwords.from_settings(settings)
    window = settings.rate_limit_window
    app[LOGIN_THROTTLE_KEY] = LoginThrottle(
        settings.login_limit_per_ip, settings.login_limit_per_account, settings.login_limit_per_account_unknown, window
    )
    app[LIMITERS_KEY] = {
        "signup_ip": SlidingWindowLimiter(settings.signup_limit_per_ip, window),
        "signup_account": SlidingWindowLimiter(settings.signup_limit_per_account, window),
    }
    app[RUNTIME_KEY] = create_runtime(settings)  # connects lazily, at its first call
    app[EVENTS_KEY] = EventBus()
    app.on_shutdown.append(close_event_streams)
    app[HISTORY_KEY] = MetricsHistory(app[SESSIONS_KEY], app[EVENTS_KEY], settings.history_interval)
    app[DEVICES_KEY] = DeviceService(app[SESSIONS_KEY], app[SECRET_BOX_KEY], settings, app[RUNTIME_KEY])
    app[DEVICES_KEY].events = app[EVENTS_KEY]
    app[HISTORY_KEY].gauges.append(app[DEVICES_KEY].online_count)
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(runtime_context)
    app.cleanup_ctx.append(app[HISTORY_KEY].context)
    # After the database (tokens live there), before the instances (provisioning gives them its URL).
    gateway_settings = GatewaySettings.from_env(
        default_url=settings.ollama_url, default_model=settings.ollama_model, default_api_key=settings.ollama_api_key
    )
    gateway_host = setup_gateway(app, app[SESSIONS_KEY], app[RUNTIME_KEY], gateway_settings)
    app[DEVICES_KEY].speech_uris = gateway_host.speech_uris_for
    app[USAGE_KEY].events = app[EVENTS_KEY]
    if settings.provisioning_enabled:
        app.cleanup_ctx.append(instance_manager_context)
    app.cleanup_ctx.append(app[DEVICES_KEY].context)  # after the database: it reopens stored endpoints
    add_routes(app)
    web_app.setup(app)
    return app


async def database_context(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE_KEY]
    await migrate(engine)
    app[CALLERS_KEY] = await open_caller_reader(engine)
    yield
    await app[CALLERS_KEY].close()
    await engine.dispose()


async def runtime_context(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[RUNTIME_KEY].close()  # its client only: instances keep running


async def instance_manager_context(app: web.Application) -> AsyncIterator[None]:
    manager = InstanceManager.from_settings(
        app[SETTINGS_KEY], app[SESSIONS_KEY], app[SECRET_BOX_KEY], app[RUNTIME_KEY], app[GATEWAY_HOST_KEY]
    )
    manager.events = app[EVENTS_KEY]
    app[INSTANCE_MANAGER_KEY] = manager
    await manager.open()  # reconciles once, then keeps a periodic reconciliation task
    yield
    await manager.close()  # stops background tasks; instances keep running


async def close_event_streams(app: web.Application) -> None:
    """Live-update streams never end on their own: end them so shutdown does not wait for them."""
    app[EVENTS_KEY].close()
