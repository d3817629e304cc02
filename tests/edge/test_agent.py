"""The whole edge agent as the systemd unit runs it: `micropi-edge pair`, then `micropi-edge run` as a real
child process - relay, satellite and heartbeats against the real hosting service; revoked, it exits 3."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from tests.hosting.device_service import Hosting
from tests.hosting.hass import free_port

from .device import eventually, read_until, run_cli
from .peers import CountingWakeService, mic_command, speaker_command


async def test_pair_then_run_reports_relays_and_stops_when_revoked(hosting: Hosting, tmp_path: Path) -> None:
    wake = CountingWakeService(chunks_to_detect=10**9)
    await wake.start()
    owner = await hosting.sign_up()
    device_file = tmp_path / "device.json"
    code = await hosting.pairing_code(owner, "Bedroom")
    rc, _, err = await run_cli("--config", str(device_file), "pair", code, "--server", hosting.url)
    assert rc == 0, err

    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "micropi_edge",
        "--config",
        str(device_file),
        "run",
        "--mic-command",
        shlex.join(mic_command()),
        "--snd-command",
        shlex.join(speaker_command(tmp_path / "played.raw")),
        "--wake-uri",
        wake.uri,
        "--satellite-port",
        str(free_port()),
        "--heartbeat-interval",
        "0.5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:

        async def reported() -> bool:
            (device,) = await hosting.list_devices(owner)
            beat = device["heartbeat"]
            return bool(device["online"] and beat and beat["relay_rtt"] is not None)

        await eventually(reported, within=20)
        (device,) = await hosting.list_devices(owner)
        assert device["heartbeat"]["version"] == "0.1.0"
        assert 0 < device["heartbeat"]["relay_rtt"] < 1

        async with AsyncTcpClient("127.0.0.1", device["relay"]["port"]) as ha:
            await ha.write_event(Describe().event())
            event, _ = await read_until(ha, "info", within=1.0)
            satellite = Info.from_event(event).satellite
            assert satellite is not None
            assert satellite.name == "Bedroom"

        response = await hosting.client.delete(f"/api/devices/{device['id']}", headers=owner.headers)
        assert response.status == 204
        async with asyncio.timeout(10):
            assert await agent.wait() == 3  # systemd's RestartPreventExitStatus=3: no restart loop
        assert agent.stdout is not None
        output = (await agent.stdout.read()).decode()
        assert "pair" in output
        assert device_file.read_text() and "mpd_" not in output  # the token is never logged
    finally:
        if agent.returncode is None:
            agent.terminate()
            await agent.wait()
        await wake.stop()
