"""Usage, the conversation log and the gateway's operator controls (hosting.gateway).

The household sees its own figures and its own turns, text included, and deletes them. Operators see
figures by tenant and by back-end, the back-ends' state, and set limits and rotate tokens; the turn text
is never in an operator's answer (there is no operator endpoint that returns it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import voluptuous as vol
from aiohttp import web

from hosting import audit
from hosting.api import schemas
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.db.models import GatewayLimits, Instance, User
from hosting.errors import ApiError
from hosting.gateway.settings import TenantLimits
from hosting.gateway.setup import GATEWAY_HOST_KEY, GATEWAY_KEY, USAGE_KEY
from hosting.gateway.tokens import limits_overrides, rotate_token
from hosting.keys import SECRET_BOX_KEY

MONTH = vol.Schema(
    {
        vol.Optional("month", description="YYYY-MM (UTC); default: this month"): vol.All(
            str, vol.Match(r"^\d{4}-(0[1-9]|1[0-2])$", msg="expected a month like 2026-12")
        )
    }
)
_LIMIT = vol.Any(None, schemas.IntegerBetween(0, 10**9))
LIMITS = vol.Schema(
    {
        vol.Optional("concurrency", description="requests at once (null: the default)"): vol.Any(
            None, schemas.IntegerBetween(1, 1000)
        ),
        vol.Optional("requests_per_minute", description="0: no limit; null: the default"): _LIMIT,
        vol.Optional("tokens_per_day", description="prompt + generated; 0: no limit; null: the default"): _LIMIT,
        vol.Optional("max_num_ctx", description="clamp on num_ctx; null: the default"): _LIMIT,
        vol.Optional("max_num_predict", description="clamp on num_predict; null: the default"): _LIMIT,
    }
)

_INT = {"type": "integer"}
_QUESTIONS = {"type": "object", "properties": {"local": _INT, "model": _INT}}
schemas.RESPONSE_SCHEMAS.update(
    {
        "Usage": {
            "type": "object",
            "required": ["month", "questions", "model_requests", "prompt_tokens", "eval_tokens", "daily"],
            "properties": {
                "month": {"type": "string"},
                "questions": _QUESTIONS,
                "model_requests": _INT,
                "prompt_tokens": _INT,
                "eval_tokens": _INT,
                "tokens_today": _INT,
                "limits": {"type": "object"},
                "daily": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "day": {"type": "string"},
                            "requests": _INT,
                            "prompt_tokens": _INT,
                            "eval_tokens": _INT,
                        },
                    },
                },
            },
        },
        "OperatorUsage": {
            "type": "object",
            "required": ["month", "tenants", "backends"],
            "properties": {"month": {"type": "string"}, "tenants": {"type": "array"}, "backends": {"type": "array"}},
        },
        "Conversations": {
            "type": "object",
            "required": ["items", "total"],
            "properties": {
                "total": _INT,
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "time": {"type": "string", "format": "date-time"},
                            "device": {"type": "string"},
                            "text": {"type": "string"},
                            "intents": {"type": "array"},
                            "result": {"type": "string"},
                            "status": {"type": "string"},
                            "handled": {"enum": ["local", "model"]},
                            "latency_ms": _INT,
                            "prompt_tokens": _INT,
                            "eval_tokens": _INT,
                            "request_id": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Deleted": {"type": "object", "required": ["deleted"], "properties": {"deleted": _INT}},
        "GatewayBackends": {
            "type": "object",
            "required": ["backends"],
            "properties": {
                "backends": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string"},
                            "healthy": {"type": "boolean"},
                            "in_flight": _INT,
                            "queued": _INT,
                            "models": {"type": "array", "items": {"type": "string"}},
                            "tokens_per_second": {"type": ["number", "null"]},
                        },
                    },
                }
            },
        },
        "GatewayLimits": {
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "limits": {"type": "object"},
                "overrides": {"type": "object"},
            },
        },
        "TokenRotated": {
            "type": "object",
            "properties": {"instance_id": {"type": "string"}, "home_assistant_updated": {"type": "boolean"}},
        },
    }
)


def _month(call: Call) -> str:
    return str(call.query.get("month") or datetime.now(UTC).strftime("%Y-%m"))


async def get_my_usage(call: Call) -> web.Response:
    store = call.app[USAGE_KEY]
    usage = await store.month_of(call.me.id, _month(call))
    gateway = call.app[GATEWAY_KEY]
    async with call.sessions() as session:
        overrides = limits_overrides(await session.get(GatewayLimits, call.me.id))
    usage["limits"] = gateway.settings.limits.merged(overrides).__dict__
    usage["tokens_today"] = gateway.meter.tokens_today(call.me.id)
    return web.json_response(usage)


async def list_my_conversations(call: Call) -> web.Response:
    store = call.app[USAGE_KEY]
    return web.json_response(await store.conversations(call.me.id, call.query["limit"], call.query["offset"]))


async def delete_my_conversations(call: Call) -> web.Response:
    deleted = await call.app[USAGE_KEY].delete_conversations(call.me.id)
    async with call.sessions() as session, session.begin():
        audit.record(session, "conversations_deleted", actor_user_id=call.me.id, ip=call.ip, count=deleted)
    return web.json_response({"deleted": deleted})


async def delete_my_conversation(call: Call) -> web.Response:
    turn_id = call.request.match_info["turn_id"]
    if not await call.app[USAGE_KEY].delete_conversations(call.me.id, turn_id):
        raise ApiError(404, "not_found", f"you have no conversation turn {turn_id}")
    return web.json_response({"deleted": 1})


async def get_operator_usage(call: Call) -> web.Response:
    return web.json_response(await call.app[USAGE_KEY].operator_month(_month(call)))


async def list_gateway_backends(call: Call) -> web.Response:
    gateway = call.app[GATEWAY_KEY]
    return web.json_response({"backends": gateway.backends_view(), "waiting": gateway.scheduler.waiting})


async def set_gateway_limits(call: Call) -> web.Response:
    user_id = call.request.match_info["user_id"]
    gateway = call.app[GATEWAY_KEY]
    async with call.sessions() as session, session.begin():
        if await session.get(User, user_id) is None:
            raise ApiError(404, "not_found", f"no account {user_id}")
        row = await session.get(GatewayLimits, user_id)
        if row is None:
            row = GatewayLimits(user_id=user_id)
            session.add(row)
        for name, value in call.body.items():
            setattr(row, name, value)
        await session.flush()
        overrides = limits_overrides(row)
        audit.record(  # one detail: "tokens_per_day" would read as a secret's name to the audit's guard
            session, "gateway_limits_set", actor_user_id=call.me.id, target=user_id, ip=call.ip, limits=call.body
        )
    gateway.directory.forget(user_id)
    return web.json_response({"user_id": user_id, "limits": _limits(gateway.settings.limits, overrides),
                              "overrides": overrides})  # fmt: skip


def _limits(defaults: TenantLimits, overrides: dict[str, Any]) -> dict[str, Any]:
    return dict(defaults.merged(overrides).__dict__)


async def rotate_gateway_token(call: Call) -> web.Response:
    instance_id = call.request.match_info["instance_id"]
    async with call.sessions() as session, session.begin():
        instance = await session.get(Instance, instance_id)
        if instance is None:
            raise ApiError(404, "not_found", f"no instance {instance_id}")
        token = await rotate_token(session, call.app[SECRET_BOX_KEY], instance)
        audit.record(session, "gateway_token_rotated", actor_user_id=call.me.id, target=instance.name, ip=call.ip)
    call.app[GATEWAY_KEY].directory.forget(instance.user_id)
    host = call.app[GATEWAY_HOST_KEY]
    updated = await host.on_rotated(instance, token) if host.on_rotated is not None else False
    return web.json_response({"instance_id": instance_id, "home_assistant_updated": updated}, status=202)


_USER = {401: Reply("not logged in", "Error")}
_OPERATOR = {**_USER, 403: Reply("not an operator", "Error")}

ENDPOINTS = [
    Endpoint(
        "GET", "/api/me/usage", get_my_usage, "The household's questions (local and model) and tokens in a month",
        "me", query=MONTH, responses={200: Reply("the month's usage, by day", "Usage"), **_USER},
    ),
    Endpoint(
        "GET", "/api/me/conversations", list_my_conversations,
        "The household's conversation turns, newest first (text, intents, result, figures)", "me",
        query=schemas.PAGE, responses={200: Reply("a page of turns", "Conversations"), **_USER},
    ),
    Endpoint(
        "DELETE", "/api/me/conversations", delete_my_conversations, "Delete all of the household's turns", "me",
        responses={200: Reply("how many were deleted", "Deleted"), **_USER},
    ),
    Endpoint(
        "DELETE", "/api/me/conversations/{turn_id}", delete_my_conversation, "Delete one of the household's turns",
        "me", responses={200: Reply("deleted", "Deleted"), 404: Reply("no such turn of yours", "Error"), **_USER},
    ),
    Endpoint(
        "GET", "/api/operator/usage", get_operator_usage,
        "Model usage by tenant (the month) and by back-end (the last 7 days); figures only, never text",
        "operator", auth="operator", query=MONTH, responses={200: Reply("usage", "OperatorUsage"), **_OPERATOR},
    ),
    Endpoint(
        "GET", "/api/operator/gateway/backends", list_gateway_backends,
        "The gateway's Ollama back-ends: health, load, models, speed", "operator", auth="operator",
        responses={200: Reply("the back-ends", "GatewayBackends"), **_OPERATOR},
    ),
    Endpoint(
        "PUT", "/api/operator/users/{user_id}/gateway-limits", set_gateway_limits,
        "Set an account's gateway limits (null: back to the default)", "operator", auth="operator", body=LIMITS,
        responses={200: Reply("the account's limits now", "GatewayLimits"), 404: Reply("no such account", "Error"),
                   **_OPERATOR},
    ),
    Endpoint(
        "POST", "/api/operator/instances/{instance_id}/gateway-token", rotate_gateway_token,
        "Rotate an instance's gateway token (the old one stops working; its HA gets the new one)", "operator",
        auth="operator",
        responses={202: Reply("rotated", "TokenRotated"), 404: Reply("no such instance", "Error"), **_OPERATOR},
    ),
]  # fmt: skip
