"""Schemathesis hooks for tests/hosting/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Backup archives (`application/gzip`) have no JSON Schema to generate from: the fuzzer sends real gzip'd
tars as MicroPi's backups are (a `config/` directory). Malformed archives are tests/hosting's own cases.
"""

from __future__ import annotations

import io
import tarfile

import schemathesis
from hypothesis import strategies as st


def _small_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"homeassistant:\n"
        info = tarfile.TarInfo("config/configuration.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


schemathesis.openapi.media_type("application/gzip", st.just(_small_archive()))
