"""End to end on the `process` runtime with real `hass` processes (`.venv-ha`, HA 2026.11).

Sign-up through the API -> HA ready -> onboarded -> agent configured -> a sentence through that HA's
`/api/conversation/process` reaches the Ollama wire-format server, which answers with a tool call that
turns a real `input_boolean` on -> the user logs in to their HA with their own credentials.
And: a crash in the middle of provisioning (service gone, hass killed) leaves no orphan and resumes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bench.ollama_wire import OllamaWireServer, Reply
from hosting import metrics
from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import Instance, User
from hosting.gateway.setup import USAGE_KEY
from hosting.instances import INSTANCE_MANAGER_KEY, InstanceBusy, InstanceConfig, InstanceManager
from hosting.keys import SESSIONS_KEY
from hosting.provision import SERVICE_CLIENT_NAME, STEPS
from hosting.runtime.base import RuntimeState
from hosting.runtime.process import ProcessRuntime, default_hass_command
from hosting.security import SecretBox
from tests.hosting import ha_client
from tests.hosting.conftest import start_client, unavailable
from tests.hosting.helpers import PASSWORD, bearer, make_operator, port_pool, process_settings, sign_up, wait_for

pytestmark = pytest.mark.hass

MODEL = "ministral-3:3b-instruct-2512-q4_K_M"
# Free-form, so HA's own Hungarian sentence matching (tried first, `prefer_local`) leaves it to the LLM.
SENTENCE = "Légyszi gondoskodj róla, hogy a teszt lámpa világítson, mert jön a vendég"
READY_WITHIN = 240.0
# Not the service's default (Europe/Budapest): the HA must be onboarded in the zone given at sign-up.
TIME_ZONE = "America/New_York"


@pytest.fixture(autouse=True)
def need_hass() -> None:
    if not Path(default_hass_command()).exists():
        unavailable("no .venv-ha/bin/hass; run `bash scripts/setup.sh`")


def turn_on_the_test_lamp(body: dict[str, Any]) -> Reply:
    """The model's side: call the turn-on tool HA offered (by its offered name); once the tool's result
    is in, say it is done."""
    if any(message.get("role") == "tool" for message in body.get("messages", [])):
        return Reply(content="Felkapcsoltam a teszt lámpát.")
    offered = [tool["function"]["name"] for tool in body.get("tools", [])]
    turn_on = next((name for name in offered if name.rsplit("__", 1)[-1] == "HassTurnOn"), None)
    if turn_on is None:
        return Reply(content=f"HA offered no HassTurnOn tool, only {offered}")
    return Reply(content="", tool_calls=[{"name": turn_on, "arguments": {"name": "Teszt lámpa"}}])


def hass_pid(data_dir: Path, name: str) -> int:
    return int((data_dir / "instances" / name / "hass.pid").read_text())


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_sign_up_gives_a_ready_ha_whose_assistant_works(tmp_path: Path) -> None:
    ollama = OllamaWireServer(models=[MODEL], responder=turn_on_the_test_lamp)
    await ollama.start()
    settings = process_settings(tmp_path, ollama.url, MODEL)
    email = f"anna-{uuid.uuid4().hex[:6]}@example.hu"
    client = await start_client(settings)
    instance_id = ""
    provisioned_before = metrics.REGISTRY.get_sample_value(
        "micropi_provisioning_duration_seconds_count", {"runtime": "process"}
    )
    try:
        started = time.monotonic()
        signed = await sign_up(client, email, time_zone=TIME_ZONE)
        assert signed["instance"]["status"] == "provisioning"
        instance_id = signed["instance"]["id"]
        headers = bearer(signed["tokens"]["access_token"])

        async def finished() -> dict[str, Any] | None:
            response = await client.get("/api/me/instance", headers=headers)
            body: dict[str, Any] = await response.json()
            return body if body["status"] != "provisioning" else None

        instance = await wait_for(finished, READY_WITHIN, "provisioning")
        elapsed = time.monotonic() - started
        print(f"\nsign-up -> ready (process runtime): {elapsed:.1f} s")
        assert instance["status"] == "ready", instance["status_reason"]
        provisioned = metrics.REGISTRY.get_sample_value(
            "micropi_provisioning_duration_seconds_count", {"runtime": "process"}
        )
        assert provisioned == (provisioned_before or 0) + 1
        base_url = instance["url"]
        assert base_url == f"http://127.0.0.1:{instance['port']}"
        assert settings.port_range[0] <= instance["port"] <= settings.port_range[1]

        # What the service keeps: its encrypted HA token; the sign-up password is gone.
        async with client.app[SESSIONS_KEY]() as session:
            row = await session.get(Instance, instance_id)
        assert row is not None
        assert row.owner_password_encrypted is None
        assert row.ha_token_encrypted is not None
        assert set(json.loads(row.provision_state)["steps"]) == set(STEPS)
        service_token = SecretBox(settings.fernet_key).decrypt(row.ha_token_encrypted)
        assert (await ha_client.rest(base_url, service_token, "GET", "/api/"))[0] == 200
        status, ha_config = await ha_client.rest(base_url, service_token, "GET", "/api/config")
        assert status == 200, ha_config
        assert ha_config["time_zone"] == TIME_ZONE

        # The user logs in to their own HA with the email and password they signed up with.
        user_token = await ha_client.login(base_url, email, PASSWORD)
        core = await ha_client.ws(base_url, user_token, {"type": "get_config"})
        assert core["time_zone"] == TIME_ZONE
        assert core["language"] == "hu"
        users = await ha_client.ws(base_url, user_token, {"type": "config/auth/list"})
        owners = [u for u in users if u["is_owner"]]
        assert [u["username"] for u in owners] == [email]

        # Assist uses our agent, in Hungarian.
        pipelines = await ha_client.ws(base_url, user_token, {"type": "assist_pipeline/pipeline/list"})
        preferred = next(p for p in pipelines["pipelines"] if p["id"] == pipelines["preferred_pipeline"])
        assert preferred["language"] == "hu"
        assert preferred["conversation_language"] == "hu"
        agent = preferred["conversation_engine"]
        entities = await ha_client.ws(base_url, user_token, {"type": "config/entity_registry/list"})
        assert any(e["entity_id"] == agent and e["platform"] == "micropi_llm" for e in entities), agent

        # A real entity, exposed to Assist, made the way the user would in the UI.
        created = await ha_client.ws(base_url, user_token, {"type": "input_boolean/create", "name": "Teszt lámpa"})
        lamp = f"input_boolean.{created['id']}"
        await ha_client.ws(
            base_url,
            user_token,
            {"type": "homeassistant/expose_entity", "assistants": ["conversation"], "entity_ids": [lamp],
             "should_expose": True},
        )  # fmt: skip
        assert (await ha_client.rest(base_url, user_token, "GET", f"/api/states/{lamp}"))[1]["state"] == "off"

        status, answer = await ha_client.rest(
            base_url,
            user_token,
            "POST",
            "/api/conversation/process",
            {"text": SENTENCE, "language": "hu", "agent_id": agent},
        )
        assert status == 200, answer
        assert ollama.requests, "the sentence never reached the Ollama server"
        assert ollama.requests[0]["model"] == MODEL
        lamp_state = (await ha_client.rest(base_url, user_token, "GET", f"/api/states/{lamp}"))[1]["state"]
        assert lamp_state == "on", (answer, ollama.requests[-1]["messages"][1:], len(ollama.requests))
        assert "Felkapcsoltam" in answer["response"]["speech"]["plain"]["speech"], answer
        # The agent went through the gateway with the instance's own token, and was metered there.
        await client.app[USAGE_KEY].flush()
        usage = await (await client.get("/api/me/usage", headers=headers)).json()
        assert usage["model_requests"] == len(ollama.requests), usage

        # The operator rotates the instance's gateway token: HA gets the new one through its reconfigure
        # flow, the old one stops working, and the assistant keeps working.
        operator = (await make_operator(client, f"op-{uuid.uuid4().hex[:6]}@example.hu"))["access_token"]
        rotated = await client.post(f"/api/operator/instances/{instance_id}/gateway-token", headers=bearer(operator))
        assert (await rotated.json())["home_assistant_updated"] is True
        asked = len(ollama.requests)

        async def answered() -> dict[str, Any] | None:  # the entry reloads with the new token: a moment
            status, answer = await ha_client.rest(
                base_url, user_token, "POST", "/api/conversation/process",
                {"text": "Kapcsold fel a teszt lámpát újra", "language": "hu", "agent_id": agent},
            )  # fmt: skip
            return answer if status == 200 else None

        answer = await wait_for(answered, 30, "the agent after the token rotation")
        assert len(ollama.requests) > asked, answer
        assert "Felkapcsoltam" in answer["response"]["speech"]["plain"]["speech"], answer

        # The service stops: hass keeps running; the next start adopts it without restarting it.
        pid = hass_pid(settings.data_dir, instance["name"])
        await client.close()
        assert pid_alive(pid)
        client = await start_client(settings)
        report = await client.app[INSTANCE_MANAGER_KEY].reconcile()
        assert not report.restarted and not report.orphans
        assert hass_pid(settings.data_dir, instance["name"]) == pid
        response = await client.get("/api/me/instance", headers=headers)
        assert (await response.json())["health"] == "healthy"

        # Deleting removes the process and the data.
        await client.app[INSTANCE_MANAGER_KEY].delete(instance_id)
        instance_id = ""
        assert not pid_alive(pid)
        assert not (settings.data_dir / "instances" / instance["name"]).exists()
        # Nothing else of the test's was left running either (a signed-up operator once left its own `hass`).
        assert not list((settings.data_dir / "instances").iterdir())
    finally:
        if instance_id:
            await client.app[INSTANCE_MANAGER_KEY].delete(instance_id)
        await client.close()
        await ollama.stop()


async def test_crash_mid_provisioning_resumes_without_orphans_or_repeats(tmp_path: Path) -> None:
    # An Ollama that accepts connections and never answers holds provisioning inside the `ollama_entry`
    # step (for the flow's 10 s connect timeout): the service "crashes" there, its HA with it.
    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    hanging = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    ollama = OllamaWireServer(models=[MODEL])
    await ollama.start()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    secrets = SecretBox(Fernet.generate_key().decode())
    pool = port_pool()
    root = tmp_path / "instances"

    def new_manager(ollama_url: str) -> InstanceManager:  # what a (re)start of the service makes
        config = InstanceConfig(port_range=pool, ollama_url=ollama_url, ollama_model=MODEL, reconcile_interval=3600)
        return InstanceManager(sessions, ProcessRuntime(root), secrets, config)

    email = f"bela-{uuid.uuid4().hex[:6]}@example.hu"
    async with sessions() as session, session.begin():
        user = User(email=email, password_hash="not used here")
        session.add(user)
    manager = new_manager(f"http://127.0.0.1:{hanging.sockets[0].getsockname()[1]}")
    instance = await manager.ensure_for_user(user, PASSWORD)

    async def steps_done() -> set[str]:
        async with sessions() as session:
            row = await session.get(Instance, instance.id)
        assert row is not None
        assert row.status != "error", row.status_reason
        return set(json.loads(row.provision_state)["steps"])

    try:
        await wait_for(lambda: _has(steps_done, "token"), READY_WITHIN, "the token step")
        with pytest.raises(InstanceBusy, match="being provisioned"):  # the API's 409
            await manager.restart(instance.id)
        await manager.close()
        pid = int((root / instance.name / "hass.pid").read_text())
        os.killpg(pid, 9)
        await wait_for(lambda: _dead(pid), 10, "hass to die")
        async with sessions() as session:
            row = await session.get(Instance, instance.id)
        assert row is not None and row.status == "provisioning", row and row.status_reason
        assert "ollama_entry" not in await steps_done()

        manager = new_manager(ollama.url)
        report = await manager.reconcile()  # what `open()` does first at a start
        assert report.resumed == [instance.name]
        assert not report.orphans
        done = await manager.wait_provisioned(instance.id)
        assert done.status == "ready", done.status_reason
        assert await steps_done() == set(STEPS)

        # Nothing was done twice: one owner, one service token, one MicroPi entry.
        token = secrets.decrypt(done.ha_token_encrypted or "")
        base_url = f"http://127.0.0.1:{done.port}"
        users = await ha_client.ws(base_url, token, {"type": "config/auth/list"})
        assert [u["username"] for u in users if u["username"]] == [email]
        tokens = await ha_client.ws(base_url, token, {"type": "auth/refresh_tokens"})
        assert [t["client_name"] for t in tokens].count(SERVICE_CLIENT_NAME) == 1
        status, entries = await ha_client.rest(
            base_url, token, "GET", "/api/config/config_entries/entry?domain=micropi_llm"
        )
        assert status == 200 and len(entries) == 1
        # ...and the runtime holds exactly the database's instances.
        assert [(i.name, i.state) for i in await manager.runtime.list_instances()] == [
            (instance.name, RuntimeState.RUNNING)
        ]
        assert done.owner_password_encrypted is None
    finally:
        await manager.delete(instance.id)
        await manager.close()
        async with sessions() as session:
            assert (await session.scalars(select(Instance))).all() == []
        await engine.dispose()
        await ollama.stop()
        hanging.close()
        assert not (root / instance.name).exists()


async def _has(steps: Any, step: str) -> bool:
    return step in await steps()


async def _dead(pid: int) -> bool:
    return not pid_alive(pid)
