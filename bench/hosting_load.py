"""Load benchmark of the hosting service against its floor: an authenticated GET under concurrent clients.

    python -m bench.hosting_load                       # 50 clients, 3 rounds of 3000 GET /api/me each
    python -m bench.hosting_load --postgres            # the same on a throw-away PostgreSQL server
    python -m bench.hosting_load --database-url postgresql+asyncpg://user@127.0.0.1:5432/db
    python -m bench.hosting_load --profile /tmp/service.prof   # the service under cProfile; prints the top

Starts `python -m hosting` in its own process (embedded defaults in a temporary data dir, provisioning off,
loopback only) and signs up one user. Then it starts the floor (`bench.hosting_floor`: bare aiohttp, PyJWT
and one lookup of the same user row in the same database, nothing else) and loads both, alternating, round
after round: `--clients` concurrent clients send the GET with that user's access token until `--requests`
are done or `--duration` seconds pass. Prints requests per second and latency percentiles (p50/p95/p99)
measured at the client, the error count, and the service's share of the floor (median over the rounds).
The load generator runs in this process, so on a small machine it competes with both servers for CPU:
only the ratio within one run means something.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
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

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    def report(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p95_ms": round(self.percentile(95) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def local_process(argv: list[str], env: dict[str, str], port: int) -> AsyncIterator[str]:
    """A server process on a loopback port, until it answers /health; its base URL."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,  # the service's access log: a line per request
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(base, process)
        yield base
    finally:
        if process.returncode is None:
            # SIGINT: aiohttp shuts down cleanly, and a profiler (cProfile, py-spy) writes its file.
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 60)


async def _wait_healthy(base: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"{base}: the server exited with {process.returncode} before it answered")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{base}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not answer /health within 60 s")


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


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL server (Debian's binaries, as in the tests) in a temp dir; its URL."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not initdb:
        raise SystemExit("PostgreSQL is not installed; run `bash scripts/services.sh install`")
    bin_dir = initdb[-1].parent
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    base = Path(tempfile.mkdtemp(prefix="micropi-load-pg-"))
    if run_as:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off"
    pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
    subprocess.run([*pg_ctl, "-l", str(base / "log"), "-o", options, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


async def compare(args: argparse.Namespace, database_url: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="micropi-load-") as data:
        url = database_url or f"sqlite+aiosqlite:///{Path(data) / 'hosting.db'}"
        service_port, floor_port = _free_port(), _free_port()
        env = {
            **os.environ,
            "MICROPI_DATA": data,
            "MICROPI_DATABASE_URL": url,
            "MICROPI_JWT_SECRET": secrets.token_urlsafe(48),
            "MICROPI_HOST": "127.0.0.1",
            "MICROPI_PORT": str(service_port),
            "MICROPI_PROVISIONING": "false",
        }
        service = [sys.executable, "-m", "hosting"]
        if args.profile and args.profile.suffix == ".txt":  # py-spy's folded stacks (sampling, low overhead)
            service = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(args.profile),
                "--",
                *service,
            ]
        elif args.profile:
            service = [sys.executable, "-m", "cProfile", "-o", str(args.profile), "-m", "hosting"]
        floor = [sys.executable, "-m", "bench.hosting_floor", "--port", str(floor_port), "--database-url", url]
        load = {"path": args.path, "clients": args.clients, "requests": args.requests, "duration": args.duration}
        rounds: dict[str, list[Result]] = {"service": [], "floor": []}
        async with local_process(service, env, service_port) as service_base:
            token = await access_token(service_base)  # the user row exists from here on, for the floor too
            async with local_process(floor, env, floor_port) as floor_base:
                targets = {"service": service_base, "floor": floor_base}
                for base in targets.values():  # warm-up (connections, caches), not counted
                    await run_load(base, token, **{**load, "requests": min(500, args.requests)})
                for _ in range(args.rounds):
                    for name, base in targets.items():
                        rounds[name].append(await run_load(base, token, **load))
    if args.profile:
        print_profile(args.profile)
    ratio_rps = statistics.median(s.rps / f.rps for s, f in zip(rounds["service"], rounds["floor"], strict=True))
    ratio_p99 = statistics.median(
        s.percentile(99) / f.percentile(99) for s, f in zip(rounds["service"], rounds["floor"], strict=True)
    )
    return {
        "database": "postgresql" if database_url else "sqlite",
        "clients": args.clients,
        "path": args.path,
        "service": [r.report() for r in rounds["service"]],
        "floor": [r.report() for r in rounds["floor"]],
        "service_rps_over_floor": round(ratio_rps, 2),
        "service_p99_over_floor": round(ratio_p99, 2),
        "goal": "rps ratio >= 0.8 and p99 ratio <= 2.0",
    }


def print_profile(path: Path) -> None:
    if path.suffix == ".txt":
        print_folded(path)
        return
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def print_folded(path: Path, top: int = 40) -> None:
    """py-spy's folded stacks, to stderr: of the samples in which the event loop was busy (not waiting in
    epoll, not in start-up imports, not an idle driver thread), the share each function has on the stack
    (inclusive) and at its top (self)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [re.sub(r"\(/\S*/", "(", frame) for frame in stack.split(";")]  # file names only
        if not any(f.startswith("Handle._run") for f in frames) or "select (selectors.py" in frames[-1]:
            continue
        count = int(count_text)
        total += count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    for title, table in (("self", own), ("inclusive", inclusive)):
        print(f"--- {title}: share of {total} busy event-loop samples", file=sys.stderr)
        for frame, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"{100 * count / total:5.1f}%  {frame}", file=sys.stderr)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    if args.url:
        base = _loopback_only(args.url)
        token = args.token or await access_token(base)
        load = {"path": args.path, "clients": args.clients, "requests": args.requests, "duration": args.duration}
        return {"service": base, **(await run_load(base, token, **load)).report()}
    if args.postgres:
        with throwaway_postgres() as database_url:
            return await compare(args, database_url)
    return await compare(args, args.database_url)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hosting_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round (the bound on work)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per round at most (bound on time)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating service/floor rounds")
    parser.add_argument("--path", default="/api/me", help="the authenticated GET to load")
    parser.add_argument("--database-url", help="run both on this (empty) database instead of embedded SQLite")
    parser.add_argument("--postgres", action="store_true", help="run both on a throw-away PostgreSQL server")
    parser.add_argument("--profile", type=Path, help="run the service under cProfile, write the stats here")
    parser.add_argument("--url", help="only load an already running service on loopback (no floor)")
    parser.add_argument("--token", help="with --url: an access token to use (else a user is signed up)")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1 or args.rounds < 1:
        parser.error("--clients, --requests and --rounds must be at least 1")
    report = asyncio.run(main_async(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
