"""The `process` runtime (the default): each instance is a local `hass -c <data>/<name>/config`.

Layout under the runtime's root, one directory per instance:
    <name>/config/       HA's configuration directory (the instance's data; what backups hold)
    <name>/labels.json   ownership labels (what marks the directory as ours)
    <name>/hass.pid      pid of the running hass
    <name>/hass.log      its stdout/stderr

Child processes SURVIVE a restart of the hosting service, like containers do: hass starts in its own
session (so signals to the service's process group never reach it) with a pid file, and the next
service start re-adopts it through the pid file (checked against /proc, so a reused pid is never taken
for ours). Only an explicit stop, restart, upgrade or delete stops one.

No memory/CPU limits here: those need cgroups, which is what the `docker` runtime is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hosting.runtime.base import (
    LOOPBACK,
    InstanceSpec,
    PortInUseError,
    Runtime,
    RuntimeFailure,
    RuntimeInstance,
    RuntimeState,
    RuntimeStatus,
    TenantEndpoint,
    tar_directory,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "images" / "ha" / "config"
# Our integrations, copied into each instance: the agent, and the demo home a sign-up may ask for.
INTEGRATION_DIRS = tuple(PROJECT_ROOT / "custom_components" / name for name in ("micropi_llm", "micropi_demo"))
# What the child sees of our environment: never the service's secrets (JWT secret, Fernet key, DB URL).
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


def default_hass_command() -> str:
    """`.venv-ha/bin/hass` next to the project (what scripts/setup.sh makes), else `hass` on PATH."""
    local = PROJECT_ROOT / ".venv-ha" / "bin" / "hass"
    if local.exists():
        return str(local)
    return shutil.which("hass") or "hass"


class ProcessRuntime(Runtime):
    kind = "process"

    def __init__(
        self,
        root: Path,
        hass_command: str = "",
        *,
        default_config: Path = DEFAULT_CONFIG_DIR,
        integrations: tuple[Path, ...] = INTEGRATION_DIRS,
        stop_timeout: float = 30.0,
        port_release_wait: float = 10.0,
    ) -> None:
        self.root = root.resolve()
        self.hass_command = hass_command or default_hass_command()
        self.default_config = default_config
        self.integrations = integrations
        self.stop_timeout = stop_timeout
        self.port_release_wait = port_release_wait
        # Children started by this service (to reap them); adopted ones are tracked by pid file only.
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ---- where things are ----------------------------------------------------------------------------

    def service_url(self, spec: InstanceSpec) -> str:
        return f"http://127.0.0.1:{spec.port}"  # hass serves on loopback only (_write_http_store)

    async def tenant_endpoint(self, name: str) -> TenantEndpoint:
        return LOOPBACK  # hass runs on this host, as this service does

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise RuntimeFailure(f"invalid instance name {name!r}")
        return self.root / name

    def config_dir(self, name: str) -> Path:
        return self._dir(name) / "config"

    # ---- primitives ----------------------------------------------------------------------------------

    async def _create(self, spec: InstanceSpec) -> None:
        await asyncio.to_thread(self._create_sync, spec.name, dict(spec.labels))

    def _create_sync(self, name: str, labels: dict[str, str]) -> None:
        config = self.config_dir(name)
        config.mkdir(parents=True, exist_ok=True)
        # The default configuration seeds a new instance; an existing one's files are never overwritten.
        for source in self.default_config.iterdir():
            target = config / source.name
            if source.is_file() and not target.exists():
                shutil.copy2(source, target)
        (self._dir(name) / "labels.json").write_text(json.dumps(labels, sort_keys=True))

    async def _start(self, spec: InstanceSpec) -> None:
        self._children[spec.name] = await asyncio.to_thread(self._spawn, spec.name, spec.port)

    def _spawn(self, name: str, port: int) -> subprocess.Popen[bytes]:
        self._prepare_start(name, port)
        directory = self._dir(name)
        env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
        env["HOME"] = str(directory)
        with (directory / "hass.log").open("wb") as log:
            child = subprocess.Popen(
                [self.hass_command, "-c", str(self.config_dir(name)), "--skip-pip", "--log-no-color"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                env=env,
                start_new_session=True,  # its own session: survives the service, see the module docstring
            )
        (directory / "hass.pid").write_text(f"{child.pid}\n")
        return child

    def _prepare_start(self, name: str, port: int) -> None:
        # A hass that was just killed can leave its port taken for a moment while the kernel tears the
        # sockets down: give that a few seconds before calling it a conflict.
        deadline = time.monotonic() + self.port_release_wait
        while not _port_free(port):
            if time.monotonic() > deadline:
                raise PortInUseError(port)
            time.sleep(0.2)
        config = self.config_dir(name)
        # Our integrations, fresh at every start: a service upgrade brings the new version along.
        for integration in self.integrations:
            target = config / "custom_components" / integration.name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(integration, target, ignore=shutil.ignore_patterns("__pycache__"))
        _write_http_store(config, port)

    async def _stop(self, name: str) -> None:
        pid = self._pid(name)
        if pid is not None:
            await asyncio.to_thread(self._terminate, name, pid)
        (self._dir(name) / "hass.pid").unlink(missing_ok=True)

    def _terminate(self, name: str, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # the whole session: hass and anything it started
        deadline = time.monotonic() + self.stop_timeout
        while self._alive(name, pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            time.sleep(0.1)
        self._children.pop(name, None)

    async def _remove(self, name: str, *, keep_data: bool) -> None:
        self._children.pop(name, None)
        if not keep_data:
            await asyncio.to_thread(shutil.rmtree, self._dir(name), True)

    async def _inspect(self, name: str) -> RuntimeStatus:
        directory = self._dir(name)
        if not (directory / "labels.json").exists():
            return RuntimeStatus(RuntimeState.MISSING, detail="no such instance")
        pid = self._pid(name)
        if pid is not None:
            return RuntimeStatus(RuntimeState.RUNNING, detail=f"pid {pid}")
        return RuntimeStatus(RuntimeState.STOPPED, detail=_log_tail(directory / "hass.log"))

    async def list_instances(self) -> list[RuntimeInstance]:
        found = []
        if self.root.is_dir():
            for directory in sorted(self.root.iterdir()):
                labels_file = directory / "labels.json"
                if not labels_file.is_file():
                    continue
                try:
                    labels = json.loads(labels_file.read_text())
                except ValueError:
                    labels = {}
                state = RuntimeState.RUNNING if self._pid(directory.name) is not None else RuntimeState.STOPPED
                found.append(RuntimeInstance(directory.name, labels, state))
        return found

    async def _export_data(self, name: str, archive: Path) -> None:
        await asyncio.to_thread(tar_directory, self.config_dir(name), archive)

    async def _import_data(self, name: str, archive: Path) -> None:
        def extract() -> None:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(self._dir(name), filter="data")

        await asyncio.to_thread(extract)

    # ---- process bookkeeping -------------------------------------------------------------------------

    def _pid(self, name: str) -> int | None:
        """The pid of this instance's running hass, if there is one."""
        try:
            pid = int((self._dir(name) / "hass.pid").read_text().strip())
        except OSError, ValueError:
            return None
        return pid if self._alive(name, pid) else None

    def _alive(self, name: str, pid: int) -> bool:
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            return child.poll() is None  # our own child (polling also reaps it once it exits)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError, IndexError:
            return False
        # The pid must still be hass on this instance's directory: pids get reused.
        return state != "Z" and str(self.config_dir(name)).encode() in cmdline


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds; TIME_WAIT is no conflict
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _write_http_store(config: Path, port: int) -> None:
    """Set HA's HTTP server to 127.0.0.1:<port>.

    Since HA 2026.11 the HTTP settings live in `.storage/http`; an `http:` block in configuration.yaml is
    only migrated once, as a *pending* configuration that HA reverts (back to port 8123 on every
    interface) five minutes later unless someone confirms it. So the port and address are written into
    the stored, confirmed (`stable`) configuration before each start; the rest of it is kept.
    """
    path = config / ".storage" / "http"
    stable: dict[str, Any] = {
        "cors_allowed_origins": ["https://cast.home-assistant.io"],
        "login_attempts_threshold": -1,
        "ip_ban_enabled": True,
        "ssl_profile": "intermediate_v6",
        "use_x_frame_options": True,
    }
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        stored = json.loads(path.read_text())
        stable = {**stable, **stored["data"]["stable"]}
    stable.update(
        server_port=port,
        server_host=["127.0.0.1"],
        created_at=stable.get("created_at") or datetime.now(UTC).isoformat(),
        error=None,
        error_message=None,
    )
    document = {
        "version": 3,
        "minor_version": 1,
        "key": "http",
        "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    path.chmod(0o600)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "not running"
    tail = text.strip().splitlines()[-lines:]
    return "not running; last output:\n" + "\n".join(tail) if tail else "not running"
