"""Operator endpoints: every user and instance, and the instance operations (through InstanceManager)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiohttp import web
from sqlalchemy import ColumnElement, func, select

from hosting import audit
from hosting.api import schemas
from hosting.api.endpoint import Call, Endpoint, Reply
from hosting.api.instance_access import instance_errors, instance_manager, load_instance
from hosting.api.views import instance_view, orphan_view, user_view
from hosting.db.models import Instance, User
from hosting.errors import ApiError
from hosting.instances import InstanceManager

# Upper bound for an uploaded backup; HA configuration directories are megabytes, not gigabytes.
MAX_ARCHIVE_BYTES = 2 * 1024**3


async def list_users(call: Call) -> web.Response:
    live: ColumnElement[bool] = User.deleted_at.is_(None)
    if query := call.query.get("q", "").strip().lower():
        # Emails are stored lowercased; `%` and `_` in the search are taken literally.
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        live = live & User.email.like(pattern, escape="\\")
    async with call.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(User).where(live))
        users = await session.scalars(
            select(User)
            .where(live)
            .order_by(User.created_at, User.id)
            .limit(call.query["limit"])
            .offset(call.query["offset"])
        )
        return web.json_response({"users": [user_view(u) for u in users], "total": total or 0})


async def list_instances(call: Call) -> web.Response:
    async with call.sessions() as session:
        instances = await session.scalars(select(Instance).order_by(Instance.created_at, Instance.id))
        return web.json_response({"instances": [instance_view(i, operator=True) for i in instances]})


async def list_orphans(call: Call) -> web.Response:
    # From the last reconciliation (at start, then every MICROPI_RECONCILE_INTERVAL s); never deleted by us.
    orphans = instance_manager(call).orphans
    return web.json_response({"orphans": [orphan_view(o) for o in orphans]})


async def _operate(call: Call, action: str) -> Instance:
    manager = instance_manager(call)
    instance = await load_instance(call, instance_id=call.request.match_info["instance_id"])
    with instance_errors():
        await _call_manager(call, manager, instance, action)
    async with call.sessions() as session, session.begin():
        audit.record(session, f"instance_{action}", actor_user_id=call.me.id, target=instance.name, ip=call.ip)
    return instance


async def _call_manager(call: Call, manager: InstanceManager, instance: Instance, action: str) -> None:
    match action:
        case "start":
            await manager.start(instance.id)
        case "stop":
            await manager.stop(instance.id)
        case "restart":
            await manager.restart(instance.id)
        case "upgrade":
            await manager.upgrade(instance.id, call.body.get("image") or call.settings.ha_image)
        case "delete":
            await manager.delete(instance.id)


async def _operated(call: Call, action: str) -> web.Response:
    instance = await _operate(call, action)
    view = instance_view(await load_instance(call, instance_id=instance.id), operator=True)
    return web.json_response(view, status=202)


async def start_instance(call: Call) -> web.Response:
    return await _operated(call, "start")


async def stop_instance(call: Call) -> web.Response:
    return await _operated(call, "stop")


async def restart_instance(call: Call) -> web.Response:
    return await _operated(call, "restart")


async def upgrade_instance(call: Call) -> web.Response:
    return await _operated(call, "upgrade")


async def delete_instance(call: Call) -> web.Response:
    await _operate(call, "delete")
    return web.Response(status=204)


async def backup_instance(call: Call) -> web.StreamResponse:
    manager = instance_manager(call)
    instance = await load_instance(call, instance_id=call.request.match_info["instance_id"])
    with tempfile.TemporaryDirectory(prefix="micropi-backup-") as tmp:
        archive = Path(tmp) / f"{instance.name}.tar.gz"
        with instance_errors():
            await manager.backup(instance.id, archive)
        async with call.sessions() as session, session.begin():
            audit.record(session, "instance_backup", actor_user_id=call.me.id, target=instance.name, ip=call.ip)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/gzip",
                "Content-Disposition": f'attachment; filename="{instance.name}.tar.gz"',
                "Content-Length": str(archive.stat().st_size),
            }
        )
        await response.prepare(call.request)
        with archive.open("rb") as handle:
            while chunk := handle.read(256 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response


async def restore_instance(call: Call) -> web.Response:
    manager = instance_manager(call)
    instance = await load_instance(call, instance_id=call.request.match_info["instance_id"])
    with tempfile.TemporaryDirectory(prefix="micropi-restore-") as tmp:
        archive = Path(tmp) / "upload.tar.gz"
        size = 0
        with archive.open("wb") as handle:
            async for chunk in call.request.content.iter_chunked(256 * 1024):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise ApiError(413, "payload_too_large", "the archive is larger than 2 GiB")
                handle.write(chunk)
        if size == 0:
            raise ApiError(400, "bad_request", "send the backup archive (tar.gz) as the request body")
        with instance_errors():
            await manager.restore(instance.id, archive)
    async with call.sessions() as session, session.begin():
        audit.record(
            session, "instance_restore", actor_user_id=call.me.id, target=instance.name, ip=call.ip, bytes=size
        )
    view = instance_view(await load_instance(call, instance_id=instance.id), operator=True)
    return web.json_response(view, status=202)


_ONE = "/api/operator/instances/{instance_id}"
_NOT_FOUND = {404: Reply("no such instance", "Error")}
_BUSY = {409: Reply("the instance is busy (being provisioned or deleted)", "Error")}
_ACCEPTED = {202: Reply("done; the instance as it is now", "Instance"), **_NOT_FOUND, **_BUSY}

ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/operator/users",
        list_users,
        "Every account (paged; `q` searches the emails)",
        "operator",
        auth="operator",
        query=schemas.USER_SEARCH,
        responses={200: Reply("the accounts", "UserList")},
    ),
    Endpoint(
        "GET",
        "/api/operator/instances",
        list_instances,
        "Every instance with its status and health",
        "operator",
        auth="operator",
        responses={200: Reply("the instances", "InstanceList")},
    ),
    Endpoint(
        "GET",
        "/api/operator/orphans",
        list_orphans,
        "Runtime instances with our labels that no database row owns (found by reconciliation, never deleted: "
        "save their data, then remove them by hand or restore their row)",
        "operator",
        auth="operator",
        responses={
            200: Reply("the orphans", "OrphanList"),
            503: Reply("the service runs without instances (MICROPI_PROVISIONING=false)", "Error"),
        },
    ),
    Endpoint(
        "POST", f"{_ONE}/start", start_instance, "Start an instance", "operator", auth="operator", responses=_ACCEPTED
    ),
    Endpoint(
        "POST", f"{_ONE}/stop", stop_instance, "Stop an instance", "operator", auth="operator", responses=_ACCEPTED
    ),
    Endpoint(
        "POST",
        f"{_ONE}/restart",
        restart_instance,
        "Restart an instance",
        "operator",
        auth="operator",
        responses=_ACCEPTED,
    ),
    Endpoint(
        "POST",
        f"{_ONE}/upgrade",
        upgrade_instance,
        "Run the instance on a new image, keeping its data",
        "operator",
        auth="operator",
        body=schemas.UPGRADE,
        responses=_ACCEPTED,
    ),
    Endpoint(
        "DELETE",
        _ONE,
        delete_instance,
        "Delete an instance and its data (the account stays)",
        "operator",
        auth="operator",
        responses={204: Reply("deleted"), **_NOT_FOUND, **_BUSY},
    ),
    Endpoint(
        "GET",
        f"{_ONE}/backup",
        backup_instance,
        "Download the instance's data as a tar.gz archive (the instance pauses while it is copied)",
        "operator",
        auth="operator",
        responses={200: Reply("the archive", content_type="application/gzip"), **_NOT_FOUND, **_BUSY},
    ),
    Endpoint(
        "POST",
        f"{_ONE}/restore",
        restore_instance,
        "Replace the instance's data with an uploaded archive (checked first; a bad one changes nothing)",
        "operator",
        auth="operator",
        raw_body="application/gzip",
        responses={
            **_ACCEPTED,
            400: Reply("no archive sent", "Error"),
            413: Reply("the archive is too large", "Error"),
            422: Reply("the archive is unreadable or unsafe", "Error"),
        },
    ),
]
