"""The caller's own Home Assistant: status (with URL and reason) and restart."""

from __future__ import annotations

from aiohttp import web

from hosting import audit
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.api.instance_access import instance_errors, instance_manager, load_instance
from hosting.api.views import instance_view
from hosting.instances import INSTANCE_MANAGER_KEY


async def get_my_instance(call: Call) -> web.Response:
    instance = await load_instance(call, user_id=call.me.id)
    view = instance_view(instance)
    if (manager := call.app.get(INSTANCE_MANAGER_KEY)) is not None:
        view["assistant"] = (await manager.assistant_state(instance)).as_dict()
    return web.json_response(view)


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
        "The caller's Home Assistant: status (provisioning, ready, error with the reason), URL, health, "
        "and its voice assistant's state (ready, model_server_unreachable, model_missing...)",
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
