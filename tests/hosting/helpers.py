"""Small client-side steps the hosting tests share (real HTTP requests against the running app)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from hosting.db.models import OPERATOR_ROLE, User
from hosting.keys import PASSWORDS_KEY, SESSIONS_KEY
from hosting.settings import Settings

PASSWORD = "correct horse battery"
SETTLE_TIMEOUT = 60.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(client: TestClient[Any, Any], email: str, password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/auth/signup", json={"email": email, "password": password, **fields})
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return body


async def log_in(client: TestClient[Any, Any], email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def make_operator(client: TestClient[Any, Any], email: str) -> dict[str, Any]:
    """An operator as `create-operator` makes one (an account with no Home Assistant of its own: a signed-up
    one would leave a real `hass` running after an end-to-end test), then logged in."""
    password_hash = await client.app[PASSWORDS_KEY].hash(PASSWORD)
    async with client.app[SESSIONS_KEY]() as session, session.begin():
        session.add(User(email=email, password_hash=password_hash, role=OPERATOR_ROLE))
    return await log_in(client, email)


async def settled_instance(client: TestClient[Any, Any], access_token: str) -> dict[str, Any]:
    """The caller's instance once background provisioning has ended (ready or error)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        response = await client.get("/api/me/instance", headers=bearer(access_token))
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        if body["status"] != "provisioning":
            return body
        assert time.monotonic() < deadline, f"still provisioning after {SETTLE_TIMEOUT} s: {body}"
        await asyncio.sleep(0.1)


async def wait_healthy(session: aiohttp.ClientSession, base: str, process: subprocess.Popen[Any] | None = None) -> None:
    """Until the service at `base` answers /health with 200 (60 s at most); fails at once if `process` exits."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process is None or process.poll() is None, "the service exited at start"
        try:
            async with session.get(f"{base}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the service did not become healthy within 60 s")


def assert_error(body: Any, code: str) -> None:
    """The one error shape, with the expected code."""
    assert set(body) == {"error", "request_id"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    assert body["request_id"], body


def port_pool(size: int = 10) -> tuple[int, int]:
    """A random range below the ephemeral ports, so parallel runs and other tests rarely meet."""
    first = random.randrange(20000, 32000 - size)
    return first, first + size - 1


async def wait_for(condition: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """The first truthy value of `condition()`, polled every 0.5 s; AssertionError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.5)


def process_settings(tmp_path: Path, ollama_url: str, model: str, **changes: Any) -> Settings:
    """The embedded default on the test's own files: SQLite, fresh secrets, the process runtime with real
    `hass` processes on a random port range, the given model server; reconciliation left to the test."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}",
        jwt_secret=uuid.uuid4().hex * 2,
        fernet_key=Fernet.generate_key().decode(),
        provisioning_enabled=True,
        runtime="process",
        port_range=port_pool(),
        ollama_url=ollama_url,
        ollama_model=model,
        reconcile_interval=3600,
    )
    return dataclasses.replace(settings, **changes)
