"""The runtimes, by the name `MICROPI_RUNTIME` gives: what `Settings` accepts and what `create_runtime` builds.

A new runtime (Kubernetes) is a `Runtime` subclass, a factory here, and a pass of
tests/hosting/test_runtime_contract.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hosting.runtime.base import Runtime


class RuntimeSettings(Protocol):
    """What the factories read of `hosting.settings.Settings` (which imports this module for the names)."""

    @property
    def runtime(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def hass_command(self) -> str: ...


def _process(settings: RuntimeSettings) -> Runtime:
    from hosting.runtime.process import ProcessRuntime  # noqa: PLC0415  # each runtime's libraries only when used

    return ProcessRuntime(settings.data_dir / "instances", settings.hass_command)


def _docker(settings: RuntimeSettings) -> Runtime:
    from hosting.runtime.docker import DockerRuntime  # noqa: PLC0415  # the docker SDK only when used

    return DockerRuntime()


RUNTIMES: dict[str, Callable[[RuntimeSettings], Runtime]] = {"process": _process, "docker": _docker}
RUNTIME_NAMES = tuple(RUNTIMES)


def create_runtime(settings: RuntimeSettings) -> Runtime:
    return RUNTIMES[settings.runtime](settings)
