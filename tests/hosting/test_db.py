"""Storage on SQLite and PostgreSQL: migrations build exactly the models' schema, constraints hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from hosting.db import create_engine, migrate, session_factory
from hosting.db.engine import alembic_config
from hosting.db.models import Base, Instance, RefreshToken, User


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _downgrade_to_base(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


async def test_migrations_build_the_models_schema_and_are_idempotent(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await migrate(engine)  # every start runs it; the second time is a no-op
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables >= {"users", "refresh_tokens", "instances", "audit_events", "devices", "alembic_version"}
        async with engine.begin() as connection:  # the downgrade path works too
            await connection.run_sync(_downgrade_to_base)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
    finally:
        await engine.dispose()


async def test_constraints(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            user = User(email="a@example.com", password_hash="x")
            other = User(email="b@example.com", password_hash="x")
            session.add_all([user, other])
            await session.flush()
            session.add(Instance(user_id=user.id, name="micropi-ha-a", port=8200))
        # The port is what concurrent allocators race for: a second row with it must fail.
        with pytest.raises(IntegrityError):
            async with sessions() as session, session.begin():
                session.add(Instance(user_id=other.id, name="micropi-ha-b", port=8200))
        # One instance per user.
        with pytest.raises(IntegrityError):
            async with sessions() as session, session.begin():
                session.add(Instance(user_id=user.id, name="micropi-ha-c", port=8201))
        with pytest.raises(IntegrityError):
            async with sessions() as session, session.begin():
                session.add(User(email="a@example.com", password_hash="y"))
        # Foreign keys are enforced (SQLite too: they are switched on per connection).
        with pytest.raises(IntegrityError):
            async with sessions() as session, session.begin():
                session.add(
                    RefreshToken(user_id="no-such-user", family_id="f", token_hash="h", expires_at=datetime.now(UTC))
                )
    finally:
        await engine.dispose()


async def test_datetimes_come_back_in_utc(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        async with session_factory(engine)() as session, session.begin():
            user = User(email="t@example.com", password_hash="x")
            session.add(user)
        async with session_factory(engine)() as session:
            loaded = await session.get_one(User, user.id)
        assert loaded.created_at.tzinfo is UTC
        assert abs((loaded.created_at - datetime.now(UTC)).total_seconds()) < 60
    finally:
        await engine.dispose()
