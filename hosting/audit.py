"""The audit trail: sign-ups, logins, failed logins, token events, account and instance operations.

Entries never hold a secret: `record` refuses detail keys that look like one, so a careless call fails
in tests instead of writing a password into the table.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hosting.db.models import AuditEvent

_SECRET_WORDS = ("password", "token", "secret", "key", "hash", "authorization")


def record(
    session: AsyncSession,
    action: str,
    *,
    actor_user_id: str | None = None,
    target: str = "",
    ip: str = "",
    **details: Any,
) -> AuditEvent:
    """Add an audit event to `session` (it is written with the caller's transaction)."""
    for name in details:
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit detail {name!r} looks like a secret; audit entries never hold secrets")
    event = AuditEvent(
        action=action, actor_user_id=actor_user_id, target=target[:320], ip=ip[:64], details=json.dumps(details)
    )
    session.add(event)
    return event
