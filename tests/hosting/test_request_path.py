"""The request path under hostile input: every bad request is a 4xx in the error shape and one log line
(no traceback); the caller's role is read on every request; client addresses behind trusted proxies; the
login throttle that no stranger can turn against a user; the SQLite file's mode."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from hosting.db.models import OPERATOR_ROLE, USER_ROLE, User
from hosting.keys import SESSIONS_KEY
from hosting.settings import Settings, SettingsError
from tests.hosting.conftest import start_client
from tests.hosting.helpers import PASSWORD, assert_error, bearer, log_in, make_operator, sign_up

Client = TestClient[Any, Any]

DEEP = b'{"email": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def post_raw(client: Client, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
    response = await client.post(path, data=body, headers={"Content-Type": "application/json", **headers})
    return response.status, await response.json()


async def test_hostile_json_bodies_are_400s(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    await sign_up(client, "a@example.com")
    cases = {
        DEEP: "nested deeper",
        b'{"email": "a@example.com", "password": "\\ud800"}': "surrogate",
        b'{"email": "a@example.com", "password": "x\\udfffy"}': "surrogate",
        b'{"\\ud800": 1}': "surrogate",
        b'{"email": "a@example.com", "password": NaN}': "NaN",
        b'{"email": "a@example.com", "password": -Infinity}': "Infinity",
    }
    for body, words in cases.items():
        status, answer = await post_raw(client, "/api/auth/login", body)
        assert status == 400, (body[:60], answer)
        assert_error(answer, "bad_request")
        assert words in answer["error"]["message"]
    status, answer = await post_raw(client, "/api/auth/refresh", b'{"refresh_token": "\\ud800"}')
    assert status == 400
    assert "surrogate" in answer["error"]["message"]
    # Non-ASCII text is fine, only lone surrogates are refused.
    status, answer = await post_raw(
        client, "/api/auth/login", '{"email": "a@example.com", "password": "árvíztűrő"}'.encode()
    )
    assert status == 401
    no_traceback(caplog)


async def raw_get(client: Client, header: bytes) -> bytes:
    """GET /api/me with one raw header line, as bytes on the wire (an HTTP client library would refuse)."""
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/me HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_non_utf8_authorization_is_a_401(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    answer = await raw_get(client, b"Authorization: Bearer \xff\xfe\xc3(")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer
    assert b"invalid_token" in body and b"non-ASCII" in body
    no_traceback(caplog)


async def test_malformed_http_is_one_log_line(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp refuses a NUL in a header before any handler runs; its log says so in one line."""
    answer = await raw_get(client, b"X-Probe: \x00")
    assert b" 400 " in answer.split(b"\r\n")[0], answer  # aiohttp's own answer: the app never saw it
    (line,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert line.levelno == logging.INFO and line.exc_info is None
    assert "Invalid header value" in line.getMessage() and "\n" not in line.getMessage()
    no_traceback(caplog)


async def test_offsets_beyond_64_bits_are_422s(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    operator = await make_operator(client, "op@example.com")
    for offset in (str(2**63), "9" * 40):
        response = await client.get(f"/api/operator/users?offset={offset}", headers=bearer(operator["access_token"]))
        assert response.status == 422, offset
        assert_error(await response.json(), "validation_error")
    largest = await client.get(f"/api/operator/users?offset={2**63 - 1}", headers=bearer(operator["access_token"]))
    assert largest.status == 200
    assert (await largest.json())["users"] == []
    no_traceback(caplog)


async def test_a_nul_in_the_user_search_is_a_422(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL refuses a NUL in text it compares (the fuzzer found the 500); SQLite must answer the same."""
    operator = await make_operator(client, "op@example.com")
    response = await client.get("/api/operator/users?q=op%00x", headers=bearer(operator["access_token"]))
    assert response.status == 422
    assert "NUL" in (await response.json())["error"]["message"]
    found = await client.get("/api/operator/users?q=op%40", headers=bearer(operator["access_token"]))
    assert found.status == 200
    assert [user["email"] for user in (await found.json())["users"]] == ["op@example.com"]
    no_traceback(caplog)


async def test_the_role_is_read_on_every_request(client: Client) -> None:
    operator = await make_operator(client, "boss@example.com")
    headers = bearer(operator["access_token"])
    assert (await client.get("/api/operator/users", headers=headers)).status == 200
    async with client.app[SESSIONS_KEY]() as session, session.begin():
        await session.execute(update(User).where(User.email == "boss@example.com").values(role=USER_ROLE))
    # The same token, the very next request: the role came from the database, not the token.
    assert (await client.get("/api/operator/users", headers=headers)).status == 403
    me = await (await client.get("/api/me", headers=headers)).json()
    assert me["role"] == USER_ROLE
    assert me["created_at"].endswith("+00:00")  # the row went through the same type processing as the ORM's
    async with client.app[SESSIONS_KEY]() as session, session.begin():
        await session.execute(update(User).where(User.email == "boss@example.com").values(role=OPERATOR_ROLE))
    assert (await client.get("/api/operator/users", headers=headers)).status == 200


def test_trusted_proxies_setting() -> None:
    settings = Settings.from_env(
        {"MICROPI_DATA": "/tmp/unused", "MICROPI_TRUSTED_PROXIES": "127.0.0.1, ::1 10.0.0.0/8"}
    )
    assert settings.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    with pytest.raises(SettingsError, match="MICROPI_TRUSTED_PROXIES"):
        Settings.from_env({"MICROPI_DATA": "/tmp/unused", "MICROPI_TRUSTED_PROXIES": "proxy.example.com"})


async def failed_login(client: Client, email: str, address: str | None) -> int:
    headers = {"X-Forwarded-For": address} if address else {}
    response = await client.post("/api/auth/login", json={"email": email, "password": "wrong guess"}, headers=headers)
    return response.status


async def login_from(client: Client, email: str, address: str, **extra: str) -> int:
    headers = {"X-Forwarded-For": address, **extra}
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=headers)
    return response.status


async def test_forwarded_for_is_honoured_only_from_trusted_proxies(settings: Settings) -> None:
    untrusted = await start_client(dataclasses.replace(settings, login_limit_per_ip=2))
    try:
        # Not behind a trusted proxy: a made-up X-Forwarded-For does not buy a fresh bucket.
        statuses = [await failed_login(untrusted, f"u{n}@example.com", f"198.51.100.{n}") for n in range(3)]
        assert statuses == [401, 401, 429]
    finally:
        await untrusted.close()
    behind = dataclasses.replace(settings, login_limit_per_ip=2, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    client = await start_client(behind)
    try:
        # Behind the proxy every client has its own bucket: one guesser does not lock the others out.
        assert [await failed_login(client, f"x{n}@example.com", "203.0.113.9") for n in range(3)] == [401, 401, 429]
        assert await failed_login(client, "x@example.com", "203.0.113.10") == 401
        # The rightmost untrusted hop counts, whatever the client wrote to the left of it.
        assert await failed_login(client, "x@example.com", "1.2.3.4, 203.0.113.9") == 429
        assert await failed_login(client, "x@example.com", "203.0.113.9, 127.0.0.5") == 429
        # RFC 7239 Forwarded, when there is no X-Forwarded-For.
        forwarded = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'}
        for expected in (401, 401, 429):
            response = await client.post(
                "/api/auth/login", json={"email": "f@example.com", "password": "bad guess"}, headers=forwarded
            )
            assert response.status == expected
    finally:
        await client.close()


async def test_no_stranger_can_lock_a_user_out(settings: Settings) -> None:
    behind = dataclasses.replace(
        settings,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        login_limit_per_ip=100,
        login_limit_per_account=3,
        login_limit_per_account_unknown=6,
    )
    client = await start_client(behind)
    try:
        await sign_up(client, "victim@example.com")
        assert await login_from(client, "victim@example.com", "192.0.2.1") == 200  # the owner's own address
        # One stranger guessing the password is stopped at its (address, account) pair...
        assert [await failed_login(client, "victim@example.com", "203.0.113.1") for _ in range(4)] == [401] * 3 + [429]
        # ...and the owner, elsewhere, is not: the right password from another address works.
        assert await login_from(client, "victim@example.com", "192.0.2.1") == 200
        assert await login_from(client, "victim@example.com", "192.0.2.2") == 200
        # A distributed guess (many addresses, few tries each) spends the allowance for unknown addresses:
        for n in range(2, 5):
            assert await failed_login(client, "victim@example.com", f"203.0.113.{n}") == 401
        # 3 + 3 failures from unknown addresses: the next unknown address has to wait...
        assert await failed_login(client, "victim@example.com", "203.0.113.50") == 429
        assert await login_from(client, "victim@example.com", "198.51.100.1") == 429
        # ...while the owner's known addresses keep working, even during the attack.
        assert await login_from(client, "victim@example.com", "192.0.2.1") == 200
        assert await login_from(client, "victim@example.com", "192.0.2.2") == 200
        # Other accounts are untouched.
        assert await failed_login(client, "someone@example.com", "203.0.113.50") == 401
    finally:
        await client.close()


async def test_successful_logins_do_not_count(settings: Settings) -> None:
    client = await start_client(dataclasses.replace(settings, login_limit_per_ip=2, login_limit_per_account=2))
    try:
        await sign_up(client, "busy@example.com")
        for _ in range(5):  # a household behind one address logging in often is never limited
            await log_in(client, "busy@example.com")
    finally:
        await client.close()


async def test_sqlite_file_is_private(tmp_path: Path) -> None:
    from hosting.db import create_engine, migrate

    path = tmp_path / "data" / "hosting.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # a file made before the rule is tightened at the next start
    create_engine(f"sqlite+aiosqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
