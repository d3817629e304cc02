"""The route table's building block: an `Endpoint` says method, path, who may call it, its request schema
(voluptuous) and its responses. The same table registers the aiohttp routes and writes the OpenAPI
document, so the two cannot drift apart.

Handlers receive a `Call`: the request, the authenticated user (loaded from the database, so a deleted
account or a changed role takes effect at once) and the validated body and query.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import voluptuous as vol
from aiohttp import hdrs, web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting.db.models import OPERATOR_ROLE, User
from hosting.errors import ApiError
from hosting.keys import CALLERS_KEY, PASSWORDS_KEY, SESSIONS_KEY, SETTINGS_KEY
from hosting.middleware import client_address
from hosting.security import Passwords, TokenError, decode_access_token
from hosting.settings import Settings

Auth = Literal["public", "user", "operator"]

# JSON schemas of responses, by name (OpenAPI components); endpoints refer to them by name.
JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """A documented response: its description and, when it has a JSON body, the component schema's name."""

    description: str
    schema: str | None = None
    content_type: str = "application/json"


@dataclass
class Call:
    request: web.Request
    user: User | None
    body: dict[str, Any]
    query: dict[str, Any]

    @property
    def me(self) -> User:
        """The authenticated caller (endpoints with auth "user" or "operator" always have one)."""
        if self.user is None:
            raise ApiError(401, "unauthorized", "log in and send `Authorization: Bearer <access token>`")
        return self.user

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS_KEY]

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.request.app[SESSIONS_KEY]

    @property
    def passwords(self) -> Passwords:
        return self.request.app[PASSWORDS_KEY]

    @property
    def ip(self) -> str:
        """The client's address (behind a trusted proxy: the one it forwarded), the key of rate limits."""
        return client_address(self.request)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "user"
    body: vol.Schema | None = None
    query: vol.Schema | None = None
    # A raw (non-JSON) request body, e.g. an uploaded archive: its content type.
    raw_body: str | None = None
    responses: Mapping[int, Reply] = field(default_factory=dict)

    def aiohttp_handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            user = None if self.auth == "public" else await authenticate(request)
            if self.auth == "operator" and (user is None or user.role != OPERATOR_ROLE):
                raise ApiError(403, "forbidden", "this endpoint is for operators only")
            body = await _validated_body(request, self.body) if self.body is not None else {}
            query = _validate(self.query, dict(request.query), "query parameter") if self.query is not None else {}
            return await self.handler(Call(request=request, user=user, body=body, query=query))

        handle.__name__ = self.handler.__name__
        return handle


# The route table (`hosting.routes.ENDPOINTS`), for the OpenAPI document.
ROUTES_KEY = web.AppKey("routes", list[Endpoint])


async def authenticate(request: web.Request) -> User:
    """The caller of a bearer access token, read from the database on every request: a deleted account or a
    changed role takes effect with the next request, not when the token expires."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "log in and send `Authorization: Bearer <access token>`",
            {"WWW-Authenticate": "Bearer"},
        )
    if not token.isascii():  # headers arrive as bytes; a token is always ASCII
        raise ApiError(
            401,
            "invalid_token",
            "the Authorization header has non-ASCII bytes; send `Authorization: Bearer <access token>`",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    try:
        claims = decode_access_token(request.app[SETTINGS_KEY].jwt_secret, token.strip())
    except TokenError as err:
        raise ApiError(401, "invalid_token", str(err), {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    user = await request.app[CALLERS_KEY].read(claims.user_id)
    if user is None:
        raise ApiError(401, "invalid_token", "the account of this token no longer exists; sign up or log in again")
    return user


async def _validated_body(request: web.Request, schema: vol.Schema) -> dict[str, Any]:
    if not request.body_exists:  # no body at all is an empty object: fine when every field is optional
        return _validate(schema, {}, "field")
    if request.content_type != "application/json":
        raise ApiError(400, "bad_request", "send the request body as JSON with `Content-Type: application/json`")
    data = parse_json_object(await request.read())
    return _validate(schema, data, "field")


MAX_JSON_DEPTH = 32  # our bodies are flat objects; this bounds the work a hostile body can cause


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a 400 that says what is wrong with it: not JSON, nested deeper
    than `MAX_JSON_DEPTH`, NaN/Infinity (not JSON, though Python reads them), lone UTF-16 surrogates
    (`"\\ud800"`: valid JSON syntax, but no text - it cannot be stored, hashed or sent on)."""
    problem: str | None
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        data, problem = None, _TOO_DEEP
    except ValueError:
        raise ApiError(400, "bad_request", "the request body is not valid JSON") from None
    else:
        problem = _json_problem(data)
    if problem is not None:
        raise ApiError(400, "bad_request", problem)
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    return data


_TOO_DEEP = f"the request body is nested deeper than {MAX_JSON_DEPTH} levels; send a flat JSON object"
_NOT_TEXT = (
    "a string in the request body has a lone UTF-16 surrogate (\\ud800-\\udfff), which is no text; send valid Unicode"
)


def _refuse_constant(name: str) -> Any:
    raise ApiError(400, "bad_request", f"{name} is not a JSON number; send a finite number")


def _json_problem(data: Any) -> str | None:
    """What makes parsed JSON unusable: a container deeper than MAX_JSON_DEPTH, or a string (keys too)
    that is not encodable as UTF-8."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not _is_utf8_text(value):
                return _NOT_TEXT
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return _TOO_DEEP
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return None


def _is_utf8_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _validate(schema: vol.Schema, data: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema(data)
    except vol.MultipleInvalid as err:
        problems = []
        for error in err.errors:
            where = ".".join(str(part) for part in error.path) or "body"
            problems.append(f"{what} '{where}': {error.msg}")
        raise ApiError(422, "validation_error", "; ".join(problems)) from None
    return result
