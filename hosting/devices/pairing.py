"""Pairing codes: short, single-use, in memory for `Settings.pairing_code_ttl` seconds; wrong guesses are
limited per client IP, and an account has at most `Settings.max_open_pairing_codes` open at once."""

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
    def __init__(self, ttl: float, max_open_per_user: int) -> None:
        self.ttl = ttl
        self.max_open_per_user = max_open_per_user
        self._codes: dict[str, PendingCode] = {}  # by the code's hash
        # Failed attempts per client IP; over the limit, every attempt is refused.
        self._failures = SlidingWindowLimiter(_FAILURE_LIMIT, _FAILURE_WINDOW)

    def create(self, user_id: str, name: str) -> tuple[str, float]:
        """A new code for the owner's device `name` (shown as XXXX-XXXX) and its lifetime in seconds."""
        now = time.monotonic()
        for key in [k for k, c in self._codes.items() if c.expires_at <= now]:
            del self._codes[key]
        open_codes = sorted(c.expires_at for c in self._codes.values() if c.user_id == user_id)
        if len(open_codes) >= self.max_open_per_user:
            wait = open_codes[0] - now
            raise ApiError(
                429,
                "too_many_pairing_codes",
                f"{len(open_codes)} pairing codes are open; pair a device with one, or wait {int(wait) + 1} s "
                "until the oldest expires",
                retry_after_header(wait),
            )
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
                404,
                "invalid_pairing_code",
                "the pairing code is wrong or has expired; ask for a new one in your account",
            )
        return pending

    def give_back(self, code: str, pending: PendingCode) -> None:
        """A redeemed code whose pairing failed through no fault of the code (e.g. no relay port): usable again."""
        normalized = "".join(ch for ch in code.upper() if ch.isalnum())
        self._codes[hash_token(normalized)] = pending
