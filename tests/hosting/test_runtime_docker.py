"""The docker runtime against a real dockerd (private, started here) and a stand-in HA image."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from cryptography.fernet import Fernet

from hosting import metrics
from hosting.db import create_engine, migrate, session_factory
from hosting.db.models import Instance, User
from hosting.instances import InstanceConfig, InstanceManager
from hosting.provision import STEPS
from hosting.runtime.base import (
    LABEL_INSTANCE,
    InstanceSpec,
    PortInUseError,
    RuntimeFailure,
    RuntimeState,
    ownership_labels,
)
from hosting.runtime.docker import CAPABILITIES, DockerRuntime
from hosting.security import SecretBox
from tests.hosting.dockerd import STAND_IN_IMAGE, STAND_IN_IMAGE_2, build_stand_in_images, private_dockerd

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def dockerd_url() -> Iterator[str]:
    with private_dockerd() as url:
        build_stand_in_images(url)
        yield url


@pytest.fixture
async def runtime(dockerd_url: str) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(dockerd_url, stop_timeout=2)
    yield runtime
    for found in await runtime.list_instances():
        await runtime.remove(found.name)
    await runtime.close()


@pytest.fixture
def client(dockerd_url: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=dockerd_url, version="auto")
    yield client
    client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_spec(
    image: str = STAND_IN_IMAGE, port: int | None = None, memory: str = "256m", cpus: float = 0.5
) -> InstanceSpec:
    instance_id = str(uuid.uuid4())
    return InstanceSpec(
        name=f"micropi-ha-{instance_id[:8]}",
        port=port or free_port(),
        image=image,
        labels=ownership_labels(instance_id, "user-1"),
        memory=memory,
        cpus=cpus,
    )


def cgroup_limits(container_id: str) -> tuple[int, float] | None:
    """(memory bytes, CPUs) as the kernel's cgroup v1 files hold them, if this host has them there."""
    memory = Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.limit_in_bytes")
    if not memory.exists():
        return None
    cpu = Path(f"/sys/fs/cgroup/cpu/docker/{container_id}")
    quota = int((cpu / "cpu.cfs_quota_us").read_text())
    period = int((cpu / "cpu.cfs_period_us").read_text())
    return int(memory.read_text()), quota / period


def boots(client: docker.DockerClient, spec: InstanceSpec) -> list[str]:
    """The lines the stand-in appended to /config/boots, one per start, read from the volume."""
    output = client.containers.run(
        STAND_IN_IMAGE,
        ["cat", "/config/boots"],
        volumes={DockerRuntime.volume_name(spec.name): {"bind": "/config", "mode": "ro"}},
        network_mode="none",
        remove=True,
    )
    return output.decode().split()


async def test_lifecycle_create_start_stop_restart_remove(runtime: DockerRuntime, client: docker.DockerClient) -> None:
    spec = make_spec()
    assert (await runtime.status(spec)).state is RuntimeState.MISSING

    await runtime.ensure_started(spec)
    await runtime.wait_ready(spec, within=30)
    status = await runtime.status(spec)
    assert status.state is RuntimeState.RUNNING and status.healthy

    attrs = await runtime.container_attrs(spec.name)
    assert attrs["HostConfig"]["PortBindings"]["8123/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(spec.port)}]
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert attrs["Config"]["Healthcheck"]["Test"][0] == "CMD-SHELL"
    assert attrs["Config"]["Labels"][LABEL_INSTANCE] == spec.labels[LABEL_INSTANCE]
    assert list(attrs["NetworkSettings"]["Networks"]) == [DockerRuntime.network_name(spec.name)]

    await runtime.stop(spec.name)
    assert (await runtime.status(spec)).state is RuntimeState.STOPPED
    assert not await runtime.probe(spec)

    await runtime.restart(spec)
    await runtime.wait_ready(spec, within=30)
    assert boots(client, spec) == ["1", "1"]  # started twice on the same volume

    await runtime.remove(spec.name)
    assert (await runtime.status(spec)).state is RuntimeState.MISSING
    assert DockerRuntime.volume_name(spec.name) not in [v.name for v in client.volumes.list()]
    assert DockerRuntime.network_name(spec.name) not in [n.name for n in client.networks.list()]


async def test_memory_and_cpu_limits_are_applied(runtime: DockerRuntime) -> None:
    spec = make_spec(memory="300m", cpus=0.25)
    await runtime.ensure_started(spec)
    host_config = (await runtime.container_attrs(spec.name))["HostConfig"]
    assert host_config["Memory"] == 300 * 1024 * 1024
    assert host_config["MemorySwap"] == 300 * 1024 * 1024
    assert host_config["NanoCpus"] == 250_000_000
    # The kernel enforces them: the container's cgroup (v1, cgroupfs driver) carries the same numbers.
    limits = cgroup_limits((await runtime.container_attrs(spec.name))["Id"])
    if limits is not None:
        assert limits == (300 * 1024 * 1024, pytest.approx(0.25))


async def test_port_held_by_another_program_is_a_clear_error(runtime: DockerRuntime) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        spec = make_spec(port=squatter.getsockname()[1])
        with pytest.raises(PortInUseError, match=f"port {spec.port} is already in use"):
            await runtime.ensure_started(spec)


async def test_two_instances_on_one_port_conflict(runtime: DockerRuntime) -> None:
    first = make_spec()
    await runtime.ensure_started(first)
    second = make_spec(port=first.port)
    with pytest.raises(PortInUseError):
        await runtime.ensure_started(second)
    await runtime.wait_ready(first, within=30)  # the first one is unharmed


async def test_upgrade_recreates_on_a_new_image_keeping_the_volume(
    runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    await runtime.wait_ready(spec, within=30)
    old_id = (await runtime.container_attrs(spec.name))["Id"]

    upgraded = dataclasses.replace(spec, image=STAND_IN_IMAGE_2)
    await runtime.recreate(upgraded)
    await runtime.wait_ready(upgraded, within=30)
    attrs = await runtime.container_attrs(spec.name)
    assert attrs["Id"] != old_id
    assert attrs["Config"]["Image"] == STAND_IN_IMAGE_2
    assert boots(client, spec) == ["1", "2"]  # the data written by version 1 is still there


async def test_backup_and_restore_round_trip(
    runtime: DockerRuntime, client: docker.DockerClient, tmp_path: Path
) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    await runtime.wait_ready(spec, within=30)
    archive = tmp_path / "backup.tar.gz"
    await runtime.backup(spec, archive)
    with tarfile.open(archive) as tar:
        assert "config/boots" in tar.getnames()
    assert (await runtime.status(spec)).state is RuntimeState.RUNNING  # running again after the copy

    await runtime.restart(spec)  # boots after the backup (the restart after the copy, this one)...
    assert boots(client, spec) == ["1", "1", "1"]
    await runtime.restore(spec, archive)  # ...are undone by the restore (which then boots once more)
    await runtime.wait_ready(spec, within=30)
    assert boots(client, spec) == ["1", "1"]


async def test_a_bad_archive_is_refused_and_loses_nothing(
    runtime: DockerRuntime, client: docker.DockerClient, tmp_path: Path
) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    evil = tmp_path / "evil.tar.gz"
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(outside, arcname="../../etc/evil")
    with pytest.raises(ValueError, match="outside config/"):
        await runtime.restore(spec, evil)
    await runtime.wait_ready(spec, within=30)
    assert boots(client, spec) == ["1"]


async def test_missing_image_is_a_clear_error(runtime: DockerRuntime) -> None:
    spec = make_spec(image="micropi/not-built:0")
    with pytest.raises(RuntimeFailure, match="is not on this docker host; build it"):
        await runtime.ensure_started(spec)


async def test_lists_only_labelled_containers(runtime: DockerRuntime, client: docker.DockerClient) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    stranger = await asyncio.to_thread(
        client.containers.create, STAND_IN_IMAGE, name=f"someone-else-{uuid.uuid4().hex[:6]}"
    )
    try:
        names = [found.name for found in await runtime.list_instances()]
        assert spec.name in names
        assert stranger.name not in names
    finally:
        stranger.remove(force=True)


# ---- reconciliation through InstanceManager (database: SQLite) -------------------------------------


BACKOFF = 4.0  # seconds; long enough for a stop and a reconciliation round on a busy CI machine


@pytest.fixture
async def manager(dockerd_url: str, tmp_path: Path) -> AsyncIterator[InstanceManager]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hosting.db'}")
    await migrate(engine)
    config = InstanceConfig(
        image=STAND_IN_IMAGE, memory="128m", backoff_base=BACKOFF, backoff_ceiling=60.0, ready_timeout=30
    )
    manager = InstanceManager(
        session_factory(engine), DockerRuntime(dockerd_url, stop_timeout=2), SecretBox(Fernet.generate_key().decode()),
        config,
    )  # fmt: skip
    yield manager
    for found in await manager.runtime.list_instances():
        await manager.runtime.remove(found.name)
    await manager.close()
    await engine.dispose()


async def ready_instance(manager: InstanceManager) -> Instance:
    """A user with an instance the database calls ready (provisioned earlier, as far as it knows)."""
    async with manager.sessions() as session, session.begin():
        user = User(id=str(uuid.uuid4()), email=f"{uuid.uuid4().hex[:8]}@example.hu", password_hash="x")
        session.add(user)
        await session.flush()  # the user row first (the instance refers to it)
        instance_id = str(uuid.uuid4())
        instance = Instance(
            id=instance_id,
            user_id=user.id,
            name=f"micropi-ha-{instance_id[:8]}",
            port=free_port(),
            status="ready",
            image=STAND_IN_IMAGE,
            provision_state=json.dumps({"steps": {step: {} for step in STEPS}}),
        )
        session.add(instance)
    return instance


async def test_reconcile_restarts_a_dead_instance_with_back_off(
    manager: InstanceManager, client: docker.DockerClient
) -> None:
    instance = await ready_instance(manager)
    # No container at all (removed behind our back): made again, on the same volume.
    report = await manager.reconcile()
    assert report.restarted == [instance.name]
    await manager.runtime.wait_ready(manager.spec_for(instance), within=30)

    # It stays up past its back-off: the count goes back to zero.
    await asyncio.sleep(BACKOFF + 0.1)
    await manager.reconcile()
    row = await manager.get(instance.id)
    assert (row.restart_count, row.next_restart_at, row.health) == (0, None, "healthy")

    # Dies (stopped behind our back, so docker's own restart policy leaves it): restarted at once...
    await asyncio.to_thread(client.containers.get(instance.name).stop, timeout=1)
    before = datetime.now(UTC)
    report = await manager.reconcile()
    assert report.restarted == [instance.name]
    row = await manager.get(instance.id)
    assert row.restart_count == 1
    assert row.next_restart_at is not None
    assert before + timedelta(seconds=BACKOFF) <= row.next_restart_at <= datetime.now(UTC) + timedelta(seconds=BACKOFF)

    # ...dies again at once: left down until its back-off has passed...
    await asyncio.to_thread(client.containers.get(instance.name).stop, timeout=1)
    report = await manager.reconcile()
    assert report.backing_off == [instance.name] and not report.restarted
    assert (await manager.runtime.status(manager.spec_for(instance))).state is RuntimeState.STOPPED

    # ...then restarted, and the next wait is twice as long.
    await asyncio.sleep((row.next_restart_at - datetime.now(UTC)).total_seconds() + 0.1)
    before = datetime.now(UTC)
    report = await manager.reconcile()
    assert report.restarted == [instance.name]
    row = await manager.get(instance.id)
    assert row.restart_count == 2
    assert row.next_restart_at is not None
    twice = timedelta(seconds=2 * BACKOFF)
    assert before + twice <= row.next_restart_at <= datetime.now(UTC) + twice
    await manager.runtime.wait_ready(manager.spec_for(instance), within=30)
    assert boots(client, manager.spec_for(instance)) == ["1", "1", "1"]  # one volume all along


async def test_orphans_are_reported_and_never_deleted(manager: InstanceManager, client: docker.DockerClient) -> None:
    known = await ready_instance(manager)
    orphan = make_spec()  # carries our labels; no row owns it
    await manager.runtime.ensure_started(orphan)

    report = await manager.reconcile()
    assert [o.name for o in report.orphans] == [orphan.name]
    assert [o.name for o in manager.orphans] == [orphan.name]
    assert report.orphans[0].labels[LABEL_INSTANCE] == orphan.labels[LABEL_INSTANCE]
    assert metrics.REGISTRY.get_sample_value("micropi_orphan_instances") == 1
    assert report.restarted == [known.name]
    # Still there, still running, its volume intact.
    assert client.containers.get(orphan.name).status == "running"
    assert DockerRuntime.volume_name(orphan.name) in [v.name for v in client.volumes.list()]


async def test_provisioning_something_that_is_not_ha_ends_in_error_with_the_reason(
    manager: InstanceManager,
) -> None:
    async with manager.sessions() as session, session.begin():
        user = User(id=str(uuid.uuid4()), email="nobody@example.hu", password_hash="x")
        session.add(user)
    instance = await manager.ensure_for_user(user, "correct horse battery")
    assert instance.status == "provisioning"
    done = await manager.wait_provisioned(instance.id)
    assert done.status == "error"
    detail = json.loads(done.provision_state)["failure"]["detail"]  # the operator's; status_reason is the household's
    assert detail.startswith("HA could not"), detail
    assert done.owner_password_encrypted is not None  # kept: a retry (restart) needs it
    # The container is ours and known: no orphan.
    assert (await manager.reconcile()).orphans == []
    await manager.delete(instance.id)
    assert await manager.status(user.id) is None
    assert await manager.runtime.list_instances() == []


async def test_only_on_its_private_network_with_capabilities_dropped(runtime: DockerRuntime) -> None:
    spec = make_spec()
    await runtime.ensure_started(spec)
    attrs = await runtime.container_attrs(spec.name)
    # No shared network: nothing reaches a neighbour or a shared service by name (tests/hosting/test_isolation).
    assert set(attrs["NetworkSettings"]["Networks"]) == {DockerRuntime.network_name(spec.name)}
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert sorted(attrs["HostConfig"]["CapAdd"]) == sorted(CAPABILITIES)
    assert "no-new-privileges" in attrs["HostConfig"]["SecurityOpt"]


async def test_operations_through_the_manager(
    manager: InstanceManager, client: docker.DockerClient, tmp_path: Path
) -> None:
    instance = await ready_instance(manager)
    await manager.start(instance.id)
    spec = manager.spec_for(instance)
    await manager.runtime.wait_ready(spec, within=30)

    await manager.stop(instance.id)
    assert (await manager.get(instance.id)).status == "stopped"
    report = await manager.reconcile()  # an operator's stop is respected: not "restarted"
    assert not report.restarted
    assert (await manager.runtime.status(spec)).state is RuntimeState.STOPPED

    await manager.start(instance.id)
    assert (await manager.get(instance.id)).status == "ready"
    await manager.runtime.wait_ready(spec, within=30)

    archive = tmp_path / "backup.tar.gz"
    await manager.backup(instance.id, archive)
    await manager.upgrade(instance.id, STAND_IN_IMAGE_2)
    assert (await manager.get(instance.id)).image == STAND_IN_IMAGE_2
    assert (await manager.runtime.container_attrs(instance.name))["Config"]["Image"] == STAND_IN_IMAGE_2
    await manager.runtime.wait_ready(spec, within=30)
    assert boots(client, spec) == ["1", "1", "1", "2"]  # start, start, after the backup, upgraded

    await manager.restore(instance.id, archive)
    await manager.runtime.wait_ready(spec, within=30)
    assert boots(client, spec) == ["1", "1", "2"]  # the backup's two boots, then this start on image 2

    await manager.restart(instance.id)
    assert (await manager.get(instance.id)).status == "ready"


def test_the_ha_images_start_script_seeds_config_and_refreshes_the_integration(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    """images/ha/rootfs/etc/cont-init.d/50-micropi, run in the stand-in image with the same files laid out as
    images/ha/Dockerfile lays them out (the official HA image cannot be pulled here)."""
    root = Path(__file__).resolve().parents[2]
    context = tmp_path / "context"
    shutil.copytree(root / "images" / "ha" / "config", context / "config")
    for integration in ("micropi_llm", "micropi_demo"):
        shutil.copytree(root / "custom_components" / integration, context / integration,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(root / "images" / "ha" / "rootfs", context / "rootfs")
    (context / "Dockerfile").write_text(
        f"FROM {STAND_IN_IMAGE}\n"
        "COPY config/ /opt/micropi/config/\nCOPY micropi_llm/ /opt/micropi/micropi_llm/\n"
        "COPY micropi_demo/ /opt/micropi/micropi_demo/\nCOPY rootfs/ /\n"
    )
    image, _ = client.images.build(path=str(context), rm=True)
    volume = client.volumes.create(f"init-test-{uuid.uuid4().hex[:6]}")

    def run(command: str) -> str:
        output = client.containers.run(
            image.id, ["sh", "-c", command], volumes={volume.name: {"bind": "/config", "mode": "rw"}},
            network_mode="none", remove=True,
        )  # fmt: skip
        return bytes(output).decode()

    try:
        run("/etc/cont-init.d/50-micropi")  # a new, empty volume
        assert run("cat /config/configuration.yaml") == (root / "images/ha/config/configuration.yaml").read_text()
        for integration in ("micropi_llm", "micropi_demo"):
            manifest = json.loads(run(f"cat /config/custom_components/{integration}/manifest.json"))
            assert manifest["domain"] == integration

        # The user's configuration stays; a stale integration file does not.
        run("echo '# mine' >> /config/configuration.yaml && touch /config/custom_components/micropi_llm/old.py")
        run("/etc/cont-init.d/50-micropi")
        assert run("tail -n 1 /config/configuration.yaml").strip() == "# mine"
        assert run("ls /config/custom_components/micropi_llm").split().count("old.py") == 0
    finally:
        volume.remove(force=True)
        client.images.remove(image.id, force=True)
