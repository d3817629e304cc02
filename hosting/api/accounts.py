"""Accounts: sign-up, login, refresh (rotating, with reuse detection), logout, profile, password change,
account deletion. The handlers validate, rate-limit and answer; `hosting.accounts.Accounts` does the work."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from hosting import events
from hosting.accounts import Accounts, EmailTaken
from hosting.api import schemas
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.api.instance_access import instance_errors
from hosting.api.views import instance_view, user_view
from hosting.errors import ApiError
from hosting.instances import INSTANCE_MANAGER_KEY
from hosting.keys import LIMITERS_KEY, LOGIN_THROTTLE_KEY
from hosting.metrics import RATE_LIMITED
from hosting.ports import PortPoolExhausted
from hosting.ratelimit import retry_after_header
from hosting.web import session as browser_session


def accounts(call: Call) -> Accounts:
    return Accounts(call.sessions, call.settings, call.app.get(INSTANCE_MANAGER_KEY))


# A successful login from an address within this long makes it one of the account's own addresses.
KNOWN_ADDRESS_AGE = timedelta(days=30)


def _too_many(action: str, wait: float) -> ApiError:
    message = f"too many {action} attempts; wait {int(wait) + 1} s and try again"
    return ApiError(429, "rate_limited", message, retry_after_header(wait))


async def reserve_login_attempt(call: Call, email: str) -> bool:
    """Count one password check for `email` from the caller's address (hosting.ratelimit.LoginThrottle);
    429 when a limit is spent. Returns whether the address is one the account logged in from lately."""
    throttle = call.app[LOGIN_THROTTLE_KEY]
    known = throttle.account_under_attack(email) and await accounts(call).logged_in_from(
        email, call.ip, KNOWN_ADDRESS_AGE
    )
    refused = throttle.reserve(call.ip, email, known)
    if refused is not None:
        scope, wait = refused
        RATE_LIMITED.labels(f"login_{scope}").inc()
        raise _too_many("login", wait)
    return known


def check_rate_limit(call: Call, action: str, account: str) -> None:
    """Count one `action` attempt for the caller's IP and for the account; 429 when either is over."""
    limiters = call.app[LIMITERS_KEY]
    for scope, key in (("ip", call.ip), ("account", account)):
        wait = limiters[f"{action}_{scope}"].hit(key)
        if wait is not None:
            RATE_LIMITED.labels(f"{action}_{scope}").inc()
            raise _too_many(action, wait)


async def signup(call: Call) -> web.Response:
    email, password = call.body["email"], call.body["password"]
    check_rate_limit(call, "signup", email)
    password_hash = await call.passwords.hash(password)
    service = accounts(call)
    try:
        user, tokens = await service.sign_up(email, password_hash, call.ip)
    except EmailTaken:
        raise ApiError(409, "email_taken", "an account with this email already exists; log in instead") from None
    call.app[events.EVENTS_KEY].publish(events.SIGNUP, user_view(user))
    try:
        instance = await service.give_instance(
            user, password, call.body.get("time_zone"), call.ip, demo=call.body.get("demo")
        )
    except PortPoolExhausted:
        raise ApiError(
            503,
            "no_capacity",
            "no free port for another Home Assistant; your account exists: log in again later to get it",
        ) from None
    view = instance_view(instance) if instance is not None else None
    body = {"user": user_view(user), "tokens": tokens, "instance": view}
    return browser_session.tokens_response(call.request, body, tokens, status=201)


async def login(call: Call) -> web.Response:
    email, password = call.body["email"], call.body["password"]
    known_address = await reserve_login_attempt(call, email)
    service = accounts(call)
    user = await service.find_active(email)
    # Hashing happens outside any transaction: no database connection waits on argon2.
    verified = await call.passwords.verify(user.password_hash if user else None, password)
    if user is None or not verified:
        await service.record("login_failed", user.id if user else None, email, call.ip)
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    call.app[LOGIN_THROTTLE_KEY].succeeded(call.ip, email, known_address)
    # The configured cost went up since this hash was made: store one at the current cost.
    new_hash = await call.passwords.hash(password) if call.passwords.needs_rehash(user.password_hash) else None
    tokens = await service.log_in(user, call.ip, new_hash)
    await service.ensure_instance_at_login(user, password)
    return browser_session.tokens_response(call.request, tokens, tokens)


async def refresh(call: Call) -> web.Response:
    from_cookie = "refresh_token" not in call.body
    token = call.body.get("refresh_token") or browser_session.refresh_token_from_cookie(call.request)
    if token is None:
        raise ApiError(401, "invalid_refresh_token", "send `refresh_token` (or the session cookie); or log in again")
    tokens = await accounts(call).refresh(token, call.ip)
    if tokens is None:
        raise ApiError(401, "invalid_refresh_token", "the refresh token is used, revoked or expired; log in again")
    return browser_session.tokens_response(call.request, tokens, tokens, cookie=from_cookie)


async def end_browser_session(call: Call) -> web.Response:
    """The browser's log-out: the session cookie's token family is revoked and the cookie cleared."""
    token = browser_session.refresh_token_from_cookie(call.request)
    if token is not None:
        await accounts(call).end_session(token, call.ip)
    response = web.Response(status=204)
    browser_session.clear_refresh_cookie(call.request, response)
    return response


async def logout(call: Call) -> web.Response:
    if not await accounts(call).log_out(call.me, call.body["refresh_token"], call.ip):
        raise ApiError(404, "not_found", "this refresh token is not one of yours")
    return web.Response(status=204)


async def get_me(call: Call) -> web.Response:
    return web.json_response(user_view(call.me))


async def _confirm_password(call: Call, password: str) -> None:
    """Re-entry of the password for sensitive changes; limited like logins (a stolen access token must not
    become a way to guess the password)."""
    throttle = call.app[LOGIN_THROTTLE_KEY]
    refused = throttle.reserve(call.ip, call.me.email, known_address=True)
    if refused is not None:
        raise _too_many("password", refused[1])
    if await call.passwords.verify(call.me.password_hash, password):
        throttle.succeeded(call.ip, call.me.email, known_address=True)
    else:
        await accounts(call).record("password_confirmation_failed", call.me.id, call.me.email, call.ip)
        raise ApiError(403, "wrong_password", "the password is wrong; nothing was changed")


async def change_password(call: Call) -> web.Response:
    await _confirm_password(call, call.body["current_password"])
    password_hash = await call.passwords.hash(call.body["new_password"])
    tokens = await accounts(call).change_password(call.me.id, password_hash, call.ip)
    return browser_session.tokens_response(call.request, tokens, tokens)


async def delete_me(call: Call) -> web.Response:
    await _confirm_password(call, call.body["password"])
    service = accounts(call)
    # The instance (and its data) goes first: if the runtime fails, the account is kept and can retry.
    with instance_errors():
        await service.delete_instance_of(call.me.id, call.ip)
    await service.delete(call.me.id, call.ip)
    response = web.Response(status=204)
    browser_session.clear_refresh_cookie(call.request, response)
    return response


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
            429: Reply(
                "too many failed logins from this address, for this account from it, or for this account "
                "from addresses it never logged in from",
                "Error",
            ),
        },
    ),
    Endpoint(
        "POST",
        "/api/auth/refresh",
        refresh,
        "Exchange a refresh token for a new pair (the old one is spent; reusing it revokes its family). "
        "A browser sends none: its session cookie is used (own Origin only) and renewed",
        "auth",
        auth="public",
        body=schemas.REFRESH,
        responses={
            **_TOKENS,
            401: Reply("the refresh token is used, revoked or expired", "Error"),
            403: Reply("the session cookie came from another origin", "Error"),
        },
    ),
    Endpoint(
        "DELETE",
        "/api/auth/refresh",
        end_browser_session,
        "The browser's log-out: revoke the session cookie's token family and clear the cookie",
        "auth",
        auth="public",
        responses={204: Reply("logged out"), 403: Reply("the session cookie came from another origin", "Error")},
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
        responses={
            **_TOKENS,
            403: Reply("the current password is wrong", "Error"),
            429: Reply("too many wrong passwords from this address", "Error"),
        },
    ),
    Endpoint(
        "DELETE",
        "/api/me",
        delete_me,
        "Delete the account, its Home Assistant and that HA's data (confirm with the password)",
        "me",
        body=schemas.DELETE_ACCOUNT,
        responses={
            204: Reply("deleted"),
            403: Reply("the password is wrong", "Error"),
            429: Reply("too many wrong passwords from this address", "Error"),
        },
    ),
]
