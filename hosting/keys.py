"""The application's typed keys (`web.AppKey`), in one module so handlers and the factory share them.

`INSTANCE_MANAGER_KEY` lives with its class in `hosting.instances`, `DEVICES_KEY` in `hosting.devices`,
`ROUTES_KEY` in `hosting.api.endpoint`.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hosting.db.callers import CallerReader
from hosting.ratelimit import LoginThrottle, SlidingWindowLimiter
from hosting.runtime.base import Runtime
from hosting.security import Passwords, SecretBox
from hosting.settings import Settings

SETTINGS_KEY = web.AppKey("settings", Settings)
ENGINE_KEY = web.AppKey("engine", AsyncEngine)
SESSIONS_KEY = web.AppKey("sessions", async_sessionmaker[AsyncSession])
# The per-request read of the authenticated caller (hosting.db.callers); opened after the migrations.
CALLERS_KEY = web.AppKey("callers", CallerReader)
SECRET_BOX_KEY = web.AppKey("secret_box", SecretBox)
PASSWORDS_KEY = web.AppKey("passwords", Passwords)
# The one runtime of the application (hosting.runtime.registry), shared by instances and device endpoints.
RUNTIME_KEY = web.AppKey("runtime", Runtime)
# Monotonic time the application started, for /health's uptime.
STARTED_AT_KEY = web.AppKey("started_at", float)
LIMITERS_KEY = web.AppKey("rate_limiters", dict[str, SlidingWindowLimiter])
LOGIN_THROTTLE_KEY = web.AppKey("login_throttle", LoginThrottle)
