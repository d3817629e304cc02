"""Accounts end to end over HTTP, on SQLite and on a real PostgreSQL: sign-up, login, refresh rotation and
reuse detection, logout, profile, password change, deletion, and the audit trail."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from hosting.db.models import AuditEvent, RefreshToken, User
from hosting.keys import SESSIONS_KEY
from hosting.security import hash_token
from hosting.settings import Settings
from tests.hosting.conftest import start_client
from tests.hosting.helpers import PASSWORD, assert_error, bearer, log_in, sign_up

Client = TestClient[Any, Any]


async def audit_actions(client: Client) -> list[str]:
    async with client.app[SESSIONS_KEY]() as session:
        return list(await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


async def test_signup_returns_tokens_that_work(client: Client) -> None:
    body = await sign_up(client, "  Anna@Example.COM ")
    assert body["user"]["email"] == "anna@example.com"  # trimmed and lowercased
    assert body["user"]["role"] == "user"
    assert body["instance"] is None  # provisioning is off in these tests
    me = await client.get("/api/me", headers=bearer(body["tokens"]["access_token"]))
    assert me.status == 200
    assert (await me.json())["id"] == body["user"]["id"]


async def test_signup_takes_an_iana_time_zone(client: Client) -> None:
    response = await client.post(
        "/api/auth/signup", json={"email": "tz@example.com", "password": PASSWORD, "time_zone": "America/New_York"}
    )
    assert response.status == 201, await response.text()


async def test_signup_twice_is_a_conflict_regardless_of_case(client: Client) -> None:
    await sign_up(client, "bela@example.com")
    response = await client.post("/api/auth/signup", json={"email": "BELA@example.com", "password": PASSWORD})
    assert response.status == 409
    assert_error(await response.json(), "email_taken")


async def test_signup_validation(client: Client) -> None:
    cases = [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "c@example.com", "password": "short"}, "at least 10 characters"),
        ({"email": "c@example.com"}, "password"),
        ({"email": "c@example.com", "password": PASSWORD, "role": "operator"}, "role"),  # no privilege by body
        ({"email": "c@example.com", "password": 1234567890123}, "password"),
        # The time zone is checked here, not later in the user's HA: the message names the field and a fix.
        ({"email": "c@example.com", "password": PASSWORD, "time_zone": "Mars/Olympus_Mons"}, "field 'time_zone'"),
        ({"email": "c@example.com", "password": PASSWORD, "time_zone": "Mars/Olympus_Mons"}, "Europe/Budapest"),
        ({"email": "c@example.com", "password": PASSWORD, "time_zone": "../../etc/passwd"}, "field 'time_zone'"),
        ({"email": "c@example.com", "password": PASSWORD, "time_zone": "localtime"}, "field 'time_zone'"),
        ({"email": "c@example.com", "password": PASSWORD, "time_zone": ""}, "field 'time_zone'"),
        ({"email": "c@example.com", "password": PASSWORD, "time_zone": 60}, "field 'time_zone'"),
        ({"email": "c@example.com", "password": PASSWORD, "demo": "yes"}, "field 'demo'"),  # JSON true or false
    ]
    for payload, mentioned in cases:
        response = await client.post("/api/auth/signup", json=payload)
        body = await response.json()
        assert response.status == 422, payload
        assert_error(body, "validation_error")
        assert mentioned in body["error"]["message"], body
    async with client.app[SESSIONS_KEY]() as session:
        assert (await session.scalars(select(User))).all() == []  # nothing half-made


async def test_login_success_and_failures_are_audited(client: Client) -> None:
    await sign_up(client, "dora@example.com")
    tokens = await log_in(client, "DORA@example.com")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    for email, password in (("dora@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)):
        response = await client.post("/api/auth/login", json={"email": email, "password": password})
        assert response.status == 401
        assert_error(await response.json(), "invalid_credentials")  # same answer: no account enumeration
    assert await audit_actions(client) == ["signup", "login", "login_failed", "login_failed"]


async def test_refresh_rotates_and_reuse_revokes_the_family(client: Client) -> None:
    await sign_up(client, "erik@example.com")
    first = await log_in(client, "erik@example.com")
    other_login = await log_in(client, "erik@example.com")  # another device: a separate family

    response = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/api/me", headers=bearer(second["access_token"]))).status == 200

    # The spent token comes back (stolen/replayed): refused, and the token it was exchanged for dies too.
    reuse = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status == 401
    assert_error(await reuse.json(), "invalid_refresh_token")
    after = await client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status == 401
    # The other login's family is untouched.
    assert (await client.post("/api/auth/refresh", json={"refresh_token": other_login["refresh_token"]})).status == 200
    assert "refresh_token_reuse" in await audit_actions(client)


async def test_concurrent_refreshes_with_one_token_only_one_wins(client: Client) -> None:
    await sign_up(client, "fanni@example.com")
    tokens = await log_in(client, "fanni@example.com")
    responses = await asyncio.gather(
        *(client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(5))
    )
    assert sorted(r.status for r in responses) == [200, 401, 401, 401, 401]


async def test_unknown_refresh_token_is_refused(client: Client) -> None:
    response = await client.post("/api/auth/refresh", json={"refresh_token": "x" * 43})
    assert response.status == 401
    assert_error(await response.json(), "invalid_refresh_token")


async def test_logout_revokes_the_refresh_token(client: Client) -> None:
    await sign_up(client, "gabor@example.com")
    tokens = await log_in(client, "gabor@example.com")
    headers = bearer(tokens["access_token"])
    assert (
        await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=headers)
    ).status == 204
    refused = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refused.status == 401


async def test_logout_of_someone_elses_token_is_refused(client: Client) -> None:
    victim = await sign_up(client, "hanna@example.com")
    attacker = await sign_up(client, "ivan@example.com")
    response = await client.post(
        "/api/auth/logout",
        json={"refresh_token": victim["tokens"]["refresh_token"]},
        headers=bearer(attacker["tokens"]["access_token"]),
    )
    assert response.status == 404
    ok = await client.post("/api/auth/refresh", json={"refresh_token": victim["tokens"]["refresh_token"]})
    assert ok.status == 200


async def test_password_change(client: Client) -> None:
    signed = await sign_up(client, "jozsef@example.com")
    other_session = await log_in(client, "jozsef@example.com")
    headers = bearer(signed["tokens"]["access_token"])

    wrong = await client.post(
        "/api/me/password",
        json={"current_password": "not my password", "new_password": "a new password 1"},
        headers=headers,
    )
    assert wrong.status == 403
    assert_error(await wrong.json(), "wrong_password")
    too_short = await client.post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=headers
    )
    assert too_short.status == 422

    changed = await client.post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": "a new password 1"}, headers=headers
    )
    assert changed.status == 200
    fresh = await changed.json()
    assert (
        await client.post("/api/auth/login", json={"email": "jozsef@example.com", "password": PASSWORD})
    ).status == 401
    await log_in(client, "jozsef@example.com", "a new password 1")
    # Other sessions end; the caller's new refresh token works.
    assert (
        await client.post("/api/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    ).status == 401
    assert (await client.post("/api/auth/refresh", json={"refresh_token": fresh["refresh_token"]})).status == 200


async def test_account_deletion_needs_the_password_and_frees_the_email(client: Client) -> None:
    signed = await sign_up(client, "kata@example.com")
    headers = bearer(signed["tokens"]["access_token"])
    refused = await client.delete("/api/me", json={"password": "not my password"}, headers=headers)
    assert refused.status == 403
    assert (await client.get("/api/me", headers=headers)).status == 200  # nothing happened

    assert (await client.delete("/api/me", json={"password": PASSWORD}, headers=headers)).status == 204
    gone = await client.get("/api/me", headers=headers)  # the still-unexpired access token is dead too
    assert gone.status == 401
    assert (
        await client.post("/api/auth/login", json={"email": "kata@example.com", "password": PASSWORD})
    ).status == 401
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": signed["tokens"]["refresh_token"]})
    assert refresh.status == 401
    again = await sign_up(client, "kata@example.com")  # the address is free again, for a new account
    assert again["user"]["id"] != signed["user"]["id"]
    async with client.app[SESSIONS_KEY]() as session:
        old = await session.get_one(User, signed["user"]["id"])
        assert old.deleted_at is not None
        assert "kata" not in old.email  # no personal data left on the tombstone


async def test_refresh_tokens_are_stored_hashed(client: Client) -> None:
    signed = await sign_up(client, "laszlo@example.com")
    raw = signed["tokens"]["refresh_token"]
    async with client.app[SESSIONS_KEY]() as session:
        stored = (await session.scalars(select(RefreshToken.token_hash))).all()
    assert stored == [hash_token(raw)]
    assert raw not in stored


async def test_audit_entries_hold_no_secret(client: Client) -> None:
    signed = await sign_up(client, "maria@example.com")
    tokens = await log_in(client, "maria@example.com")
    await client.post("/api/auth/login", json={"email": "maria@example.com", "password": "a wrong password"})
    await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})  # reuse
    headers = bearer(signed["tokens"]["access_token"])
    await client.post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": "another password"}, headers=headers
    )
    secrets = [
        PASSWORD,
        "a wrong password",
        "another password",
        tokens["refresh_token"],
        tokens["access_token"],
        signed["tokens"]["refresh_token"],
        signed["tokens"]["access_token"],
    ]
    async with client.app[SESSIONS_KEY]() as session:
        events = (await session.scalars(select(AuditEvent))).all()
        user = await session.get_one(User, signed["user"]["id"])
    assert {e.action for e in events} >= {"signup", "login", "login_failed", "refresh_token_reuse", "password_changed"}
    dump = json.dumps([[e.action, e.target, e.ip, e.details, e.actor_user_id] for e in events])
    for secret in [*secrets, user.password_hash]:
        assert secret not in dump
    assert all(e.ip == "127.0.0.1" for e in events)


async def test_login_rehashes_at_a_raised_cost(settings: Settings) -> None:
    cheap = await start_client(settings)
    try:
        signed = await sign_up(cheap, "nora@example.com")
    finally:
        await cheap.close()
    dearer = await start_client(dataclasses.replace(settings, argon2_time_cost=2))
    try:
        await log_in(dearer, "nora@example.com")
        async with dearer.app[SESSIONS_KEY]() as session:
            stored = (await session.get_one(User, signed["user"]["id"])).password_hash
        assert ",t=2," in stored
        await log_in(dearer, "nora@example.com")  # and the new hash verifies
    finally:
        await dearer.close()
