"""Per-tenant limits: requests at once, requests per minute, tokens per day (in this process's memory; the
day's tokens are seeded from the usage rollups at start, so a restart does not hand out a fresh budget)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hosting.gateway.settings import TenantLimits


class LimitExceeded(Exception):
    def __init__(self, limit: str, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message
        self.retry_after = max(1.0, retry_after)


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def seconds_to_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


@dataclass
class _TenantUse:
    active: int = 0
    recent: deque[float] = field(default_factory=deque)  # monotonic times of the last minute's requests
    day: str = ""
    tokens: int = 0


class TenantMeter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._use: dict[str, _TenantUse] = {}

    def _of(self, tenant: str) -> _TenantUse:
        use = self._use.setdefault(tenant, _TenantUse())
        today = utc_day()
        if use.day != today:
            use.day, use.tokens = today, 0
        return use

    def seed_tokens(self, tenant: str, tokens: int) -> None:
        self._of(tenant).tokens = max(self._of(tenant).tokens, tokens)

    def tokens_today(self, tenant: str) -> int:
        return self._of(tenant).tokens

    def admit(self, tenant: str, limits: TenantLimits) -> None:
        """Count one request in, or raise `LimitExceeded` (nothing is counted then)."""
        use = self._of(tenant)
        now = self._clock()
        if use.active >= limits.concurrency:
            raise LimitExceeded(
                "concurrency", f"at most {limits.concurrency} requests at once per home; wait for the running ones", 2
            )
        while use.recent and use.recent[0] <= now - 60:
            use.recent.popleft()
        if limits.requests_per_minute and len(use.recent) >= limits.requests_per_minute:
            raise LimitExceeded(
                "requests_per_minute",
                f"at most {limits.requests_per_minute} requests per minute per home",
                use.recent[0] + 60 - now,
            )
        if limits.tokens_per_day and use.tokens >= limits.tokens_per_day:
            raise LimitExceeded(
                "tokens_per_day",
                f"the home's {limits.tokens_per_day} tokens for today are used up",
                seconds_to_midnight(),
            )
        use.active += 1
        use.recent.append(now)

    def finish(self, tenant: str, tokens: int) -> None:
        use = self._of(tenant)
        use.active = max(0, use.active - 1)
        use.tokens += tokens
