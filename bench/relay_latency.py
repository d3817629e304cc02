"""Relay benchmark (loopback only): the latency the device relay adds, and what idle devices cost.

    python -m bench.relay_latency [--round-trips 2000] [--devices 500]

1. Latency: a small request/answer (a 100-byte Wyoming-sized line) round-trips through
   HA-side TCP -> hosting relay -> device WebSocket -> Pi relay client -> local TCP echo, versus the
   same echo over direct TCP. Prints p50/p95/p99 of both and the difference.
2. Idle devices: pairs N devices to one hosting process and connects each like a Pi does (2 idle
   WebSockets + its TCP endpoint); the devices run in a child process so the hosting process's own
   memory and file descriptors are measured. Prints memory and fds per device, and what that makes
   the ceiling of one process.

The hosting service is the real one (`hosting.app.create_app`, SQLite in a temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

IDLE_WINDOW = 25.0
PAYLOAD = b'{"type": "ping", "data": {"text": "' + b"x" * 60 + b'"}, "version": "1.10.2"}\n'


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def _round_trips(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        writer.write(PAYLOAD)
        await writer.drain()
        await reader.readexactly(len(PAYLOAD))
        samples.append(time.perf_counter() - started)
    writer.close()
    return samples


async def _start_hosting(data_dir: Path) -> tuple[web.AppRunner, str]:
    from cryptography.fernet import Fernet

    from hosting.app import create_app
    from hosting.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'hosting.db'}",
        jwt_secret=uuid.uuid4().hex * 2,
        fernet_key=Fernet.generate_key().decode(),
        provisioning_enabled=False,
        relay_ports=None,  # any free port: no 300-port pool limit here
    )
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def _pair_devices(url: str, count: int) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        signup = {"email": f"bench-{uuid.uuid4().hex[:8]}@example.com", "password": "bench password 1"}
        async with session.post(url + "/api/auth/signup", json=signup) as response:
            access = (await response.json())["tokens"]["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        devices = []
        for number in range(count):
            async with session.post(
                url + "/api/devices/pairing-codes", json={"name": f"pi-{number}"}, headers=headers
            ) as response:
                code = (await response.json())["code"]
            async with session.post(url + "/api/devices/pair", json={"code": code}) as response:
                paired = await response.json()
            devices.append({"token": paired["token"], "port": paired["device"]["relay"]["port"]})
        return devices


async def _run_devices(url: str, tokens: list[str], echo_port: int, ready_file: Path) -> None:
    """Child process: one RelayClient per device, like that many Pis."""
    from micropi_edge.relay import RelayClient

    clients = [RelayClient(url, token, "127.0.0.1", echo_port, pool_size=2) for token in tokens]
    tasks = [asyncio.create_task(client.run()) for client in clients]
    while sum(c.idle_connections for c in clients) < 2 * len(clients):  # noqa: ASYNC110  # polling a count
        await asyncio.sleep(0.2)
    ready_file.write_text("ready")  # noqa: ASYNC240  # one tiny write
    await asyncio.gather(*tasks)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="micropi-relay-bench-") as tmp:
        runner, url = await _start_hosting(Path(tmp))
        echo, echo_port = await _echo_server()
        try:
            # 1. Latency, one device.
            from micropi_edge.relay import RelayClient

            (device,) = await _pair_devices(url, 1)
            client = RelayClient(url, device["token"], "127.0.0.1", echo_port, pool_size=2)
            client_task = asyncio.create_task(client.run())
            while client.idle_connections < 2:  # noqa: ASYNC110  # polling a count
                await asyncio.sleep(0.05)
            await _round_trips(echo_port, 200)  # warm-up
            await _round_trips(device["port"], 200)
            direct = _percentiles(await _round_trips(echo_port, args.round_trips))
            relayed = _percentiles(await _round_trips(device["port"], args.round_trips))
            started = time.perf_counter()
            connect_samples = []
            for _ in range(50):  # a new HA connection: connect + first answer (what HA's describe sees)
                started = time.perf_counter()
                reader, writer = await asyncio.open_connection("127.0.0.1", device["port"])
                writer.write(PAYLOAD)
                await reader.readexactly(len(PAYLOAD))
                connect_samples.append(time.perf_counter() - started)
                writer.close()
                while client.idle_connections < 2:  # noqa: ASYNC110  # polling a count
                    await asyncio.sleep(0.01)
            results["latency_ms"] = {
                "direct_tcp": direct,
                "through_relay": relayed,
                "added": {k: relayed[k] - direct[k] for k in direct},
                "new_connection_first_answer": _percentiles(connect_samples),
                "round_trips": args.round_trips,
            }
            client_task.cancel()
            await asyncio.gather(client_task, return_exceptions=True)

            # 2. Idle devices.
            if args.devices:
                # Measured before pairing: each paired device holds its TCP endpoint (a listening socket).
                rss_before, fds_before = _rss_mib(), _open_fds()
                devices = await _pair_devices(url, args.devices)
                ready = Path(tmp) / "ready"
                tokens_file = Path(tmp) / "tokens.json"
                tokens_file.write_text(json.dumps([d["token"] for d in devices]))
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.relay_latency",
                    "--child",
                    url,
                    str(tokens_file),
                    str(echo_port),
                    str(ready),
                )
                started = time.perf_counter()
                while not ready.exists():
                    if child.returncode is not None:
                        raise RuntimeError("the device process died")
                    await asyncio.sleep(0.2)
                connect_seconds = time.perf_counter() - started
                await asyncio.sleep(2)
                rss_after, fds_after = _rss_mib(), _open_fds()
                cpu_before = time.process_time()
                await asyncio.sleep(IDLE_WINDOW)  # longer than the WebSocket heartbeat (20 s)
                idle_cpu = (time.process_time() - cpu_before) / IDLE_WINDOW
                child.terminate()
                await child.wait()
                per_device_mib = (rss_after - rss_before) / args.devices
                per_device_fds = (fds_after - fds_before) / args.devices
                results["idle_devices"] = {
                    "devices": args.devices,
                    "connect_all_seconds": round(connect_seconds, 2),
                    "hosting_rss_mib_before": round(rss_before, 1),
                    "hosting_rss_mib_after": round(rss_after, 1),
                    "kib_per_device": round(per_device_mib * 1024, 1),
                    "fds_per_device": round(per_device_fds, 2),
                    "hosting_cpu_while_idle_percent": round(idle_cpu * 100, 2),
                    "fd_limit": hard,
                    "ceiling_by_fds": int((hard - fds_after) / per_device_fds + args.devices)
                    if per_device_fds
                    else None,
                    "ceiling_by_1GiB_memory": int(1024 / per_device_mib) if per_device_mib > 0 else None,
                }
        finally:
            echo.close()
            await runner.cleanup()
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        url, tokens_file, echo_port, ready = argv[1:5]
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        tokens = json.loads(Path(tokens_file).read_text())
        asyncio.run(_run_devices(url, tokens, int(echo_port), Path(ready)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.relay_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=500, help="idle devices to connect (0: skip)")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    latency = results["latency_ms"]
    print(f"relay latency over loopback, {latency['round_trips']} round trips of {len(PAYLOAD)} bytes (ms):")
    for name in ("direct_tcp", "through_relay", "added", "new_connection_first_answer"):
        row = latency[name]
        print(f"  {name:28s} p50 {row['p50']:7.3f}  p95 {row['p95']:7.3f}  p99 {row['p99']:7.3f}")
    if "idle_devices" in results:
        idle = results["idle_devices"]
        print(f"idle devices on one hosting process: {idle['devices']} connected in {idle['connect_all_seconds']} s")
        print(
            f"  {idle['kib_per_device']} KiB and {idle['fds_per_device']} fds per device; "
            f"RSS {idle['hosting_rss_mib_before']} -> {idle['hosting_rss_mib_after']} MiB; "
            f"idle CPU {idle['hosting_cpu_while_idle_percent']} %"
        )
        print(
            f"  ceiling: ~{idle['ceiling_by_fds']} devices by the fd limit ({idle['fd_limit']}), "
            f"~{idle['ceiling_by_1GiB_memory']} per GiB of memory"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
