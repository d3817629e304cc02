"""Host ports for instances, race-free through the database.

`UNIQUE(instances.port)` is the lock: an allocator picks a free-looking port, inserts the instance row
with it and, if another allocator got there first (IntegrityError), reads again and retries. Picking at
random among the free ports keeps concurrent sign-ups from all trying the same one.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting.db.models import Instance

_MAX_ATTEMPTS = 50


class PortPoolExhausted(Exception):
    """Every port of the pool is taken (the API answers 503)."""

    def __init__(self, pool: range) -> None:
        super().__init__(
            f"all {len(pool)} ports of the instance pool {pool.start}-{pool.stop - 1} are in use; "
            "widen MICROPI_PORT_RANGE or delete unused instances"
        )


def port_pool(port_range: tuple[int, int]) -> range:
    """The pool from the inclusive (first, last) pair of the settings."""
    return range(port_range[0], port_range[1] + 1)


async def free_port_count(sessions: async_sessionmaker[AsyncSession], pool: range) -> int:
    async with sessions() as session:
        used = await session.scalar(
            select(func.count()).select_from(Instance).where(Instance.port.between(pool.start, pool.stop - 1))
        )
    return len(pool) - int(used or 0)


async def insert_with_port(
    sessions: async_sessionmaker[AsyncSession], pool: range, make_row: Callable[[int], Instance]
) -> Instance:
    """Insert the row `make_row(port)` with a port of the pool nobody else holds.

    If the insert conflicts on something other than the port (the user got an instance meanwhile, from a
    concurrent request), that existing instance is returned instead.
    """
    for _ in range(_MAX_ATTEMPTS):
        async with sessions() as session:
            used = set(
                await session.scalars(select(Instance.port).where(Instance.port.between(pool.start, pool.stop - 1)))
            )
            free = [port for port in pool if port not in used]
            if not free:
                raise PortPoolExhausted(pool)
            row = make_row(random.choice(free))  # noqa: S311  # spreading, not security
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
            else:
                return row
            existing = await session.scalar(select(Instance).where(Instance.user_id == row.user_id))
            if existing is not None:
                return existing
    raise RuntimeError(f"no port could be allocated after {_MAX_ATTEMPTS} conflicting attempts; try again")
