"""The runtimes, by the name `MICROPI_RUNTIME` gives: what `Settings` accepts and what `create_runtime` builds.

A new runtime (Kubernetes) is a `Runtime` subclass with a `from_settings` classmethod, one line here, and
a pass of tests/hosting/test_runtime_contract.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hosting.runtime.base import Runtime
    from hosting.settings import Settings


def _process(settings: Settings) -> Runtime:
    from hosting.runtime.process import ProcessRuntime  # noqa: PLC0415  # each runtime's libraries only when used

    return ProcessRuntime.from_settings(settings)


def _docker(settings: Settings) -> Runtime:
    from hosting.runtime.docker import DockerRuntime  # noqa: PLC0415  # the docker SDK only when used

    return DockerRuntime.from_settings(settings)


RUNTIMES: dict[str, Callable[[Settings], Runtime]] = {"process": _process, "docker": _docker}
RUNTIME_NAMES = tuple(RUNTIMES)


def create_runtime(settings: Settings) -> Runtime:
    return RUNTIMES[settings.runtime](settings)
