"""Edge devices (Raspberry Pi voice satellites): pairing, device tokens, list/rename/revoke, heartbeats,
monitoring, the relay endpoint per device (`hosting.relay`) and the device's place in its owner's HA.

Read `service.DeviceService` first; the HTTP handlers are in `hosting.api.devices`.

- `pairing`: the owner asks for a short code (`POST /api/devices/pairing-codes`), types it on the Pi
  (`micropi-edge pair CODE --server URL`), and the Pi exchanges it for a device token (`POST
  /api/devices/pair`). Codes live in memory for 10 minutes and are single-use (a service restart forgets
  pending codes; the owner asks again). Device tokens are random, stored only as SHA-256 like refresh tokens.
- `voice_pipeline`: the first time a paired device connects to the relay, its owner's HA gets a Wyoming
  satellite entry pointing at the device's relay endpoint, through HA's own config-flow REST API, plus an
  Assist pipeline in the owner's language with our agent and the central speech-to-text and text-to-speech
  Wyoming services. Revoking a device removes its satellite entry, and the pipeline once no other device of
  the owner uses it.
"""

from hosting.devices.service import DEVICE_TOKEN_PREFIX, DEVICES_KEY, DeviceService, Heartbeat
from hosting.devices.voice_pipeline import PIPELINE_NAME

__all__ = ["DEVICES_KEY", "DEVICE_TOKEN_PREFIX", "PIPELINE_NAME", "DeviceService", "Heartbeat"]
