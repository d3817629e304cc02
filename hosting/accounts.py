"""`Accounts`: the account service behind `hosting.api.accounts`: sign-up, login, refresh (rotating, with
reuse detection), logout, password change, deletion. Here are the SQL, the transactions, the audit
records and token issuance; the handlers validate, rate-limit and answer.

An account's Home Assistant comes with it: the instance is given at sign-up (or at a later login when the
port pool was full), and goes first when the account is deleted (`InstanceManager`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting import audit
from hosting.db.models import USER_ROLE, AuditEvent, Instance, RefreshToken, User, new_id
from hosting.instances import InstanceManager
from hosting.ports import PortPoolExhausted
from hosting.security import hash_token, issue_access_token, new_refresh_token
from hosting.settings import Settings

_LOGGER = logging.getLogger(__name__)


class EmailTaken(Exception):
    """An account with this email exists."""


class Accounts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        instances: InstanceManager | None,  # None: the service runs without instances
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.instances = instances

    # ---- tokens --------------------------------------------------------------------------------------

    def _issue_tokens(self, session: AsyncSession, user: User, family_id: str | None = None) -> dict[str, Any]:
        """A new access token and refresh token (stored as its hash, in `family_id`'s family or a new one)."""
        settings = self.settings
        refresh = new_refresh_token()
        session.add(
            RefreshToken(
                user_id=user.id,
                family_id=family_id or new_id(),
                token_hash=hash_token(refresh),
                expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl),
            )
        )
        return {
            "access_token": issue_access_token(settings.jwt_secret, user.id, user.role, settings.access_token_ttl),
            "token_type": "Bearer",
            "expires_in": settings.access_token_ttl,
            "refresh_token": refresh,
            "refresh_expires_in": settings.refresh_token_ttl,
        }

    async def record(self, event: str, user_id: str | None, target: str, ip: str) -> None:
        """An audit record in its own transaction (for events with nothing else to write)."""
        async with self.sessions() as session, session.begin():
            audit.record(session, event, actor_user_id=user_id, target=target, ip=ip)

    # ---- sign-up and login ---------------------------------------------------------------------------

    async def sign_up(self, email: str, password_hash: str, ip: str) -> tuple[User, dict[str, Any]]:
        """The new user and their first token pair; EmailTaken when the address has an account."""
        try:
            async with self.sessions() as session, session.begin():
                user = User(email=email, password_hash=password_hash, role=USER_ROLE)
                session.add(user)
                await session.flush()  # the UNIQUE(email) check happens here, before anything else is written
                audit.record(session, "signup", actor_user_id=user.id, target=email, ip=ip)
                tokens = self._issue_tokens(session, user)
        except IntegrityError:
            raise EmailTaken(email) from None
        return user, tokens

    async def find_active(self, email: str) -> User | None:
        async with self.sessions() as session:
            user: User | None = await session.scalar(select(User).where(User.email == email, User.deleted_at.is_(None)))
        return user

    async def logged_in_from(self, email: str, ip: str, within: timedelta) -> bool:
        """Whether `email`'s account had a successful login from `ip` within the last `within` (the audit
        trail remembers it): the login throttle's "one of the owner's own addresses"."""
        since = datetime.now(UTC) - within
        async with self.sessions() as session:
            found = await session.scalar(
                select(AuditEvent.id)
                .where(AuditEvent.action == "login", AuditEvent.target == email, AuditEvent.ip == ip)
                .where(AuditEvent.at > since)
                .limit(1)
            )
        return found is not None

    async def log_in(self, user: User, ip: str, new_password_hash: str | None = None) -> dict[str, Any]:
        """A token pair for a user whose password was verified; stores `new_password_hash` if given (a rehash)."""
        async with self.sessions() as session, session.begin():
            if new_password_hash is not None:
                await session.execute(update(User).where(User.id == user.id).values(password_hash=new_password_hash))
            audit.record(session, "login", actor_user_id=user.id, target=user.email, ip=ip)
            return self._issue_tokens(session, user)

    async def give_instance(
        self, user: User, password: str, time_zone: str | None, ip: str, *, demo: bool | None = None
    ) -> Instance | None:
        """A new user's instance (port allocated now, provisioning in the background), onboarded in
        `time_zone` (default: the service's), with the demo home if `demo` (default: the service's).
        PortPoolExhausted: the account stays, without one for now."""
        if self.instances is None:
            return None
        try:
            await self.instances.ensure_for_user(user, password, time_zone=time_zone, demo=demo)
        except PortPoolExhausted:
            await self.record("instance_pool_exhausted", user.id, user.email, ip)
            raise
        return await self.instances.status(user.id)

    async def ensure_instance_at_login(self, user: User, password: str) -> None:
        """A user without an instance gets one when they log in: after an exhausted pool at sign-up, or a
        service stop between the sign-up's commit and the start of provisioning. (Provisioning needs the
        password, and login is where we have it again.) Operators' admin accounts get none."""
        manager = self.instances
        if manager is None or user.role != USER_ROLE or await manager.status(user.id) is not None:
            return
        try:
            await manager.ensure_for_user(user, password)
        except PortPoolExhausted:
            _LOGGER.warning("no free port for %s at login; the pool is still exhausted", user.id)

    # ---- refresh and logout --------------------------------------------------------------------------

    async def refresh(self, refresh_token: str, ip: str) -> dict[str, Any] | None:
        """A new pair for an unspent refresh token; None when it is used, revoked or expired. A spent token
        that comes back was stolen or replayed: every token of its family is revoked."""
        token_hash = hash_token(refresh_token)
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            # Spend the token with one conditional UPDATE: of two concurrent refreshes only one can win.
            spent = (
                await session.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.token_hash == token_hash,
                        RefreshToken.used_at.is_(None),
                        RefreshToken.revoked_at.is_(None),
                        RefreshToken.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(RefreshToken.user_id, RefreshToken.family_id)
                )
            ).first()
            if spent is not None:
                user = await session.scalar(select(User).where(User.id == spent.user_id, User.deleted_at.is_(None)))
                return None if user is None else self._issue_tokens(session, user, family_id=spent.family_id)
            row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            if row is not None and row.used_at is not None and row.revoked_at is None:
                await _revoke_family(session, row.family_id, now)
                audit.record(session, "refresh_token_reuse", actor_user_id=row.user_id, target=row.family_id, ip=ip)
        return None

    async def log_out(self, user: User, refresh_token: str, ip: str) -> bool:
        """Revokes the refresh token's family; False when the token is not the user's."""
        token_hash = hash_token(refresh_token)
        async with self.sessions() as session, session.begin():
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash, RefreshToken.user_id == user.id)
            )
            if row is None:
                return False
            await _revoke_family(session, row.family_id, datetime.now(UTC))
            audit.record(session, "logout", actor_user_id=user.id, target=user.email, ip=ip)
        return True

    async def end_session(self, refresh_token: str, ip: str) -> None:
        """The browser's log-out: revokes the family of the session cookie's token, whoever's it is (holding
        the cookie is the proof); an unknown token changes nothing."""
        async with self.sessions() as session, session.begin():
            row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token)))
            if row is not None:
                await _revoke_family(session, row.family_id, datetime.now(UTC))
                audit.record(session, "logout", actor_user_id=row.user_id, target=row.family_id, ip=ip)

    # ---- the caller's own account --------------------------------------------------------------------

    async def change_password(self, user_id: str, password_hash: str, ip: str) -> dict[str, Any]:
        """Stores the new hash; every other session ends (all refresh tokens revoked); a fresh pair."""
        async with self.sessions() as session, session.begin():
            user = await session.get_one(User, user_id)
            user.password_hash = password_hash
            await _revoke_all(session, user.id, datetime.now(UTC))
            audit.record(session, "password_changed", actor_user_id=user.id, target=user.email, ip=ip)
            return self._issue_tokens(session, user)

    async def delete_instance_of(self, user_id: str, ip: str) -> None:
        """Removes the user's instance and its data, if they have one (InstanceManager's errors pass)."""
        if self.instances is None:
            return
        instance = await self.instances.status(user_id)
        if instance is not None:
            await self.instances.delete(instance.id)
            await self.record("instance_delete", user_id, instance.name, ip)

    async def delete(self, user_id: str, ip: str) -> None:
        """Personal data goes; the row stays (tombstone) so the audit trail's ids keep their meaning and the
        address is free for a new sign-up. Every refresh token is revoked."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            user = await session.get_one(User, user_id)
            email = user.email
            user.email = f"deleted-{user.id}@invalid"
            user.password_hash = "!"  # noqa: S105  # matches no password: argon2 cannot parse it
            user.deleted_at = now
            await _revoke_all(session, user.id, now)
            audit.record(session, "account_deleted", actor_user_id=user.id, target=email, ip=ip)


async def _revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def _revoke_all(session: AsyncSession, user_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
