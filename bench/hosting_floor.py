"""The floor for `bench.hosting_load`: the same stack as the service with nothing else on it.

    python -m bench.hosting_floor --port 8099 --database-url sqlite+aiosqlite:////tmp/x/hosting.db

Bare aiohttp, PyJWT and one lookup of the user row (aiosqlite for SQLite, asyncpg for PostgreSQL - the
drivers the service uses) answer `GET /api/me` with the same JSON the service gives. It reads the
service's own database and `MICROPI_JWT_SECRET`, so one access token works against both. No middleware,
no access log, no ORM: what the service costs beyond this is its own overhead.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
from aiohttp import web
from sqlalchemy.engine import make_url

_QUERY = "SELECT id, email, role, created_at FROM users WHERE id = {} AND deleted_at IS NULL"
Lookup = Callable[[str], Awaitable[tuple[Any, ...] | None]]
LOOKUP_KEY: web.AppKey[Lookup] = web.AppKey("lookup")


def create_floor_app(database_url: str, secret: str) -> web.Application:
    app = web.Application()
    url = make_url(database_url)

    async def database(app: web.Application) -> AsyncIterator[None]:
        if url.get_backend_name() == "sqlite":
            import aiosqlite  # only the backend in use is imported

            connection = await aiosqlite.connect(str(url.database))

            async def lookup_sqlite(user_id: str) -> tuple[Any, ...] | None:
                async with connection.execute(_QUERY.format("?"), (user_id,)) as cursor:
                    row = await cursor.fetchone()
                return tuple(row) if row is not None else None

            app[LOOKUP_KEY] = lookup_sqlite
            yield
            await connection.close()
        else:
            import asyncpg

            pool = await asyncpg.create_pool(
                host=url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=url.database,
                min_size=10,
                max_size=10,
            )

            async def lookup_postgres(user_id: str) -> tuple[Any, ...] | None:
                row = await pool.fetchrow(_QUERY.format("$1"), user_id)
                return tuple(row) if row is not None else None

            app[LOOKUP_KEY] = lookup_postgres
            yield
            await pool.close()

    async def me(request: web.Request) -> web.Response:
        _, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return web.json_response({"error": "invalid token"}, status=401)
        row = await request.app[LOOKUP_KEY](claims["sub"])
        if row is None:
            return web.json_response({"error": "no such user"}, status=401)
        user_id, email, role, created_at = row
        body = {"id": user_id, "email": email, "role": role, "created_at": str(created_at)}
        return web.Response(text=json.dumps(body), content_type="application/json")

    app.cleanup_ctx.append(database)
    app.router.add_get("/api/me", me)
    app.router.add_get("/health", lambda _request: _ok())
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hosting_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    app = create_floor_app(args.database_url, os.environ["MICROPI_JWT_SECRET"])
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
