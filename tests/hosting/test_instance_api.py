"""The instance endpoints over the REAL InstanceManager and process runtime (whose `hass` is `/bin/false`,
see `provisioning_settings`): status with reason and URL, restart, operator operations, backup/restore,
deletion with the account, and the 503 of an exhausted port pool."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from hosting.db.models import AuditEvent
from hosting.instances import INSTANCE_MANAGER_KEY
from hosting.keys import SESSIONS_KEY, SETTINGS_KEY
from hosting.provision import ProvisionError
from hosting.settings import Settings
from tests.hosting.conftest import start_client
from tests.hosting.helpers import PASSWORD, assert_error, bearer, log_in, make_operator, settled_instance, sign_up

Client = TestClient[Any, Any]


async def test_signup_gives_an_instance_whose_failure_is_explained(instance_client: Client) -> None:
    client = instance_client
    signed = await sign_up(client, "anna@example.com")
    instance = signed["instance"]
    low, high = client.app[SETTINGS_KEY].port_range
    assert low <= instance["port"] <= high
    assert instance["url"] == f"http://127.0.0.1:{instance['port']}"
    assert instance["status"] == "provisioning"
    settled = await settled_instance(client, signed["tokens"]["access_token"])
    # This HA "exits at once": the household is told, in its words, that it is retried by itself...
    assert settled["status"] == "error"
    assert "we try again by ourselves" in settled["status_reason"]
    assert "provisioning_failure" not in settled  # ...the detail is the operator's
    assert settled["assistant"]["state"] == "not_set_up"
    row = await client.app[INSTANCE_MANAGER_KEY].get(instance["id"])
    assert json.loads(row.provision_state)["demo"] is False  # the service's default (MICROPI_DEMO_HOME)
    with_demo = await sign_up(client, "demo@example.com", demo=True)
    row = await client.app[INSTANCE_MANAGER_KEY].get(with_demo["instance"]["id"])
    assert json.loads(row.provision_state)["demo"] is True

    restarted = await client.post("/api/me/instance/restart", headers=bearer(signed["tokens"]["access_token"]))
    assert restarted.status == 202
    assert (await restarted.json())["id"] == instance["id"]


async def test_operator_operations(instance_client: Client, tmp_path: Path) -> None:
    client = instance_client
    owner = await sign_up(client, "bela@example.com")
    operator = await make_operator(client, "op@example.com")
    headers = bearer(operator["access_token"])
    instance = await settled_instance(client, owner["tokens"]["access_token"])
    base = f"/api/operator/instances/{instance['id']}"

    listing = await (await client.get("/api/operator/instances", headers=headers)).json()
    mine = next(i for i in listing["instances"] if i["id"] == instance["id"])
    assert mine["status"] == "error"
    assert "health" in mine
    assert "before it answered" in mine["provisioning_failure"]["detail"]  # the operator's detail
    assert mine["provisioning_failure"]["retryable"] is True

    stopped = await client.post(f"{base}/stop", headers=headers)
    assert stopped.status == 202
    assert (await stopped.json())["status"] == "stopped"

    backup = await client.get(f"{base}/backup", headers=headers)
    assert backup.status == 200
    assert backup.headers["Content-Type"] == "application/gzip"
    archive = await backup.read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
    assert "config/configuration.yaml" in names

    restored = await client.post(
        f"{base}/restore", data=archive, headers={**headers, "Content-Type": "application/gzip"}
    )
    assert restored.status == 202, await restored.text()
    garbage = await client.post(f"{base}/restore", data=b"not an archive", headers=headers)
    assert garbage.status == 422
    assert_error(await garbage.json(), "invalid_archive")
    empty = await client.post(f"{base}/restore", headers=headers)
    assert empty.status == 400

    upgraded = await client.post(f"{base}/upgrade", json={"image": "micropi/ha:next"}, headers=headers)
    assert upgraded.status == 202
    assert (await client.post(f"{base}/upgrade", headers=headers)).status == 202  # no body: the configured image
    assert (await client.post(f"{base}/start", headers=headers)).status in (202, 409)

    missing = await client.post("/api/operator/instances/no-such-id/stop", headers=headers)
    assert missing.status == 404
    assert_error(await missing.json(), "no_instance")

    deleted = await client.delete(base, headers=headers)
    assert deleted.status in (204, 409)
    if deleted.status == 409:  # start resumed provisioning a moment ago; delete cancels it, then works
        deleted = await client.delete(base, headers=headers)
    gone = await client.get("/api/me/instance", headers=bearer(owner["tokens"]["access_token"]))
    assert gone.status == 404

    async with client.app[SESSIONS_KEY]() as session:
        actions = set(await session.scalars(select(AuditEvent.action)))
    assert {"instance_stop", "instance_backup", "instance_restore", "instance_upgrade", "instance_delete"} <= actions


async def test_reconciliation_retries_a_retryable_error_and_leaves_a_permanent_one(instance_client: Client) -> None:
    client = instance_client
    manager = client.app[INSTANCE_MANAGER_KEY]
    manager.config = dataclasses.replace(manager.config, backoff_base=0.0)  # the retry is due at once
    retried = await sign_up(client, "retry@example.com")
    stays = await sign_up(client, "stays@example.com")
    first = await settled_instance(client, retried["tokens"]["access_token"])
    assert first["status"] == "error"  # this HA exits at once: a retryable failure (HA did not come up)
    other = await settled_instance(client, stays["tokens"]["access_token"])
    # A permanent failure, recorded as provisioning records the Provisioner's (HA refused what we sent).
    await manager._provisioning_failed(
        other["id"],
        ProvisionError("HA could not create the owner: HTTP 400: bad username", household="Ask the operator."),
    )

    report = await manager.reconcile()
    assert report.retried == [first["name"]]
    again = await settled_instance(client, retried["tokens"]["access_token"])
    assert again["status"] == "error"  # it failed again (the same HA), and counted it
    row = await manager.get(first["id"])
    assert json.loads(row.provision_state)["failure"]["attempts"] == 2

    permanent = await settled_instance(client, stays["tokens"]["access_token"])
    assert (permanent["status"], permanent["status_reason"]) == ("error", "Ask the operator.")
    operator = await make_operator(client, "op2@example.com")
    listing = await (await client.get("/api/operator/instances", headers=bearer(operator["access_token"]))).json()
    failure = next(i for i in listing["instances"] if i["id"] == other["id"])["provisioning_failure"]
    assert failure["detail"] == "HA could not create the owner: HTTP 400: bad username"
    assert (failure["retryable"], failure["next_retry_at"]) == (False, None)


async def test_account_deletion_removes_the_instance_and_its_data(instance_client: Client) -> None:
    client = instance_client
    signed = await sign_up(client, "cili@example.com")
    instance = await settled_instance(client, signed["tokens"]["access_token"])
    data = client.app[SETTINGS_KEY].data_dir / "instances" / instance["name"]
    assert (data / "config").is_dir()
    response = await client.delete(
        "/api/me", json={"password": PASSWORD}, headers=bearer(signed["tokens"]["access_token"])
    )
    assert response.status == 204
    assert not data.exists()


async def test_exhausted_port_pool_is_a_clear_503(provisioning_settings: Settings) -> None:
    low, _ = provisioning_settings.port_range
    client = await start_client(dataclasses.replace(provisioning_settings, port_range=(low, low + 1)))
    try:
        operator = await make_operator(client, "op@example.com")  # no instance: takes no port
        await sign_up(client, "zeroth@example.com")
        await sign_up(client, "first@example.com")  # the last port
        response = await client.post("/api/auth/signup", json={"email": "second@example.com", "password": PASSWORD})
        assert response.status == 503
        body = await response.json()
        assert_error(body, "no_capacity")
        assert "log in again later" in body["error"]["message"]

        # Capacity comes back (an operator deletes an instance): the waiting user's next login gets one.
        first = await log_in(client, "first@example.com")
        instance = await settled_instance(client, first["access_token"])
        deleted = await client.delete(
            f"/api/operator/instances/{instance['id']}", headers=bearer(operator["access_token"])
        )
        assert deleted.status == 204
        second = await log_in(client, "second@example.com")
        given = await settled_instance(client, second["access_token"])
        assert given["port"] == instance["port"]
    finally:
        await client.close()
