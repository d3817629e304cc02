"""The device's identity after pairing: server URL, device id and token, in one JSON file readable by the
owner only (0600), in a directory only the owner can enter (0700)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PATH = Path(os.environ.get("MICROPI_EDGE_CONFIG", "~/.config/micropi-edge/device.json")).expanduser()


class NotPaired(Exception):
    """No usable device file: the message says how to pair."""


@dataclass(frozen=True)
class DeviceIdentity:
    server: str
    device_id: str
    name: str
    token: str

    def __repr__(self) -> str:  # never print the token
        return f"DeviceIdentity(server={self.server!r}, device_id={self.device_id!r}, name={self.name!r})"


def save(identity: DeviceIdentity, path: Path = DEFAULT_PATH) -> None:
    """Writes the file with 0600 from the start (no window where the token is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(identity), handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def load(path: Path = DEFAULT_PATH) -> DeviceIdentity:
    pair_hint = "pair it first: micropi-edge pair CODE --server URL"
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise NotPaired(f"{path} does not exist: this device is not paired; {pair_hint}") from None
    if path.stat().st_mode & 0o077:
        raise NotPaired(f"{path} is readable by others; run `chmod 600 {path}` (or pair again)")
    try:
        data = json.loads(raw)
        return DeviceIdentity(
            server=str(data["server"]),
            device_id=str(data["device_id"]),
            name=str(data["name"]),
            token=str(data["token"]),
        )
    except (ValueError, KeyError, TypeError):
        raise NotPaired(f"{path} is damaged; {pair_hint}") from None
