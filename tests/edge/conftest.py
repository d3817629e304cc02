"""Fixtures of the edge tests: the real hosting service with its device service (tests/hosting/device_service.py)."""

from tests.hosting.device_service import devices_config, hosting, hosting_settings

__all__ = ["devices_config", "hosting", "hosting_settings"]
