"""`POST /gateway/v1/turns`: the household's HA reports each conversation turn, local or model (turns HA
matched locally never reach the model, so only the integration can tell). Authenticated like the model
API, with the instance's gateway token, on the same listeners; bounded in size and rate."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from aiohttp import web

from hosting.gateway.service import TENANT_KEY, refusal
from hosting.gateway.usage import UsageStore
from hosting.ratelimit import SlidingWindowLimiter

TURNS_PATH = "/gateway/v1/turns"
TURNS_PER_MINUTE = 60


def _text(limit: int) -> vol.All:
    return vol.All(str, vol.Length(max=limit))


TURN_SCHEMA = vol.Schema(
    {
        vol.Required("text"): _text(2000),
        vol.Optional("device", default=""): vol.Any(None, _text(255)),
        vol.Optional("intents", default=list): vol.All(
            [{vol.Required("name"): vol.All(str, vol.Length(min=1, max=128)), vol.Optional("arguments"): dict}],
            vol.Length(max=20),
        ),
        vol.Optional("result", default=""): vol.Any(None, _text(2000)),
        vol.Required("status"): vol.All(str, vol.Length(min=1, max=32)),
        vol.Required("handled"): vol.In(["local", "model"]),
        vol.Optional("latency_ms", default=0): vol.All(int, vol.Range(min=0, max=3_600_000)),
        vol.Optional("prompt_tokens", default=0): vol.All(int, vol.Range(min=0)),
        vol.Optional("eval_tokens", default=0): vol.All(int, vol.Range(min=0)),
        vol.Optional("request_id", default=""): _text(64),
    },
    extra=vol.REMOVE_EXTRA,
)


def turns_handler(store: UsageStore) -> Any:
    limiter = SlidingWindowLimiter(TURNS_PER_MINUTE, 60.0)

    async def report_turn(request: web.Request) -> web.Response:
        tenant = request[TENANT_KEY]
        if (wait := limiter.hit(tenant.instance_id)) is not None:
            return refusal(request, 429, "rate_limited", f"at most {TURNS_PER_MINUTE} turns per minute", wait)
        try:
            body = await request.json()
            turn = TURN_SCHEMA(body)
        except ValueError:
            return refusal(request, 400, "bad_request", "send the turn as a JSON object")
        except vol.Invalid as err:
            where = ".".join(str(p) for p in err.path) or "body"
            return refusal(request, 422, "validation_error", f"field '{where}': {err.msg}")
        row = await store.record_turn(tenant, turn)
        return web.json_response({"id": row.id}, status=201)

    return report_turn
