"""A Pi as the tests run it: the `micropi-edge` CLI as a child process, a whole device (satellite plus relay
client) against the real hosting service, and waiting helpers. Shared by the edge tests and the device
tests in tests/hosting."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from micropi_edge.relay import DeviceRevoked, RelayClient
from micropi_edge.satellite import SatelliteSettings, WyomingSatellite
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from tests.edge.peers import CountingWakeService, mic_command, speaker_command
from tests.hosting.device_service import Hosting


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "micropi_edge", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_device(
    hosting: Hosting, token: str, name: str, wake: CountingWakeService, tmp_path: Path
) -> AsyncIterator[tuple[WyomingSatellite, RelayClient, asyncio.Task[None]]]:
    """A whole Pi: the satellite on a local port and the relay client keeping two idle WebSockets."""
    satellite = WyomingSatellite(
        SatelliteSettings(
            name=name,
            mic_command=mic_command(),
            snd_command=speaker_command(tmp_path / f"{name}.raw"),
            wake_uri=wake.uri,
        )
    )
    port = await satellite.start("127.0.0.1", 0)
    relay = RelayClient(hosting.url, token, "127.0.0.1", port, pool_size=2)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: relay.idle_connections == 2)
        yield satellite, relay, task
    finally:
        task.cancel()
        with pytest.raises((asyncio.CancelledError, DeviceRevoked)):
            await task
        await satellite.stop()


async def read_until(client: AsyncTcpClient, event_type: str, within: float = 10.0) -> tuple[Event, list[Event]]:
    """Reads events until one of `event_type` arrives; returns it and everything before it."""
    seen: list[Event] = []
    async with asyncio.timeout(within):
        while True:
            event = await client.read_event()
            assert event is not None, f"satellite closed the connection while waiting for {event_type}"
            if event.type == event_type:
                return event, seen
            seen.append(event)
