"""The caller's own Home Assistant: status (with URL and reason) and restart. Also the two steps the
account endpoints take on an instance: start provisioning at sign-up, delete it with the account."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from sqlalchemy import select

from hosting import audit
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.api.views import instance_view
from hosting.db.models import USER_ROLE, Instance, User
from hosting.errors import ApiError
from hosting.instances import INSTANCE_MANAGER_KEY, InstanceBusy, InstanceManager, InstanceNotFound
from hosting.ports import PortPoolExhausted
from hosting.runtime.base import ArchiveError, RuntimeFailure

_LOGGER = logging.getLogger(__name__)


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


async def start_provisioning(
    call: Call, user: User, password: str, time_zone: str | None = None
) -> dict[str, Any] | None:
    """Give a new user their instance (port allocated now, provisioning in the background); their HA is
    onboarded in `time_zone` (default: the service's)."""
    if INSTANCE_MANAGER_KEY not in call.app:
        return None
    try:
        await call.app[INSTANCE_MANAGER_KEY].ensure_for_user(user, password, time_zone=time_zone)
    except PortPoolExhausted:
        # The account stays (it can log in and is given an instance once capacity is added).
        async with call.sessions() as session, session.begin():
            audit.record(session, "instance_pool_exhausted", actor_user_id=user.id, target=user.email, ip=call.ip)
        raise ApiError(
            503,
            "no_capacity",
            "no free port for another Home Assistant; your account exists: log in again later to get it",
        ) from None
    return instance_view(await load_instance(call, user_id=user.id))


async def ensure_instance_at_login(call: Call, user: User, password: str) -> None:
    """A user without an instance gets one when they log in: after an exhausted pool at sign-up, or a
    service stop between the sign-up's commit and the start of provisioning. (Provisioning needs the
    password, and login is where we have it again.) Operators' admin accounts get none."""
    manager = call.app.get(INSTANCE_MANAGER_KEY)
    if manager is None or user.role != USER_ROLE or await manager.status(user.id) is not None:
        return
    try:
        await manager.ensure_for_user(user, password)
    except PortPoolExhausted:
        _LOGGER.warning("no free port for %s at login; the pool is still exhausted", user.id)


async def delete_instance_of(call: Call, user_id: str) -> None:
    """Remove the user's instance and its data, if they have one."""
    if INSTANCE_MANAGER_KEY not in call.app:
        return
    async with call.sessions() as session:
        instance = await session.scalar(select(Instance).where(Instance.user_id == user_id))
    if instance is not None:
        with instance_errors():
            await call.app[INSTANCE_MANAGER_KEY].delete(instance.id)
        async with call.sessions() as session, session.begin():
            audit.record(session, "instance_delete", actor_user_id=call.me.id, target=instance.name, ip=call.ip)


async def get_my_instance(call: Call) -> web.Response:
    return web.json_response(instance_view(await load_instance(call, user_id=call.me.id)))


async def restart_my_instance(call: Call) -> web.Response:
    instance = await load_instance(call, user_id=call.me.id)
    with instance_errors():
        await instance_manager(call).restart(instance.id)
    async with call.sessions() as session, session.begin():
        audit.record(session, "instance_restart", actor_user_id=call.me.id, target=instance.name, ip=call.ip)
    return web.json_response(instance_view(await load_instance(call, instance_id=instance.id)), status=202)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/me/instance",
        get_my_instance,
        "The caller's Home Assistant: status (provisioning, ready, error with the reason), URL, health",
        "me",
        responses={200: Reply("the instance", "Instance"), 404: Reply("the caller has no instance", "Error")},
    ),
    Endpoint(
        "POST",
        "/api/me/instance/restart",
        restart_my_instance,
        "Restart the caller's Home Assistant",
        "me",
        responses={
            202: Reply("restarting", "Instance"),
            404: Reply("the caller has no instance", "Error"),
            409: Reply("the instance is busy (being provisioned or deleted)", "Error"),
        },
    ),
]
