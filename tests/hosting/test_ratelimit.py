"""Rate limits on login and sign-up, per IP and per account; the sliding window itself."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient

from hosting.ratelimit import SlidingWindowLimiter
from hosting.settings import Settings
from tests.hosting.conftest import start_client
from tests.hosting.helpers import PASSWORD, assert_error, sign_up

Client = TestClient[Any, Any]


def test_sliding_window() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(limit=3, window=60, clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    wait = limiter.hit("a")
    assert wait == 60  # the oldest hit leaves the window in 60 s
    assert limiter.hit("b") is None  # keys are independent
    now[0] += 30
    assert limiter.hit("a") == 30
    now[0] += 30.001
    assert limiter.hit("a") is None  # the window slid past the first three
    assert limiter.hit("a") is None
    assert limiter.hit("a") is None
    assert limiter.hit("a") is not None


async def test_login_is_limited_per_account(settings: Settings) -> None:
    client = await start_client(dataclasses.replace(settings, login_limit_per_account=3, login_limit_per_ip=100))
    try:
        await sign_up(client, "target@example.com")
        for _ in range(3):
            response = await client.post(
                "/api/auth/login", json={"email": "target@example.com", "password": "guess 1234"}
            )
            assert response.status == 401
        blocked = await client.post("/api/auth/login", json={"email": "TARGET@example.com", "password": PASSWORD})
        # Even the right password, from this address: the (address, account) pair waits out the window. From
        # other addresses the account still works (tests/hosting/test_request_path.py).
        assert blocked.status == 429
        assert_error(await blocked.json(), "rate_limited")
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # Another account from the same IP is not affected by this account's limit.
        other = await client.post("/api/auth/login", json={"email": "other@example.com", "password": PASSWORD})
        assert other.status == 401
    finally:
        await client.close()


async def test_login_is_limited_per_ip(settings: Settings) -> None:
    client = await start_client(dataclasses.replace(settings, login_limit_per_ip=4, login_limit_per_account=100))
    try:
        statuses = []
        for n in range(6):
            response = await client.post("/api/auth/login", json={"email": f"u{n}@example.com", "password": PASSWORD})
            statuses.append(response.status)
        assert statuses == [401, 401, 401, 401, 429, 429]
    finally:
        await client.close()


async def test_signup_is_limited_per_ip_and_per_account(settings: Settings) -> None:
    client = await start_client(dataclasses.replace(settings, signup_limit_per_ip=3, signup_limit_per_account=2))
    try:
        same = [
            (await client.post("/api/auth/signup", json={"email": "dup@example.com", "password": PASSWORD})).status
            for _ in range(3)
        ]
        assert same == [201, 409, 429]
        other = await client.post("/api/auth/signup", json={"email": "new@example.com", "password": PASSWORD})
        assert other.status == 429  # the IP's third attempt went to dup@, this is its fourth
        assert "Retry-After" in other.headers
    finally:
        await client.close()
