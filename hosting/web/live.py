"""`GET /api/events`: the page's one server-sent-event stream, fed by the event bus (hosting.events).

A household gets the events of its own instance and devices; an operator gets every event. The stream
ends when the access token it was opened with expires (the page reconnects with a fresh one), when the
subscriber falls behind, or when the service shuts down; after a reconnect the page reloads what it shows.
Sent as `fetch` with the bearer token (not EventSource, which cannot send headers: no token in the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import web
from aiohttp_sse import sse_response

from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.db.models import OPERATOR_ROLE
from hosting.events import EVENTS_KEY
from hosting.keys import SETTINGS_KEY
from hosting.metrics import EVENT_STREAMS
from hosting.security import decode_access_token

PING_SECONDS = 15.0


async def event_stream(call: Call) -> web.StreamResponse:
    me = call.me
    token = call.request.headers["Authorization"].partition(" ")[2].strip()
    expires_in = decode_access_token(call.app[SETTINGS_KEY].jwt_secret, token).expires_at - time.time()
    bus = call.app[EVENTS_KEY]
    async with (
        bus.subscribe(me.id, everything=me.role == OPERATOR_ROLE) as subscription,
        sse_response(
            call.request, sep="\n", ping_interval=PING_SECONDS, headers={"Cache-Control": "no-store"}
        ) as stream,
    ):
        await stream.send(json.dumps({"role": me.role}), event="hello")
        closed = asyncio.ensure_future(stream.wait())
        EVENT_STREAMS.inc()
        try:
            async with asyncio.timeout(max(expires_in, 1.0)):
                while True:
                    next_event = asyncio.ensure_future(subscription.next())
                    await asyncio.wait({next_event, closed}, return_when=asyncio.FIRST_COMPLETED)
                    if not next_event.done():  # the browser went away
                        next_event.cancel()
                        break
                    event = next_event.result()
                    if event is None:
                        break
                    await stream.send(json.dumps({**event.data, "at": event.at}), event=event.kind)
        except TimeoutError, ConnectionResetError:
            pass
        finally:
            EVENT_STREAMS.dec()
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
    return stream


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/events",
        event_stream,
        "Live updates as server-sent events: instance status, provisioning steps, devices online/offline "
        "(a household's own; every one for operators); ends when the access token expires",
        "me",
        responses={200: Reply("the event stream", content_type="text/event-stream")},
    ),
]
