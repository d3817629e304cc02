"""The device relay: the owner's HA reaches a Raspberry Pi behind NAT.

HA's `wyoming` integration connects TO a satellite over TCP, and a Pi at home cannot be reached. So the Pi
keeps a few authenticated outbound WebSocket connections open to us (`GET /api/devices/relay`), idle until
needed. For every device we listen on ONE TCP endpoint on the owner's private network; when HA connects
there, we take one of the device's idle WebSockets, tell the Pi `open`, and from then on splice bytes both
ways (Wyoming is JSON lines plus payloads, a byte pipe suffices). The WebSocket is already open, so HA's
describe gets its answer within a round trip. Closing either side closes the other; one WebSocket carries
exactly one TCP connection and is then done (the Pi opens a fresh idle one at once).

Control messages are WebSocket TEXT frames; spliced bytes are BINARY frames:
- server -> device `open`: an HA connection was given this WebSocket; connect to the local satellite.
- device -> server `ping <n>` -> server answers `pong <n>` (the device measures the relay round trip).

Where the endpoint listens (`Runtime.tenant_endpoint`, asked by hosting.devices): the process runtime binds
127.0.0.1 (each user's HA is a local process). In production (docker runtime, the hosting service on the
host's network) it binds the host's gateway address on the owner's private network `<instance>-net`, which
only the owner's HA container is on, and `allowed_network` is that network's subnet: a connection from any
other address (another tenant's container reaching the host through its own gateway) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import WSMsgType, web

_LOGGER = logging.getLogger(__name__)

OPEN = "open"
# WebSocket close codes the device understands (4000-4999 are free for applications).
CLOSE_REVOKED = 4003
CLOSE_REPLACED = 4009

# How long an HA connection waits for one of the device's idle WebSockets before it is refused.
CLAIM_TIMEOUT = 3.0
# WebSocket ping interval: NATs and proxies drop silent connections, and a dead Pi is noticed.
WS_HEARTBEAT = 20.0
_READ_SIZE = 64 * 1024
# Idle WebSockets kept per device at most (a misbehaving Pi cannot pile up connections).
MAX_IDLE_PER_DEVICE = 8


@dataclass(eq=False)  # hashed by identity: tunnels live in sets
class _Tunnel:
    """One device WebSocket; idle until an HA connection claims it."""

    ws: web.WebSocketResponse
    claimed: asyncio.Future[asyncio.StreamWriter] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _DeviceEndpoint:
    device_id: str
    server: asyncio.Server
    allowed_network: IPv4Network | IPv6Network | None
    idle: list[_Tunnel] = field(default_factory=list)
    busy: set[_Tunnel] = field(default_factory=set)
    tcp_writers: set[asyncio.StreamWriter] = field(default_factory=set)
    tunnel_ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])


@dataclass
class RelayStats:
    endpoints: int
    idle_websockets: int
    active_tunnels: int


class DeviceRelay:
    """Per-device TCP endpoints spliced onto the devices' outbound WebSockets."""

    def __init__(self, *, claim_timeout: float = CLAIM_TIMEOUT, ws_heartbeat: float = WS_HEARTBEAT) -> None:
        self.claim_timeout = claim_timeout
        self.ws_heartbeat = ws_heartbeat
        self._endpoints: dict[str, _DeviceEndpoint] = {}
        # Called with (device id, connected) when a device's first WebSocket opens or its last one closes.
        self.on_presence: Callable[[str, bool], None] | None = None

    # --- endpoints (one per paired, unrevoked device) ----------------------------------------------

    async def open_endpoint(
        self,
        device_id: str,
        host: str,
        port: int,
        allowed_network: IPv4Network | IPv6Network | None = None,
    ) -> int:
        """Listen for the owner's HA on host:port (0 picks a free port); returns the port."""
        existing = self._endpoints.get(device_id)
        if existing is not None:
            return existing.port

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve_ha(self._endpoints[device_id], reader, writer)

        server = await asyncio.start_server(on_connect, host, port)
        self._endpoints[device_id] = _DeviceEndpoint(device_id, server, allowed_network)
        return self._endpoints[device_id].port

    def port_of(self, device_id: str) -> int | None:
        endpoint = self._endpoints.get(device_id)
        return endpoint.port if endpoint else None

    def is_connected(self, device_id: str) -> bool:
        """True while the device holds at least one WebSocket (idle or carrying HA)."""
        endpoint = self._endpoints.get(device_id)
        return bool(endpoint and (endpoint.idle or endpoint.busy))

    def connected_count(self) -> int:
        return sum(1 for e in self._endpoints.values() if e.idle or e.busy)

    def _presence(self, device_id: str, connected: bool) -> None:
        if self.on_presence is not None:
            self.on_presence(device_id, connected)

    def stats(self) -> RelayStats:
        return RelayStats(
            endpoints=len(self._endpoints),
            idle_websockets=sum(len(e.idle) for e in self._endpoints.values()),
            active_tunnels=sum(len(e.busy) for e in self._endpoints.values()),
        )

    async def close_device(self, device_id: str, code: int = CLOSE_REVOKED) -> None:
        """Revocation: stop listening, cut every HA connection and every WebSocket of the device, now."""
        endpoint = self._endpoints.pop(device_id, None)
        if endpoint is None:
            return
        endpoint.server.close()
        for writer in list(endpoint.tcp_writers):
            writer.close()
        tunnels = [*endpoint.idle, *endpoint.busy]
        endpoint.idle.clear()
        await asyncio.gather(
            *(t.ws.close(code=code, message=b"device revoked") for t in tunnels), return_exceptions=True
        )
        await endpoint.server.wait_closed()

    async def close(self) -> None:
        for device_id in list(self._endpoints):
            await self.close_device(device_id, code=1001)

    # --- the device side -----------------------------------------------------------------------------

    async def serve_device(self, request: web.Request, device_id: str) -> web.WebSocketResponse:
        """Runs one device WebSocket (already authenticated as `device_id`) until it closes."""
        endpoint = self._endpoints.get(device_id)
        if endpoint is None:
            raise web.HTTPServiceUnavailable(text="the device's relay endpoint is not open; try again shortly")
        if len(endpoint.idle) >= MAX_IDLE_PER_DEVICE:
            raise web.HTTPTooManyRequests(text=f"at most {MAX_IDLE_PER_DEVICE} idle relay connections per device")
        # No compression: audio does not shrink and deflate costs latency on a Pi.
        ws = web.WebSocketResponse(heartbeat=self.ws_heartbeat, compress=False, max_msg_size=_READ_SIZE * 4)
        await ws.prepare(request)
        _set_nodelay(request.transport)
        tunnel = _Tunnel(ws)
        first = not (endpoint.idle or endpoint.busy)
        endpoint.idle.append(tunnel)
        endpoint.tunnel_ready.set()
        if first:
            self._presence(device_id, True)
        try:
            await self._pump_device(tunnel)
        finally:
            if tunnel in endpoint.idle:
                endpoint.idle.remove(tunnel)
            endpoint.busy.discard(tunnel)
            if tunnel.claimed.done() and not tunnel.claimed.cancelled():
                tunnel.claimed.result().close()  # the device went away: HA's connection goes too
            else:
                tunnel.claimed.cancel()
            if not (endpoint.idle or endpoint.busy):
                self._presence(device_id, False)
            await ws.close()
        return ws

    async def _pump_device(self, tunnel: _Tunnel) -> None:
        """Reads the device's frames: pings while idle, then bytes for HA once claimed."""
        async for msg in tunnel.ws:
            if msg.type == WSMsgType.BINARY:
                if not tunnel.claimed.done():
                    continue  # nothing to deliver to yet; a well-behaved device never does this
                writer = tunnel.claimed.result()
                writer.write(msg.data)
                await writer.drain()
            elif msg.type == WSMsgType.TEXT and msg.data.startswith("ping"):
                await tunnel.ws.send_str("pong" + msg.data[4:])
            elif msg.type == WSMsgType.ERROR:
                return

    # --- the HA side ---------------------------------------------------------------------------------

    async def _serve_ha(
        self, endpoint: _DeviceEndpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        if endpoint.allowed_network is not None and not _peer_in(peer, endpoint.allowed_network):
            _LOGGER.warning("relay for device %s: refused connection from %s", endpoint.device_id, peer)
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        endpoint.tcp_writers.add(writer)
        try:
            tunnel = await self._claim(endpoint)
            if tunnel is None:
                _LOGGER.info("relay for device %s: device not connected, refusing HA", endpoint.device_id)
                return
            endpoint.busy.add(tunnel)
            tunnel.claimed.set_result(writer)
            await tunnel.ws.send_str(OPEN)
            while data := await reader.read(_READ_SIZE):
                await tunnel.ws.send_bytes(data)
            await tunnel.ws.close()
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("relay for device %s: %s", endpoint.device_id, err)
        finally:
            endpoint.tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _claim(self, endpoint: _DeviceEndpoint) -> _Tunnel | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.claim_timeout
        while True:
            while endpoint.idle:
                tunnel = endpoint.idle.pop(0)
                if not tunnel.ws.closed:
                    return tunnel
            endpoint.tunnel_ready.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await endpoint.tunnel_ready.wait()


def _peer_in(peer: tuple[str, int] | None, network: IPv4Network | IPv6Network) -> bool:
    try:
        return peer is not None and ip_address(peer[0]) in network
    except ValueError:
        return False


def _set_nodelay(transport: asyncio.BaseTransport | None) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
