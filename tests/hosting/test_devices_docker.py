"""Production placement of the relay (docker runtime), against a real private dockerd: a device's endpoint
listens on its owner's private network only; the owner's HA container reaches the satellite through it,
another tenant's container cannot (busybox `nc` in the containers speaks the Wyoming describe)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy import select

from hosting.db.models import Instance, User
from hosting.runtime.base import InstanceSpec, ownership_labels
from hosting.runtime.docker import DockerRuntime
from tests.edge.device import running_device
from tests.edge.peers import CountingWakeService
from tests.hosting.device_service import Hosting, Owner
from tests.hosting.dockerd import STAND_IN_IMAGE, build_stand_in_images, private_dockerd

from .hass import free_port

pytestmark = pytest.mark.docker

DESCRIBE = '{"type": "describe", "version": "1.10.2"}'


@pytest.fixture(scope="module")
def dockerd_url() -> Iterator[str]:
    with private_dockerd() as url:
        build_stand_in_images(url)
        yield url


@pytest.fixture
async def runtime(dockerd_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DockerRuntime]:
    monkeypatch.setenv("DOCKER_HOST", dockerd_url)  # the relay's placement looks networks up there
    runtime = DockerRuntime(dockerd_url, stop_timeout=2)
    yield runtime
    for found in await runtime.list_instances():
        await runtime.remove(found.name)
    await runtime.close()


@pytest.fixture
def devices_config() -> dict[str, Any]:
    # The relay's endpoints go where the docker runtime puts tenant-facing endpoints.
    return {"relay_bind_host": "docker", "runtime": "docker"}


@pytest.fixture
async def wake() -> AsyncIterator[CountingWakeService]:
    service = CountingWakeService(chunks_to_detect=10**9)
    await service.start()
    yield service
    await service.stop()


async def start_instance(runtime: DockerRuntime, hosting: Hosting, owner: Owner) -> str:
    """The owner's HA container (the runtime's stand-in image) and its row, as provisioning leaves them."""
    instance_id = str(uuid.uuid4())
    spec = InstanceSpec(
        name=f"micropi-ha-{instance_id[:8]}",
        port=free_port(),
        image=STAND_IN_IMAGE,
        labels=ownership_labels(instance_id, owner.email),
        memory="64m",
        cpus=0.2,
    )
    await runtime.ensure_started(spec)
    async with hosting.devices.sessions() as session, session.begin():
        user = await session.scalar(select(User).where(User.email == owner.email))
        assert user is not None
        session.add(Instance(id=instance_id, user_id=user.id, name=spec.name, port=spec.port, status="ready"))
    return spec.name


async def describe_from(dockerd_url: str, container: str, host: str, port: int) -> str:
    """What a Wyoming describe sent from inside `container` to host:port gets back."""

    def run() -> str:
        client = docker.DockerClient(base_url=dockerd_url, version="auto")
        try:
            command = f"(echo '{DESCRIBE}'; sleep 2) | nc -w 3 {host} {port}"
            result = client.containers.get(container).exec_run(["sh", "-c", command])
            return bytes(result.output).decode(errors="replace")
        finally:
            client.close()

    return await asyncio.to_thread(run)


async def test_only_the_owners_container_reaches_the_device(
    *,
    hosting: Hosting,
    runtime: DockerRuntime,
    dockerd_url: str,
    wake: CountingWakeService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, bob = await hosting.sign_up(), await hosting.sign_up()
    alice_ha = await start_instance(runtime, hosting, alice)
    bob_ha = await start_instance(runtime, hosting, bob)
    paired = await hosting.pair(alice, "Alice Pi")
    async with running_device(hosting, paired["token"], "Alice Pi", wake, tmp_path):
        (device,) = await hosting.list_devices(alice)
        host, port = device["relay"]["host"], device["relay"]["port"]
        assert not host.startswith("127.")  # the host's address on Alice's private network

        answer = await describe_from(dockerd_url, alice_ha, host, port)
        assert '"type": "info"' in answer, answer
        assert "Alice Pi" in answer

        # Bob's HA container reaches the host through its own network, and the relay refuses it.
        caplog.clear()
        assert await describe_from(dockerd_url, bob_ha, host, port) == ""
        refusals = [r.getMessage() for r in caplog.records if "refused connection from" in r.getMessage()]
        assert len(refusals) == 1, caplog.text
