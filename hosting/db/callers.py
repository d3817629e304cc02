"""The hot read: the caller's user row, by id, on every authenticated request.

It is read from the database each time (a deleted account or a changed role applies to the very next
request), so it is the one query worth making cheap. The profile of `bench.hosting_load` showed an ORM
session per request costing more than everything else on the path together: on SQLite, aiosqlite's
thread hop for each step (checkout, cursor, execute, fetch, close, rollback on return), on PostgreSQL
the BEGIN/ROLLBACK round trips and the pool's pre-ping around the one SELECT. So:

- PostgreSQL: one Core statement, built once, on an AUTOCOMMIT view of the engine (same pool): one round
  trip.
- SQLite (a file): a dedicated read-only aiosqlite connection, one `execute_fetchall` per lookup (one
  thread hop). Readers never wait for the writer in WAL mode; the row goes through the same SQLAlchemy
  type processors as the ORM's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
from sqlalchemy import bindparam, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hosting.db.models import User

_CALLER = select(User.__table__).where(User.id == bindparam("user_id"), User.deleted_at.is_(None))


class CallerReader(Protocol):
    async def read(self, user_id: str) -> User | None:
        """The live account of `user_id` (transient: writers load their own row), or None."""

    async def close(self) -> None: ...


class EngineCallerReader:
    """Through the engine's pool, outside any transaction (PostgreSQL; SQLite in memory)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def read(self, user_id: str) -> User | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(_CALLER, {"user_id": user_id})).first()
        return User(**row._mapping) if row is not None else None

    async def close(self) -> None:
        return None


class SqliteCallerReader:
    """A read-only connection of its own to the SQLite file."""

    def __init__(self, engine: AsyncEngine, connection: aiosqlite.Connection) -> None:
        compiled = _CALLER.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        columns = list(_CALLER.selected_columns)
        self._names: list[str] = [str(column.key) for column in columns]
        self._processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None) for column in columns
        ]
        self._connection = connection  # aiosqlite runs its calls one after another on its own thread

    @classmethod
    async def open(cls, engine: AsyncEngine, path: Path) -> SqliteCallerReader:
        connection = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        return cls(engine, connection)

    async def read(self, user_id: str) -> User | None:
        rows = list(await self._connection.execute_fetchall(self._sql, (user_id,)))
        if not rows:
            return None
        values = {
            name: process(value) if process is not None else value
            for name, process, value in zip(self._names, self._processors, rows[0], strict=True)
        }
        return User(**values)

    async def close(self) -> None:
        await self._connection.close()


async def open_caller_reader(engine: AsyncEngine) -> CallerReader:
    url = make_url(str(engine.url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return await SqliteCallerReader.open(engine, Path(url.database))
    return EngineCallerReader(engine)
