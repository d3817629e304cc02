"""The gateway inside the hosting service: `setup(app, ...)` adds it, its usage store and their start-up.

Where tenants reach it (`GatewaySettings.bind_host`):
- an address (default 127.0.0.1; the process runtime): one listener for every tenant, tokens tell them apart;
- "docker": a listener per instance where the runtime binds tenant-facing endpoints (`Runtime.tenant_endpoint`:
  the host's address on the instance's private network, as for the device relay), opened at start for every
  instance whose network exists and by `open_for` when provisioning makes a new one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting.db.models import Instance
from hosting.gateway.service import Gateway
from hosting.gateway.settings import GatewaySettings
from hosting.gateway.turns import TURNS_PATH, turns_handler
from hosting.gateway.usage import UsageStore
from hosting.runtime.base import Runtime
from hosting.settings import SettingsError

_LOGGER = logging.getLogger(__name__)

GATEWAY_KEY = web.AppKey("gateway", Gateway)
USAGE_KEY = web.AppKey("gateway_usage", UsageStore)
LOCAL = "local"
# GatewaySettings.bind_host value: a listener per tenant, where the runtime binds tenant-facing endpoints.
ON_TENANT_NETWORK = "docker"


class GatewayHost:
    """Opens and closes the gateway's listeners for the runtime in use; tells provisioning the URLs."""

    def __init__(
        self,
        gateway: Gateway,
        store: UsageStore,
        sessions: async_sessionmaker[AsyncSession],
        runtime: Runtime,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.sessions = sessions
        self.runtime = runtime
        self.per_instance = gateway.settings.bind_host == ON_TENANT_NETWORK
        self._hosts: dict[str, str] = {}
        # Set by provisioning: puts a rotated token into the instance's HA; True when it did.
        self.on_rotated: Callable[[Instance, str], Awaitable[bool]] | None = None

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        await self.gateway.start()
        for user_id, tokens in (await self.store.tokens_today()).items():
            self.gateway.meter.seed_tokens(user_id, tokens)
        settings = self.gateway.settings
        if self.per_instance:
            async with self.sessions() as session:
                instances = list(await session.scalars(select(Instance)))
            for instance in instances:
                try:
                    await self.open_for(instance)
                except Exception as err:  # noqa: BLE001  # its network may be gone; reconciliation re-creates it
                    _LOGGER.warning("gateway: no listener for %s yet: %s", instance.name, err)
        else:
            host = settings.bind_host
            try:
                port = await self.gateway.open_site(LOCAL, host, settings.port)
                await self.gateway.speech.open(LOCAL, host, {"stt": settings.stt_port, "tts": settings.tts_port})
            except OSError as err:
                await self.gateway.close()
                raise SettingsError(
                    f"the gateway cannot listen on {host} (MICROPI_GATEWAY_PORT={settings.port}, "
                    f"MICROPI_SPEECH_STT_PORT={settings.stt_port}, MICROPI_SPEECH_TTS_PORT={settings.tts_port}): "
                    f"{err.strerror}; free the port or choose another"
                ) from None
            self._hosts[LOCAL] = host
            _LOGGER.info("gateway: listening on %s:%d", host, port)
        yield
        await self.gateway.close()

    async def open_for(self, instance: Instance) -> None:
        """Make sure the instance's HA can reach the gateway (docker: a listener on its network)."""
        if not self.per_instance:
            return
        endpoint = await self.runtime.tenant_endpoint(instance.name)
        await self.gateway.open_tenant(instance.id, endpoint.bind_host, endpoint.allowed_network)
        self._hosts[instance.id] = endpoint.ha_host

    async def close_for(self, instance_id: str) -> None:
        if self.per_instance:
            await self.gateway.close_tenant(instance_id)
            self._hosts.pop(instance_id, None)

    def _key(self, instance_id: str) -> str:
        return instance_id if self.per_instance else LOCAL

    def url_for(self, instance_id: str) -> str:
        """The gateway's URL as the instance's HA dials it."""
        key = self._key(instance_id)
        return f"http://{self._hosts[key]}:{self.gateway.port_of(key)}"

    def speech_uris_for(self, instance_id: str) -> dict[str, str]:
        """tcp:// URIs of the instance's speech endpoints ("stt", "tts"), as its HA dials them."""
        key = self._key(instance_id)
        host = self._hosts.get(key)
        if host is None:
            return {}
        return {service: f"tcp://{host}:{port}" for service, port in self.gateway.speech.ports_of(key).items()}


GATEWAY_HOST_KEY = web.AppKey("gateway_host", GatewayHost)


def setup(
    app: web.Application,
    sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    settings: GatewaySettings,
) -> GatewayHost:
    """Adds the gateway to `app`; it starts after the database's cleanup context (add it after that)."""
    gateway = Gateway(settings, sessions)
    store = UsageStore(sessions, settings.conversation_retention_days)
    gateway.recorders.append(store.record)
    gateway.extra_routes.append(("POST", TURNS_PATH, turns_handler(store)))
    host = GatewayHost(gateway, store, sessions, runtime)
    app[GATEWAY_KEY] = gateway
    app[USAGE_KEY] = store
    app[GATEWAY_HOST_KEY] = host
    app.cleanup_ctx.append(store.context)
    app.cleanup_ctx.append(host.context)
    return host
