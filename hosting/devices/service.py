"""`DeviceService`: everything about paired devices, one per application (`app[DEVICES_KEY]`): life cycle,
pairing, device authentication, the owner's operations, heartbeats and monitoring, each device's relay
endpoint and its provisioning into the owner's HA."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting import audit, events, metrics
from hosting.db.models import Device, Instance
from hosting.devices.pairing import PairingCodes
from hosting.devices.voice_pipeline import add_satellite, configure_voice_pipeline, remove_voice_pipeline
from hosting.errors import ApiError
from hosting.ha_client import HomeAssistantClient, HomeAssistantError
from hosting.relay import DeviceRelay
from hosting.runtime.base import InstanceSpec, Runtime, RuntimeFailure, TenantEndpoint
from hosting.security import SecretBox, hash_token
from hosting.settings import Settings

_LOGGER = logging.getLogger(__name__)

DEVICE_TOKEN_PREFIX = "mpd_"  # noqa: S105  # recognisable in leak scanners, not a secret itself
# Settings.relay_bind_host value: device endpoints go where the runtime binds tenant-facing endpoints.
ON_TENANT_NETWORK = "docker"


@dataclass
class Heartbeat:
    """The latest report of a device (kept in memory; `last_seen_at` is also stored)."""

    received_at: float
    version: str = ""
    uptime: float | None = None
    cpu_temperature: float | None = None
    load: float | None = None
    relay_rtt: float | None = None


class DeviceService:
    """Everything about devices; one per application (`app[DEVICES_KEY]`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret_box: SecretBox | None,
        settings: Settings,
        runtime: Runtime,
    ) -> None:
        self.sessions = sessions
        self.secret_box = secret_box
        self.settings = settings
        self.runtime = runtime  # where tenant-facing endpoints go (ON_TENANT_NETWORK)
        self.relay = DeviceRelay()
        self.codes = PairingCodes(settings.pairing_code_ttl, settings.max_open_pairing_codes)
        self.heartbeats: dict[str, Heartbeat] = {}
        self.flagged_silent: set[str] = set()
        self._provisioning: dict[str, asyncio.Task[None]] = {}
        self._placements: dict[str, TenantEndpoint] = {}
        # Per owner, held while their HA is changed for a device: two devices pairing at once must not both
        # create the shared pipeline, and a revocation must not remove it under a device being added.
        self._owner_ha_locks: dict[str, asyncio.Lock] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        # The owner's speech endpoints by instance id (set by the app from hosting.gateway; None: settings').
        self.speech_uris: Callable[[str], Mapping[str, str]] | None = None
        self.events: events.EventBus | None = None  # told of devices coming and going (hosting.events)
        self._owners: dict[str, str] = {}  # device id -> owner id, for the events of connected devices
        self.relay.on_presence = self._presence

    # --- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reopen the relay endpoint of every paired device, at its stored port, and start monitoring."""
        async with self.sessions() as session:
            devices = (await session.scalars(select(Device).where(Device.revoked_at.is_(None)))).all()
        for device in devices:
            if device.relay_port is not None:
                try:
                    await self._open_endpoint(device, device.relay_port)
                except (OSError, ApiError) as err:
                    _LOGGER.error(
                        "device %s: relay endpoint on port %s unavailable: %s", device.id, device.relay_port, err
                    )
        self._monitor = asyncio.create_task(self._monitor_loop(), name="micropi device monitor")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for task in list(self._provisioning.values()):
            task.cancel()
        await asyncio.gather(*self._provisioning.values(), return_exceptions=True)
        await self.relay.close()

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context."""
        await self.start()
        yield
        await self.stop()

    # --- pairing ---------------------------------------------------------------------------------

    async def create_pairing_code(self, user_id: str, name: str) -> tuple[str, float]:
        async with self.sessions() as session:
            await self._check_device_cap(session, user_id)
        return self.codes.create(user_id, name)

    async def _check_device_cap(self, session: AsyncSession, user_id: str) -> None:
        count = await session.scalar(
            select(func.count()).select_from(Device).where(Device.user_id == user_id, Device.revoked_at.is_(None))
        )
        if (count or 0) >= self.settings.max_devices_per_account:
            raise ApiError(
                409,
                "too_many_devices",
                f"this account has {count} devices, the most it may have; revoke one before pairing another",
            )

    async def pair(self, code: str, name: str | None, ip: str) -> tuple[Device, str]:
        """Exchanges a pairing code for a new device and its token (returned once, never stored)."""
        pending = self.codes.redeem(code, ip)
        token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.sessions() as session, session.begin():
            await self._check_device_cap(session, pending.user_id)
            device = Device(user_id=pending.user_id, name=(name or pending.name)[:128], token_hash=hash_token(token))
            session.add(device)
            audit.record(session, "device_paired", actor_user_id=pending.user_id, target=device.name, ip=ip)
        try:
            await self._allocate_endpoint(device)
        except ApiError:
            # No endpoint, no device: leave no phantom row behind, and the owner's code works again later.
            async with self.sessions() as session, session.begin():
                await session.execute(delete(Device).where(Device.id == device.id))
            self.codes.give_back(code, pending)
            raise
        self.publish(device, "paired")
        return device, token

    async def _allocate_endpoint(self, device: Device) -> None:
        """Binds the device's relay endpoint on a free port and stores it (UNIQUE keeps two devices apart)."""
        settings = self.settings
        candidates: list[int] = [0]
        if settings.relay_ports is not None:
            low, high = settings.relay_ports
            async with self.sessions() as session:
                taken = set(
                    (await session.scalars(select(Device.relay_port).where(Device.relay_port.is_not(None)))).all()
                )
            candidates = [p for p in range(low, high + 1) if p not in taken]
        for candidate in candidates:
            try:
                port = await self._open_endpoint(device, candidate)
            except OSError:
                continue  # something else listens there
            try:
                async with self.sessions() as session, session.begin():
                    row = await session.get(Device, device.id)
                    assert row is not None
                    row.relay_port = port
                device.relay_port = port
                return
            except IntegrityError:
                await self.relay.close_device(device.id, code=1001)  # another device got it first
        raise ApiError(503, "relay_ports_exhausted", "no relay port is free; an operator must widen the port range")

    async def _open_endpoint(self, device: Device, port: int) -> int:
        placement = await self._placement(device.user_id)
        self._placements[device.id] = placement
        return await self.relay.open_endpoint(device.id, placement.bind_host, port, placement.allowed_network)

    async def _placement(self, user_id: str) -> TenantEndpoint:
        """Where the owner's device endpoints listen, and which peers may use them."""
        if self.settings.relay_bind_host != ON_TENANT_NETWORK:
            return TenantEndpoint(self.settings.relay_bind_host, self.settings.relay_ha_host)
        async with self.sessions() as session:
            instance = await session.scalar(select(Instance).where(Instance.user_id == user_id))
        if instance is None:
            raise ApiError(
                409, "home_assistant_not_ready", "your Home Assistant does not exist yet; pair the device once it does"
            )
        try:
            return await self.runtime.tenant_endpoint(instance.name)
        except RuntimeFailure as err:
            raise ApiError(503, "runtime_unavailable", f"the owner's HA network cannot be looked up: {err}") from None

    # --- device authentication --------------------------------------------------------------------

    async def authenticate_device(self, request: web.Request) -> Device:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(DEVICE_TOKEN_PREFIX) or not token.isascii():
            raise ApiError(401, "unauthorized", "send `Authorization: Bearer <device token>` (from pairing)")
        token_hash = hash_token(token.strip())
        async with self.sessions() as session:
            device = await session.scalar(select(Device).where(Device.token_hash == token_hash))
        if device is None or not hmac.compare_digest(device.token_hash, token_hash) or device.revoked_at is not None:
            raise ApiError(401, "device_revoked", "this device token is not valid (revoked?); pair the device again")
        return device

    # --- the owner's operations ---------------------------------------------------------------------

    async def owned_device(self, session: AsyncSession, user_id: str, device_id: str) -> Device:
        device = await session.get(Device, device_id)
        # Another user's device is "not found", never "forbidden": its existence is not disclosed.
        if device is None or device.user_id != user_id or device.revoked_at is not None:
            raise ApiError(404, "device_not_found", "no such device in your account; list them at GET /api/devices")
        return device

    async def revoke(self, user_id: str, device_id: str, ip: str) -> None:
        async with self.sessions() as session, session.begin():
            device = await self.owned_device(session, user_id, device_id)
            device.revoked_at = datetime.now(UTC)
            device.relay_port = None  # back to the pool: a revoked device never connects again
            audit.record(session, "device_revoked", actor_user_id=user_id, target=device.id, ip=ip)
        if (task := self._provisioning.pop(device_id, None)) is not None:
            task.cancel()
        self.publish(device, "revoked")
        # At once: the endpoint, every HA connection through it and every device WebSocket are closed.
        await self.relay.close_device(device_id)
        self.heartbeats.pop(device_id, None)
        self.flagged_silent.discard(device_id)
        for gauge in metrics.PER_DEVICE_GAUGES:
            with contextlib.suppress(KeyError):
                gauge.remove(device_id)
        if device.ha_entry_id:
            try:
                async with self._owner_ha_lock(device.user_id):
                    ha = await self._owners_ha(device.user_id)
                    if ha is not None:
                        await ha.remove_entry(device.ha_entry_id)
                        # The owner's devices share the pipeline (found by name): it goes with the last one.
                        if not await self._devices_in_home_assistant(device.user_id):
                            await remove_voice_pipeline(ha)
            except (aiohttp.ClientError, TimeoutError, HomeAssistantError) as err:
                _LOGGER.warning("device %s revoked, but its HA entry or voice pipeline stays: %s", device_id, err)

    def _owner_ha_lock(self, user_id: str) -> asyncio.Lock:
        return self._owner_ha_locks.setdefault(user_id, asyncio.Lock())

    async def _devices_in_home_assistant(self, user_id: str) -> bool:
        """Whether any unrevoked device of the user has its satellite in their HA (and so uses our pipeline)."""
        async with self.sessions() as session:
            found = await session.scalar(
                select(Device.id)
                .where(Device.user_id == user_id, Device.revoked_at.is_(None), Device.ha_entry_id.is_not(None))
                .limit(1)
            )
        return found is not None

    def view(self, device: Device) -> dict[str, Any]:
        beat = self.heartbeats.get(device.id)
        return {
            "id": device.id,
            "name": device.name,
            "created_at": device.created_at.isoformat(),
            "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
            "online": self.relay.is_connected(device.id),
            "silent": self.is_silent(device),
            "relay": {"host": self._ha_host(device.id), "port": device.relay_port},
            "in_home_assistant": device.ha_entry_id is not None,
            "heartbeat": None
            if beat is None
            else {
                "version": beat.version,
                "uptime": beat.uptime,
                "cpu_temperature": beat.cpu_temperature,
                "load": beat.load,
                "relay_rtt": beat.relay_rtt,
            },
        }

    def _ha_host(self, device_id: str) -> str:
        placement = self._placements.get(device_id)
        return placement.ha_host if placement else self.settings.relay_ha_host

    def publish(self, device: Device, action: str) -> None:
        """Tell the owner's pages (and operators) what happened to the device, with its current view."""
        if self.events is not None:
            view = {**self.view(device), "user_id": device.user_id}
            self.events.publish(events.DEVICE, {"action": action, "device": view}, device.user_id)

    def _presence(self, device_id: str, connected: bool) -> None:
        owner = self._owners.get(device_id)
        if self.events is not None and owner is not None:
            action = "online" if connected else "offline"
            self.events.publish(events.DEVICE, {"action": action, "device": {"id": device_id}}, owner)

    async def online_count(self) -> dict[str, float]:
        """The metrics history's gauge (hosting.history)."""
        return {"devices.online": float(self.relay.connected_count())}

    def is_silent(self, device: Device) -> bool:
        last = device.last_seen_at or device.created_at
        return (datetime.now(UTC) - last).total_seconds() > self.settings.device_silent_after

    # --- heartbeats and monitoring --------------------------------------------------------------------

    async def heartbeat(self, device: Device, report: dict[str, Any]) -> None:
        beat = Heartbeat(received_at=time.time(), **report)
        self.heartbeats[device.id] = beat
        device.last_seen_at = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            row = await session.get(Device, device.id)
            if row is not None:
                row.last_seen_at = device.last_seen_at
        if device.id in self.flagged_silent:
            self.flagged_silent.discard(device.id)
            _LOGGER.info("device %s (%s) reports again", device.id, device.name)
        for gauge, value in (
            (metrics.DEVICE_CPU_TEMPERATURE, beat.cpu_temperature),
            (metrics.DEVICE_UPTIME, beat.uptime),
            (metrics.DEVICE_RELAY_RTT, beat.relay_rtt),
            (metrics.DEVICE_LOAD, beat.load),
        ):
            if value is not None:
                gauge.labels(device.id).set(value)
        metrics.DEVICE_SECONDS_SINCE_SEEN.labels(device.id).set(0)
        self.publish(device, "report")

    async def check_devices(self) -> list[str]:
        """Refreshes the device metrics and flags devices silent too long; returns the newly flagged ids."""
        async with self.sessions() as session:
            devices = (await session.scalars(select(Device).where(Device.revoked_at.is_(None)))).all()
        now = datetime.now(UTC)
        states = {"online": 0, "offline": 0, "silent": 0}
        newly_silent: list[str] = []
        for device in devices:
            states["online" if self.relay.is_connected(device.id) else "offline"] += 1
            if device.last_seen_at is not None:
                metrics.DEVICE_SECONDS_SINCE_SEEN.labels(device.id).set((now - device.last_seen_at).total_seconds())
            if self.is_silent(device):
                states["silent"] += 1
                if device.id not in self.flagged_silent:
                    self.flagged_silent.add(device.id)
                    newly_silent.append(device.id)
                    _LOGGER.warning(
                        "device %s (%s) of user %s silent for over %.0f s",
                        device.id,
                        device.name,
                        device.user_id,
                        self.settings.device_silent_after,
                    )
        for state, count in states.items():
            metrics.DEVICES.labels(state).set(count)
        stats = self.relay.stats()
        metrics.RELAY_TUNNELS.set(stats.active_tunnels)
        metrics.RELAY_IDLE.set(stats.idle_websockets)
        return newly_silent

    async def _monitor_loop(self) -> None:
        while True:
            try:
                await self.check_devices()
            except Exception:
                _LOGGER.exception("device monitoring failed; trying again")
            await asyncio.sleep(self.settings.device_monitor_interval)

    # --- the relay ----------------------------------------------------------------------------------

    async def relay_connection(self, request: web.Request) -> web.WebSocketResponse:
        device = await self.authenticate_device(request)
        if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            raise ApiError(
                400, "websocket_required", "this is the device relay's WebSocket; connect with a WebSocket client"
            )
        self._owners[device.id] = device.user_id
        if self.relay.port_of(device.id) is None:
            # Its endpoint could not be reopened at start (e.g. the owner's HA network was missing): now.
            if device.relay_port is not None:
                await self._open_endpoint(device, device.relay_port)
            else:
                await self._allocate_endpoint(device)
        if device.ha_entry_id is None and device.id not in self._provisioning:
            task = asyncio.create_task(self._provision_when_connected(device), name=f"provision device {device.id}")
            self._provisioning[device.id] = task
            task.add_done_callback(lambda _: self._provisioning.pop(device.id, None))
        return await self.relay.serve_device(request, device.id)

    # --- provisioning into the owner's HA ---------------------------------------------------------------

    async def _owners_ha(self, user_id: str) -> HomeAssistantClient | None:
        async with self.sessions() as session:
            instance = await session.scalar(select(Instance).where(Instance.user_id == user_id))
        if instance is None or instance.status != "ready" or not instance.ha_token_encrypted:
            return None
        if self.secret_box is None:
            return None
        # Where this service reaches the HA (not `instance.url`, the household's public address).
        url = self.runtime.service_url(InstanceSpec(name=instance.name, port=instance.port, image=instance.image or ""))
        return HomeAssistantClient(url, self.secret_box.decrypt(instance.ha_token_encrypted))

    async def _speech_uris(self, user_id: str) -> Mapping[str, str]:
        if self.speech_uris is None:
            return {}
        async with self.sessions() as session:
            instance_id = await session.scalar(select(Instance.id).where(Instance.user_id == user_id))
        return self.speech_uris(instance_id) if instance_id else {}

    async def _provision_when_connected(self, device: Device) -> None:
        # The relay endpoint only answers once the device's WebSocket is in the pool.
        await asyncio.sleep(0.2)
        try:
            async with self._owner_ha_lock(device.user_id):
                ha = await self._owners_ha(device.user_id)
                if ha is None:
                    _LOGGER.info("device %s: the owner's HA is not ready; added on the next connection", device.id)
                    return
                entry_id = await add_satellite(ha, self._ha_host(device.id), device.relay_port)
                # Stored at once, so a failure below never leads to a second satellite entry in the owner's HA.
                async with self.sessions() as session, session.begin():
                    row = await session.get(Device, device.id)
                    if row is not None:
                        row.ha_entry_id = entry_id
                device.ha_entry_id = entry_id
                self.publish(device, "in_home_assistant")
                await configure_voice_pipeline(ha, entry_id, self.settings, await self._speech_uris(device.user_id))
            _LOGGER.info("device %s added to its owner's HA (config entry %s)", device.id, entry_id)
        except (aiohttp.ClientError, TimeoutError, HomeAssistantError) as err:
            _LOGGER.warning("device %s: adding it to its owner's HA failed: %s", device.id, err)


DEVICES_KEY = web.AppKey("devices", DeviceService)
