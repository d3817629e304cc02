"""Fair sharing of a saturated GPU: back-end slots go to per-tenant queues in round robin.

While a slot is free a request takes it at once (the least busy back-end that has the model). When every
slot is busy, requests wait in their tenant's queue; each freed slot goes to the next tenant in turn, so a
household sending twenty requests waits behind itself, not in front of ten others. Queues are bounded
(per tenant and in all) and so is the wait; past either, `Unavailable` (503). `fair=False` is plain FIFO,
kept for the fairness benchmark's baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from hosting.gateway.backends import Backend


class Unavailable(Exception):
    """No slot within the bounds (queue full, waited too long, no back-end has the model)."""

    def __init__(self, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(eq=False)
class _Waiter:
    tenant: str
    model: str
    exclude: frozenset[Backend]
    granted: asyncio.Future[Backend] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class FairScheduler:
    def __init__(
        self,
        backends: list[Backend],
        *,
        queue_per_tenant: int = 8,
        queue_total: int = 256,
        queue_wait: float = 30.0,
        fair: bool = True,
    ) -> None:
        self.backends = backends
        self.queue_per_tenant = queue_per_tenant
        self.queue_total = queue_total
        self.queue_wait = queue_wait
        self.fair = fair
        # Tenants with waiting requests, in serving order (the one served last moves to the end).
        self._queues: OrderedDict[str, deque[_Waiter]] = OrderedDict()
        self._waiting = 0
        self._per_tenant: dict[str, int] = {}  # waiting requests by tenant (FIFO mode too)

    @property
    def waiting(self) -> int:
        return self._waiting

    def waiting_for(self, tenant: str) -> int:
        return self._per_tenant.get(tenant, 0)

    def _pick(self, model: str, exclude: frozenset[Backend]) -> Backend | None:
        free = [b for b in self.backends if b.free and b.has(model) and b not in exclude]
        return min(free, key=lambda b: (b.in_flight / b.slots, b.in_flight), default=None)

    def _grant(self, backend: Backend) -> Backend:
        backend.in_flight += 1
        return backend

    async def acquire(self, tenant: str, model: str, exclude: frozenset[Backend] = frozenset()) -> Backend:
        """A slot on a back-end with `model` (release it with `release`); waits fairly when all are busy."""
        candidates = [b for b in self.backends if b.healthy and b.has(model) and b not in exclude]
        if not candidates:
            raise Unavailable("no_backend", f"no model server is up with the model {model!r}; try again shortly", None)
        if not self._waiting and (backend := self._pick(model, exclude)) is not None:
            return self._grant(backend)
        key = tenant if self.fair else ""
        if self._waiting >= self.queue_total or self.waiting_for(tenant) >= self.queue_per_tenant:
            raise Unavailable("queue_full", "the model servers are saturated; try again in a few seconds", 5)
        waiter = _Waiter(tenant, model, exclude)
        self._queues.setdefault(key, deque()).append(waiter)
        self._waiting += 1
        self._count_queued(waiter, +1)
        self.dispatch()
        try:
            async with asyncio.timeout(self.queue_wait):
                return await asyncio.shield(waiter.granted)
        except TimeoutError:
            self._abandon(key, waiter)
            raise Unavailable(
                "queue_timeout", f"no model server slot freed within {self.queue_wait:g} s; try again", 5
            ) from None
        except asyncio.CancelledError:  # the client went away while waiting
            self._abandon(key, waiter)
            raise

    def _abandon(self, key: str, waiter: _Waiter) -> None:
        if waiter.granted.done() and not waiter.granted.cancelled():
            self.release(waiter.granted.result())  # granted just as the caller gave up: pass the slot on
        else:
            self._forget(key, waiter)

    def release(self, backend: Backend) -> None:
        backend.in_flight = max(0, backend.in_flight - 1)
        self.dispatch()

    def dispatch(self) -> None:
        """Hand free slots to waiting requests, one tenant at a time in turn."""
        while self._queues:
            for key, queue in self._queues.items():
                waiter = queue[0]
                backend = self._pick(waiter.model, waiter.exclude)
                if backend is None:
                    continue
                queue.popleft()
                self._waiting -= 1
                self._count_queued(waiter, -1)
                if queue:
                    self._queues.move_to_end(key)
                else:
                    del self._queues[key]
                waiter.granted.set_result(self._grant(backend))
                break
            else:
                return  # nobody at a queue's head can be served now

    def _forget(self, key: str, waiter: _Waiter) -> None:
        queue = self._queues.get(key)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        self._waiting -= 1
        self._count_queued(waiter, -1)
        if not queue:
            del self._queues[key]
        waiter.granted.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            waiter.granted.exception()

    def _count_queued(self, waiter: _Waiter, delta: int) -> None:
        count = self._per_tenant.get(waiter.tenant, 0) + delta
        if count > 0:
            self._per_tenant[waiter.tenant] = count
        else:
            self._per_tenant.pop(waiter.tenant, None)
        for backend in self.backends:
            if backend.has(waiter.model) and backend not in waiter.exclude:
                backend.queued = max(0, backend.queued + delta)
