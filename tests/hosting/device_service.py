"""The real hosting service (SQLite, loopback) with its device service, owners signed up through the real
API, and paired devices: for the device tests here and the edge package's tests (tests/edge/conftest.py).

A test module changes the service's settings by overriding `devices_config` (changes to `Settings`), or
starts a service of its own with `running_hosting(settings)`."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from sqlalchemy import select

from hosting.app import create_app
from hosting.db.models import Instance, User
from hosting.devices import DEVICES_KEY, DeviceService
from hosting.keys import SECRET_BOX_KEY
from hosting.settings import Settings


@dataclass
class Owner:
    email: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Hosting:
    """The running service: an HTTP client on it, its URL and its device service."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.url = str(client.make_url("")).rstrip("/")
        self.devices: DeviceService = client.app[DEVICES_KEY]

    async def sign_up(self, email: str | None = None) -> Owner:
        email = email or f"owner-{uuid.uuid4().hex[:8]}@example.com"
        response = await self.client.post("/api/auth/signup", json={"email": email, "password": "correct horse 1"})
        assert response.status == 201, await response.text()
        return Owner(email, (await response.json())["tokens"]["access_token"])

    async def pairing_code(self, owner: Owner, name: str = "Living room Pi") -> str:
        response = await self.client.post("/api/devices/pairing-codes", json={"name": name}, headers=owner.headers)
        assert response.status == 201, await response.text()
        code: str = (await response.json())["code"]
        return code

    async def pair(self, owner: Owner, name: str = "Living room Pi") -> dict[str, Any]:
        """Pairs a device the way `micropi-edge pair` does; returns the response (device and token)."""
        code = await self.pairing_code(owner, name)
        response = await self.client.post("/api/devices/pair", json={"code": code})
        assert response.status == 201, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def add_ready_instance(self, owner: Owner, name: str, port: int, ha_token: str) -> None:
        """Give the owner an HA on `port` as provisioning leaves it: ready, with the service's token. Its
        public URL is one the service cannot reach (as behind a real proxy): the service must use the
        runtime's address."""
        box = self.client.app[SECRET_BOX_KEY]
        async with self.devices.sessions() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == owner.email))
            assert user is not None
            session.add(
                Instance(
                    user_id=user.id,
                    name=name,
                    port=port,
                    status="ready",
                    url=f"https://{name}.micropi.invalid",
                    ha_token_encrypted=box.encrypt(ha_token),
                )
            )

    async def list_devices(self, owner: Owner) -> list[dict[str, Any]]:
        response = await self.client.get("/api/devices", headers=owner.headers)
        assert response.status == 200, await response.text()
        devices: list[dict[str, Any]] = (await response.json())["devices"]
        return devices


# Relay endpoints on free ephemeral ports of 127.0.0.1.
TEST_DEVICE_SETTINGS: dict[str, Any] = {
    "relay_ports": None,
    "relay_bind_host": "127.0.0.1",
    "relay_ha_host": "127.0.0.1",
}


@pytest.fixture
def hosting_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}",
        jwt_secret=uuid.uuid4().hex * 2,
        fernet_key=Fernet.generate_key().decode(),
        provisioning_enabled=False,
        reconcile_interval=3600,
        **TEST_DEVICE_SETTINGS,
    )


@pytest.fixture
def devices_config() -> dict[str, Any]:
    """Changes to `hosting_settings` for the module's tests (none here)."""
    return {}


@asynccontextmanager
async def running_hosting(settings: Settings) -> AsyncIterator[Hosting]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Hosting(client)
    finally:
        await client.close()


@pytest.fixture
async def hosting(hosting_settings: Settings, devices_config: dict[str, Any]) -> AsyncIterator[Hosting]:
    async with running_hosting(dataclasses.replace(hosting_settings, **devices_config)) as service:
        yield service
