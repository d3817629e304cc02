"""What every runtime must do, the same tests for each (`process` with a stand-in `hass`, `docker` against a
real private dockerd with the stand-in image): the checklist for a new runtime (Kubernetes). Add it to
`RUNTIMES` in hosting/runtime/registry.py and a branch to the `runtime` fixture here.

The runtimes' own mechanics (what hass is given, container limits, port conflicts...) are in
test_runtime_process.py and test_runtime_docker.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import socket
import stat
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from pathlib import Path

import aiohttp
import pytest

from hosting.runtime.base import (
    LABEL_INSTANCE,
    READY_PATH,
    InstanceSpec,
    Runtime,
    RuntimeState,
    TenantEndpoint,
    ownership_labels,
)
from hosting.runtime.docker import DockerRuntime
from hosting.runtime.process import ProcessRuntime
from hosting.runtime.registry import RUNTIME_NAMES, create_runtime
from hosting.settings import Settings
from tests.hosting.dockerd import STAND_IN_IMAGE, build_stand_in_images, private_dockerd
from tests.hosting.test_runtime_process import STAND_IN, free_port


@pytest.fixture(scope="module")
def dockerd_url() -> Iterator[str]:
    with private_dockerd() as url:
        build_stand_in_images(url)
        yield url


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    made: Runtime
    if request.param == "process":
        hass = tmp_path / "hass"
        hass.write_text(STAND_IN)
        hass.chmod(hass.stat().st_mode | stat.S_IXUSR)
        made = ProcessRuntime(tmp_path / "instances", str(hass), stop_timeout=5, port_release_wait=0.5)
    else:
        made = DockerRuntime(request.getfixturevalue("dockerd_url"), stop_timeout=2)
    yield made
    for found in await made.list_instances():
        await made.remove(found.name)
    await made.close()


def make_spec(runtime: Runtime) -> InstanceSpec:
    instance_id = str(uuid.uuid4())
    return InstanceSpec(
        name=f"micropi-ha-{instance_id[:8]}",
        port=free_port(),
        image=STAND_IN_IMAGE if runtime.uses_images else "process",
        labels=ownership_labels(instance_id, "user-1"),
        memory="128m",
        cpus=0.5,
    )


async def answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url + READY_PATH) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def test_every_registered_runtime_is_built_from_the_settings(tmp_path: Path) -> None:
    assert set(RUNTIME_NAMES) >= {"process", "docker"}
    for name in RUNTIME_NAMES:
        built = create_runtime(Settings(data_dir=tmp_path, runtime=name))
        assert isinstance(built, Runtime)
        assert built.kind == name
        assert isinstance(built.uses_images, bool)


async def test_lifecycle(runtime: Runtime) -> None:
    spec = make_spec(runtime)
    assert (await runtime.status(spec)).state is RuntimeState.MISSING
    assert await runtime.list_instances() == []

    await runtime.ensure_started(spec)
    await runtime.ensure_started(spec)  # a running instance is left alone
    await runtime.wait_ready(spec, within=60)
    status = await runtime.status(spec)
    assert status.state is RuntimeState.RUNNING and status.healthy
    # The service reaches HA where the runtime says.
    assert await answers(runtime.service_url(spec))
    (found,) = await runtime.list_instances()
    assert found.name == spec.name
    assert found.labels[LABEL_INSTANCE] == spec.labels[LABEL_INSTANCE]
    assert found.state is RuntimeState.RUNNING

    await runtime.stop(spec.name)
    assert (await runtime.status(spec)).state is RuntimeState.STOPPED
    assert not await runtime.probe(spec)
    assert [i.state for i in await runtime.list_instances()] == [RuntimeState.STOPPED]

    await runtime.restart(spec)
    await runtime.wait_ready(spec, within=60)
    assert (await runtime.status(spec)).healthy

    await runtime.remove(spec.name)
    assert (await runtime.status(spec)).state is RuntimeState.MISSING
    assert await runtime.list_instances() == []


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _with_file(source: Path, target: Path, name: str, data: bytes) -> None:
    with (
        tarfile.open(source, "r:gz") as src,
        gzip.open(target, "wb") as out,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))


async def test_backup_and_restore_keep_the_data(runtime: Runtime, tmp_path: Path) -> None:
    spec = make_spec(runtime)
    await runtime.ensure_started(spec)
    await runtime.wait_ready(spec, within=60)
    backup = tmp_path / "backup.tar.gz"
    await runtime.backup(spec, backup)
    assert (await runtime.status(spec)).state is RuntimeState.RUNNING  # started again after the copy
    members = _members(backup)
    assert members and all(name.startswith("config/") for name in members)

    # A backup with one more file, restored: the instance runs on exactly that data.
    changed = tmp_path / "changed.tar.gz"
    _with_file(backup, changed, "config/restored-marker", b"from the backup")
    await runtime.restore(spec, changed)
    await runtime.wait_ready(spec, within=60)
    again = tmp_path / "again.tar.gz"
    await runtime.backup(spec, again)
    assert _members(again)["config/restored-marker"] == b"from the backup"

    # Recreating (an upgrade) keeps the data too.
    await runtime.recreate(dataclasses.replace(spec))
    await runtime.wait_ready(spec, within=60)
    last = tmp_path / "last.tar.gz"
    await runtime.backup(spec, last)
    assert _members(last)["config/restored-marker"] == b"from the backup"


async def test_tenant_endpoint_is_bindable_and_reachable_for_the_instance(runtime: Runtime) -> None:
    spec = make_spec(runtime)
    await runtime.ensure_started(spec)
    endpoint = await runtime.tenant_endpoint(spec.name)
    assert isinstance(endpoint, TenantEndpoint)
    # The service can listen there...
    with socket.socket() as listener:
        listener.bind((endpoint.bind_host, 0))
    # ...and what the instance dials is that address, or inside the network allowed to connect.
    if endpoint.allowed_network is not None:
        assert ip_address(endpoint.ha_host) in endpoint.allowed_network
        assert ip_address(endpoint.bind_host) in endpoint.allowed_network
    else:
        assert endpoint.ha_host == endpoint.bind_host
