"""Edge devices (Raspberry Pi voice satellites): pairing, device tokens, list/rename/revoke, heartbeats,
monitoring, the relay endpoint per device (hosting.relay) and the device's place in its owner's HA.

Pairing: the owner asks for a short code (`POST /api/devices/pairing-codes`), types it on the Pi
(`micropi-edge pair CODE --server URL`), and the Pi exchanges it for a device token (`POST
/api/devices/pair`). Codes live in memory for 10 minutes and are single-use (a service restart forgets
pending codes; the owner asks again). Device tokens are random, stored only as SHA-256 like refresh tokens.

The first time a paired device connects to the relay, its owner's HA gets a Wyoming satellite entry
pointing at the device's relay endpoint, through HA's own config-flow REST API, plus an Assist pipeline in
the owner's language with our agent and the central speech-to-text and text-to-speech Wyoming services.
Revoking a device removes its satellite entry, and the pipeline once no other device of the owner uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any
from urllib.parse import urlparse

import aiohttp
import voluptuous as vol
from aiohttp import web
from prometheus_client import Gauge
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting import audit
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.db.models import Device, Instance
from hosting.errors import ApiError
from hosting.metrics import REGISTRY
from hosting.ratelimit import retry_after_header
from hosting.relay import DeviceRelay
from hosting.security import SecretBox, hash_token

_LOGGER = logging.getLogger(__name__)

DEVICE_TOKEN_PREFIX = "mpd_"  # noqa: S105  # recognisable in leak scanners, not a secret itself
# No 0/O, 1/I/L: a code is read off a screen and typed on a Pi.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 8
# 31^8 codes, 10 minutes each, 20 wrong guesses a minute per IP: guessing someone's code is hopeless.
_PAIR_FAILURE_LIMIT = 20
_PAIR_FAILURE_WINDOW = 60.0
PIPELINE_NAME = "MicroPi voice"

DEVICES = Gauge("micropi_devices", "Paired, unrevoked devices by state.", ["state"], registry=REGISTRY)
DEVICE_SECONDS_SINCE_SEEN = Gauge(
    "micropi_device_seconds_since_seen", "Seconds since the device's last heartbeat.", ["device_id"], registry=REGISTRY
)
DEVICE_CPU_TEMPERATURE = Gauge(
    "micropi_device_cpu_temperature_celsius",
    "CPU temperature reported by the device.",
    ["device_id"],
    registry=REGISTRY,
)
DEVICE_LOAD = Gauge("micropi_device_load1", "1-minute load average of the device.", ["device_id"], registry=REGISTRY)
DEVICE_UPTIME = Gauge("micropi_device_uptime_seconds", "Uptime of the device agent.", ["device_id"], registry=REGISTRY)
DEVICE_RELAY_RTT = Gauge(
    "micropi_device_relay_rtt_seconds", "Relay round trip measured by the device.", ["device_id"], registry=REGISTRY
)
RELAY_TUNNELS = Gauge("micropi_relay_active_tunnels", "HA connections spliced to devices now.", registry=REGISTRY)
RELAY_IDLE = Gauge("micropi_relay_idle_connections", "Idle device WebSockets held open.", registry=REGISTRY)
_PER_DEVICE_GAUGES = (DEVICE_SECONDS_SINCE_SEEN, DEVICE_CPU_TEMPERATURE, DEVICE_LOAD, DEVICE_UPTIME, DEVICE_RELAY_RTT)


@dataclass(frozen=True, kw_only=True)
class DeviceSettings:
    """Read from `MICROPI_*` environment variables (see `from_env`)."""

    # Where device endpoints listen and the address the owner's HA dials. "docker" (production): on the host's
    # gateway address of the owner's private docker network, refusing peers from outside it (see _placement).
    relay_bind_host: str = "127.0.0.1"
    relay_ha_host: str = "127.0.0.1"
    relay_ports: tuple[int, int] | None = (10700, 10999)  # None: any free port (tests)
    silent_after: float = 120.0  # a device without a heartbeat for this long is flagged
    monitor_interval: float = 30.0
    pairing_code_ttl: float = 600.0
    stt_uri: str = ""  # tcp://host:port of the central Wyoming faster-whisper; empty: no STT in the pipeline
    tts_uri: str = ""  # tcp://host:port of the central Wyoming piper
    conversation_agent: str = "conversation.micropi"
    # Piper voice per language, as installed in the central piper service (compose.yaml).
    tts_voices: Mapping[str, str] = field(default_factory=lambda: {"hu": "hu_HU-anna-medium", "en": "en_US-joe-medium"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeviceSettings:
        env = os.environ if environ is None else environ

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        ports_raw = text("MICROPI_RELAY_PORT_RANGE", "10700-10999")
        ports: tuple[int, int] | None = None
        if ports_raw != "0":
            try:
                low, high = (int(p) for p in ports_raw.split("-", 1))
            except ValueError:
                raise ValueError(f"MICROPI_RELAY_PORT_RANGE={ports_raw!r}: use FIRST-LAST (or 0 for any)") from None
            ports = (low, high)
        try:
            silent_after = float(text("MICROPI_DEVICE_SILENT_AFTER", "120"))
        except ValueError:
            raise ValueError("MICROPI_DEVICE_SILENT_AFTER must be a number of seconds") from None
        bind = text("MICROPI_RELAY_BIND_HOST", "127.0.0.1")
        return cls(
            relay_bind_host=bind,
            relay_ha_host=text("MICROPI_RELAY_HA_HOST", bind),
            relay_ports=ports,
            silent_after=silent_after,
            stt_uri=text("MICROPI_STT_URI", ""),
            tts_uri=text("MICROPI_TTS_URI", ""),
            conversation_agent=text("MICROPI_CONVERSATION_AGENT", "conversation.micropi"),
            tts_voices=_voices(text("MICROPI_TTS_VOICES", "hu=hu_HU-anna-medium,en=en_US-joe-medium")),
        )


def _voices(raw: str) -> dict[str, str]:
    voices = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        language, _, voice = item.partition("=")
        if not language.strip() or not voice.strip():
            raise ValueError(f"MICROPI_TTS_VOICES={raw!r}: use LANGUAGE=VOICE,... e.g. hu=hu_HU-anna-medium")
        voices[language.strip()] = voice.strip()
    return voices


@dataclass(frozen=True)
class Placement:
    """Where one owner's device endpoints listen, what their HA dials, and who may connect."""

    bind_host: str
    ha_host: str
    allowed_network: IPv4Network | IPv6Network | None = None


def _docker_placement(instance_name: str) -> Placement:
    """The owner's private network `<instance>-net` (hosting.runtime.docker): only their HA container is on
    it, so its subnet is exactly who may connect; the host's gateway address on it is where we listen."""
    import docker  # noqa: PLC0415  # the docker SDK only where the docker runtime is used

    from hosting.runtime.docker import DockerRuntime  # noqa: PLC0415

    client = docker.from_env()
    try:
        network = client.networks.get(DockerRuntime.network_name(instance_name))
        ipam = network.attrs["IPAM"]["Config"][0]
        subnet = ip_network(ipam["Subnet"])
        gateway = ipam.get("Gateway") or str(next(subnet.hosts()))
    finally:
        client.close()
    return Placement(bind_host=gateway, ha_host=gateway, allowed_network=subnet)


@dataclass
class _PendingCode:
    user_id: str
    name: str
    expires_at: float


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
        settings: DeviceSettings | None = None,
    ) -> None:
        self.sessions = sessions
        self.secret_box = secret_box
        self.settings = settings or DeviceSettings.from_env()
        self.relay = DeviceRelay()
        self._codes: dict[str, _PendingCode] = {}
        self.heartbeats: dict[str, Heartbeat] = {}
        self.flagged_silent: set[str] = set()
        # Failed pairing attempts per client IP in the last minute; over the limit, every attempt is refused.
        self._pair_failures: dict[str, deque[float]] = {}
        self._provisioning: dict[str, asyncio.Task[None]] = {}
        self._placements: dict[str, Placement] = {}
        # Per owner, held while their HA is changed for a device: two devices pairing at once must not both
        # create the shared pipeline, and a revocation must not remove it under a device being added.
        self._owner_ha_locks: dict[str, asyncio.Lock] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._started = time.monotonic()

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

    def create_pairing_code(self, user_id: str, name: str) -> tuple[str, float]:
        now = time.monotonic()
        for key in [k for k, c in self._codes.items() if c.expires_at <= now]:
            del self._codes[key]
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        self._codes[hash_token(code)] = _PendingCode(user_id, name, now + self.settings.pairing_code_ttl)
        return f"{code[:4]}-{code[4:]}", self.settings.pairing_code_ttl

    async def pair(self, code: str, name: str | None, ip: str) -> tuple[Device, str]:
        """Exchanges a pairing code for a new device and its token (returned once, never stored)."""
        now = time.monotonic()
        failures = self._pair_failures.setdefault(ip, deque())
        while failures and failures[0] <= now - _PAIR_FAILURE_WINDOW:
            failures.popleft()
        if len(failures) >= _PAIR_FAILURE_LIMIT:
            wait = failures[0] + _PAIR_FAILURE_WINDOW - now
            raise ApiError(
                429, "rate_limited", "too many wrong pairing codes; wait and try again", retry_after_header(wait)
            )
        normalized = "".join(ch for ch in code.upper() if ch.isalnum())
        pending = self._codes.pop(hash_token(normalized), None)
        if pending is None or pending.expires_at <= now:
            failures.append(now)
            raise ApiError(
                400,
                "invalid_pairing_code",
                "the pairing code is wrong or has expired; ask for a new one in your account",
            )
        if not failures:
            del self._pair_failures[ip]
        token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.sessions() as session, session.begin():
            device = Device(user_id=pending.user_id, name=(name or pending.name)[:128], token_hash=hash_token(token))
            session.add(device)
            audit.record(session, "device_paired", actor_user_id=pending.user_id, target=device.name, ip=ip)
        await self._allocate_endpoint(device)
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

    async def _placement(self, user_id: str) -> Placement:
        """Where the owner's device endpoints listen, and which peers may use them."""
        if self.settings.relay_bind_host != "docker":
            return Placement(self.settings.relay_bind_host, self.settings.relay_ha_host)
        async with self.sessions() as session:
            instance = await session.scalar(select(Instance).where(Instance.user_id == user_id))
        if instance is None:
            raise ApiError(
                409, "home_assistant_not_ready", "your Home Assistant does not exist yet; pair the device once it does"
            )
        from docker.errors import DockerException  # noqa: PLC0415

        try:
            return await asyncio.to_thread(_docker_placement, instance.name)
        except (DockerException, KeyError, IndexError) as err:
            raise ApiError(503, "runtime_unavailable", f"the owner's HA network cannot be looked up: {err}") from None

    # --- device authentication --------------------------------------------------------------------

    async def authenticate_device(self, request: web.Request) -> Device:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(DEVICE_TOKEN_PREFIX):
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
            audit.record(session, "device_revoked", actor_user_id=user_id, target=device.id, ip=ip)
        if (task := self._provisioning.pop(device_id, None)) is not None:
            task.cancel()
        # At once: the endpoint, every HA connection through it and every device WebSocket are closed.
        await self.relay.close_device(device_id)
        self.heartbeats.pop(device_id, None)
        self.flagged_silent.discard(device_id)
        for gauge in _PER_DEVICE_GAUGES:
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

    def is_silent(self, device: Device) -> bool:
        last = device.last_seen_at or device.created_at
        return (datetime.now(UTC) - last).total_seconds() > self.settings.silent_after

    # --- heartbeats and monitoring --------------------------------------------------------------------

    async def heartbeat(self, device: Device, report: dict[str, Any]) -> None:
        beat = Heartbeat(received_at=time.time(), **report)
        self.heartbeats[device.id] = beat
        async with self.sessions() as session, session.begin():
            row = await session.get(Device, device.id)
            if row is not None:
                row.last_seen_at = datetime.now(UTC)
        if device.id in self.flagged_silent:
            self.flagged_silent.discard(device.id)
            _LOGGER.info("device %s (%s) reports again", device.id, device.name)
        for gauge, value in (
            (DEVICE_CPU_TEMPERATURE, beat.cpu_temperature),
            (DEVICE_UPTIME, beat.uptime),
            (DEVICE_RELAY_RTT, beat.relay_rtt),
            (DEVICE_LOAD, beat.load),
        ):
            if value is not None:
                gauge.labels(device.id).set(value)
        DEVICE_SECONDS_SINCE_SEEN.labels(device.id).set(0)

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
                DEVICE_SECONDS_SINCE_SEEN.labels(device.id).set((now - device.last_seen_at).total_seconds())
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
                        self.settings.silent_after,
                    )
        for state, count in states.items():
            DEVICES.labels(state).set(count)
        stats = self.relay.stats()
        RELAY_TUNNELS.set(stats.active_tunnels)
        RELAY_IDLE.set(stats.idle_websockets)
        return newly_silent

    async def _monitor_loop(self) -> None:
        while True:
            try:
                await self.check_devices()
            except Exception:
                _LOGGER.exception("device monitoring failed; trying again")
            await asyncio.sleep(self.settings.monitor_interval)

    # --- the relay ----------------------------------------------------------------------------------

    async def relay_connection(self, request: web.Request) -> web.WebSocketResponse:
        device = await self.authenticate_device(request)
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
        if instance is None or instance.status != "ready" or not instance.ha_token_encrypted or not instance.url:
            return None
        if self.secret_box is None:
            return None
        return HomeAssistantClient(instance.url, self.secret_box.decrypt(instance.ha_token_encrypted))

    async def _provision_when_connected(self, device: Device) -> None:
        # The relay endpoint only answers once the device's WebSocket is in the pool.
        await asyncio.sleep(0.2)
        try:
            async with self._owner_ha_lock(device.user_id):
                ha = await self._owners_ha(device.user_id)
                if ha is None:
                    _LOGGER.info("device %s: the owner's HA is not ready; added on the next connection", device.id)
                    return
                entry = await ha.config_flow("wyoming", {"host": self._ha_host(device.id), "port": device.relay_port})
                entry_id = str(entry["entry_id"])
                # Stored at once, so a failure below never leads to a second satellite entry in the owner's HA.
                async with self.sessions() as session, session.begin():
                    row = await session.get(Device, device.id)
                    if row is not None:
                        row.ha_entry_id = entry_id
                device.ha_entry_id = entry_id
                await configure_voice_pipeline(ha, entry_id, self.settings)
            _LOGGER.info("device %s added to its owner's HA (config entry %s)", device.id, entry_id)
        except (aiohttp.ClientError, TimeoutError, HomeAssistantError) as err:
            _LOGGER.warning("device %s: adding it to its owner's HA failed: %s", device.id, err)


class HomeAssistantError(Exception):
    """HA answered, but not as expected (the message says what)."""


class HomeAssistantClient:
    """The few HA REST and WebSocket calls provisioning needs, with a long-lived access token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._token = token

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.request(method, self.url + path, json=body, headers=self._headers) as response,
        ):
            if response.status >= 400:
                raise HomeAssistantError(f"{method} {path}: HTTP {response.status}: {(await response.text())[:300]}")
            return await response.json() if response.content_type == "application/json" else None

    async def config_flow(self, handler: str, data: dict[str, Any]) -> dict[str, Any]:
        """Runs a one-form config flow; returns the created entry's result."""
        flow = await self._request("POST", "/api/config/config_entries/flow", {"handler": handler})
        if flow.get("type") == "form":
            flow = await self._request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", data)
        if flow.get("type") != "create_entry":
            raise HomeAssistantError(
                f"{handler} config flow ended with {flow.get('type')}: {flow.get('errors') or flow.get('reason')}"
            )
        result: dict[str, Any] = flow["result"]
        return result

    async def remove_entry(self, entry_id: str) -> None:
        await self._request("DELETE", f"/api/config/config_entries/entry/{entry_id}")

    async def language(self) -> str:
        config = await self._request("GET", "/api/config")
        return str(config.get("language") or "en")

    async def ws(self, commands: list[dict[str, Any]]) -> list[Any]:
        """Sends WebSocket API commands in order; returns their results (fails on the first error)."""
        results: list[Any] = []
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.ws_connect(self.url + "/api/websocket") as ws,
        ):
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self._token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise HomeAssistantError("HA refused the service's access token")
            for number, command in enumerate(commands, start=1):
                await ws.send_json({"id": number, **command})
                while True:
                    message = await ws.receive_json()
                    if message.get("id") == number and message.get("type") == "result":
                        break
                if not message.get("success"):
                    raise HomeAssistantError(f"{command['type']}: {message.get('error')}")
                results.append(message.get("result"))
        return results

    async def state(self, entity_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/api/states/{entity_id}")
        return result

    async def entities_of(self, entry_id: str) -> list[dict[str, Any]]:
        (registry,) = await self.ws([{"type": "config/entity_registry/list"}])
        return [e for e in registry if e.get("config_entry_id") == entry_id]


async def configure_voice_pipeline(ha: HomeAssistantClient, entry_id: str, settings: DeviceSettings) -> None:
    """Points the satellite of config entry `entry_id` at our Assist pipeline: the owner's language, our agent,
    the central speech-to-text and text-to-speech. The pipeline is found by name before it is created."""
    language = await ha.language()
    (pipelines,) = await ha.ws([{"type": "assist_pipeline/pipeline/list"}])
    if not any(p["name"] == PIPELINE_NAME for p in pipelines["pipelines"]):
        stt_engine = await _speech_entity(ha, settings.stt_uri, "stt")
        tts_engine = await _speech_entity(ha, settings.tts_uri, "tts")
        # Engines name languages their own way (piper: "en_US"); HA matches them to the pipeline's.
        stt_language = await _engine_language(ha, "stt", stt_engine, language)
        tts_language = await _engine_language(ha, "tts", tts_engine, language)
        # The voice the central piper has for this language (it may list voices it would have to download).
        tts_voice = settings.tts_voices.get(language.split("-")[0]) if tts_engine else None
        await ha.ws(
            [
                {
                    "type": "assist_pipeline/pipeline/create",
                    "name": PIPELINE_NAME,
                    "language": language,
                    "conversation_engine": settings.conversation_agent,
                    "conversation_language": language,
                    "stt_engine": stt_engine,
                    "stt_language": stt_language,
                    "tts_engine": tts_engine,
                    "tts_language": tts_language,
                    "tts_voice": tts_voice,
                    "wake_word_entity": None,
                    "wake_word_id": None,
                    "prefer_local_intents": True,
                }
            ]
        )
    # The satellite's "Assist pipeline" select (the one offering our pipeline) chooses where its voice goes;
    # it appears once HA has set the new entry up.
    for _ in range(30):
        for entity in await ha.entities_of(entry_id):
            entity_id = entity["entity_id"]
            if entity_id.startswith("select.") and PIPELINE_NAME in (await ha.state(entity_id)).get(
                "attributes", {}
            ).get("options", []):
                await ha.ws(
                    [
                        {
                            "type": "call_service",
                            "domain": "select",
                            "service": "select_option",
                            "service_data": {"entity_id": entity_id, "option": PIPELINE_NAME},
                        }
                    ]
                )
                return
        await asyncio.sleep(0.5)
    raise HomeAssistantError(f"no pipeline select among the entities of satellite entry {entry_id}")


async def remove_voice_pipeline(ha: HomeAssistantClient) -> None:
    """Deletes our Assist pipeline (found by name, as `configure_voice_pipeline` finds it), if it is there."""
    (pipelines,) = await ha.ws([{"type": "assist_pipeline/pipeline/list"}])
    for pipeline in pipelines["pipelines"]:
        if pipeline["name"] == PIPELINE_NAME:
            await ha.ws([{"type": "assist_pipeline/pipeline/delete", "pipeline_id": pipeline["id"]}])


async def _engine_language(ha: HomeAssistantClient, kind: str, engine: str | None, language: str) -> str | None:
    if engine is None:
        return None
    (engines,) = await ha.ws([{"type": f"{kind}/engine/list", "language": language}])
    for provider in engines["providers"]:
        if provider["engine_id"] == engine and provider["supported_languages"]:
            return str(provider["supported_languages"][0])
    raise HomeAssistantError(f"{engine} has no {language} {'model' if kind == 'stt' else 'voice'}; install one")


async def _speech_entity(ha: HomeAssistantClient, uri: str, domain: str) -> str | None:
    """A Wyoming entry for the central speech service at `uri`; returns its stt./tts. entity id."""
    if not uri:
        return None
    parsed = urlparse(uri)
    entry = await ha.config_flow("wyoming", {"host": parsed.hostname, "port": parsed.port})
    for _ in range(20):  # the entity appears once the entry has loaded
        for entity in await ha.entities_of(str(entry["entry_id"])):
            if entity["entity_id"].startswith(f"{domain}."):
                return str(entity["entity_id"])
        await asyncio.sleep(0.5)
    raise HomeAssistantError(f"the Wyoming service at {uri} gave HA no {domain} entity")


# --- HTTP API ------------------------------------------------------------------------------------------

DEVICES_KEY = web.AppKey("devices", DeviceService)

_NAME = vol.All(str, vol.Length(min=1, max=128))
PAIRING_CODE_REQUEST = vol.Schema(
    {vol.Optional("name", default="Raspberry Pi", description="the device's name"): _NAME}
)
PAIR_REQUEST = vol.Schema(
    {
        vol.Required("code", description="the pairing code shown to the owner"): vol.All(
            str, vol.Length(min=4, max=32)
        ),
        vol.Optional("name", description="overrides the name given with the code"): _NAME,
    }
)
RENAME_REQUEST = vol.Schema({vol.Required("name"): _NAME})
HEARTBEAT_REQUEST = vol.Schema(
    {
        vol.Optional("version", default="", description="the edge agent's version"): vol.All(str, vol.Length(max=64)),
        vol.Optional("uptime", description="seconds since the agent started"): vol.Coerce(float),
        vol.Optional("cpu_temperature", description="degrees Celsius"): vol.Coerce(float),
        vol.Optional("load", description="1-minute load average"): vol.Coerce(float),
        vol.Optional("relay_rtt", description="relay round trip in seconds"): vol.Coerce(float),
    }
)


def _service(call: Call) -> DeviceService:
    return call.app[DEVICES_KEY]


def _name(call: Call, default: str | None = None) -> str | None:
    name = call.body.get("name")
    if name is None:
        return default
    name = " ".join(str(name).split())
    if not name:
        raise ApiError(422, "validation_error", "field 'name': give the device a name that is not blank")
    return name


async def create_pairing_code(call: Call) -> web.Response:
    code, ttl = _service(call).create_pairing_code(call.me.id, _name(call) or "Raspberry Pi")
    return web.json_response({"code": code, "expires_in": int(ttl)}, status=201)


async def pair_device(call: Call) -> web.Response:
    service = _service(call)
    device, token = await service.pair(call.body["code"], _name(call), call.ip)
    return web.json_response({"device": service.view(device), "token": token}, status=201)


async def list_devices(call: Call) -> web.Response:
    service = _service(call)
    async with call.sessions() as session:
        devices = (
            await session.scalars(
                select(Device)
                .where(Device.user_id == call.me.id, Device.revoked_at.is_(None))
                .order_by(Device.created_at)
            )
        ).all()
    return web.json_response({"devices": [service.view(d) for d in devices]})


async def rename_device(call: Call) -> web.Response:
    service = _service(call)
    async with call.sessions() as session, session.begin():
        device = await service.owned_device(session, call.me.id, call.request.match_info["device_id"])
        device.name = _name(call) or device.name
    return web.json_response(service.view(device))


async def revoke_device(call: Call) -> web.Response:
    await _service(call).revoke(call.me.id, call.request.match_info["device_id"], call.ip)
    return web.Response(status=204)


async def device_heartbeat(call: Call) -> web.Response:
    service = _service(call)
    device = await service.authenticate_device(call.request)
    await service.heartbeat(device, call.body)
    return web.json_response({"silent_after": service.settings.silent_after})


async def device_relay(call: Call) -> web.StreamResponse:
    return await _service(call).relay_connection(call.request)


_DEVICE = {200: Reply("the device"), 404: Reply("not one of the caller's devices", "Error")}
_DEVICE_AUTH = {401: Reply("the device token is missing, wrong or revoked", "Error")}

ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/devices/pairing-codes",
        create_pairing_code,
        "A short single-use code (10 minutes) to pair a Raspberry Pi with `micropi-edge pair CODE`",
        "devices",
        body=PAIRING_CODE_REQUEST,
        responses={201: Reply("the code and its lifetime in seconds")},
    ),
    Endpoint(
        "POST",
        "/api/devices/pair",
        pair_device,
        "The device exchanges a pairing code for its device token (shown once)",
        "devices",
        auth="public",
        body=PAIR_REQUEST,
        responses={
            201: Reply("the new device and its token"),
            400: Reply("the code is wrong or expired", "Error"),
            429: Reply("too many attempts", "Error"),
        },
    ),
    Endpoint(
        "GET",
        "/api/devices",
        list_devices,
        "The caller's devices: online, last seen, silent flag, relay endpoint, latest heartbeat",
        "devices",
        responses={200: Reply("the devices")},
    ),
    Endpoint(
        "PATCH",
        "/api/devices/{device_id}",
        rename_device,
        "Rename a device",
        "devices",
        body=RENAME_REQUEST,
        responses=_DEVICE,
    ),
    Endpoint(
        "DELETE",
        "/api/devices/{device_id}",
        revoke_device,
        "Revoke a device: its token stops working and its relay connections are cut at once",
        "devices",
        responses={204: Reply("revoked"), 404: _DEVICE[404]},
    ),
    Endpoint(
        "POST",
        "/api/devices/heartbeat",
        device_heartbeat,
        "The device's report every 30 s (device token): version, uptime, CPU temperature, load, relay RTT",
        "devices",
        auth="public",
        body=HEARTBEAT_REQUEST,
        responses={200: Reply("accepted"), **_DEVICE_AUTH},
    ),
    Endpoint(
        "GET",
        "/api/devices/relay",
        device_relay,
        "The device's relay WebSocket (device token); see hosting/relay.py for the protocol",
        "devices",
        auth="public",
        responses={101: Reply("switching to WebSocket"), **_DEVICE_AUTH},
    ),
]


def setup(
    app: web.Application,
    sessions: async_sessionmaker[AsyncSession],
    secret_box: SecretBox | None,
    settings: DeviceSettings | None = None,
) -> DeviceService:
    """Adds the device service and its routes (`ENDPOINTS`) to `app`; the service starts after the
    database's cleanup context. `hosting.routes` documents these endpoints with all the others."""
    service = DeviceService(sessions, secret_box, settings)
    app[DEVICES_KEY] = service
    app.cleanup_ctx.append(service.context)
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.aiohttp_handler(), name=endpoint.handler.__name__)
    return service
