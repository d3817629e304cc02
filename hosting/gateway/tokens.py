"""Gateway tokens: one per instance, Fernet-encrypted at rest (provisioning hands it to HA again) and found
by its SHA-256, rotatable by the operator. `TenantDirectory` resolves a presented token to its tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting.db.models import GatewayLimits, GatewayToken, Instance
from hosting.gateway.settings import TenantLimits
from hosting.security import SecretBox

TOKEN_PREFIX = "mpg_"  # noqa: S105  # not a secret, a prefix recognisable in a leaked-secret scan
# How long a resolved token is trusted without asking the database again (rotation and limit changes by
# the operator drop the cache entry at once; this bounds anything else, e.g. a deleted account).
_CACHE_SECONDS = 30.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def instance_token(session: AsyncSession, box: SecretBox, instance: Instance) -> str:
    """The instance's gateway token, made on first use (the caller commits)."""
    row = await session.get(GatewayToken, instance.id)
    if row is not None:
        return box.decrypt(row.token_encrypted)
    token = new_token()
    session.add(
        GatewayToken(
            instance_id=instance.id,
            user_id=instance.user_id,
            token_hash=token_hash(token),
            token_encrypted=box.encrypt(token),
        )
    )
    await session.flush()
    return token


async def rotate_token(session: AsyncSession, box: SecretBox, instance: Instance) -> str:
    """A fresh token replaces the instance's old one, which stops working at once (the caller commits)."""
    token = new_token()
    row = await session.get(GatewayToken, instance.id)
    if row is None:
        row = GatewayToken(instance_id=instance.id, user_id=instance.user_id, token_hash="", token_encrypted="")
        session.add(row)
    row.token_hash = token_hash(token)
    row.token_encrypted = box.encrypt(token)
    await session.flush()
    return token


@dataclass(frozen=True)
class Tenant:
    user_id: str
    instance_id: str
    instance_name: str
    limits: TenantLimits


class TenantDirectory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], defaults: TenantLimits) -> None:
        self.sessions = sessions
        self.defaults = defaults
        self._cache: dict[str, tuple[float, Tenant]] = {}

    async def resolve(self, token: str) -> Tenant | None:
        digest = token_hash(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.sessions() as session:
            found = (
                await session.execute(
                    select(GatewayToken, Instance)
                    .join(Instance, Instance.id == GatewayToken.instance_id)
                    .where(GatewayToken.token_hash == digest)
                )
            ).first()
            if found is None:
                return None
            row, instance = found
            if not hmac.compare_digest(row.token_hash, digest):
                return None
            overrides = await session.get(GatewayLimits, row.user_id)
        limits = self.defaults.merged(limits_overrides(overrides))
        tenant = Tenant(row.user_id, row.instance_id, instance.name, limits)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + _CACHE_SECONDS, tenant)
        return tenant

    def forget(self, user_id: str | None = None) -> None:
        """Drop cached tenants (all, or one account's) after a rotation or a change of limits."""
        if user_id is None:
            self._cache.clear()
            return
        for digest in [d for d, (_, t) in self._cache.items() if t.user_id == user_id]:
            del self._cache[digest]


def limits_overrides(row: GatewayLimits | None) -> dict[str, int | None]:
    if row is None:
        return {}
    names = ("concurrency", "requests_per_minute", "tokens_per_day", "max_num_ctx", "max_num_predict")
    return {name: getattr(row, name) for name in names}
