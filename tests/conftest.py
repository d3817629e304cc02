"""Shared test set-up. `custom_components` must be imported before Home Assistant's test plugin runs."""

import os

import custom_components  # noqa: F401  # isort: skip

# The hosting service's gateway and speech listeners take free ports in tests (processes started by tests
# inherit this too), so parallel runs never fight over the production defaults 8081, 10310 and 10210.
for _name in ("MICROPI_GATEWAY_PORT", "MICROPI_SPEECH_STT_PORT", "MICROPI_SPEECH_TTS_PORT"):
    os.environ.setdefault(_name, "0")
