"""The service's internal event bus: what changed, published once, fanned out to every listener in memory.

Publishers (instance status changes, provisioning steps, devices coming online or going offline, sign-ups)
call `EventBus.publish`; each browser's server-sent-event stream (hosting.web.live) and the metrics history
(hosting.history) subscribe. Nothing polls the database per client. An event names the household it belongs
to (`user_id`); a household's subscription gets only its own, an operator's gets every one.

A subscriber that falls behind (its queue full) is dropped rather than slowing the publisher down: its
stream ends and the browser reconnects and reloads the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)

# Event kinds (the SSE `event:` field).
INSTANCE = "instance"  # status / reason / health of an instance changed
PROVISIONING = "provisioning"  # a provisioning step is done
DEVICE = "device"  # a device came online, went offline, reported, was renamed or revoked
SIGNUP = "signup"  # a new account (operators only)
LLM = "llm"  # one model request: latency and tokens (published by the gateway, when there is one)

QUEUE_SIZE = 256


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]
    user_id: str | None = None  # the household it concerns; None: operators only
    at: float = field(default_factory=time.time)


class Subscription:
    """One listener's queue; `None` in it means the subscription was dropped."""

    def __init__(self, user_id: str | None, everything: bool) -> None:
        self.user_id = user_id
        self.everything = everything
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    def wants(self, event: Event) -> bool:
        return self.everything or (event.user_id is not None and event.user_id == self.user_id)

    async def next(self) -> Event | None:
        """The next event, or None once the subscription is dropped."""
        if self.dropped and self.queue.empty():
            return None
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, kind: str, data: dict[str, Any], user_id: str | None = None) -> None:
        """Never blocks and never raises: a publisher's work must not depend on its listeners."""
        event = Event(kind, data, user_id)
        for subscription in list(self._subscriptions):
            if not subscription.wants(event):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                _LOGGER.warning("event subscriber of %s fell behind; dropping it", subscription.user_id or "all")
                self._drop(subscription)

    def _drop(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        subscription.dropped = True
        # Make room for the end marker so the reader wakes up and ends its stream.
        with contextlib.suppress(asyncio.QueueEmpty):
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)

    def close(self) -> None:
        """End every subscription (at shutdown)."""
        for subscription in list(self._subscriptions):
            self._drop(subscription)

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: str | None = None, *, everything: bool = False) -> AsyncIterator[Subscription]:
        """Events of household `user_id` (or all of them with `everything`) while the block runs."""
        subscription = Subscription(user_id, everything)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)


EVENTS_KEY = web.AppKey("events", EventBus)
