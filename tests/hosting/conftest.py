"""Shared fixtures of the hosting tests: a database on SQLite AND a real PostgreSQL, settings, the app client.

PostgreSQL comes from Debian's packages (`scripts/services.sh install`): one private server per test
session (initdb + pg_ctl in a temp dir, as the `postgres` OS user because initdb refuses root, on a free
loopback port), a fresh database per test, stopped at the end. Without PostgreSQL the PostgreSQL variants
are skipped locally and FAIL when `CI=true`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from hosting.app import create_app
from hosting.settings import Settings

# The hosting service with its device service, for the device tests (test_devices_*.py).
from tests.hosting.device_service import devices_config, hosting, hosting_settings

__all__ = ["devices_config", "hosting", "hosting_settings"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(reason: str) -> None:
    """A real service the test needs is missing: a failure in CI, a skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: real services are required)")
    pytest.skip(reason)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    async def admin(self, sql: str) -> None:
        connection = await asyncpg.connect(host=self.host, port=self.port, user=self.user, database="postgres")
        try:
            await connection.execute(sql)
        finally:
            await connection.close()


def _postgres_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed; run `bash scripts/services.sh install`")
        raise AssertionError("unreachable")
    as_root = os.geteuid() == 0
    # initdb refuses to run as root: the server runs as the `postgres` OS user the package made.
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="micropi-pg-"))
    data, sockets, log = base / "data", base / "sock", base / "server.log"
    sockets.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    try:
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} "
            # Test data is disposable: durability off makes every CREATE DATABASE and commit fast.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    except (subprocess.SubprocessError, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        server_log = log.read_text() if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        unavailable(f"PostgreSQL did not start: {err} {detail.decode(errors='replace')} {server_log}")
        raise AssertionError("unreachable") from err
    try:
        yield PostgresServer("127.0.0.1", port)
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    asyncio.run(server.admin(f'CREATE DATABASE "{name}"'))
    try:
        yield server.url(name)
    finally:
        asyncio.run(server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Embedded-default settings on the test's database, with provisioning off (tests that need
    instances turn it on with `dataclasses.replace`)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        jwt_secret=uuid.uuid4().hex * 2,
        fernet_key=Fernet.generate_key().decode(),
        provisioning_enabled=False,
        # Real argon2id at its lowest cost: the default costs ~0.5 s of a busy CI core per hash.
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        reconcile_interval=3600,
    )


def free_port_range(size: int) -> tuple[int, int]:
    """A run of `size` loopback ports nothing listens on right now."""
    for _ in range(100):
        first = random.randrange(30000, 60000 - size)
        if all(_port_is_free(port) for port in range(first, first + size)):
            return first, first + size - 1
    raise RuntimeError(f"no {size} consecutive free ports found")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def provisioning_settings(settings: Settings) -> Settings:
    """Settings with the REAL InstanceManager and process runtime, whose `hass` is `/bin/false`: a Home
    Assistant that exits at once. Sign-ups get real instances (rows, ports, directories, processes) that
    end in `error` within a second; every instance operation runs for real without a minute-long HA start.
    The end-to-end tests with a real `hass` are tests/hosting/test_e2e*.py."""
    return dataclasses.replace(
        settings, provisioning_enabled=True, hass_command="/bin/false", port_range=free_port_range(10)
    )


async def start_client(settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """A running service (real HTTP on loopback) on the test's database."""
    client = await start_client(settings)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def instance_client(provisioning_settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """A running service with the real InstanceManager (see `provisioning_settings`)."""
    client = await start_client(provisioning_settings)
    try:
        yield client
    finally:
        await client.close()
