"""`InstanceManager`: the one place for the lifecycle of users' Home Assistant instances.

Sign-up -> `ensure_for_user` (port from the pool, row `provisioning`, background provisioning task)
-> `ready` with its URL, or `error` with the reason. Operations (start, stop, restart, upgrade, backup,
restore, delete) take the instance's lock; one asked while the instance is being provisioned gets
`InstanceBusy` (409), except delete, which cancels provisioning first. Reconciliation (at `open()` and
every `reconcile_interval` seconds) is in `hosting.reconcile`.

On `close()` background tasks are cancelled and awaited: a cancelled provisioning stays `provisioning`
in the database and resumes at the next start. The instances themselves keep running (see
`hosting.runtime.process` for why and how `hass` children survive).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hosting import events, metrics
from hosting.api.views import instance_view
from hosting.assistant import NOT_SET_UP, AssistantState, AssistantStates
from hosting.db.models import Instance, User, new_id
from hosting.gateway.setup import GatewayHost
from hosting.gateway.tokens import instance_token
from hosting.ha_client import HomeAssistantClient, HomeAssistantError
from hosting.ports import PortPoolExhausted, free_port_count, insert_with_port, port_pool
from hosting.provision import (
    STEPS,
    Provisioner,
    ProvisionError,
    ProvisionTarget,
    country_of,
    reconfigure_model_server,
)
from hosting.reconcile import ReconcileReport, reconcile, restart_delay
from hosting.runtime.base import (
    InstanceSpec,
    Runtime,
    RuntimeFailure,
    RuntimeInstance,
    RuntimeStatus,
    ownership_labels,
)
from hosting.runtime.registry import create_runtime
from hosting.security import SecretBox
from hosting.settings import Settings

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "INSTANCE_MANAGER_KEY",
    "InstanceBusy",
    "InstanceConfig",
    "InstanceManager",
    "InstanceNotFound",
    "PortPoolExhausted",
    "create_runtime",
]


class InstanceBusy(Exception):
    """The instance is being provisioned or deleted; try again when that is over (the API answers 409)."""


class InstanceNotFound(LookupError):
    """No instance with that id."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstanceConfig:
    """What the manager takes from the settings."""

    port_range: tuple[int, int] = (8200, 8300)
    public_host: str = "127.0.0.1"
    image: str = "micropi/ha:2026.11"
    memory: str = "512m"
    cpus: float = 0.5
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_api_key: str = ""
    ollama_model: str = "ministral-3:3b-instruct-2512-q4_K_M"
    time_zone: str = "Europe/Budapest"
    demo_home: bool = False  # whether a sign-up that does not say gets the demo home
    reconcile_interval: float = 30.0
    ready_timeout: float = 300.0  # seconds for a fresh HA to answer
    backoff_base: float = 10.0  # seconds before the second restart of a dying instance; doubles each time
    backoff_ceiling: float = 900.0

    @classmethod
    def from_settings(cls, settings: Settings) -> InstanceConfig:
        return cls(
            port_range=settings.port_range,
            public_host=settings.public_host,
            image=settings.ha_image,
            memory=settings.ha_memory,
            cpus=settings.ha_cpus,
            ollama_url=settings.ollama_url,
            ollama_api_key=settings.ollama_api_key,
            ollama_model=settings.ollama_model,
            time_zone=settings.time_zone,
            demo_home=settings.demo_home,
            reconcile_interval=settings.reconcile_interval,
        )


class InstanceManager:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        secrets: SecretBox,
        config: InstanceConfig,
        gateway: GatewayHost | None = None,
    ) -> None:
        self.sessions = sessions
        # The model gateway every instance's agent goes through (None: straight to `config.ollama_url`, for
        # tests of the manager alone).
        self.gateway = gateway
        if gateway is not None:
            gateway.on_rotated = self.reconfigure_model_server
        self.runtime = runtime
        self.secrets = secrets
        self.config = config
        self.pool = port_pool(config.port_range)
        self.orphans: list[RuntimeInstance] = []  # from the last reconciliation, for operators
        self.assistants = AssistantStates()
        self._locks: dict[str, asyncio.Lock] = {}
        self._provisioning: dict[str, asyncio.Task[None]] = {}
        # Being deleted: from before provisioning is cancelled until the row is gone, nothing may
        # start the instance again (a reconciliation round would resume or restart it).
        self._deleting: set[str] = set()
        self._reconciler: asyncio.Task[None] | None = None
        self.events: events.EventBus | None = None  # told of every change (hosting.events)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        secrets: SecretBox,
        runtime: Runtime | None = None,
        gateway: GatewayHost | None = None,
    ) -> InstanceManager:
        runtime = runtime or create_runtime(settings)
        return cls(sessions, runtime, secrets, InstanceConfig.from_settings(settings), gateway)

    # ---- service lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Reconcile once now, then keep reconciling in the background."""
        self._reconciler = asyncio.create_task(self._reconcile_forever(), name="micropi reconciliation")

    async def close(self) -> None:
        """Stop background work (provisioning resumes at the next start); instances keep running."""
        tasks = [*self._provisioning.values(), *([self._reconciler] if self._reconciler else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reconciler = None
        await self.runtime.close()

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:  # one bad round must not end the loop
                _LOGGER.exception("reconciliation failed; trying again in %s s", self.config.reconcile_interval)
            await asyncio.sleep(self.config.reconcile_interval)

    async def reconcile(self) -> ReconcileReport:
        report = await reconcile(self)
        self.orphans = report.orphans
        return report

    async def runtime_check(self) -> str:
        """For /health: the runtime answers (raises when it does not)."""
        found = await self.runtime.list_instances()
        return f"{self.runtime.kind}: {len(found)} instance(s)"

    # ---- what reconciliation sees (hosting.reconcile.Fleet) -------------------------------------------

    async def instances(self) -> list[Instance]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Instance)))

    async def runtime_instances(self) -> list[RuntimeInstance]:
        return await self.runtime.list_instances()

    async def runtime_status(self, instance: Instance) -> RuntimeStatus:
        return await self.runtime.status(self.spec_for(instance))

    async def start_again(self, instance: Instance) -> None:
        await self.runtime.ensure_started(self.spec_for(instance))

    @property
    def restart_backoff(self) -> tuple[float, float]:
        """Seconds before the second restart of a dying instance (doubling each time), and the ceiling."""
        return self.config.backoff_base, self.config.backoff_ceiling

    # ---- queries -------------------------------------------------------------------------------------

    async def get(self, instance_id: str) -> Instance:
        async with self.sessions() as session:
            instance = await session.get(Instance, instance_id)
        if instance is None:
            raise InstanceNotFound(f"no instance {instance_id}")
        return instance

    async def status(self, user_id: str) -> Instance | None:
        async with self.sessions() as session:
            instance: Instance | None = await session.scalar(select(Instance).where(Instance.user_id == user_id))
        return instance

    async def assistant_state(self, instance: Instance) -> AssistantState:
        """The voice assistant's state in a ready instance, read from its HA (see hosting.assistant)."""
        if instance.status != "ready" or instance.ha_token_encrypted is None:
            return NOT_SET_UP
        token = self.secrets.decrypt(instance.ha_token_encrypted)
        return await self.assistants.state(self.runtime.service_url(self.spec_for(instance)), token)

    def spec_for(self, instance: Instance) -> InstanceSpec:
        return InstanceSpec(
            name=instance.name,
            port=instance.port,
            image=instance.image or self.config.image,
            labels=ownership_labels(instance.id, instance.user_id),
            memory=self.config.memory,
            cpus=self.config.cpus,
        )

    def is_busy(self, instance_id: str) -> bool:
        task = self._provisioning.get(instance_id)
        return (
            instance_id in self._deleting or (task is not None and not task.done()) or self._lock(instance_id).locked()
        )

    async def update(self, instance_id: str, **changes: Any) -> None:
        async with self.sessions() as session, session.begin():
            instance = await session.get(Instance, instance_id)
            if instance is not None:
                for key, value in changes.items():
                    setattr(instance, key, value)
        if instance is not None:
            self._publish(instance)

    def _publish(self, instance: Instance, step: str | None = None) -> None:
        if self.events is None:
            return
        view = instance_view(instance)
        if step is None:
            self.events.publish(events.INSTANCE, view, instance.user_id)
            return
        done = json.loads(instance.provision_state or "{}").get("steps", {})
        progress = {"step": step, "done": [s for s in STEPS if s in done], "steps": list(STEPS)}
        self.events.publish(events.PROVISIONING, {**view, "provisioning": progress}, instance.user_id)

    def lock(self, instance_id: str) -> asyncio.Lock:
        """Held by whatever changes the instance (operations, provisioning, reconciliation)."""
        return self._lock(instance_id)

    def _lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    # ---- sign-up and provisioning --------------------------------------------------------------------

    async def ensure_for_user(
        self, user: User, password: str, time_zone: str | None = None, demo: bool | None = None
    ) -> Instance:
        """The user's instance: made now if they have none (raises PortPoolExhausted when full), then
        provisioned in the background, with the demo home if `demo` (default: the service's setting).
        Idempotent: a second call returns the same instance."""
        existing = await self.status(user.id)
        if existing is None:
            uses_images = self.runtime.uses_images
            zone = time_zone or self.config.time_zone
            with_demo = self.config.demo_home if demo is None else demo

            def make_row(port: int) -> Instance:
                instance = Instance(id=new_id(), user_id=user.id, port=port, status="provisioning")
                instance.name = f"micropi-ha-{instance.id[:8]}"
                instance.url = f"http://{self.config.public_host}:{port}"
                instance.image = self.config.image if uses_images else "process"
                instance.status_reason = "starting Home Assistant"
                instance.provision_state = json.dumps({"time_zone": zone, "demo": with_demo, "steps": {}})
                instance.owner_password_encrypted = self.secrets.encrypt(password)
                return instance

            existing = await insert_with_port(self.sessions, self.pool, make_row)
            await self._publish_free_ports()
        if existing.status == "provisioning":
            self.resume_provisioning(existing.id)
        return existing

    def resume_provisioning(self, instance_id: str) -> None:
        """Start (or resume) provisioning in the background unless it is already under way."""
        task = self._provisioning.get(instance_id)
        if instance_id in self._deleting or (task is not None and not task.done()):
            return
        task = asyncio.create_task(self._provision(instance_id), name=f"provision {instance_id}")
        self._provisioning[instance_id] = task
        task.add_done_callback(lambda done: self._forget(instance_id, done))

    def _forget(self, instance_id: str, task: asyncio.Task[None]) -> None:
        if self._provisioning.get(instance_id) is task:
            del self._provisioning[instance_id]

    async def _model_server_for(self, instance: Instance) -> tuple[str, str]:
        """The URL and key the instance's agent uses: the gateway, with the instance's own token."""
        if self.gateway is None:
            return self.config.ollama_url, self.config.ollama_api_key
        await self.gateway.open_for(instance)  # docker: its network exists once the container does
        async with self.sessions() as session, session.begin():
            token = await instance_token(session, self.secrets, instance)
        return self.gateway.url_for(instance.id), token

    async def reconfigure_model_server(self, instance: Instance, token: str) -> bool:
        """Put the gateway's URL and a (rotated) token into the instance's agent entry; False when the
        instance is not provisioned that far (its provisioning then uses the new token anyway)."""
        if self.gateway is None:
            return False
        state = json.loads(instance.provision_state or "{}").get("steps", {})
        entry = state.get("ollama_entry", {}).get("entry_id")
        ha_token = self._decrypt(instance.ha_token_encrypted)
        if not entry or ha_token is None:
            return False
        await self.gateway.open_for(instance)
        ha = HomeAssistantClient(self.runtime.service_url(self.spec_for(instance)), ha_token)
        try:
            await reconfigure_model_server(ha, entry, self.gateway.url_for(instance.id), token)
        except (HomeAssistantError, aiohttp.ClientError, TimeoutError) as err:
            _LOGGER.warning("could not give %s its new gateway token: %s", instance.name, err)
            return False
        return True

    async def wait_provisioned(self, instance_id: str) -> Instance:
        """Wait for background provisioning of the instance (if any) to end; the instance as it is then."""
        task = self._provisioning.get(instance_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.get(instance_id)

    async def _provision(self, instance_id: str) -> None:
        async with self._lock(instance_id):
            instance = await self.get(instance_id)
            kind = self.runtime.kind
            state = json.loads(instance.provision_state or "{}")
            spec = self.spec_for(instance)
            try:
                await self.update(instance_id, status="provisioning", status_reason="starting Home Assistant")
                await self.runtime.ensure_started(spec)
                await self.runtime.wait_ready(spec, self.config.ready_timeout)
                await self.update(instance_id, status_reason="setting up Home Assistant", health="healthy")
                model_url, model_key = await self._model_server_for(instance)
                provisioner = Provisioner(
                    ProvisionTarget(
                        base_url=self.runtime.service_url(spec),
                        email=await self._owner_email(instance.user_id),
                        time_zone=state.get("time_zone") or self.config.time_zone,
                        ollama_url=model_url,
                        ollama_model=self.config.ollama_model,
                        ollama_api_key=model_key,
                        demo=bool(state.get("demo")),  # False for homes made before there was a demo
                        fallback_country=country_of(self.config.time_zone),
                    ),
                    done=state.get("steps", {}),
                    password=self._decrypt(instance.owner_password_encrypted),
                    service_token=self._decrypt(instance.ha_token_encrypted),
                    record=lambda step, data, token: self._record_step(instance_id, step, data, token),
                )
                await provisioner.run()
            except ProvisionError as err:
                await self._provisioning_failed(instance_id, err)
                return
            except RuntimeFailure as err:  # HA did not start, or not in time: worth another go
                await self._provisioning_failed(instance_id, ProvisionError(str(err), retryable=True))
                return
            except Exception as err:  # recorded on the instance for the user and the operator
                _LOGGER.exception("provisioning %s failed unexpectedly", instance.name)
                await self._provisioning_failed(
                    instance_id, ProvisionError(f"unexpected error: {type(err).__name__}: {err}")
                )
                return
            # The owner exists and the service has its own token: the sign-up password goes.
            await self._set_failure(instance_id, None)
            await self.update(
                instance_id, status="ready", status_reason="", health="healthy", owner_password_encrypted=None
            )
            elapsed = (datetime.now(UTC) - instance.created_at).total_seconds()
            metrics.PROVISIONING_SECONDS.labels(kind).observe(elapsed)
            _LOGGER.info("%s is ready at %s, %.1f s after sign-up", instance.name, instance.url, elapsed)

    async def _provisioning_failed(self, instance_id: str, err: ProvisionError) -> None:
        """`error`, with the household's message as the reason and the operator's detail kept in the
        provisioning state; a retryable failure gets its next attempt time (reconciliation retries it)."""
        failure = await self._set_failure(instance_id, err)
        _LOGGER.warning(
            "provisioning %s failed (%s): %s", instance_id,
            f"attempt {failure['attempts']}, retried from {failure['next_retry_at']}" if err.retryable else "permanent",
            err,
        )  # fmt: skip
        metrics.PROVISIONING_FAILURES.labels(self.runtime.kind).inc()
        await self.update(instance_id, status="error", status_reason=err.household)

    async def _set_failure(self, instance_id: str, err: ProvisionError | None) -> dict[str, Any]:
        """Record (or, with None, clear) the last provisioning failure in the instance's provisioning state."""
        async with self.sessions() as session, session.begin():
            instance = await session.get(Instance, instance_id)
            if instance is None:
                return {}
            state = json.loads(instance.provision_state or "{}")
            if err is None:
                state.pop("failure", None)
                instance.provision_state = json.dumps(state)
                return {}
            attempts = int(state.get("failure", {}).get("attempts", 0)) + 1
            delay = restart_delay(attempts, self.config.backoff_base, self.config.backoff_ceiling)
            failure = {
                "detail": str(err),
                "retryable": err.retryable,
                "attempts": attempts,
                "next_retry_at": (datetime.now(UTC) + delay).isoformat() if err.retryable else None,
            }
            state["failure"] = failure
            instance.provision_state = json.dumps(state)
            return failure

    async def retry_provisioning(self, instance_id: str) -> None:
        """Provision an instance in `error` again, from where it stopped (reconciliation, for retryable failures)."""
        await self.update(instance_id, status="provisioning", status_reason="trying again to set up Home Assistant")
        self.resume_provisioning(instance_id)

    async def _record_step(self, instance_id: str, step: str, data: dict[str, Any], token: str | None) -> None:
        async with self.sessions() as session, session.begin():
            instance = await session.get(Instance, instance_id)
            if instance is None:
                raise ProvisionError("the instance was deleted during provisioning")
            state = json.loads(instance.provision_state or "{}")
            state.setdefault("steps", {})[step] = data
            instance.provision_state = json.dumps(state)
            instance.status_reason = f"setting up Home Assistant: {step} done"
            if token is not None:
                instance.ha_token_encrypted = self.secrets.encrypt(token)
        self._publish(instance, step)

    async def _owner_email(self, user_id: str) -> str:
        async with self.sessions() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise ProvisionError("the instance's user no longer exists")
        return user.email

    def _decrypt(self, value: str | None) -> str | None:
        return None if value is None else self.secrets.decrypt(value)

    async def _publish_free_ports(self) -> None:
        metrics.FREE_PORTS.set(await free_port_count(self.sessions, self.pool))

    # ---- operations ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _operation(self, instance_id: str) -> AsyncIterator[Instance]:
        """Hold the instance's lock (waiting for a reconciliation round or another operation to end);
        refused while it is being provisioned or deleted."""
        task = self._provisioning.get(instance_id)
        if instance_id in self._deleting:
            raise InstanceBusy("the instance is being deleted")
        if task is not None and not task.done():
            raise InstanceBusy("the instance is being provisioned; try again when it is ready or has failed")
        async with self._lock(instance_id):
            instance = await self.get(instance_id)
            if instance.status == "deleting":
                raise InstanceBusy("the instance is being deleted")
            yield instance

    def _provisioned(self, instance: Instance) -> bool:
        state = json.loads(instance.provision_state or "{}")
        steps = state.get("steps", {})
        # A home that did not ask for the demo (or was made before there was one) needs no demo step.
        return all(step in steps or (step == "demo" and not state.get("demo")) for step in STEPS)

    async def start(self, instance_id: str) -> None:
        async with self._operation(instance_id) as instance:
            await self.runtime.ensure_started(self.spec_for(instance))
            await self.update(instance_id, status="ready" if self._provisioned(instance) else "provisioning",
                              status_reason="", health="starting", restart_count=0, next_restart_at=None)  # fmt: skip
        if not self._provisioned(instance):
            self.resume_provisioning(instance_id)

    async def stop(self, instance_id: str) -> None:
        async with self._operation(instance_id) as instance:
            await self.runtime.stop(instance.name)
            await self.update(instance_id, status="stopped", status_reason="stopped by an operator", health="stopped")

    async def restart(self, instance_id: str) -> None:
        """Restart; an instance whose provisioning failed is provisioned again (from where it stopped)."""
        async with self._operation(instance_id) as instance:
            if self._provisioned(instance):
                await self.runtime.restart(self.spec_for(instance))
                await self.update(instance_id, status="ready", status_reason="", health="starting",
                                  restart_count=0, next_restart_at=None)  # fmt: skip
                return
            await self.update(instance_id, status="provisioning", status_reason="provisioning again")
        self.resume_provisioning(instance_id)

    async def upgrade(self, instance_id: str, image: str) -> None:
        """Run the instance on a new image, keeping its data (process runtime: a restart on the current hass)."""
        async with self._operation(instance_id) as instance:
            new_image = image if self.runtime.uses_images else instance.image
            await self.runtime.recreate(dataclasses.replace(self.spec_for(instance), image=new_image))
            await self.update(instance_id, image=new_image, health="starting")

    async def backup(self, instance_id: str, archive: Path) -> None:
        async with self._operation(instance_id) as instance:
            await self.runtime.backup(self.spec_for(instance), archive)

    async def restore(self, instance_id: str, archive: Path) -> None:
        async with self._operation(instance_id) as instance:
            await self.runtime.restore(self.spec_for(instance), archive)
            await self.update(instance_id, health="starting")

    async def delete(self, instance_id: str) -> None:
        """Remove the instance and its data (provisioning under way is cancelled first)."""
        if instance_id in self._deleting:
            raise InstanceBusy("the instance is being deleted")
        self._deleting.add(instance_id)
        try:
            task = self._provisioning.get(instance_id)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            async with self._lock(instance_id):
                instance = await self.get(instance_id)
                # Marked first: if the service stops mid-way, reconciliation finishes the deletion.
                await self.update(instance_id, status="deleting", status_reason="being deleted")
                if self.gateway is not None:
                    await self.gateway.close_for(instance_id)
                await self.runtime.remove(instance.name)
                async with self.sessions() as session, session.begin():
                    row = await session.get(Instance, instance_id)
                    if row is not None:
                        await session.delete(row)
            self._locks.pop(instance_id, None)
        finally:
            self._deleting.discard(instance_id)
        await self._publish_free_ports()


INSTANCE_MANAGER_KEY = web.AppKey("instance_manager", InstanceManager)
