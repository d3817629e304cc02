"""A real Home Assistant for the device tests: `.venv-ha/bin/hass` (HA 2026.11, the image's release) in a
temp directory, onboarded through its own REST API, with a long-lived token for its REST/WebSocket APIs."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
HASS = ROOT / ".venv-ha" / "bin" / "hass"
CLIENT_ID = "http://127.0.0.1/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HassProcess:
    def __init__(
        self,
        config_dir: Path,
        language: str = "en",
        extra_config: str = "",
        custom_components: list[Path] | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.extra_config = extra_config
        self.custom_components = custom_components or []
        self.language = language
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self._proc: asyncio.subprocess.Process | None = None
        self.log_path = config_dir / "hass.log"

    async def start(self, within: float = 120.0) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n  name: Edge test\n  latitude: 47.5\n  longitude: 19.0\n  elevation: 100\n"
            "  unit_system: metric\n  time_zone: UTC\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nconfig:\nonboarding:\nassist_pipeline:\nconversation:\n"
            "logger:\n  default: warning\n  logs:\n    homeassistant.components.wyoming: debug\n" + self.extra_config
        )
        for component in self.custom_components:
            shutil.copytree(component, self.config_dir / "custom_components" / component.name)
        with self.log_path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(HASS), "-c", str(self.config_dir), "--skip-pip", stdout=log, stderr=subprocess.STDOUT
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with aiohttp.ClientSession() as session:
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"hass exited ({self._proc.returncode}); see {self.log_path}")
                try:
                    async with session.get(self.url + "/api/onboarding") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise TimeoutError(f"hass did not answer within {within} s; see {self.log_path}")
                await asyncio.sleep(0.5)
            await self._onboard(session)

    async def _onboard(self, session: aiohttp.ClientSession) -> None:
        async with session.post(
            self.url + "/api/onboarding/users",
            json={
                "client_id": CLIENT_ID,
                "name": "Owner",
                "username": "owner",
                "password": "owner password 1",
                "language": self.language,
            },
        ) as response:
            response.raise_for_status()
            auth_code = (await response.json())["auth_code"]
        async with session.post(
            self.url + "/auth/token",
            data={"grant_type": "authorization_code", "code": auth_code, "client_id": CLIENT_ID},
        ) as response:
            response.raise_for_status()
            access = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        async with session.post(self.url + "/api/onboarding/core_config", json={}, headers=headers) as response:
            response.raise_for_status()
        async with session.ws_connect(self.url + "/api/websocket") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": access})
            assert (await ws.receive_json())["type"] == "auth_ok"
            await ws.send_json({"id": 1, "type": "auth/long_lived_access_token", "client_name": "tests", "lifespan": 1})
            self.token = (await ws.receive_json())["result"]
        # The owner's language, as hosting's provisioning sets it.
        await self.ws({"type": "config/core/update", "language": self.language})

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=body, headers=self.headers) as response,
        ):
            response.raise_for_status()
            return await response.json()

    async def ws(self, command: dict[str, Any]) -> Any:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url + "/api/websocket") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": self.token})
            assert (await ws.receive_json())["type"] == "auth_ok"
            await ws.send_json({"id": 1, **command})
            while True:
                message = await ws.receive_json()
                if message.get("id") == 1 and message["type"] == "result":
                    if not message["success"]:
                        raise RuntimeError(f"{command['type']}: {message['error']}")
                    return message["result"]

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/states/{entity_id}", headers=self.headers) as response,
        ):
            if response.status == 404:
                return None
            response.raise_for_status()
            result: dict[str, Any] = await response.json()
            return result

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self._proc.wait()
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
