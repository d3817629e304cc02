"""The `docker` runtime (production): a container per user from the image of `images/ha/`.

Per instance: the container `<name>`, a named volume `<name>-config` on /config (the data: it outlives
the container, so an upgrade recreates the container on a new image and keeps it), and a private
bridge network `<name>-net`, the ONLY network the container is on. HA's port 8123 is published on
127.0.0.1:<pool port> of the host. Memory and CPU limits, a restart policy and a health check are set
on the container itself, whatever the image says.

Isolation (the HA container runs the household's code, so it is the trust boundary): no shared network,
so Docker's DNS knows no neighbour and no shared service by name, and dockerd's isolation rules drop
traffic between bridge networks. What the container reaches are the listeners the hosting service binds
on the host's address of that one network (`hosting.gateway`: the model gateway and the speech endpoints;
`hosting.relay`: its own devices), each refusing peers from any other network. Linux capabilities are
dropped but for the few HA's image needs to start (s6-overlay's init changes owners and users).

The docker SDK is blocking: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from hosting.runtime.base import (
    LABEL_MANAGED,
    InstanceSpec,
    PortInUseError,
    Runtime,
    RuntimeFailure,
    RuntimeInstance,
    RuntimeState,
    RuntimeStatus,
    TenantEndpoint,
)

HA_PORT = "8123/tcp"
CONFIG_MOUNT = "/config"
# busybox wget is in HA's (Alpine) image and in the tests' stand-in image alike.
HEALTHCHECK = {
    "test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8123/manifest.json || exit 1"],
    "interval": 30_000_000_000,  # ns
    "timeout": 10_000_000_000,
    "retries": 3,
    "start_period": 120_000_000_000,
}
# HA's image starts as root under s6-overlay, which chowns its run directories and drops to service users;
# everything else (NET_RAW, NET_ADMIN, SYS_*, MKNOD, ...) goes.
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL")
_PORT_CONFLICT_MARKERS = ("port is already allocated", "address already in use")


def parse_memory(value: str) -> int:
    """Bytes of a docker-style size: 512m, 1g, 1048576."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = value.strip().lower().removesuffix("b")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise RuntimeFailure(f"memory limit {value!r} is not a size; use e.g. 512m or 1g") from None


class DockerRuntime(Runtime):
    kind = "docker"
    uses_images = True

    def __init__(
        self,
        base_url: str | None = None,
        *,
        stop_timeout: float = 30.0,
        bind_host: str = "127.0.0.1",
    ) -> None:
        self.base_url = base_url
        self.stop_timeout = stop_timeout
        self.bind_host = bind_host
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()  # calls run in several worker threads at once

    async def _run[T](self, call: Callable[[docker.DockerClient], T]) -> T:
        def run() -> T:
            with self._client_lock:
                if self._client is None:
                    self._client = self._connect()
            try:
                return call(self._client)
            except DockerException as err:
                raise RuntimeFailure(f"docker: {err}") from err

        return await asyncio.to_thread(run)

    # ---- where things are ----------------------------------------------------------------------------

    def service_url(self, spec: InstanceSpec) -> str:
        return f"http://{self.bind_host}:{spec.port}"  # the published port (see _create_sync)

    async def tenant_endpoint(self, name: str) -> TenantEndpoint:
        """On the owner's private network `<name>-net`: only their HA container is on it, so its subnet is
        exactly who may connect; the host's gateway address on it is where we listen."""

        def lookup(client: docker.DockerClient) -> TenantEndpoint:
            try:
                ipam = client.networks.get(self.network_name(name)).attrs["IPAM"]["Config"][0]
                subnet = ip_network(ipam["Subnet"])
            except (KeyError, IndexError, ValueError) as err:
                raise RuntimeFailure(f"network {self.network_name(name)} has no usable subnet: {err!r}") from None
            gateway = ipam.get("Gateway") or str(next(subnet.hosts()))
            return TenantEndpoint(bind_host=gateway, ha_host=gateway, allowed_network=subnet)

        return await self._run(lookup)

    def _connect(self) -> docker.DockerClient:
        try:
            if self.base_url:
                return docker.DockerClient(base_url=self.base_url, version="auto")
            return docker.from_env(version="auto")
        except DockerException as err:
            raise RuntimeFailure(
                f"cannot reach dockerd ({err}); check DOCKER_HOST and that the socket is mounted"
            ) from err

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    @staticmethod
    def volume_name(name: str) -> str:
        return f"{name}-config"

    @staticmethod
    def network_name(name: str) -> str:
        return f"{name}-net"

    # ---- primitives ----------------------------------------------------------------------------------

    async def _create(self, spec: InstanceSpec) -> None:
        await self._run(lambda client: self._create_sync(client, spec))

    def _create_sync(self, client: docker.DockerClient, spec: InstanceSpec) -> None:
        labels = dict(spec.labels)
        network = self.network_name(spec.name)
        try:
            client.networks.get(network)
        except NotFound:
            client.networks.create(network, driver="bridge", labels=labels)
        try:
            client.volumes.get(self.volume_name(spec.name))
        except NotFound:
            client.volumes.create(self.volume_name(spec.name), labels=labels)
        try:
            client.images.get(spec.image)
        except NotFound:
            raise RuntimeFailure(
                f"image {spec.image} is not on this docker host; build it (docker build -t {spec.image} "
                "--build-arg HA_VERSION=$(cat images/ha/ha-version) -f images/ha/Dockerfile .)"
            ) from None
        client.containers.create(
            spec.image,
            name=spec.name,
            labels=labels,
            hostname="homeassistant",
            environment={"TZ": "UTC"},  # HA keeps its own time zone (set at onboarding)
            volumes={self.volume_name(spec.name): {"bind": CONFIG_MOUNT, "mode": "rw"}},
            ports={HA_PORT: (self.bind_host, spec.port)},
            network=network,
            mem_limit=parse_memory(spec.memory),
            memswap_limit=parse_memory(spec.memory),  # no swap beyond the limit
            nano_cpus=int(spec.cpus * 1_000_000_000),
            pids_limit=1024,
            restart_policy={"Name": "unless-stopped"},
            healthcheck=HEALTHCHECK,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=list(CAPABILITIES),
        )

    async def _start(self, spec: InstanceSpec) -> None:
        def start(client: docker.DockerClient) -> None:
            try:
                client.containers.get(spec.name).start()
            except APIError as err:
                message = str(err.explanation or err)
                if any(marker in message for marker in _PORT_CONFLICT_MARKERS):
                    raise PortInUseError(spec.port, message) from None
                raise

        await self._run(start)

    async def _stop(self, name: str) -> None:
        timeout = int(self.stop_timeout)
        await self._run(lambda client: client.containers.get(name).stop(timeout=timeout))

    async def _remove(self, name: str, *, keep_data: bool) -> None:
        def remove(client: docker.DockerClient) -> None:
            with contextlib.suppress(NotFound):
                client.containers.get(name).remove(force=True)
            if keep_data:
                return
            for collection, item in (
                (client.volumes, self.volume_name(name)),
                (client.networks, self.network_name(name)),
            ):
                with contextlib.suppress(NotFound):
                    collection.get(item).remove()

        await self._run(remove)

    async def _inspect(self, name: str) -> RuntimeStatus:
        def inspect(client: docker.DockerClient) -> RuntimeStatus:
            try:
                container = client.containers.get(name)
            except NotFound:
                return RuntimeStatus(RuntimeState.MISSING, detail="no such container")
            return _container_status(container)

        return await self._run(inspect)

    async def list_instances(self) -> list[RuntimeInstance]:
        def listing(client: docker.DockerClient) -> list[RuntimeInstance]:
            containers = client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
            return [
                RuntimeInstance(c.name or c.id or "", dict(c.labels), _container_status(c).state) for c in containers
            ]

        return await self._run(listing)

    async def _export_data(self, name: str, archive: Path) -> None:
        def export(client: docker.DockerClient) -> None:
            # The daemon hands /config as a tar stream whose entries start with `config/`.
            stream, _stat = client.containers.get(name).get_archive(CONFIG_MOUNT)
            with gzip.open(archive, "wb") as out:
                for chunk in stream:
                    out.write(chunk)

        await self._run(export)

    async def _import_data(self, name: str, archive: Path) -> None:
        def load(client: docker.DockerClient) -> None:
            with archive.open("rb") as data:  # the daemon takes the gzip as it is
                if not client.containers.get(name).put_archive("/", data.read()):
                    raise RuntimeFailure(f"docker refused the archive for {name}")

        await self._run(load)

    async def container_attrs(self, name: str) -> dict[str, Any]:
        """The container's inspect document (limits, labels...), for operators and tests."""
        return await self._run(lambda client: dict(client.containers.get(name).attrs))


def _container_status(container: Container) -> RuntimeStatus:
    state: dict[str, Any] = container.attrs.get("State", {})
    status = state.get("Status", "")
    health = (state.get("Health") or {}).get("Status", "")
    if status in {"running", "restarting"}:
        detail = f"{status}, health {health}" if health else status
        return RuntimeStatus(RuntimeState.RUNNING, healthy=health == "healthy", detail=detail)
    detail = f"{status} (exit code {state.get('ExitCode')}){': ' + state['Error'] if state.get('Error') else ''}"
    return RuntimeStatus(RuntimeState.STOPPED, detail=detail)
