"""Command line of the edge device.

micropi-edge pair CODE --server URL [--name NAME]   # once: stores the device token (0600)
micropi-edge run [--mic-command CMD] [--snd-command CMD] [--wake-uri URI] ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import sys
from pathlib import Path

from . import __version__, config, heartbeat
from .pairing import PairingFailed, pair
from .relay import DeviceRevoked, RelayClient
from .satellite import SatelliteSettings, WyomingSatellite

_LOGGER = logging.getLogger("micropi_edge")


def build_parser() -> argparse.ArgumentParser:
    defaults = SatelliteSettings()
    parser = argparse.ArgumentParser(prog="micropi-edge", description="MicroPi Raspberry Pi voice satellite")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--config", type=Path, default=config.DEFAULT_PATH, help="device file (default: %(default)s)")
    parser.add_argument("--debug", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    pair_cmd = commands.add_parser("pair", help="pair this device with your MicroPi account")
    pair_cmd.add_argument("code", help="the pairing code from your account page")
    pair_cmd.add_argument("--server", required=True, help="the MicroPi service URL, e.g. https://micropi.example")
    pair_cmd.add_argument("--name", help="this device's name (default: the one given with the code)")

    run_cmd = commands.add_parser("run", help="run the satellite and keep the relay to your Home Assistant")
    run_cmd.add_argument("--name", help="satellite name shown in HA (default: the paired name)")
    run_cmd.add_argument("--area", help="area of the home, e.g. 'Living room'")
    run_cmd.add_argument("--mic-command", default=shlex.join(defaults.mic_command), help="raw 16 kHz 16-bit mono out")
    run_cmd.add_argument("--snd-command", default=shlex.join(defaults.snd_command), help="raw 16 kHz 16-bit mono in")
    run_cmd.add_argument("--wake-uri", default=defaults.wake_uri, help="openWakeWord Wyoming service (tcp://host:port)")
    run_cmd.add_argument("--wake-word", default=None, help="model name, e.g. ok_nabu (default: any)")
    run_cmd.add_argument("--satellite-host", default="127.0.0.1", help="where the satellite listens locally")
    run_cmd.add_argument("--satellite-port", type=int, default=10700)
    run_cmd.add_argument("--relay-connections", type=int, default=2, help="idle relay connections kept open")
    run_cmd.add_argument("--heartbeat-interval", type=float, default=heartbeat.INTERVAL)
    return parser


async def run(args: argparse.Namespace) -> int:
    identity = config.load(args.config)
    settings = SatelliteSettings(
        name=args.name or identity.name,
        area=args.area,
        mic_command=shlex.split(args.mic_command),
        snd_command=shlex.split(args.snd_command),
        wake_uri=args.wake_uri,
        wake_word=args.wake_word,
    )
    satellite = WyomingSatellite(settings)
    port = await satellite.start(args.satellite_host, args.satellite_port)
    relay = RelayClient(identity.server, identity.token, args.satellite_host, port, pool_size=args.relay_connections)
    _LOGGER.info("Satellite %r on %s:%s, relaying to %s", settings.name, args.satellite_host, port, identity.server)
    tasks = [
        asyncio.create_task(relay.run(), name="relay"),
        asyncio.create_task(heartbeat.run(identity.server, identity.token, relay, args.heartbeat_interval)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # re-raises DeviceRevoked
        return 0
    except DeviceRevoked as err:
        # Exit code 3 tells systemd (RestartPreventExitStatus=3) not to restart a revoked device in a loop.
        _LOGGER.error("%s", err)
        return 3
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, DeviceRevoked):
                await task
        await satellite.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "pair":
            identity = asyncio.run(pair(args.server, args.code, args.name))
            config.save(identity, args.config)
            print(f"Paired as {identity.name!r} (device {identity.device_id}); token stored in {args.config}")
            return 0
        return asyncio.run(run(args))
    except (PairingFailed, config.NotPaired) as err:
        print(f"micropi-edge: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
