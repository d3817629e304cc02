"""What the handlers that act on an instance share (`my_instance`, `operator`, `accounts`): the manager,
the instance row, and the manager's failures as API errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import select

from hosting.api.endpoint import Call
from hosting.db.models import Instance
from hosting.errors import ApiError
from hosting.instances import INSTANCE_MANAGER_KEY, InstanceBusy, InstanceManager, InstanceNotFound
from hosting.ports import PortPoolExhausted
from hosting.runtime.base import ArchiveError, RuntimeFailure


@contextlib.contextmanager
def instance_errors() -> Iterator[None]:
    """The instance manager's failures as API errors with honest status codes."""
    try:
        yield
    except InstanceBusy as err:
        raise ApiError(409, "instance_busy", str(err)) from None
    except InstanceNotFound:
        raise ApiError(404, "no_instance", "there is no such Home Assistant instance") from None
    except ArchiveError as err:
        raise ApiError(422, "invalid_archive", str(err)) from None
    except PortPoolExhausted as err:
        raise ApiError(503, "no_capacity", str(err)) from None
    except RuntimeFailure as err:
        raise ApiError(503, "runtime_failure", f"the instance runtime failed: {err}") from None


def instance_manager(call: Call) -> InstanceManager:
    manager = call.app.get(INSTANCE_MANAGER_KEY)
    if manager is None:
        raise ApiError(503, "provisioning_disabled", "this service runs without instances (MICROPI_PROVISIONING=false)")
    return manager


async def load_instance(call: Call, *, user_id: str | None = None, instance_id: str | None = None) -> Instance:
    query = select(Instance)
    query = query.where(Instance.user_id == user_id) if user_id else query.where(Instance.id == instance_id)
    async with call.sessions() as session:
        instance = await session.scalar(query)
    if instance is None:
        raise ApiError(404, "no_instance", "there is no such Home Assistant instance")
    return instance
