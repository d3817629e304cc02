"""Reconciliation: the database says what should run; the runtime says what does. Run at start and
periodically by `InstanceManager`.

- `ready` instance not running (crashed, killed, container removed): started again, with exponential
  back-off - the first time at once, then not before `next_restart_at`, the wait doubling with each
  restart (`restart_count`) up to a ceiling; once it has stayed up past its back-off, the count resets.
- `provisioning` instance with no provisioning task (the service stopped mid-way): provisioning
  resumes where it stopped.
- `deleting` instance (the service stopped mid-way): the deletion is finished.
- `error` instance whose provisioning failed for a reason that may pass (HA not up in time, a
  connection error in a step; `ProvisionError.retryable`): provisioning is tried again from where it
  stopped once its back-off is over (the same doubling as restarts, counted in the failure's
  `attempts`). A permanent error stays, with its household message and the operator's detail.
- `stopped` instances are left as they are (an operator or the user acts on them).
- A runtime instance carrying our labels with no row (an orphan) is REPORTED - logged, counted in
  `micropi_orphan_instances`, listed for operators - and never deleted: it may hold a user's data.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from hosting import metrics
from hosting.db.models import Instance
from hosting.runtime.base import (
    LABEL_INSTANCE,
    LABEL_USER,
    RuntimeFailure,
    RuntimeInstance,
    RuntimeState,
    RuntimeStatus,
)

_LOGGER = logging.getLogger(__name__)


def restart_delay(restart_count: int, base: float, ceiling: float) -> timedelta:
    """Wait before the next restart after `restart_count` restarts: base, 2*base, 4*base... capped."""
    return timedelta(seconds=min(base * 2 ** max(restart_count - 1, 0), ceiling))


class Fleet(Protocol):
    """What reconciliation needs of the instance manager (`hosting.instances.InstanceManager`)."""

    @property
    def restart_backoff(self) -> tuple[float, float]: ...
    async def instances(self) -> list[Instance]: ...
    async def runtime_instances(self) -> list[RuntimeInstance]: ...
    async def runtime_status(self, instance: Instance) -> RuntimeStatus: ...
    async def start_again(self, instance: Instance) -> None: ...
    def is_busy(self, instance_id: str) -> bool: ...
    def lock(self, instance_id: str) -> asyncio.Lock: ...
    async def get(self, instance_id: str) -> Instance: ...
    async def update(self, instance_id: str, **changes: Any) -> None: ...
    def resume_provisioning(self, instance_id: str) -> None: ...
    async def retry_provisioning(self, instance_id: str) -> None: ...
    async def delete(self, instance_id: str) -> None: ...


@dataclass
class ReconcileReport:
    restarted: list[str] = field(default_factory=list)
    backing_off: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    orphans: list[RuntimeInstance] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


async def reconcile(manager: Fleet) -> ReconcileReport:
    report = ReconcileReport()
    found = {item.name: item for item in await manager.runtime_instances()}
    instances = await manager.instances()

    known = {instance.name for instance in instances}
    report.orphans = [item for name, item in sorted(found.items()) if name not in known]
    for orphan in report.orphans:
        _LOGGER.warning(
            "orphan %s (%s, labels: instance %s, user %s): no database row owns it; left untouched - "
            "remove it by hand once its data is saved, or restore its row",
            orphan.name, orphan.state, orphan.labels.get(LABEL_INSTANCE, "?"), orphan.labels.get(LABEL_USER, "?"),
        )  # fmt: skip
    metrics.ORPHAN_INSTANCES.set(len(report.orphans))

    for instance in instances:
        if manager.is_busy(instance.id):
            continue
        try:
            match instance.status:
                case "deleting":
                    await manager.delete(instance.id)
                    report.deleted.append(instance.name)
                case "provisioning":
                    manager.resume_provisioning(instance.id)
                    report.resumed.append(instance.name)
                case "error" if _retry_due(instance):
                    await manager.retry_provisioning(instance.id)
                    report.retried.append(instance.name)
                case "ready":
                    async with manager.lock(instance.id):
                        current = await manager.get(instance.id)  # an operation may have changed it meanwhile
                        if current.status == "ready":
                            await _keep_running(manager, current, report)
        except LookupError:
            continue  # deleted meanwhile
        except RuntimeFailure as err:
            _LOGGER.warning("reconciling %s failed: %s", instance.name, err)
            report.failed[instance.name] = str(err)
    return report


def _retry_due(instance: Instance) -> bool:
    """A retryable provisioning failure whose back-off is over."""
    failure = json.loads(instance.provision_state or "{}").get("failure") or {}
    if not failure.get("retryable") or not failure.get("next_retry_at"):
        return False
    return datetime.now(UTC) >= datetime.fromisoformat(failure["next_retry_at"])


async def _keep_running(manager: Fleet, instance: Instance, report: ReconcileReport) -> None:
    status = await manager.runtime_status(instance)
    now = datetime.now(UTC)
    if status.state is RuntimeState.RUNNING:
        changes: dict[str, object] = {"health": "healthy" if status.healthy else "unhealthy"}
        if instance.restart_count and (instance.next_restart_at is None or now >= instance.next_restart_at):
            changes |= {"restart_count": 0, "next_restart_at": None}  # it stayed up past its back-off
        await manager.update(instance.id, **changes)
        return
    if instance.next_restart_at is not None and now < instance.next_restart_at:
        report.backing_off.append(instance.name)
        await manager.update(instance.id, health="down")
        return
    count = instance.restart_count + 1
    _LOGGER.warning("%s is %s (%s); restart number %d", instance.name, status.state, status.detail, count)
    await manager.update(
        instance.id,
        restart_count=count,
        next_restart_at=now + restart_delay(count, *manager.restart_backoff),
        health="restarting",
    )
    await manager.start_again(instance)
    report.restarted.append(instance.name)
