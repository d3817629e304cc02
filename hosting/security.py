"""Every piece of cryptography the service uses, in one place.

- Passwords: argon2id (argon2-cffi), hashed off the event loop because one hash takes 50-500 ms.
- Access tokens: short-lived HS256 JWTs with `type: "access"`, `sub` (user id), `role`, `iat`, `exp`.
- Refresh tokens: opaque random strings; only their SHA-256 is stored (they carry 256 bits of entropy,
  so a fast hash is enough - unlike passwords).
- Secrets we must read back later (HA long-lived tokens, the owner's password until onboarding):
  Fernet (`SecretBox`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

if TYPE_CHECKING:
    from hosting.settings import Settings

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105  # a claim value, not a secret


class Passwords:
    """argon2id hashing with the configured cost (defaults: argon2-cffi's, RFC 9106's low-memory profile).

    Hashes carry their parameters, so a cost change keeps old hashes valid; `needs_rehash` tells when a
    successful login should store a hash at the current cost.
    """

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)

    @functools.cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the account does not exist, so a login for an unknown email costs the same
        time as one with a wrong password (no account enumeration by timing). Made on first use."""
        return self._hasher.hash("not a real password, only for timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; an absent or malformed hash never matches (and takes as long)."""
        return await asyncio.to_thread(self._verify_sync, password_hash, password)

    def _verify_sync(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except VerificationError, InvalidHashError:
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False


class TokenError(Exception):
    """The access token is missing, malformed, expired, forged or of the wrong type."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: str
    expires_at: float


def issue_access_token(secret: str, user_id: str, role: str, ttl: int, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {"sub": user_id, "role": role, "type": ACCESS_TOKEN_TYPE, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_access_token(secret: str, token: str) -> AccessClaims:
    try:
        # `algorithms` pinned to HS256: tokens with alg "none" or any other algorithm are refused.
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "iat", "sub", "type", "role"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the access token has expired; get a new one from /api/auth/refresh") from None
    except jwt.InvalidTokenError:
        raise TokenError("the access token is not valid; log in again") from None
    if claims.get("type") != ACCESS_TOKEN_TYPE:
        raise TokenError("this is not an access token; send the access token from /api/auth/login")
    sub, role = claims.get("sub"), claims.get("role")
    if not isinstance(sub, str) or not isinstance(role, str):
        raise TokenError("the access token is not valid; log in again")
    return AccessClaims(user_id=sub, role=role, expires_at=float(claims["exp"]))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored for an opaque token (refresh tokens, device tokens)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    """Fernet encryption for secrets the service has to use again (e.g. an HA long-lived token)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt: the value was encrypted with another Fernet key") from None
