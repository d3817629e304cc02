"""Fixtures of the browser tests: the real service (`python -m hosting`) and Chromium (tests/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import artifacts  # noqa: F401  # the screenshots' folder fixture
from tests.web.service import Service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A service without Home Assistant instances (MICROPI_PROVISIONING=false): the fast path for pages."""
    running = Service(tmp_path, MICROPI_PROVISIONING="false").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def quick_instances(tmp_path: Path) -> Iterator[Service]:
    """A service with real instances whose `hass` is /bin/false: rows, ports, directories and processes are
    real, and every instance ends in `error` within a second (no minute-long HA start)."""
    running = Service(tmp_path, MICROPI_HASS="/bin/false", MICROPI_DEVICE_SILENT_AFTER="5").start()
    try:
        yield running
    finally:
        running.stop()
