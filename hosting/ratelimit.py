"""In-process sliding-window rate limits (one service process; limits reset on restart, by design), and
the login throttle built from them.

Login limits follow OWASP's Authentication Cheat Sheet ("Protect against automated attacks", "Account
lockout"): count FAILED attempts, not all of them, and never let a stranger lock a user out. Failures are
counted per client address (a guesser is stopped at its own address), per (address, account) pair (one
address cannot keep guessing one password), and per account from addresses that account never logged in
from (a distributed guess of one account is slowed to a trickle) - while the owner's own addresses keep
working. That last one is OWASP's "device cookie" idea, keyed on the addresses of the account's
successful logins because the API has bearer tokens, not cookies.
"""

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

    def refund(self, key: str) -> None:
        """Take back the latest hit for `key` (an attempt reserved up front that turned out not to count)."""
        hits = self._hits.get(key)
        if hits:
            hits.pop()

    def _forget_idle(self, now: float) -> None:
        # Keeps memory bounded when many distinct IPs or emails pass by.
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class LoginThrottle:
    """Failed password checks, per address, per (address, account), and per account from unknown addresses.

    `reserve` counts an attempt before the password is checked, so concurrent guesses cannot slip past the
    count; `succeeded` takes it back, so only failures stay counted.
    """

    def __init__(
        self,
        per_address: int,
        per_pair: int,
        per_account_unknown: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.by_address = SlidingWindowLimiter(per_address, window, clock)
        self.by_pair = SlidingWindowLimiter(per_pair, window, clock)
        self.by_account = SlidingWindowLimiter(per_account_unknown, window, clock)

    def account_under_attack(self, account: str) -> bool:
        """True when the account's allowance for unknown addresses is spent: only then does it matter
        whether this address is one the owner logged in from (a database read, made by the caller)."""
        return self.by_account.blocked(account) is not None

    def reserve(self, address: str, account: str, known_address: bool) -> tuple[str, float] | None:
        """Count one attempt: None when it may go ahead, else (the limit that refused it, seconds to wait)."""
        scopes = [("address", self.by_address, address), ("pair", self.by_pair, f"{address} {account}")]
        if not known_address:
            scopes.append(("account", self.by_account, account))
        taken: list[tuple[SlidingWindowLimiter, str]] = []
        for scope, limiter, key in scopes:
            wait = limiter.hit(key)
            if wait is not None:
                for earlier, earlier_key in taken:  # a refused attempt counts nowhere
                    earlier.refund(earlier_key)
                return scope, wait
            taken.append((limiter, key))
        return None

    def succeeded(self, address: str, account: str, known_address: bool) -> None:
        self.by_address.refund(address)
        self.by_pair.refund(f"{address} {account}")
        if not known_address:
            self.by_account.refund(account)
