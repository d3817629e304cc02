"""The satellite against real Wyoming peers: a client speaking HA's side of the protocol, a real wake word
service, real microphone and speaker processes."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from micropi_edge.satellite import SatelliteSettings, WyomingSatellite
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played
from wyoming.wake import Detection

from .device import read_until
from .peers import WAKE_WORD, CountingWakeService, mic_command, speaker_command


@pytest.fixture
async def wake() -> AsyncIterator[CountingWakeService]:
    service = CountingWakeService(chunks_to_detect=5)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def satellite(wake: CountingWakeService, tmp_path: Path) -> AsyncIterator[tuple[WyomingSatellite, int]]:
    settings = SatelliteSettings(
        name="Living room",
        area="living room",
        mic_command=mic_command(),
        snd_command=speaker_command(tmp_path / "played.raw"),
        wake_uri=wake.uri,
        wake_word=WAKE_WORD,
    )
    sat = WyomingSatellite(settings)
    port = await sat.start("127.0.0.1", 0)
    yield sat, port
    await sat.stop()


async def test_describe_and_ping(satellite: tuple[WyomingSatellite, int]) -> None:
    _, port = satellite
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event, _ = await read_until(client, "info", within=1.0)  # HA gives describe 1-5 s
        info = Info.from_event(event)
        assert info.satellite is not None
        assert info.satellite.installed
        assert info.satellite.name == "Living room"
        assert info.satellite.area == "living room"

        for text in ("a", "b"):
            await client.write_event(Ping(text=text).event())
            event, _ = await read_until(client, "pong", within=1.0)
            assert Pong.from_event(event).text == text


async def test_wake_word_streams_command_and_plays_answer(
    satellite: tuple[WyomingSatellite, int], wake: CountingWakeService, tmp_path: Path
) -> None:
    _, port = satellite
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(RunSatellite().event())

        event, _ = await read_until(client, "detection")
        assert Detection.from_event(event).name == WAKE_WORD
        assert wake.requested_names[0] == [WAKE_WORD]
        event, _ = await read_until(client, "run-pipeline")
        run = RunPipeline.from_event(event)
        assert run.start_stage == PipelineStage.ASR
        assert run.end_stage == PipelineStage.TTS

        # The command's audio streams to "HA" until it sends the transcript.
        event, _ = await read_until(client, "audio-start")
        chunks = 0
        while chunks < 5:
            event, _ = await read_until(client, "audio-chunk")
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (16000, 2, 1)
            assert len(chunk.audio) == 2048
            chunks += 1
        await client.write_event(Transcript(text="turn on the kitchen light").event())

        # The answer: 0.5 s of 22.05 kHz audio, as HA sends TTS; the speaker gets it at 16 kHz.
        samples = [int(6000 * math.sin(2 * math.pi * 300 * i / 22050)) for i in range(11025)]
        tts = struct.pack(f"<{len(samples)}h", *samples)
        await client.write_event(AudioStart(rate=22050, width=2, channels=1).event())
        for start in range(0, len(tts), 2048):
            await client.write_event(
                AudioChunk(rate=22050, width=2, channels=1, audio=tts[start : start + 2048]).event()
            )
        await client.write_event(AudioStop().event())
        event, _ = await read_until(client, "played")
        assert Played.is_type(event.type)

        played = (tmp_path / "played.raw").read_bytes()
        # 0.5 s at 16 kHz 16-bit mono, give or take the resampler's edges.
        assert abs(len(played) - 16000) < 400, len(played)
        assert max(abs(v) for (v,) in struct.iter_unpack("<h", played)) > 3000

        # After the transcript the satellite listens for the wake word again, and wakes again.
        event, _ = await read_until(client, "detection")
        assert wake.detections >= 2


async def test_pause_stops_listening(satellite: tuple[WyomingSatellite, int], wake: CountingWakeService) -> None:
    _, port = satellite
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(RunSatellite().event())
        await read_until(client, "detection")
        await client.write_event(PauseSatellite().event())
        await asyncio.sleep(0.3)  # let in-flight chunks drain
        detections = wake.detections
        # Paused: no more wake words or audio, but pings are still answered.
        await client.write_event(Ping(text="still there").event())
        await read_until(client, "pong", within=1.0)
        await asyncio.sleep(1.0)
        assert wake.detections == detections
        await client.write_event(Ping(text="again").event())
        _, seen = await read_until(client, "pong", within=1.0)
        assert [e.type for e in seen] == []


async def test_new_connection_takes_over_the_microphone(
    satellite: tuple[WyomingSatellite, int], wake: CountingWakeService
) -> None:
    _, port = satellite
    async with AsyncTcpClient("127.0.0.1", port) as first:
        await first.write_event(RunSatellite().event())
        await read_until(first, "detection")
        async with AsyncTcpClient("127.0.0.1", port) as second:
            await second.write_event(RunSatellite().event())
            await read_until(second, "detection")
            # The first connection keeps answering pings but no longer gets wake words.
            await asyncio.sleep(0.3)
            await first.write_event(Ping(text="x").event())
            _, seen = await read_until(first, "pong", within=2.0)
            await first.write_event(Ping(text="y").event())
            _, seen = await read_until(first, "pong", within=2.0)
            assert "detection" not in [e.type for e in seen]
