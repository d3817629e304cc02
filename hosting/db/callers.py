"""The hot read: the caller's user row, by id, on every authenticated request.

It is read from the database each time (a deleted account or a changed role applies to the very next
request), so it is the one query worth making cheap. The profile of `bench.hosting_load` showed the ORM
session per request costing more than everything else on the path together: on SQLite, aiosqlite's thread
hop for each step (checkout, cursor, execute, fetch, close, rollback on return); on PostgreSQL, BEGIN and
ROLLBACK round trips and the pool's pre-ping around the one SELECT, and SQLAlchemy's own work per query.
So the read goes straight to the driver, with the statement SQLAlchemy compiled once and the row through
the same SQLAlchemy type processors as the ORM's:

- SQLite (a file): a read-only aiosqlite connection of its own, one `execute_fetchall` per lookup (one
  thread hop). Readers never wait for the writer in WAL mode.
- PostgreSQL: a small asyncpg pool of its own (asyncpg keeps the prepared statement): one round trip.
- SQLite in memory (a second connection would see another database): through the engine, outside any
  transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiosqlite
import asyncpg
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hosting.db.models import User

_CALLER = select(User.__table__).where(User.id == bindparam("user_id"), User.deleted_at.is_(None))
POSTGRES_READ_CONNECTIONS = 10
# Options of SQLAlchemy's asyncpg adapter, not of asyncpg.
_ADAPTER_OPTIONS = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


class CallerReader(Protocol):
    async def read(self, user_id: str) -> User | None:
        """The live account of `user_id` (transient: writers load their own row), or None."""

    async def close(self) -> None: ...


class EngineCallerReader:
    """Through the engine's pool, outside any transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def read(self, user_id: str) -> User | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(_CALLER, {"user_id": user_id})).first()
        return User(**row._mapping) if row is not None else None

    async def close(self) -> None:
        return None


class _DriverRows:
    """The statement compiled for the engine's dialect, and rows of the driver made into users."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sql = str(_CALLER.compile(dialect=engine.dialect))
        columns = list(_CALLER.selected_columns)
        self._names: list[str] = [str(column.key) for column in columns]
        self._processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None) for column in columns
        ]

    def user(self, row: Sequence[Any]) -> User:
        values = {
            name: process(value) if process is not None else value
            for name, process, value in zip(self._names, self._processors, row, strict=True)
        }
        return User(**values)


class SqliteCallerReader:
    def __init__(self, rows: _DriverRows, connection: aiosqlite.Connection) -> None:
        self._rows = rows
        self._connection = connection  # aiosqlite runs its calls one after another on its own thread

    async def read(self, user_id: str) -> User | None:
        found = list(await self._connection.execute_fetchall(self._rows.sql, (user_id,)))
        return self._rows.user(found[0]) if found else None

    async def close(self) -> None:
        await self._connection.close()


class PostgresCallerReader:
    def __init__(self, rows: _DriverRows, pool: asyncpg.Pool) -> None:
        self._rows = rows
        self._pool = pool

    async def read(self, user_id: str) -> User | None:
        row = await self._pool.fetchrow(self._rows.sql, user_id)
        return self._rows.user(tuple(row)) if row is not None else None

    async def close(self) -> None:
        await self._pool.close()


async def open_caller_reader(engine: AsyncEngine) -> CallerReader:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        connection = await aiosqlite.connect(f"file:{url.database}?mode=ro", uri=True, timeout=30)
        return SqliteCallerReader(_DriverRows(engine), connection)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        _, options = engine.dialect.create_connect_args(url)  # the engine's own host, credentials, ssl
        for option in _ADAPTER_OPTIONS:
            options.pop(option, None)
        pool = await asyncpg.create_pool(min_size=1, max_size=POSTGRES_READ_CONNECTIONS, **options)
        return PostgresCallerReader(_DriverRows(engine), pool)
    return EngineCallerReader(engine)
