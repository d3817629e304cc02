"""Pairing codes: short, single-use, in memory for `Settings.pairing_code_ttl` seconds; wrong guesses are
limited per client IP."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from hosting.errors import ApiError
from hosting.ratelimit import SlidingWindowLimiter, retry_after_header
from hosting.security import hash_token

# No 0/O, 1/I/L: a code is read off a screen and typed on a Pi.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 8
# 31^8 codes, 10 minutes each, 20 wrong guesses a minute per IP: guessing someone's code is hopeless.
_FAILURE_LIMIT = 20
_FAILURE_WINDOW = 60.0


@dataclass
class PendingCode:
    user_id: str
    name: str
    expires_at: float


class PairingCodes:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._codes: dict[str, PendingCode] = {}  # by the code's hash
        # Failed attempts per client IP; over the limit, every attempt is refused.
        self._failures = SlidingWindowLimiter(_FAILURE_LIMIT, _FAILURE_WINDOW)

    def create(self, user_id: str, name: str) -> tuple[str, float]:
        """A new code for the owner's device `name` (shown as XXXX-XXXX) and its lifetime in seconds."""
        now = time.monotonic()
        for key in [k for k, c in self._codes.items() if c.expires_at <= now]:
            del self._codes[key]
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        self._codes[hash_token(code)] = PendingCode(user_id, name, now + self.ttl)
        return f"{code[:4]}-{code[4:]}", self.ttl

    def redeem(self, code: str, ip: str) -> PendingCode:
        """Spends a code typed on the Pi (case, dashes and spaces do not matter)."""
        if (wait := self._failures.blocked(ip)) is not None:
            raise ApiError(
                429, "rate_limited", "too many wrong pairing codes; wait and try again", retry_after_header(wait)
            )
        normalized = "".join(ch for ch in code.upper() if ch.isalnum())
        pending = self._codes.pop(hash_token(normalized), None)
        if pending is None or pending.expires_at <= time.monotonic():
            self._failures.record(ip)
            raise ApiError(
                400,
                "invalid_pairing_code",
                "the pairing code is wrong or has expired; ask for a new one in your account",
            )
        return pending
