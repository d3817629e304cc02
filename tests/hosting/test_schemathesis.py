"""The fuzzer (schemathesis, every check) against the running service: `python -m hosting` on PostgreSQL,
with an operator's token for the operator endpoints, a paired device's token for the device's own
endpoints (heartbeat, relay), and a user's token for everything else.

The gate: no server error and no disagreement between the OpenAPI document and the behaviour (status
codes, content types, headers, response schemas, valid input accepted, invalid input refused, Allow
headers, authentication enforced). It covers whatever the document describes when it runs. Bounded: each
of the two runs has a time budget (`FUZZ_SECONDS`), the whole test stays under two minutes; a fixed seed
makes the generated cases repeatable. The service's log must hold no traceback either.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.hosting.conftest import PostgresServer, free_port, free_port_range
from tests.hosting.helpers import PASSWORD, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
# Each run's budget, by the token it sends; with start-up the whole test stays under two minutes.
FUZZ_SECONDS = {"user": 30, "operator": 15, "device": 8}
# The operations each token is for (the user's: everything else). The relay is a WebSocket, not a JSON API
# (a fuzzer's plain GET gets the documented 400); its protocol has tests of its own (test_devices_*, edge).
OPERATOR_PATHS = "^/api/operator/"
DEVICE_PATHS = "^/api/devices/heartbeat$"
RELAY_PATH = "^/api/devices/relay$"
# The live-update stream never ends while its token is valid (a fuzzer would wait for its body until it
# gives up); tests/hosting/test_live_history.py and tests/web are its tests.
EVENTS_PATH = "^/api/events$"
SEED = 14


@pytest.fixture
async def service(postgres_server: PostgresServer, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str], Path]]:
    """`python -m hosting` on a fresh PostgreSQL database; its base URL, the tokens by role, its log."""
    name = f"fuzz_{uuid.uuid4().hex}"
    await postgres_server.admin(f'CREATE DATABASE "{name}"')
    port = free_port()
    env = {
        **os.environ,
        "MICROPI_DATA": str(tmp_path / "data"),
        "MICROPI_DATABASE_URL": postgres_server.url(name),
        "MICROPI_PORT": str(port),
        # Real instance management, with a `hass` that exits at once (as tests/hosting/conftest.py's
        # provisioning_settings): sign-ups and the operator's instance operations run for real, quickly.
        "MICROPI_PROVISIONING": "true",
        "MICROPI_HASS": "/bin/false",
        "MICROPI_PORT_RANGE": "{}-{}".format(*free_port_range(30)),
        "MICROPI_RELAY_PORT_RANGE": "{}-{}".format(*free_port_range(10)),
        "MICROPI_ARGON2_TIME_COST": "1",
        "MICROPI_ARGON2_MEMORY_KIB": "1024",
        "MICROPI_ARGON2_PARALLELISM": "1",
    }
    log = tmp_path / "service.log"
    operator = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hosting", "create-operator", "--email", "operator@example.com"],
        input=PASSWORD + "\n",
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "created" in operator.stdout
    with log.open("w") as log_file:
        process = subprocess.Popen(  # noqa: ASYNC220  # starting it does not block; it runs beside the test
            [sys.executable, "-m", "hosting"], env=env, cwd=ROOT, stdout=log_file, stderr=log_file
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, process)
            tokens = {
                "user": await _token(session, base, "signup", "user@example.com"),
                "operator": await _token(session, base, "login", "operator@example.com"),
            }
            tokens["device"] = await _device_token(session, base, tokens["user"])
        yield base, tokens, log
    finally:
        process.terminate()
        process.wait(timeout=60)
        await postgres_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _token(session: aiohttp.ClientSession, base: str, how: str, email: str) -> str:
    async with session.post(f"{base}/api/auth/{how}", json={"email": email, "password": PASSWORD}) as response:
        body = await response.json()
        assert response.status in (200, 201), body
    tokens = body["tokens"] if how == "signup" else body
    return str(tokens["access_token"])


async def _device_token(session: aiohttp.ClientSession, base: str, user_token: str) -> str:
    headers = {"Authorization": f"Bearer {user_token}"}
    async with session.post(f"{base}/api/devices/pairing-codes", json={}, headers=headers) as response:
        code = (await response.json())["code"]
    async with session.post(f"{base}/api/devices/pair", json={"code": code}) as response:
        body = await response.json()
        assert response.status == 201, body
    return str(body["token"])


def fuzz(base: str, token: str, role: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """One schemathesis run, in `workdir` (where it keeps its cache: every run starts without one)."""
    if role == "user":
        paths = [f"--exclude-path-regex={OPERATOR_PATHS}|{DEVICE_PATHS}|{RELAY_PATH}|{EVENTS_PATH}"]
    else:
        paths = ["--include-path-regex", OPERATOR_PATHS if role == "operator" else DEVICE_PATHS]
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{base}/api/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        *paths,
        "--max-time",
        str(FUZZ_SECONDS[role]),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-junit-path",
        str(workdir / f"{role}.xml"),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS[role] + 60,
        check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.hosting.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
        cwd=workdir,
    )


@pytest.mark.postgres
async def test_the_fuzzer_finds_nothing(service: tuple[str, dict[str, str], Path], tmp_path: Path) -> None:
    base, tokens, log = service
    failures = []
    for role in FUZZ_SECONDS:
        result = await asyncio.to_thread(fuzz, base, tokens[role], role, tmp_path)
        print(result.stdout[-3000:])
        if result.returncode != 0:
            failures.append(
                f"--- {role} token (exit {result.returncode}):\n{result.stdout[-12000:]}{result.stderr[-2000:]}"
            )
    assert not failures, "\n".join(failures)
    text = log.read_text()
    assert "Traceback" not in text, text[-5000:]
