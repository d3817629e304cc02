"""The real hosting service for the browser tests: `python -m hosting` as a child process on loopback,
configured by `MICROPI_*` variables like in production, with small helpers around its HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.hosting.conftest import free_port, free_port_range

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery 7"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    cookies: list[str] = field(default_factory=list)


class Service:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        low, high = free_port_range(6)
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'edge'}",
            "MICROPI_DATA": str(tmp / "data"),
            "MICROPI_PORT": str(self.port),
            "MICROPI_JWT_SECRET": uuid.uuid4().hex * 2,
            "MICROPI_FERNET_KEY": Fernet.generate_key().decode(),
            "MICROPI_PORT_RANGE": f"{low}-{high}",
            "MICROPI_RELAY_PORT_RANGE": "0",
            "MICROPI_RECONCILE_INTERVAL": "3600",
            "MICROPI_HISTORY_INTERVAL": "1",
            # The browser and the tests' "reverse proxy" are both on loopback.
            "MICROPI_TRUSTED_PROXIES": "127.0.0.1",
            # Real argon2id at its lowest cost: the default costs ~0.5 s of a busy CI core per hash.
            "MICROPI_ARGON2_TIME_COST": "1",
            "MICROPI_ARGON2_MEMORY_KIB": "1024",
            "MICROPI_ARGON2_PARALLELISM": "1",
            **env,
        }
        self.log = tmp / "service.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 60.0) -> Service:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "hosting"], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()[-3000:]}")
            try:
                if self.call("GET", "/health").status in (200, 503):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the service did not answer within {within} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        url = self.url + path  # always http://127.0.0.1:<port>: our own service
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # our own loopback URL
                status, payload, head = response.status, response.read(), response.headers
        except urllib.error.HTTPError as err:
            status, payload, head = err.code, err.read(), err.headers
        try:
            parsed: Any = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload
        return Reply(status, parsed, dict(head.items()), head.get_all("Set-Cookie") or [])

    def sign_up(self, email: str | None = None) -> tuple[str, str]:
        """A household through the API; returns (email, access token)."""
        email = email or f"home-{uuid.uuid4().hex[:8]}@example.com"
        reply = self.call("POST", "/api/auth/signup", {"email": email, "password": PASSWORD})
        assert reply.status == 201, reply.body
        return email, reply.body["tokens"]["access_token"]

    def create_operator(self, email: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "hosting", "create-operator", "--email", email],
            env=self.env,
            cwd=ROOT,
            input=f"{PASSWORD}\n".encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def edge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real `micropi-edge` command line (the Pi's side), as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "micropi_edge", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
