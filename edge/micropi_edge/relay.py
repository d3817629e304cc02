"""The Pi's side of the relay: a few idle outbound WebSockets to the hosting service, each spliced onto a
fresh TCP connection to the local satellite when the hosting service says `open` (see hosting/relay.py).

Keeping `pool_size` WebSockets idle and opening a replacement the moment one is taken is what lets HA's
connection get its describe answered within one round trip, with no connection set-up on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import aiohttp

_LOGGER = logging.getLogger(__name__)

RELAY_PATH = "/api/devices/relay"
OPEN = "open"
CLOSE_REVOKED = 4003
_READ_SIZE = 64 * 1024
_RETRY_MIN = 1.0
_RETRY_MAX = 60.0


class DeviceRevoked(Exception):
    """The hosting service refused the device token: the device must be paired again."""


class RelayClient:
    """Keeps `pool_size` idle relay WebSockets and splices claimed ones to the satellite."""

    def __init__(
        self,
        server_url: str,
        token: str,
        satellite_host: str,
        satellite_port: int,
        *,
        pool_size: int = 2,
        heartbeat: float = 20.0,
    ) -> None:
        self.url = server_url.rstrip("/") + RELAY_PATH
        self._token = token
        self.satellite_host = satellite_host
        self.satellite_port = satellite_port
        self.pool_size = pool_size
        self.heartbeat = heartbeat
        self.last_rtt: float | None = None  # seconds, from the last `ping` on an idle WebSocket
        self.revoked = asyncio.Event()
        self._idle: set[aiohttp.ClientWebSocketResponse] = set()
        self._pong_waiters: dict[aiohttp.ClientWebSocketResponse, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def run(self) -> None:
        """Runs until the device is revoked (raises DeviceRevoked) or the task is cancelled."""
        self._session = aiohttp.ClientSession()
        try:
            for _ in range(self.pool_size):
                self._spawn()
            await self.revoked.wait()
            raise DeviceRevoked("the hosting service revoked this device; pair it again")
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()

    async def measure_rtt(self) -> float | None:
        """Round trip over one idle WebSocket (ping/pong through the hosting service), in seconds."""
        for ws in list(self._idle):
            started = time.perf_counter()
            try:
                await ws.send_str(f"ping {started}")
            except (ConnectionError, RuntimeError):
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._pong_waiters[ws] = waiter
            try:
                async with asyncio.timeout(5):
                    await waiter
            except TimeoutError:
                continue
            finally:
                self._pong_waiters.pop(ws, None)
            self.last_rtt = time.perf_counter() - started
            return self.last_rtt
        return None

    def _spawn(self) -> None:
        task = asyncio.create_task(self._slot(), name="micropi relay slot")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _slot(self) -> None:
        """One WebSocket's life: connect (retrying), wait for `open`, splice, end (a replacement is up)."""
        assert self._session is not None
        delay = _RETRY_MIN
        while not self.revoked.is_set():
            try:
                ws = await self._session.ws_connect(
                    self.url,
                    headers={"Authorization": f"Bearer {self._token}"},
                    heartbeat=self.heartbeat,
                    compress=0,
                )
            except aiohttp.WSServerHandshakeError as err:
                if err.status in (401, 403):
                    _LOGGER.error("Relay refused the device token (HTTP %s): pair the device again", err.status)
                    self.revoked.set()
                    return
                _LOGGER.warning("Relay handshake failed (HTTP %s); retrying in %.0f s", err.status, delay)
            except (aiohttp.ClientError, OSError) as err:
                _LOGGER.warning("Relay unreachable (%s); retrying in %.0f s", err, delay)
            else:
                _set_nodelay(ws)
                opened = await self._wait_for_open(ws)
                if opened:
                    self._spawn()  # keep the pool full while this one carries HA
                    await self._splice(ws)
                    return
                if ws.close_code == CLOSE_REVOKED:
                    _LOGGER.error("Relay: the device was revoked; pair it again")
                    self.revoked.set()
                    return
                delay = _RETRY_MIN  # it was connected: a fresh failure starts the back-off again
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def _wait_for_open(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        self._idle.add(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == OPEN:
                        return True
                    if msg.data.startswith("pong") and (waiter := self._pong_waiters.get(ws)) and not waiter.done():
                        waiter.set_result(None)
            return False
        finally:
            self._idle.discard(ws)

    async def _splice(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.satellite_host, self.satellite_port)
        except OSError as err:
            _LOGGER.error("Satellite at %s:%s unreachable: %s", self.satellite_host, self.satellite_port, err)
            await ws.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def satellite_to_ws() -> None:
            while data := await reader.read(_READ_SIZE):
                await ws.send_bytes(data)

        async def ws_to_satellite() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    writer.write(msg.data)
                    await writer.drain()

        pumps = {asyncio.create_task(satellite_to_ws()), asyncio.create_task(ws_to_satellite())}
        try:
            # Either side ending (or failing) ends the tunnel, and closes the other side.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for result in await asyncio.gather(*pumps, return_exceptions=True):
                if isinstance(result, Exception):
                    _LOGGER.debug("Relay tunnel ended: %s", result)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            await ws.close()


def _set_nodelay(ws: aiohttp.ClientWebSocketResponse) -> None:
    transport = ws.get_extra_info("socket")
    if transport is not None:
        transport.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
