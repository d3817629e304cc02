"""The device's report to the hosting service every 30 s: version, uptime, CPU temperature, load, relay
round trip. The hosting service flags devices that stay silent for 2 minutes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from . import __version__
from .relay import DeviceRevoked, RelayClient

_LOGGER = logging.getLogger(__name__)

HEARTBEAT_PATH = "/api/devices/heartbeat"
INTERVAL = 30.0
_THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
_STARTED = time.monotonic()


def cpu_temperature(zone: Path = _THERMAL_ZONE) -> float | None:
    """Degrees Celsius (the Pi's SoC sensor is thermal zone 0); None where there is none."""
    try:
        return int(zone.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None


async def collect(relay: RelayClient | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "version": __version__,
        "uptime": round(time.monotonic() - _STARTED, 1),
        "load": os.getloadavg()[0],
    }
    if (temperature := cpu_temperature()) is not None:
        report["cpu_temperature"] = temperature
    if relay is not None and (rtt := await relay.measure_rtt()) is not None:
        report["relay_rtt"] = round(rtt, 6)
    return report


async def send(session: aiohttp.ClientSession, server: str, token: str, report: dict[str, Any]) -> None:
    async with session.post(
        server.rstrip("/") + HEARTBEAT_PATH, json=report, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        if response.status == 401:
            raise DeviceRevoked("the hosting service refused the device token; pair the device again")
        response.raise_for_status()


async def run(server: str, token: str, relay: RelayClient | None, interval: float = INTERVAL) -> None:
    """Reports every `interval` seconds until cancelled; raises DeviceRevoked when the token is refused."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while True:
            try:
                await send(session, server, token, await collect(relay))
            except (aiohttp.ClientError, TimeoutError) as err:
                _LOGGER.warning("Heartbeat failed (%s); next one in %.0f s", err, interval)
            await asyncio.sleep(interval)
