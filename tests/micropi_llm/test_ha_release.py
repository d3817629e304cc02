"""The integration loads and answers on the HA release our image ships (`.venv-ha`, HA 2026.11).

One real `hass` process: onboarded through its REST API, our entry configured through the
config-flow REST API against the Ollama wire-format server, then asked through
`/api/conversation/process`. The process is always stopped.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply

ROOT = Path(__file__).resolve().parents[2]
HASS = ROOT / ".venv-ha" / "bin" / "hass"
START_TIMEOUT = 120  # seconds; a cold start on two shared cores
ANSWER = "Szia, itt a MicroPi a 2026.11-es Home Assistantból."

CONFIGURATION = """
api:
config:
onboarding:
conversation:
intent:
input_boolean:
  kavefozo_tap:
    name: Kávéfőző táp
template:
  - switch:
      - name: Kávéfőző
        state: "{{ is_state('input_boolean.kavefozo_tap', 'on') }}"
        turn_on:
          action: input_boolean.turn_on
          target:
            entity_id: input_boolean.kavefozo_tap
        turn_off:
          action: input_boolean.turn_off
          target:
            entity_id: input_boolean.kavefozo_tap
logger:
  default: warning
  logs:
    custom_components.micropi_llm: debug
"""

pytestmark = pytest.mark.hass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _write_config(config: Path, port: int) -> None:
    """configuration.yaml, our integration, and the HTTP settings (in `.storage/http` since 2026.11)."""
    (config / "configuration.yaml").write_text(CONFIGURATION)
    shutil.copytree(
        ROOT / "custom_components" / "micropi_llm",
        config / "custom_components" / "micropi_llm",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    stable = {
        "server_port": port,
        "server_host": ["127.0.0.1"],
        "login_attempts_threshold": -1,
        "ip_ban_enabled": False,
        "use_x_frame_options": True,
        "ssl_profile": "intermediate_v6",
        "cors_allowed_origins": [],
        "created_at": datetime.now(UTC).isoformat(),
        "error": None,
        "error_message": None,
    }
    store = {
        "version": 3,
        "minor_version": 1,
        "key": "http",
        "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
    }
    (config / ".storage").mkdir()
    (config / ".storage" / "http").write_text(json.dumps(store))


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()


@pytest.fixture
async def hass_2026_11(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A running `hass` of the image's release; yields its base URL and log file."""
    if not HASS.exists():
        pytest.fail(f"{HASS} is missing: run `bash scripts/setup.sh`")
    port = _free_port()
    config = tmp_path / "config"
    config.mkdir()
    _write_config(config, port)
    log = tmp_path / "hass.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(HASS), "-c", str(config), "--skip-pip", stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
        )
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        await _stop(process)
        sys.stdout.write(_tail(log))


async def _wait_up(session: aiohttp.ClientSession, base: str, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with session.get(f"{base}/api/onboarding") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if "Error during setup of component http" in _tail(log):
            break  # it will never answer
        await asyncio.sleep(0.5)
    pytest.fail(f"hass did not answer (waited up to {START_TIMEOUT} s); log:\n{_tail(log)}")


async def _token(session: aiohttp.ClientSession, base: str) -> str:
    """Onboard the owner, then trade the auth code for an access token."""
    client_id = f"{base}/"
    async with session.post(
        f"{base}/api/onboarding/users",
        json={
            "client_id": client_id,
            "name": "Teszt",
            "username": "teszt",
            "password": "teszt-jelszo-1",
            "language": "hu",
        },
    ) as response:
        assert response.status == 200, await response.text()
        code = (await response.json())["auth_code"]
    async with session.post(
        f"{base}/auth/token", data={"grant_type": "authorization_code", "code": code, "client_id": client_id}
    ) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["access_token"]
    return token


async def _post(session: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
        text = await response.text()
        assert response.status == 200, f"{url}: {response.status} {text}"
        result: dict[str, Any] = json.loads(text)
        return result


async def test_configures_and_answers_on_the_image_release(hass_2026_11: tuple[str, Path]) -> None:
    base, log = hass_2026_11
    async with (
        OllamaWireServer(responder=lambda _body: Reply(ANSWER)) as wire,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        await _wait_up(session, base, log)
        token = await _token(session, base)
        flows = f"{base}/api/config/config_entries/flow"

        step = await _post(session, flows, token, {"handler": "micropi_llm"})
        assert step["step_id"] == "user", step
        step = await _post(session, f"{flows}/{step['flow_id']}", token, {"url": wire.url})
        assert step["step_id"] == "model", step
        step = await _post(session, f"{flows}/{step['flow_id']}", token, {"model": DEFAULT_MODEL})
        assert step["type"] == "create_entry", step
        assert step["result"]["state"] == "loaded", step

        answer = await _post(
            session,
            f"{base}/api/conversation/process",
            token,
            {"text": "Mesélj egy viccet!", "language": "hu", "agent_id": "conversation.micropi"},
        )
        assert answer["response"]["speech"]["plain"]["speech"] == ANSWER, answer
        [request] = wire.requests
        assert request["messages"][-1] == {"role": "user", "content": "Mesélj egy viccet!"}
        assert "- Kávéfőző [switch] off" in request["messages"][0]["content"]  # exposed by default
        assert "táp" not in request["messages"][0]["content"]  # input_boolean: not exposed by default
        # HA's own overview (without states) is replaced by ours, and its state tool is not needed.
        assert "Static Context" not in request["messages"][0]["content"]
        tools = {tool["function"]["name"] for tool in request["tools"]}
        assert "intent__HassTurnOn" in tools and not any(name.endswith("GetLiveContext") for name in tools)

        # HA's own sentence, matched locally: the model is not asked.
        answer = await _post(
            session,
            f"{base}/api/conversation/process",
            token,
            {"text": "Kapcsold be a kávéfőzőt", "language": "hu", "agent_id": "conversation.micropi"},
        )
        assert answer["response"]["response_type"] == "action_done", answer
        assert len(wire.requests) == 1
        async with session.get(
            f"{base}/api/states/switch.kavefozo", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert (await response.json())["state"] == "on"
