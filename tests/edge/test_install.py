"""`edge/install.sh` into a scratch root (DESTDIR): systemd units that restart on failure and the pairing
step against the real hosting service."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from pathlib import Path

from micropi_edge import config

from tests.hosting.device_service import Hosting

ROOT = Path(__file__).resolve().parents[2]
EDGE_BIN = ROOT / ".venv" / "bin" / "micropi-edge"


async def test_install_writes_units_and_pairs(hosting: Hosting, tmp_path: Path) -> None:
    owner = await hosting.sign_up()
    code = await hosting.pairing_code(owner, "Hall")
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "edge" / "install.sh"),
        "--server",
        hosting.url,
        "--code",
        code,
        "--area",
        "Hall",
        env={**os.environ, "DESTDIR": str(tmp_path), "MICROPI_EDGE_BIN": str(EDGE_BIN)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode()

    unit_path = tmp_path / "etc" / "systemd" / "system" / "micropi-edge.service"
    unit = unit_path.read_text()
    assert "Restart=on-failure" in unit
    assert "RestartPreventExitStatus=3" in unit
    assert "Environment=MICROPI_EDGE_CONFIG=/var/lib/micropi-edge/device.json" in unit
    assert "--area 'Hall'" in unit
    assert "Restart=on-failure" in (tmp_path / "etc" / "systemd" / "system" / "micropi-wakeword.service").read_text()
    if shutil.which("systemd-analyze"):
        verify = await asyncio.create_subprocess_exec(
            "systemd-analyze", "verify", str(unit_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await verify.communicate()
        assert verify.returncode == 0, (out + err).decode()

    device_file = tmp_path / "var" / "lib" / "micropi-edge" / "device.json"
    assert stat.S_IMODE(device_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(device_file.parent.stat().st_mode) == 0o700
    identity = config.load(device_file)
    assert identity.name == "Hall"
    assert identity.token not in output.decode()
    assert [d["id"] for d in await hosting.list_devices(owner)] == [identity.device_id]


async def test_install_refuses_unknown_options(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "edge" / "install.sh"),
        "--sever",
        "x",
        env={**os.environ, "DESTDIR": str(tmp_path)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"unknown option --sever" in err
