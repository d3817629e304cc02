"""`python -m hosting`: create-operator, and the service process itself (start, graceful shutdown)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.fernet import Fernet

from hosting.settings import Settings
from tests.hosting.conftest import free_port, start_client
from tests.hosting.helpers import PASSWORD, bearer, log_in, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hosting", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


async def test_create_operator(tmp_path: Path) -> None:
    # One database suffices here: the CLI's storage path is the service's, tested on both elsewhere.
    settings = Settings(
        data_dir=tmp_path / "service",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}",
        jwt_secret="j" * 40,
        fernet_key=Fernet.generate_key().decode(),
        provisioning_enabled=False,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )
    env = {
        "MICROPI_DATA": str(tmp_path / "cli"),
        "MICROPI_DATABASE_URL": settings.effective_database_url,
        "MICROPI_ARGON2_TIME_COST": "1",
        "MICROPI_ARGON2_MEMORY_KIB": "1024",
    }
    short = await asyncio.to_thread(cli, "create-operator", "--email", "op@example.com", env=env, stdin="short\n")
    assert short.returncode == 2
    assert "at least 10 characters" in short.stderr

    made = await asyncio.to_thread(cli, "create-operator", "--email", "Op@Example.com", env=env, stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "operator op@example.com created" in made.stdout
    assert PASSWORD not in made.stdout + made.stderr

    client = await start_client(settings)  # the service, on the same database
    try:
        tokens = await log_in(client, "op@example.com")
        users = await client.get("/api/operator/users", headers=bearer(tokens["access_token"]))
        assert users.status == 200
        assert [u["role"] for u in (await users.json())["users"]] == ["operator"]
    finally:
        await client.close()

    again = await asyncio.to_thread(
        cli, "create-operator", "--email", "op@example.com", env=env, stdin="another password\n"
    )
    assert again.returncode == 0
    assert "password is unchanged" in again.stdout


async def test_service_process_finishes_in_flight_requests_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MICROPI_DATA": str(tmp_path / "data"),
        "MICROPI_PORT": str(port),
        "MICROPI_PROVISIONING": "false",
        # A deliberately slow sign-up (argon2 at 16x the default time cost: about a second on a fast idle
        # core), so SIGTERM lands mid-request.
        "MICROPI_ARGON2_TIME_COST": "48",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hosting", env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base)
            signup = asyncio.create_task(
                session.post(f"{base}/api/auth/signup", json={"email": "late@example.com", "password": PASSWORD})
            )
            await asyncio.sleep(0.1)  # the request is in the handler, hashing
            assert not signup.done(), "the sign-up finished before SIGTERM; raise MICROPI_ARGON2_TIME_COST here"
            process.send_signal(signal.SIGTERM)
            response = await signup
            body: dict[str, Any] = await response.json()
            assert response.status == 201, body
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert b"MicroPi hosting on" in output
    assert PASSWORD.encode() not in output
    # The row it wrote is whole: the account logs in on the next start.
    settings = Settings.from_env({"MICROPI_DATA": str(tmp_path / "data"), "MICROPI_PROVISIONING": "false"})
    client = await start_client(dataclasses.replace(settings, argon2_time_cost=1))
    try:
        await log_in(client, "late@example.com")
    finally:
        await client.close()


async def test_gateway_misconfiguration_is_a_clear_exit(tmp_path: Path) -> None:
    env = {
        "MICROPI_DATA": str(tmp_path / "data"),
        "MICROPI_PORT": str(free_port()),
        "MICROPI_PROVISIONING": "false",
        "MICROPI_OLLAMA_URLS": "ollama:11434",
    }
    bad_url = await asyncio.to_thread(cli, env=env, stdin="")
    assert bad_url.returncode == 2 and "Traceback" not in bad_url.stderr
    assert "MICROPI_OLLAMA_URLS: 'ollama:11434' is not an http(s) URL" in bad_url.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env |= {"MICROPI_OLLAMA_URLS": "http://127.0.0.1:9", "MICROPI_GATEWAY_PORT": str(port)}
        busy = await asyncio.to_thread(cli, env=env, stdin="")
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert f"MICROPI_GATEWAY_PORT={port}" in busy.stderr and "free the port or choose another" in busy.stderr
