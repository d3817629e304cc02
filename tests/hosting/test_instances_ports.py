"""Port allocation under concurrency, on SQLite and on a real PostgreSQL: UNIQUE(port) decides."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tarfile
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import Instance, User
from hosting.instances import INSTANCE_MANAGER_KEY
from hosting.ports import PortPoolExhausted, free_port_count, insert_with_port, port_pool
from hosting.reconcile import restart_delay
from hosting.runtime.base import ArchiveError, sanitize_archive, tar_directory
from hosting.settings import Settings
from tests.hosting.conftest import start_client
from tests.hosting.helpers import assert_error, sign_up


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


async def add_users(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with sessions() as session, session.begin():
        session.add_all(User(id=i, email=f"{i}@example.hu", password_hash="x") for i in ids)
    return ids


def row_for(user_id: str) -> Any:
    def make(port: int) -> Instance:
        instance_id = str(uuid.uuid4())
        return Instance(id=instance_id, user_id=user_id, name=f"micropi-ha-{instance_id[:8]}", port=port)

    return make


async def test_twenty_concurrent_allocations_get_twenty_distinct_ports(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pool = range(8200, 8220)  # exactly 20: every allocation must find the one port nobody else took
    users = await add_users(sessions, 21)
    rows = await asyncio.gather(*(insert_with_port(sessions, pool, row_for(u)) for u in users[:20]))
    ports = [row.port for row in rows]
    assert sorted(ports) == list(pool)
    assert await free_port_count(sessions, pool) == 0
    with pytest.raises(PortPoolExhausted, match="all 20 ports of the instance pool 8200-8219 are in use"):
        await insert_with_port(sessions, pool, row_for(users[20]))


async def test_concurrent_allocations_for_one_user_give_one_instance(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    (user,) = await add_users(sessions, 1)
    rows = await asyncio.gather(*(insert_with_port(sessions, range(8200, 8300), row_for(user)) for _ in range(10)))
    assert len({row.id for row in rows}) == 1
    async with sessions() as session:
        assert len((await session.scalars(select(Instance))).all()) == 1


async def test_twenty_simultaneous_sign_ups_get_twenty_distinct_ports(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sign-ups through the API with instances on: the docker runtime pointed at a socket that is not
    # there, so provisioning fails fast in the background (this test is about the ports, not HA).
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    settings = dataclasses.replace(
        settings, provisioning_enabled=True, runtime="docker", port_range=(8200, 8219), signup_limit_per_ip=100
    )
    client = await start_client(settings)
    try:
        bodies = await asyncio.gather(*(sign_up(client, f"user{i}@example.hu") for i in range(20)))
        ports = [body["instance"]["port"] for body in bodies]
        assert sorted(ports) == list(range(8200, 8220))
        assert all(body["instance"]["url"] == f"http://127.0.0.1:{body['instance']['port']}" for body in bodies)

        # The 21st: the account is made, the instance cannot be: a clear 503.
        response = await client.post("/api/auth/signup", json={"email": "late@example.hu", "password": "x" * 12})
        assert response.status == 503
        assert_error(await response.json(), "no_capacity")

        manager = client.app[INSTANCE_MANAGER_KEY]
        for body in bodies:
            done = await manager.wait_provisioned(body["instance"]["id"])
            assert done.status == "error"
            assert "cannot reach dockerd" in json.loads(done.provision_state)["failure"]["detail"]
    finally:
        await client.close()


def test_restart_back_off_doubles_up_to_the_ceiling() -> None:
    delays = [restart_delay(count, base=10, ceiling=60) for count in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (10, 20, 40, 60, 60)]


def test_port_pool_is_inclusive() -> None:
    assert port_pool((8200, 8300)) == range(8200, 8301)


def test_archives_keep_only_config_and_drop_runtime_state(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / ".storage").mkdir(parents=True)
    (config / "configuration.yaml").write_text("frontend:\n")
    (config / ".storage" / "http").write_text("{}")  # the process runtime's port: never carried over
    archive, checked = tmp_path / "backup.tar.gz", tmp_path / "checked.tar.gz"
    tar_directory(config, archive)
    sanitize_archive(archive, checked)
    with tarfile.open(checked) as tar:
        names = set(tar.getnames())
    assert "config/configuration.yaml" in names
    assert "config/.storage/http" not in names

    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar at all")
    with pytest.raises(ArchiveError, match="cannot be read"):
        sanitize_archive(tmp_path / "junk.tar.gz", checked)
