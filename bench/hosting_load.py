"""Load benchmark of the hosting service: an authenticated GET under concurrent clients.

    python -m bench.hosting_load                       # 50 clients, 5000 requests of GET /api/me
    python -m bench.hosting_load --clients 50 --requests 20000 --duration 60
    python -m bench.hosting_load --database-url postgresql+asyncpg://user@127.0.0.1:5432/db

Starts `python -m hosting` in its own process (embedded defaults in a temporary data dir, provisioning off,
loopback only), signs up one user, then `--clients` concurrent clients send the GET with that user's
access token until `--requests` are done or `--duration` seconds pass. Prints requests per second and
latency percentiles (p50/p95/p99) measured at the client, plus the error count. Every request goes
through the full stack: JWT check, user lookup in the database, JSON response. The load generator runs in
this process, so on a small machine it competes with the service for CPU; the figures are a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "load benchmark password"  # noqa: S105  # a throw-away account on a throw-away service


@dataclass
class Result:
    requests: int
    errors: int
    elapsed: float
    latencies: list[float]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def report(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.elapsed, 3),
            "rps": round(self.requests / self.elapsed, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p95_ms": round(self.percentile(95) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2),
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def local_service(database_url: str | None) -> AsyncIterator[str]:
    """`python -m hosting` on a free loopback port with a throw-away data dir; its base URL."""
    with tempfile.TemporaryDirectory(prefix="micropi-load-") as data:
        port = _free_port()
        env = {
            **os.environ,
            "MICROPI_DATA": data,
            "MICROPI_HOST": "127.0.0.1",
            "MICROPI_PORT": str(port),
            "MICROPI_PROVISIONING": "false",
            # Only the one sign-up and login are limited; keep them out of the way of repeated runs.
            "MICROPI_LOGIN_LIMIT_PER_IP": "1000",
        }
        if database_url:
            env["MICROPI_DATABASE_URL"] = database_url
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hosting",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,  # aiohttp's access log: a line per request
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_healthy(base, process)
            yield base
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 60)


async def _wait_healthy(base: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"the service exited with {process.returncode} before it answered")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{base}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("the service did not answer /health within 60 s")


async def access_token(base: str) -> str:
    async with aiohttp.ClientSession() as session:
        credentials = {"email": f"load-{time.time_ns()}@example.com", "password": PASSWORD}
        async with session.post(f"{base}/api/auth/signup", json=credentials) as response:
            if response.status != 201:
                raise RuntimeError(f"sign-up failed: {response.status} {await response.text()}")
            body = await response.json()
    return str(body["tokens"]["access_token"])


async def run_load(base: str, token: str, *, path: str, clients: int, requests: int, duration: float) -> Result:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + duration
    headers = {"Authorization": f"Bearer {token}"}
    # One connection per client, kept alive: what 50 real clients with keep-alive would do.
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            started = time.perf_counter()
            try:
                async with session.get(f"{base}{path}", headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return Result(len(latencies), errors, elapsed, latencies)


def _loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        loopback = socket.inet_aton(socket.gethostbyname(host))[0] == 127
    except OSError:
        loopback = False
    if not loopback:
        raise SystemExit(f"--url must point at this machine's loopback (127.0.0.0/8), not {host!r}")
    return url.rstrip("/")


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    if args.url:
        base = _loopback_only(args.url)
        token = args.token or await access_token(base)
        result = await run_load(
            base, token, path=args.path, clients=args.clients, requests=args.requests, duration=args.duration
        )
        return {"service": base, **result.report()}
    async with local_service(args.database_url) as base:
        token = await access_token(base)
        # A short warm-up (connections, caches), not counted.
        await run_load(
            base, token, path=args.path, clients=args.clients, requests=min(500, args.requests), duration=args.duration
        )
        result = await run_load(
            base, token, path=args.path, clients=args.clients, requests=args.requests, duration=args.duration
        )
    database = "postgresql" if args.database_url else "sqlite"
    return {"service": "python -m hosting (local)", "database": database, "clients": args.clients, **result.report()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hosting_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=5000, help="total requests (the bound on work)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds at most (the bound on time)")
    parser.add_argument("--path", default="/api/me", help="the authenticated GET to load")
    parser.add_argument("--database-url", help="run the service on this database instead of embedded SQLite")
    parser.add_argument("--url", help="load an already running service on loopback instead of starting one")
    parser.add_argument("--token", help="with --url: an access token to use (else a user is signed up)")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be at least 1")
    report = asyncio.run(main_async(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
