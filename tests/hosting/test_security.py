"""Authorization: every endpoint x (anonymous, other user, owner, operator), and forged or unfit JWTs."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from hosting.keys import SETTINGS_KEY
from hosting.routes import ENDPOINTS
from hosting.security import issue_access_token
from tests.hosting.helpers import PASSWORD, assert_error, bearer, log_in, make_operator, settled_instance, sign_up

Client = TestClient[Any, Any]


@dataclass
class Actor:
    name: str
    user_id: str
    email: str
    access_token: str
    refresh_token: str


@dataclass
class World:
    owner: Actor
    other: Actor
    operator: Actor
    instance_id: str


async def build_world(client: Client) -> World:
    actors = {}
    for name in ("owner", "other"):
        signed = await sign_up(client, f"{name}@example.com")
        tokens = signed["tokens"]
        actors[name] = Actor(
            name, signed["user"]["id"], f"{name}@example.com", tokens["access_token"], tokens["refresh_token"]
        )
    op = await make_operator(client, "operator@example.com")
    operator_id = (await (await client.get("/api/me", headers=bearer(op["access_token"]))).json())["id"]
    actors["operator"] = Actor("operator", operator_id, "operator@example.com", op["access_token"], op["refresh_token"])
    # Provisioning (the real manager, on a `hass` that exits at once) ends in `error` within a second;
    # waiting for it keeps the operations below from meeting a busy instance.
    instance = await settled_instance(client, actors["owner"].access_token)
    await settled_instance(client, actors["other"].access_token)
    return World(actors["owner"], actors["other"], actors["operator"], instance["id"])


def backup_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("config/configuration.yaml")
        data = b"homeassistant:\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# kind: "public" (anyone), "self" (any account, on its own resources), "operator" (operators only).
@dataclass(frozen=True)
class Case:
    method: str
    path: str
    kind: str
    body: Any = None  # callable (Actor) -> JSON body, or bytes


CASES = [
    Case("POST", "/api/auth/signup", "public", lambda a: {"email": f"new-{a.name}@example.com", "password": PASSWORD}),
    Case("POST", "/api/auth/login", "public", lambda a: {"email": "owner@example.com", "password": PASSWORD}),
    Case("POST", "/api/auth/refresh", "public", lambda a: {"refresh_token": a.refresh_token}),
    Case("POST", "/api/auth/logout", "self", lambda a: {"refresh_token": a.refresh_token}),
    Case("GET", "/api/me", "self"),
    Case("POST", "/api/me/password", "self", lambda a: {"current_password": PASSWORD, "new_password": "x" * 12}),
    Case("DELETE", "/api/me", "self", lambda a: {"password": PASSWORD}),
    Case("GET", "/api/me/instance", "self"),
    Case("POST", "/api/me/instance/restart", "self"),
    Case("GET", "/api/operator/users", "operator"),
    Case("GET", "/api/operator/instances", "operator"),
    Case("GET", "/api/operator/orphans", "operator"),
    Case("POST", "/api/operator/instances/{instance_id}/start", "operator"),
    Case("POST", "/api/operator/instances/{instance_id}/stop", "operator"),
    Case("POST", "/api/operator/instances/{instance_id}/restart", "operator"),
    Case("POST", "/api/operator/instances/{instance_id}/upgrade", "operator", lambda a: {}),
    Case("DELETE", "/api/operator/instances/{instance_id}", "operator"),
    Case("GET", "/api/operator/instances/{instance_id}/backup", "operator"),
    Case("POST", "/api/operator/instances/{instance_id}/restore", "operator", backup_archive()),
    Case("DELETE", "/api/auth/refresh", "public"),
    Case("GET", "/api/me/usage", "self"),
    Case("GET", "/api/me/conversations", "self"),
    Case("DELETE", "/api/me/conversations", "self"),
    Case("GET", "/api/operator/devices", "operator"),
    Case("GET", "/api/operator/history", "operator"),
    Case("GET", "/api/operator/usage", "operator"),
    Case("GET", "/api/operator/gateway/backends", "operator"),
    Case("PUT", "/api/operator/users/{user_id}/gateway-limits", "operator", lambda a: {"concurrency": 3}),
    Case("POST", "/api/operator/instances/{instance_id}/gateway-token", "operator"),
    Case("GET", "/health", "public"),
    Case("GET", "/metrics", "public"),
    Case("GET", "/api/openapi.json", "public"),
]


# Covered by their own tests, each with anonymous / other household / owner / operator:
ELSEWHERE = {
    ("GET", "/api/events"),  # a stream that never ends: tests/hosting/test_live_history.py
    ("DELETE", "/api/me/conversations/{turn_id}"),  # needs a reported turn: tests/hosting/test_gateway_usage.py
}


def test_the_matrix_covers_every_endpoint() -> None:
    # Device endpoints authenticate devices by their own tokens; tests/hosting/test_devices*.py covers them.
    documented = {(e.method, e.path) for e in ENDPOINTS if e.tag != "devices"}
    assert {(c.method, c.path) for c in CASES} == documented - ELSEWHERE
    assert documented >= ELSEWHERE, "an endpoint said to be tested elsewhere is gone"


async def call(client: Client, case: Case, world: World, actor: Actor | None) -> tuple[int, Any]:
    headers = bearer(actor.access_token) if actor else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(case.body, bytes):
        kwargs["data"] = case.body
        headers["Content-Type"] = "application/gzip"
    elif case.body is not None:
        kwargs["json"] = case.body(actor or world.other)
    path = case.path.format(instance_id=world.instance_id, user_id=world.owner.user_id)
    response = await client.request(case.method, path, **kwargs)
    raw = await response.read()
    body = json.loads(raw) if response.content_type == "application/json" else raw.decode(errors="replace")
    return response.status, body


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
async def test_authorization(instance_client: Client, case: Case) -> None:
    client = instance_client
    world = await build_world(client)

    status, body = await call(client, case, world, None)
    if case.kind == "public":
        assert status not in (401, 403), body
    else:
        assert status == 401, body
        assert_error(body, "unauthorized")

    status, body = await call(client, case, world, world.other)
    if case.kind == "operator":
        assert status == 403, body
        assert_error(body, "forbidden")
    elif case.kind == "self":
        assert status < 500, body
        # Whatever the other user gets, it is about them: nothing of the owner's leaks.
        assert world.owner.user_id not in json.dumps(body)
        assert world.instance_id not in json.dumps(body)
        assert world.owner.email not in json.dumps(body)

    status, body = await call(client, case, world, world.operator)
    assert status not in (401, 403), body
    if case.kind == "operator":
        assert status < 400, body

    status, body = await call(client, case, world, world.owner)
    if case.kind == "operator":
        assert status == 403, body
    elif case.kind == "self":
        assert status < 400, body
        if case.path == "/api/me/instance":
            assert body["id"] == world.instance_id


# ---- the access token itself ------------------------------------------------------------------------


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_and_unfit_tokens_are_refused(client: Client) -> None:
    signed = await sign_up(client, "target@example.com")
    user_id = signed["user"]["id"]
    secret = client.app[SETTINGS_KEY].jwt_secret
    now = int(time.time())
    claims = {"sub": user_id, "role": "operator", "type": "access", "iat": now, "exp": now + 600}
    forged = {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "expired": issue_access_token(secret, user_id, "user", ttl=60, now=now - 3600),
        "wrong key": jwt.encode(claims, "another secret that is long enough for HS256!", algorithm="HS256"),
        "refresh type": jwt.encode({**claims, "type": "refresh"}, secret, algorithm="HS256"),
        "no type": jwt.encode({k: v for k, v in claims.items() if k != "type"}, secret, algorithm="HS256"),
        "refresh token as access": signed["tokens"]["refresh_token"],
        "HS512": jwt.encode(claims, secret, algorithm="HS512"),
        "tampered": _tamper(signed["tokens"]["access_token"]),
        "garbage": "not.a.jwt",
    }
    for name, token in forged.items():
        response = await client.get("/api/operator/users", headers=bearer(token))
        body = await response.json()
        assert response.status == 401, name
        assert_error(body, "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expired = await client.get("/api/me", headers=bearer(forged["expired"]))
    assert "expired" in (await expired.json())["error"]["message"]


def _tamper(token: str) -> str:
    """The user's genuine token with its role claim changed to operator (signature left as it was)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "operator"
    return f"{header}.{b64(claims)}.{signature}"


async def test_the_role_comes_from_the_database_not_the_token(client: Client) -> None:
    """A token minted with role=operator for a plain user (e.g. before a demotion) grants nothing."""
    signed = await sign_up(client, "plain@example.com")
    token = issue_access_token(client.app[SETTINGS_KEY].jwt_secret, signed["user"]["id"], "operator", ttl=600)
    response = await client.get("/api/operator/users", headers=bearer(token))
    assert response.status == 403


async def test_bearer_header_variants(client: Client) -> None:
    signed = await sign_up(client, "header@example.com")
    token = signed["tokens"]["access_token"]
    assert (await client.get("/api/me", headers={"Authorization": f"bearer {token}"})).status == 200
    for header in (token, f"Basic {token}", "Bearer ", "Bearer"):
        response = await client.get("/api/me", headers={"Authorization": header})
        assert response.status == 401, header
    tokens = await log_in(client, "header@example.com")
    assert (await client.get("/api/me", headers=bearer(tokens["access_token"]))).status == 200
