"""In-process sliding-window rate limits (one service process; limits reset on restart, by design)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most `limit` hits per key within any `window` seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    def hit(self, key: str) -> float | None:
        """Count one attempt for `key`: None when allowed, else the seconds to wait (nothing is counted)."""
        wait = self.blocked(key)
        if wait is None:
            self.record(key)
        return wait

    def blocked(self, key: str) -> float | None:
        """None when `key` is under its limit, else the seconds until it is (nothing is counted)."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - now, 0.001)
        return None

    def record(self, key: str) -> None:
        """Count one hit for `key` (e.g. a failed attempt, where only failures are limited)."""
        now = self._clock()
        self._hits.setdefault(key, deque()).append(now)
        self._calls += 1
        if self._calls % 1024 == 0:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # Keeps memory bounded when many distinct IPs or emails pass by.
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
