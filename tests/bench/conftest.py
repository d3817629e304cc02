"""The bench starts its own HA cores and a wire-format server on 127.0.0.1."""

import pytest


@pytest.fixture(autouse=True)
def allow_loopback_sockets(socket_enabled: None) -> None:
    """The Ollama wire-format server listens on 127.0.0.1 (HA's plugin still blocks other hosts)."""
