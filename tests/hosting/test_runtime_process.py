"""The process runtime's own mechanics, fast: a stand-in `hass` (a small Python HTTP server that takes
hass's command line and reads the port from HA's HTTP store like hass does). The real `hass` runs in
test_e2e_process.py."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import User
from hosting.instances import INSTANCE_MANAGER_KEY, InstanceConfig, InstanceManager
from hosting.runtime.base import InstanceSpec, PortInUseError, RuntimeState, ownership_labels
from hosting.runtime.process import INTEGRATION_DIRS, ProcessRuntime
from hosting.security import SecretBox
from hosting.settings import Settings
from tests.hosting.conftest import start_client
from tests.hosting.helpers import bearer, make_operator, port_pool, wait_for

STAND_IN = f"""#!{sys.executable}
# Stand-in for `hass -c CONFIG ...`: serves /manifest.json on the port of CONFIG/.storage/http.
import http.server, json, os, sys
config = sys.argv[sys.argv.index("-c") + 1]
store = json.load(open(os.path.join(config, ".storage", "http")))["data"]["stable"]
with open(os.path.join(config, "boots"), "a") as boots:
    boots.write("boot\\n")
with open(os.path.join(config, "environment.json"), "w") as out:
    json.dump(dict(os.environ), out)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/manifest.json" else 404)
        self.end_headers()
        self.wfile.write(b"{{}}")
    def log_message(self, *args):
        pass
http.server.HTTPServer((store["server_host"][0], store["server_port"]), Handler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def running(pid: int) -> bool:
    """A live process (a zombie has no command line any more)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


@pytest.fixture
def stand_in(tmp_path: Path) -> str:
    path = tmp_path / "hass"
    path.write_text(STAND_IN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
async def runtime(tmp_path: Path, stand_in: str) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(tmp_path / "instances", stand_in, stop_timeout=5, port_release_wait=0.5)
    yield runtime
    for found in await runtime.list_instances():
        await runtime.remove(found.name)


def make_spec(name: str = "micropi-ha-0a1b2c3d") -> InstanceSpec:
    return InstanceSpec(name=name, port=free_port(), image="process", labels=ownership_labels("i-1", "u-1"))


async def test_lifecycle_and_what_hass_is_given(runtime: ProcessRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROPI_FERNET_KEY", "a secret the instances must never see")
    spec = make_spec()
    assert (await runtime.status(spec)).state is RuntimeState.MISSING
    await runtime.ensure_started(spec)
    await runtime.wait_ready(spec, within=20)
    assert (await runtime.status(spec)).healthy

    config = runtime.config_dir(spec.name)
    stable = json.loads((config / ".storage" / "http").read_text())["data"]["stable"]
    assert (stable["server_port"], stable["server_host"]) == (spec.port, ["127.0.0.1"])
    assert (config / "configuration.yaml").read_text().startswith("# MicroPi's default")
    for integration in INTEGRATION_DIRS:  # the agent and the demo home
        assert (config / "custom_components" / integration.name / "manifest.json").read_text() == (
            integration / "manifest.json"
        ).read_text()
    environment = json.loads((config / "environment.json").read_text())
    assert "MICROPI_FERNET_KEY" not in environment

    await runtime.restart(spec)
    await runtime.wait_ready(spec, within=20)
    assert (config / "boots").read_text().split() == ["boot", "boot"]
    await runtime.stop(spec.name)
    assert (await runtime.status(spec)).state is RuntimeState.STOPPED
    await runtime.remove(spec.name)
    assert (await runtime.status(spec)).state is RuntimeState.MISSING
    assert not config.exists()


async def test_a_new_service_adopts_running_instances(tmp_path: Path, stand_in: str) -> None:
    spec = make_spec()
    first = ProcessRuntime(tmp_path / "instances", stand_in)
    await first.ensure_started(spec)
    await first.wait_ready(spec, within=20)
    pid = int((tmp_path / "instances" / spec.name / "hass.pid").read_text())

    second = ProcessRuntime(tmp_path / "instances", stand_in)  # the service restarted
    assert [(i.name, i.state) for i in await second.list_instances()] == [(spec.name, RuntimeState.RUNNING)]
    await second.ensure_started(spec)  # running: left alone, not started twice
    assert int((tmp_path / "instances" / spec.name / "hass.pid").read_text()) == pid
    await second.remove(spec.name)
    assert not running(pid)


async def test_a_stale_pid_file_is_not_taken_for_ours(runtime: ProcessRuntime) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    await runtime.stop(spec.name)
    # A pid file left behind pointing at some other live process (here: this test's own).
    (runtime.root / spec.name / "hass.pid").write_text(f"{os.getpid()}\n")
    assert (await runtime.status(spec)).state is RuntimeState.STOPPED


async def test_port_in_use_is_a_clear_error(runtime: ProcessRuntime) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        spec = InstanceSpec(name="micropi-ha-squatted", port=squatter.getsockname()[1], image="process")
        with pytest.raises(PortInUseError, match="already in use"):
            await runtime.ensure_started(spec)


async def test_backup_restore_and_upgrade_keep_the_data(runtime: ProcessRuntime, tmp_path: Path) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    await runtime.wait_ready(spec, within=20)
    archive = tmp_path / "backup.tar.gz"
    await runtime.backup(spec, archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "config/boots" in names and "config/.storage/http" not in names
    await runtime.wait_ready(spec, within=20)  # running again after the copy

    await runtime.recreate(spec)  # an upgrade: same data, fresh start
    await runtime.wait_ready(spec, within=20)
    boots = runtime.config_dir(spec.name) / "boots"
    assert boots.read_text().split() == ["boot"] * 3

    # Restored onto another port (a new instance from an old backup): the port follows the instance.
    moved = dataclasses.replace(spec, port=free_port())
    await runtime.restore(moved, archive)
    await runtime.wait_ready(moved, within=20)
    assert boots.read_text().split() == ["boot"] * 2  # the archive's one boot, plus this start


async def test_orphans_are_listed_with_their_labels(runtime: ProcessRuntime) -> None:
    spec = make_spec("micropi-ha-ffff0000")
    await runtime.ensure_started(spec)
    (runtime.root / "not-ours").mkdir()  # no labels: not listed
    listed = await runtime.list_instances()
    assert [(i.name, dict(i.labels)) for i in listed] == [(spec.name, dict(spec.labels))]


async def test_operators_see_orphans_which_stay_untouched(provisioning_settings: Settings, stand_in: str) -> None:
    # The service's own sign-ups run `/bin/false` (provisioning_settings); the orphan is a live stand-in made
    # directly through a runtime on the service's instance directory, with our labels and no database row.
    client = await start_client(provisioning_settings)
    outside = ProcessRuntime(provisioning_settings.data_dir / "instances", stand_in, stop_timeout=5)
    orphan = InstanceSpec(
        name="micropi-ha-0dd0dd00", port=free_port(), image="process", labels=ownership_labels("gone-1", "u-gone")
    )
    try:
        operator = await make_operator(client, "operator@example.com")  # its own instance has a row
        await outside.ensure_started(orphan)
        await outside.wait_ready(orphan, within=20)
        pid = int((outside.root / orphan.name / "hass.pid").read_text())

        manager = client.app[INSTANCE_MANAGER_KEY]
        report = await manager.reconcile()
        assert [o.name for o in report.orphans] == [orphan.name]

        response = await client.get("/api/operator/orphans", headers=bearer(operator["access_token"]))
        assert response.status == 200, await response.text()
        assert await response.json() == {
            "orphans": [{"name": orphan.name, "labels": dict(orphan.labels), "state": "running"}]
        }
        # Reported, never removed: the process and its data are still there.
        assert running(pid)
        assert (await outside.status(orphan)).state is RuntimeState.RUNNING
        assert outside.config_dir(orphan.name).is_dir()
    finally:
        await outside.remove(orphan.name)
        await client.close()


async def test_nothing_starts_an_instance_again_while_it_is_being_deleted(tmp_path: Path) -> None:
    # A hass that never answers: provisioning waits for it when the deletion comes.
    silent = tmp_path / "silent-hass"
    silent.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    silent.chmod(silent.stat().st_mode | stat.S_IXUSR)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    runtime = ProcessRuntime(tmp_path / "instances", str(silent), stop_timeout=5, port_release_wait=0.5)
    starts: list[str] = []
    ensure_started = runtime.ensure_started

    async def counted_start(spec: InstanceSpec) -> None:
        starts.append(spec.name)
        await ensure_started(spec)

    runtime.ensure_started = counted_start  # type: ignore[method-assign]
    config = InstanceConfig(port_range=port_pool(), ready_timeout=3, reconcile_interval=3600)
    manager = InstanceManager(sessions, runtime, SecretBox(Fernet.generate_key().decode()), config)
    async with sessions() as session, session.begin():
        user = User(email="deleted-soon@example.com", password_hash="not used here")
        session.add(user)
    instance = await manager.ensure_for_user(user, "correct horse 1")
    try:

        async def started() -> bool:
            return starts == [instance.name]

        await wait_for(started, 10, "hass started")
        # A reconciliation round in the gap between provisioning ending (cancelled) and the deletion
        # taking the instance's lock would see a `provisioning` row nobody provisions, and resume it.
        manager._provisioning[instance.id].add_done_callback(lambda _: manager.resume_provisioning(instance.id))
        await manager.delete(instance.id)
        assert starts == [instance.name], "started again during its deletion"
        assert not manager.is_busy(instance.id)
        assert await runtime.list_instances() == []
        assert not (tmp_path / "instances" / instance.name).exists()
    finally:
        await manager.close()
        await engine.dispose()
