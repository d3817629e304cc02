"""Runtimes that run one Home Assistant per user: `process` (default) and `docker`."""

from hosting.runtime.base import (
    InstanceSpec,
    PortInUseError,
    Runtime,
    RuntimeFailure,
    RuntimeInstance,
    RuntimeState,
    RuntimeStatus,
)

__all__ = [
    "InstanceSpec",
    "PortInUseError",
    "Runtime",
    "RuntimeFailure",
    "RuntimeInstance",
    "RuntimeState",
    "RuntimeStatus",
]
