"""What runs one user's Home Assistant, and the lifecycle every runtime shares.

A runtime implementation (`docker`, `process`) only knows a handful of primitives - create, start, stop,
remove, inspect, list, export and import the instance's data. Everything built from them (start if
needed, restart, upgrade keeping the data, backup, restore, readiness, health) lives here, once.

An instance's data is its HA configuration directory. Archives (backups) hold it under `config/`, the
same for both runtimes, so a backup taken on one can be restored on the other.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import tarfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path, PurePosixPath

import aiohttp

_LOGGER = logging.getLogger(__name__)

# Ownership labels: every container/process directory we make carries them, so reconciliation can tell
# ours (and whose) from anything else on the machine.
LABEL_MANAGED = "io.micropi.managed"
LABEL_INSTANCE = "io.micropi.instance"
LABEL_USER = "io.micropi.user"

# HA answers this without authentication as soon as its HTTP server is up (the frontend serves it).
READY_PATH = "/manifest.json"
ARCHIVE_ROOT = "config"
# Runtime-specific state that must never travel between instances inside a backup: the process
# runtime rewrites HA's HTTP store (port and bind address) at every start.
_ARCHIVE_SKIP = frozenset({f"{ARCHIVE_ROOT}/.storage/http"})


class RuntimeState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    MISSING = "missing"


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a runtime needs to run one instance."""

    name: str  # runtime name, e.g. micropi-ha-1a2b3c4d: container name / data directory name
    port: int  # host port (where the service reaches HA: `Runtime.service_url`)
    image: str  # docker: the image; process: informational (the hass binary is the runtime's)
    labels: Mapping[str, str] = field(default_factory=dict)
    memory: str = "512m"
    cpus: float = 0.5


@dataclass(frozen=True)
class RuntimeStatus:
    state: RuntimeState
    healthy: bool = False
    detail: str = ""


@dataclass(frozen=True)
class RuntimeInstance:
    """An instance found on the runtime (for reconciliation)."""

    name: str
    labels: Mapping[str, str]
    state: RuntimeState


@dataclass(frozen=True)
class TenantEndpoint:
    """Where an endpoint that one tenant's HA must reach (its devices' relay, the model gateway) listens,
    the address that HA dials, and which peers may connect (None: no restriction beyond the bind address)."""

    bind_host: str
    ha_host: str
    allowed_network: IPv4Network | IPv6Network | None = None


LOOPBACK = TenantEndpoint(bind_host="127.0.0.1", ha_host="127.0.0.1")


class RuntimeFailure(Exception):
    """The runtime could not do what was asked; the message says what happened and what to do."""


class PortInUseError(RuntimeFailure):
    """The instance's host port is taken by something else."""

    def __init__(self, port: int, detail: str = "") -> None:
        super().__init__(
            f"host port {port} is already in use{': ' + detail if detail else ''}; free it or "
            "give the instance another port"
        )
        self.port = port


class ArchiveError(ValueError):
    """A backup archive is unreadable or unsafe."""


def ownership_labels(instance_id: str, user_id: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id, LABEL_USER: user_id}


class Runtime(ABC):
    """The shared lifecycle over the primitives each implementation provides."""

    kind: str = ""
    stop_timeout: float = 30.0
    # Whether an instance runs `InstanceSpec.image` (docker); the process runtime runs its own `hass`,
    # so the image is informational there and an upgrade keeps what runs.
    uses_images: bool = False

    # ---- where things are (implementation-specific) ---------------------------------------------------

    @abstractmethod
    def service_url(self, spec: InstanceSpec) -> str:
        """The instance's HA base URL as this service reaches it (readiness probe, provisioning)."""

    @abstractmethod
    async def tenant_endpoint(self, name: str) -> TenantEndpoint:
        """Where an endpoint for instance `name` to reach (device relay, gateway) must be bound.
        Raises RuntimeFailure when the runtime cannot tell (e.g. the instance's network is gone)."""

    # ---- primitives (implementation-specific) --------------------------------------------------------

    @abstractmethod
    async def _create(self, spec: InstanceSpec) -> None:
        """Make the instance (data included when new), not started. Only called when it is missing."""

    @abstractmethod
    async def _start(self, spec: InstanceSpec) -> None:
        """Start an existing, stopped instance."""

    @abstractmethod
    async def _stop(self, name: str) -> None:
        """Stop a running instance (gracefully, then forcibly after `stop_timeout`)."""

    @abstractmethod
    async def _remove(self, name: str, *, keep_data: bool) -> None:
        """Remove a stopped instance; its data too unless `keep_data`. Missing parts are no error."""

    @abstractmethod
    async def _inspect(self, name: str) -> RuntimeStatus:
        """The instance's state; `healthy` where the runtime itself knows (docker's health check)."""

    @abstractmethod
    async def list_instances(self) -> list[RuntimeInstance]:
        """Every instance carrying our ownership labels, ours in the database or not."""

    @abstractmethod
    async def _export_data(self, name: str, archive: Path) -> None:
        """Write the stopped instance's data to `archive` (tar.gz, entries under `config/`)."""

    @abstractmethod
    async def _import_data(self, name: str, archive: Path) -> None:
        """Load a checked tar.gz (entries under `config/`) into the freshly created, stopped instance."""

    async def close(self) -> None:  # noqa: B027  # optional: only runtimes holding a client need it
        """Release client resources (instances keep running)."""

    # ---- the shared lifecycle ------------------------------------------------------------------------

    async def ensure_started(self, spec: InstanceSpec) -> None:
        """Create the instance if missing and start it if stopped; a running one is left alone."""
        status = await self._inspect(spec.name)
        if status.state is RuntimeState.MISSING:
            await self._create(spec)
        if status.state is not RuntimeState.RUNNING:
            await self._start(spec)

    async def stop(self, name: str) -> None:
        if (await self._inspect(name)).state is RuntimeState.RUNNING:
            await self._stop(name)

    async def restart(self, spec: InstanceSpec) -> None:
        await self.stop(spec.name)
        await self.ensure_started(spec)

    async def remove(self, name: str) -> None:
        """Remove the instance and its data."""
        await self.stop(name)
        await self._remove(name, keep_data=False)

    async def recreate(self, spec: InstanceSpec) -> None:
        """Replace the instance (e.g. with a new image) keeping its data, and start it."""
        await self.stop(spec.name)
        await self._remove(spec.name, keep_data=True)
        await self._create(spec)
        await self._start(spec)

    async def status(self, spec: InstanceSpec) -> RuntimeStatus:
        """State plus an HTTP probe of HA itself when it runs."""
        status = await self._inspect(spec.name)
        if status.state is not RuntimeState.RUNNING:
            return status
        answering = await self.probe(spec)
        return RuntimeStatus(status.state, answering, status.detail or ("answering" if answering else "not answering"))

    async def probe(self, spec: InstanceSpec) -> bool:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(self.service_url(spec) + READY_PATH) as response,
            ):
                return response.status == 200
        except aiohttp.ClientError, TimeoutError:
            return False

    async def wait_ready(self, spec: InstanceSpec, within: float = 300.0) -> None:
        """Wait until HA answers over HTTP; fail early if the instance stops running."""
        deadline = time.monotonic() + within
        while True:
            status = await self._inspect(spec.name)
            if status.state is not RuntimeState.RUNNING:
                raise RuntimeFailure(f"{spec.name} is {status.state} before it answered: {status.detail}")
            if await self.probe(spec):
                return
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"{spec.name} did not answer on port {spec.port} within {within:.0f} s")
            await asyncio.sleep(0.5)

    async def backup(self, spec: InstanceSpec, archive: Path) -> None:
        """Write the instance's data to `archive` (tar.gz); it is stopped meanwhile for a consistent copy."""
        was_running = (await self._inspect(spec.name)).state is RuntimeState.RUNNING
        await self.stop(spec.name)
        try:
            await self._export_data(spec.name, archive)
        finally:
            if was_running:
                await self._start(spec)

    async def restore(self, spec: InstanceSpec, archive: Path) -> None:
        """Replace the instance's data with an archive's (checked first: nothing is lost on a bad one)."""
        checked = archive.with_name(archive.name + ".checked")
        await asyncio.to_thread(sanitize_archive, archive, checked)
        try:
            await self.stop(spec.name)
            await self._remove(spec.name, keep_data=False)
            await self._create(spec)
            await self._import_data(spec.name, checked)
            await self._start(spec)
        finally:
            checked.unlink(missing_ok=True)


def sanitize_archive(source: Path, target: Path) -> None:
    """Copy the members of a backup that are safe to restore: regular files and directories under
    `config/`, no absolute paths, no `..`, no links or devices; runtime-specific state is left out."""
    try:
        with (
            tarfile.open(source, "r:*") as src,
            gzip.open(target, "wb") as out,
            tarfile.open(fileobj=out, mode="w") as dst,
        ):
            found_root = False
            for member in src:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or path.parts[:1] != (ARCHIVE_ROOT,):
                    raise ArchiveError(
                        f"archive entry {member.name!r} is outside {ARCHIVE_ROOT}/; give a backup made by MicroPi"
                    )
                found_root = True
                if str(path) in _ARCHIVE_SKIP or not (member.isfile() or member.isdir()):
                    continue
                member.name = str(path)
                data = src.extractfile(member) if member.isfile() else None
                dst.addfile(member, data)
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as err:
        target.unlink(missing_ok=True)
        raise ArchiveError(f"the archive cannot be read ({err}); give a .tar.gz backup made by MicroPi") from err
    except ArchiveError:
        target.unlink(missing_ok=True)
        raise
    if not found_root:
        target.unlink(missing_ok=True)
        raise ArchiveError(f"the archive holds no {ARCHIVE_ROOT}/ directory; give a backup made by MicroPi")


def tar_directory(directory: Path, archive: Path) -> None:
    """Write `directory` as a tar.gz with its entries under `config/`."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=ARCHIVE_ROOT, filter=_skip_runtime_files)


def _skip_runtime_files(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if member.name in _ARCHIVE_SKIP or "__pycache__" in member.name else member
