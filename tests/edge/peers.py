"""Real peers for the edge tests: a Wyoming wake word service, microphone and speaker commands.

The wake service speaks the real Wyoming protocol over TCP (what openWakeWord's Wyoming server speaks):
it receives `detect`, `audio-start` and `audio-chunk`s and answers `detection` after N chunks.
The microphone and speaker are real child processes that read/write raw 16 kHz 16-bit mono.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from wyoming.audio import AudioChunk
from wyoming.event import async_read_event, async_write_event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.wake import Detect, Detection

WAKE_WORD = "ok_nabu"


class CountingWakeService:
    """Detects the wake word after `chunks_to_detect` audio chunks of one detection session."""

    def __init__(self, chunks_to_detect: int = 5, armed: bool = True) -> None:
        self.chunks_to_detect = chunks_to_detect
        # Disarmed, it never detects (a test arms it when the speech is about to start); one detection
        # disarms it again when `once` is set.
        self.armed = armed
        self.once = False
        self.detections = 0
        self.requested_names: list[list[str] | None] = []
        self.uri = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.uri = f"tcp://127.0.0.1:{port}"
        return self.uri

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunks = 0
        try:
            while (event := await async_read_event(reader)) is not None:
                if Describe.is_type(event.type):
                    info = Info(
                        wake=[
                            WakeProgram(
                                name="counting-wake",
                                description="test wake word service",
                                attribution=Attribution(name="tests", url=""),
                                installed=True,
                                version="1",
                                models=[
                                    WakeModel(
                                        name=WAKE_WORD,
                                        description="ok nabu",
                                        attribution=Attribution(name="tests", url=""),
                                        installed=True,
                                        version="1",
                                        languages=["en"],
                                        phrase="ok nabu",
                                    )
                                ],
                            )
                        ]
                    )
                    await async_write_event(info.event(), writer)
                elif Detect.is_type(event.type):
                    self.requested_names.append(Detect.from_event(event).names)
                    chunks = 0
                elif AudioChunk.is_type(event.type):
                    chunks += 1
                    if self.armed and chunks >= self.chunks_to_detect:
                        chunks = -(10**9)  # one detection per session
                        if self.once:
                            self.armed = False
                        self.detections += 1
                        await async_write_event(Detection(name=WAKE_WORD, timestamp=0).event(), writer)
        except ConnectionError:
            pass
        finally:
            writer.close()


def mic_command(seconds: float = 60.0, pace: bool = True) -> list[str]:
    """A microphone: writes a 440 Hz tone as raw 16 kHz 16-bit mono, paced like a real one."""
    script = (
        "import math, struct, sys, time\n"
        f"seconds, pace = {seconds!r}, {pace!r}\n"
        "chunk = b''.join(struct.pack('<h', int(8000 * math.sin(2 * math.pi * 440 * i / 16000)))"
        " for i in range(1024))\n"
        "for _ in range(int(seconds * 16000 / 1024)):\n"
        "    sys.stdout.buffer.write(chunk); sys.stdout.buffer.flush()\n"
        "    if pace: time.sleep(1024 / 16000)\n"
    )
    return [sys.executable, "-c", script]


def speech_mic_command(speech_file: Path, trigger_file: Path) -> list[str]:
    """A microphone in a quiet room where someone speaks once: paced silence, and once `trigger_file`
    exists, the raw 16 kHz speech of `speech_file`, then silence again."""
    script = (
        "import pathlib, sys, time\n"
        f"speech = pathlib.Path({str(speech_file)!r}).read_bytes()\n"
        f"trigger = pathlib.Path({str(trigger_file)!r})\n"
        "silence, said, start = bytes(2048), False, time.monotonic()\n"
        "n = 0\n"
        "while True:\n"
        "    if not said and trigger.exists():\n"
        "        said = True\n"
        "        for i in range(0, len(speech), 2048):\n"
        "            sys.stdout.buffer.write(speech[i:i + 2048].ljust(2048, b'\\0')); sys.stdout.buffer.flush()\n"
        "            n += 1; time.sleep(max(0, start + n * 0.064 - time.monotonic()))\n"
        "    sys.stdout.buffer.write(silence); sys.stdout.buffer.flush()\n"
        "    n += 1; time.sleep(max(0, start + n * 0.064 - time.monotonic()))\n"
    )
    return [sys.executable, "-c", script]


def speaker_command(out_file: Path) -> list[str]:
    """A speaker: appends what it is given to `out_file` (one file per run, so plays are countable)."""
    script = (
        "import sys, pathlib\n"
        f"data = sys.stdin.buffer.read()\n"
        f"path = pathlib.Path({str(out_file)!r})\n"
        "with path.open('ab') as f: f.write(data)\n"
    )
    return [sys.executable, "-c", script]


class SpeechServiceInfo:
    """A Wyoming speech service that only describes itself (speech-to-text or text-to-speech), as the
    central faster-whisper and piper services do; enough for HA to create its stt./tts. entity."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self._server: asyncio.Server | None = None
        self.uri = ""

    def info(self) -> Info:
        from wyoming.info import AsrModel, AsrProgram, TtsProgram, TtsVoice

        attribution = Attribution(name="tests", url="")
        if self.kind == "stt":
            model = AsrModel(
                name="base", description="", attribution=attribution, installed=True, version="1", languages=["en"]
            )
            return Info(
                asr=[
                    AsrProgram(
                        name=self.name,
                        description="",
                        attribution=attribution,
                        installed=True,
                        version="1",
                        models=[model],
                    )
                ]
            )
        voice = TtsVoice(
            name="en_US-joe-medium",
            description="",
            attribution=attribution,
            installed=True,
            version="1",
            languages=["en"],
        )
        return Info(
            tts=[
                TtsProgram(
                    name=self.name, description="", attribution=attribution, installed=True, version="1", voices=[voice]
                )
            ]
        )

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.uri = f"tcp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.uri

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (event := await async_read_event(reader)) is not None:
                if Describe.is_type(event.type):
                    await async_write_event(self.info().event(), writer)
        except ConnectionError:
            pass
        finally:
            writer.close()
