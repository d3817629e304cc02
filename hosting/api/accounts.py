"""Accounts: sign-up, login, refresh (rotating, with reuse detection), logout, profile, password change,
account deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hosting import audit
from hosting.api import schemas
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.api.my_instance import delete_instance_of, ensure_instance_at_login, start_provisioning
from hosting.api.views import user_view
from hosting.db.models import USER_ROLE, RefreshToken, User, new_id
from hosting.errors import ApiError
from hosting.keys import LIMITERS_KEY
from hosting.metrics import RATE_LIMITED
from hosting.ratelimit import retry_after_header
from hosting.security import (
    hash_token,
    issue_access_token,
    new_refresh_token,
)


def check_rate_limit(call: Call, action: str, account: str) -> None:
    """Count one `action` attempt for the caller's IP and for the account; 429 when either is over."""
    limiters = call.app[LIMITERS_KEY]
    for scope, key in (("ip", call.ip), ("account", account)):
        wait = limiters[f"{action}_{scope}"].hit(key)
        if wait is not None:
            RATE_LIMITED.labels(f"{action}_{scope}").inc()
            raise ApiError(
                429,
                "rate_limited",
                f"too many {action} attempts; wait {int(wait) + 1} s and try again",
                retry_after_header(wait),
            )


async def issue_tokens(call: Call, session: AsyncSession, user: User, family_id: str | None = None) -> dict[str, Any]:
    settings = call.settings
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or new_id(),
            token_hash=hash_token(refresh),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl),
        )
    )
    return {
        "access_token": issue_access_token(settings.jwt_secret, user.id, user.role, settings.access_token_ttl),
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl,
        "refresh_token": refresh,
        "refresh_expires_in": settings.refresh_token_ttl,
    }


async def signup(call: Call) -> web.Response:
    email, password = call.body["email"], call.body["password"]
    check_rate_limit(call, "signup", email)
    password_hash = await call.passwords.hash(password)
    try:
        async with call.sessions() as session, session.begin():
            user = User(email=email, password_hash=password_hash, role=USER_ROLE)
            session.add(user)
            await session.flush()  # the UNIQUE(email) check happens here, before anything else is written
            audit.record(session, "signup", actor_user_id=user.id, target=email, ip=call.ip)
            tokens = await issue_tokens(call, session, user)
    except IntegrityError:
        raise ApiError(409, "email_taken", "an account with this email already exists; log in instead") from None
    instance = await start_provisioning(call, user, password, call.body.get("time_zone"))
    return web.json_response({"user": user_view(user), "tokens": tokens, "instance": instance}, status=201)


async def login(call: Call) -> web.Response:
    email, password = call.body["email"], call.body["password"]
    check_rate_limit(call, "login", email)
    async with call.sessions() as session:
        user = await session.scalar(select(User).where(User.email == email, User.deleted_at.is_(None)))
    # Hashing happens outside any transaction: no database connection waits on argon2.
    verified = await call.passwords.verify(user.password_hash if user else None, password)
    if user is None or not verified:
        async with call.sessions() as session, session.begin():
            audit.record(session, "login_failed", actor_user_id=user.id if user else None, target=email, ip=call.ip)
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    # The configured cost went up since this hash was made: store one at the current cost.
    new_hash = await call.passwords.hash(password) if call.passwords.needs_rehash(user.password_hash) else None
    async with call.sessions() as session, session.begin():
        if new_hash is not None:
            await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
        audit.record(session, "login", actor_user_id=user.id, target=email, ip=call.ip)
        tokens = await issue_tokens(call, session, user)
    await ensure_instance_at_login(call, user, password)
    return web.json_response(tokens)


async def refresh(call: Call) -> web.Response:
    token_hash = hash_token(call.body["refresh_token"])
    now = datetime.now(UTC)
    async with call.sessions() as session, session.begin():
        # Spend the token with one conditional UPDATE: of two concurrent refreshes only one can win.
        spent = (
            await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.token_hash == token_hash,
                    RefreshToken.used_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.expires_at > now,
                )
                .values(used_at=now)
                .returning(RefreshToken.user_id, RefreshToken.family_id)
            )
        ).first()
        tokens = None
        if spent is not None:
            user = await session.scalar(select(User).where(User.id == spent.user_id, User.deleted_at.is_(None)))
            if user is not None:
                tokens = await issue_tokens(call, session, user, family_id=spent.family_id)
        else:
            row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            if row is not None and row.used_at is not None and row.revoked_at is None:
                # A spent token came back: it was stolen or replayed. Every token of its family dies.
                await revoke_family(session, row.family_id, now)
                audit.record(
                    session, "refresh_token_reuse", actor_user_id=row.user_id, target=row.family_id, ip=call.ip
                )
    if tokens is None:
        raise ApiError(401, "invalid_refresh_token", "the refresh token is used, revoked or expired; log in again")
    return web.json_response(tokens)


async def revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def logout(call: Call) -> web.Response:
    token_hash = hash_token(call.body["refresh_token"])
    async with call.sessions() as session, session.begin():
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash, RefreshToken.user_id == call.me.id)
        )
        if row is None:
            raise ApiError(404, "not_found", "this refresh token is not one of yours")
        await revoke_family(session, row.family_id, datetime.now(UTC))
        audit.record(session, "logout", actor_user_id=call.me.id, target=call.me.email, ip=call.ip)
    return web.Response(status=204)


async def get_me(call: Call) -> web.Response:
    return web.json_response(user_view(call.me))


async def _confirm_password(call: Call, password: str) -> None:
    """Re-entry of the password for sensitive changes; limited like logins (a stolen access token must not
    become a way to guess the password)."""
    check_rate_limit(call, "login", call.me.email)
    if not await call.passwords.verify(call.me.password_hash, password):
        async with call.sessions() as session, session.begin():
            audit.record(
                session, "password_confirmation_failed", actor_user_id=call.me.id, target=call.me.email, ip=call.ip
            )
        raise ApiError(403, "wrong_password", "the password is wrong; nothing was changed")


async def change_password(call: Call) -> web.Response:
    await _confirm_password(call, call.body["current_password"])
    password_hash = await call.passwords.hash(call.body["new_password"])
    async with call.sessions() as session, session.begin():
        user = await session.get_one(User, call.me.id)
        user.password_hash = password_hash
        # Every other session ends: all refresh tokens are revoked; the caller gets a fresh pair.
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        audit.record(session, "password_changed", actor_user_id=user.id, target=user.email, ip=call.ip)
        tokens = await issue_tokens(call, session, user)
    return web.json_response(tokens)


async def delete_me(call: Call) -> web.Response:
    await _confirm_password(call, call.body["password"])
    # The instance (and its data) goes first: if the runtime fails, the account is kept and can retry.
    await delete_instance_of(call, call.me.id)
    now = datetime.now(UTC)
    async with call.sessions() as session, session.begin():
        user = await session.get_one(User, call.me.id)
        email = user.email
        # Personal data goes; the row stays (tombstone) so the audit trail's ids keep their meaning and the
        # address is free for a new sign-up.
        user.email = f"deleted-{user.id}@invalid"
        user.password_hash = "!"  # noqa: S105  # matches no password: argon2 cannot parse it
        user.deleted_at = now
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        audit.record(session, "account_deleted", actor_user_id=user.id, target=email, ip=call.ip)
    return web.Response(status=204)


_TOKENS = {200: Reply("a new token pair", "Tokens")}

ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/auth/signup",
        signup,
        "Create an account; provisioning of the user's own Home Assistant starts in the background",
        "auth",
        auth="public",
        body=schemas.SIGNUP,
        responses={
            201: Reply("the account, a token pair and the instance being provisioned", "SignupResult"),
            409: Reply("the email is taken", "Error"),
            429: Reply("too many sign-ups from this address or for this email", "Error"),
            503: Reply("no capacity for another instance (port pool exhausted)", "Error"),
        },
    ),
    Endpoint(
        "POST",
        "/api/auth/login",
        login,
        "Log in: a short-lived access token and a single-use refresh token",
        "auth",
        auth="public",
        body=schemas.LOGIN,
        responses={
            **_TOKENS,
            401: Reply("wrong email or password", "Error"),
            429: Reply("too many attempts", "Error"),
        },
    ),
    Endpoint(
        "POST",
        "/api/auth/refresh",
        refresh,
        "Exchange a refresh token for a new pair (the old one is spent; reusing it revokes its family)",
        "auth",
        auth="public",
        body=schemas.REFRESH,
        responses={**_TOKENS, 401: Reply("the refresh token is used, revoked or expired", "Error")},
    ),
    Endpoint(
        "POST",
        "/api/auth/logout",
        logout,
        "Revoke a refresh token and its family (access tokens expire on their own, within minutes)",
        "auth",
        body=schemas.LOGOUT,
        responses={204: Reply("logged out"), 404: Reply("not one of the caller's tokens", "Error")},
    ),
    Endpoint("GET", "/api/me", get_me, "The caller's profile", "me", responses={200: Reply("the profile", "User")}),
    Endpoint(
        "POST",
        "/api/me/password",
        change_password,
        "Change the password; every other session is logged out",
        "me",
        body=schemas.CHANGE_PASSWORD,
        responses={**_TOKENS, 403: Reply("the current password is wrong", "Error")},
    ),
    Endpoint(
        "DELETE",
        "/api/me",
        delete_me,
        "Delete the account, its Home Assistant and that HA's data (confirm with the password)",
        "me",
        body=schemas.DELETE_ACCOUNT,
        responses={204: Reply("deleted"), 403: Reply("the password is wrong", "Error")},
    ),
]
