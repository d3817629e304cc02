"""How rows are shown in API responses (never a hash, token or encrypted secret)."""

from __future__ import annotations

import json
from typing import Any

from hosting.db.models import Instance, User
from hosting.runtime.base import RuntimeInstance


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "role": user.role, "created_at": user.created_at.isoformat()}


def instance_view(instance: Instance, *, operator: bool = False) -> dict[str, Any]:
    """The instance; for operators also the last provisioning failure's detail (the household sees
    `status_reason`, written for them)."""
    view = {
        "id": instance.id,
        "user_id": instance.user_id,
        "name": instance.name,
        "status": instance.status,
        "status_reason": instance.status_reason,
        "url": instance.url,
        "port": instance.port,
        "image": instance.image,
        "health": instance.health,
        "restart_count": instance.restart_count,
        "created_at": instance.created_at.isoformat(),
        "updated_at": instance.updated_at.isoformat(),
    }
    if operator:
        view["provisioning_failure"] = json.loads(instance.provision_state or "{}").get("failure")
    return view


def orphan_view(orphan: RuntimeInstance) -> dict[str, Any]:
    return {"name": orphan.name, "labels": dict(orphan.labels), "state": str(orphan.state)}
