"""The Wyoming satellite: Home Assistant's `wyoming` integration connects to it and drives it.

What HA sends and expects (homeassistant/components/wyoming/assist_satellite.py):
`describe` -> `info` with a `satellite`; `ping` every few seconds -> `pong` within 5 s (else HA drops the
connection); `run-satellite` when HA is ready, `pause-satellite` when muted or stopping. After a wake word
the satellite sends `detection` + `run-pipeline` and streams microphone `audio-chunk`s until HA answers
with `transcript` (or `error`); HA then streams the spoken answer (`audio-start`, chunks, `audio-stop`),
which is played through the speaker command, and the satellite answers `played`.

Only one HA connection drives the microphone at a time: a newer `run-satellite` takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import socket
import time
from dataclasses import dataclass, field

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Attribution, Describe, Info, Satellite
from wyoming.mic import MicProcessAsyncClient
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played, SndProcessAsyncClient
from wyoming.wake import Detect, Detection

from . import __version__

_LOGGER = logging.getLogger(__name__)

RATE = 16000
WIDTH = 2
CHANNELS = 1
# Seconds to wait before reconnecting to the wake word service after it went away.
_WAKE_RETRY_SECONDS = 2.0
# Longest a command may be streamed to HA without a transcript (HA's own VAD normally ends it first).
_MAX_STREAM_SECONDS = 30.0


@dataclass
class SatelliteSettings:
    """How the satellite presents itself and where its audio comes from and goes to."""

    name: str = "MicroPi satellite"
    area: str | None = None
    mic_command: list[str] = field(
        default_factory=lambda: shlex.split("arecord -q -D default -r 16000 -c 1 -f S16_LE -t raw")
    )
    snd_command: list[str] = field(
        default_factory=lambda: shlex.split("aplay -q -D default -r 16000 -c 1 -f S16_LE -t raw")
    )
    wake_uri: str = "tcp://127.0.0.1:10400"
    wake_word: str | None = None  # None: any model the wake service offers
    samples_per_chunk: int = 1024


class WyomingSatellite:
    """State shared by all HA connections: the microphone loop and the connection that owns it."""

    def __init__(self, settings: SatelliteSettings) -> None:
        self.settings = settings
        self._owner: _Connection | None = None
        self._mic_task: asyncio.Task[None] | None = None
        # Set while HA should receive microphone audio (after a wake word, until the transcript).
        self._streaming = asyncio.Event()
        self._stream_done = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self.pings_answered = 0  # HA pings every few seconds; a count that stops growing means trouble
        self.last_transcript: tuple[float, str] | None = None  # (monotonic time, text): what HA heard

    @property
    def connections(self) -> int:
        """HA connections open now (through the relay, each is one tunnel)."""
        return len(self._connections)

    def info(self) -> Info:
        return Info(
            satellite=Satellite(
                name=self.settings.name,
                area=self.settings.area,
                description="MicroPi Raspberry Pi satellite",
                attribution=Attribution(name="MicroPi", url="https://github.com/micropi"),
                installed=True,
                version=__version__,
                has_vad=False,
                supports_trigger=False,
            )
        )

    # --- the TCP server -------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen for HA (directly or through the relay); returns the bound port (port 0 picks one)."""
        self._server = await asyncio.start_server(self._on_connect, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()
        # Closed, each connection reads EOF and ends on its own (cancelling them upsets Python 3.11's streams).
        if self._connection_tasks:
            await asyncio.wait(self._connection_tasks, timeout=5)
        await self._stop_mic()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._connection_tasks.add(task)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            if task is not None:
                self._connection_tasks.discard(task)
            if self._owner is connection:
                self._owner = None
                await self._stop_mic()

    # --- the microphone loop ----------------------------------------------------------------------

    async def take_over(self, connection: _Connection) -> None:
        """`run-satellite`: this connection now gets wake words and audio."""
        await self._stop_mic()
        self._owner = connection
        self._mic_task = asyncio.create_task(self._mic_loop(connection), name="micropi mic loop")

    async def release(self, connection: _Connection) -> None:
        """`pause-satellite` or disconnect: stop listening for this connection."""
        if self._owner is connection:
            self._owner = None
            await self._stop_mic()

    def end_stream(self) -> None:
        """HA has the command (transcript or error): stop streaming, listen for the wake word again."""
        self._streaming.clear()
        self._stream_done.set()

    async def _stop_mic(self) -> None:
        self._streaming.clear()
        task, self._mic_task = self._mic_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _mic_loop(self, connection: _Connection) -> None:
        settings = self.settings
        mic = MicProcessAsyncClient(
            rate=RATE,
            width=WIDTH,
            channels=CHANNELS,
            samples_per_chunk=settings.samples_per_chunk,
            program=settings.mic_command[0],
            program_args=settings.mic_command[1:],
        )
        await mic.connect()
        try:
            while True:
                detection = await self._wait_for_wake_word(mic)
                if detection is None:
                    _LOGGER.warning("Microphone command ended: %s", shlex.join(settings.mic_command))
                    return
                _LOGGER.info("Wake word %s detected", detection.name)
                await connection.send(detection.event())
                await connection.send(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event())
                if not await self._stream_command(mic, connection):
                    return
        finally:
            await mic.disconnect()

    async def _wait_for_wake_word(self, mic: MicProcessAsyncClient) -> Detection | None:
        """Feed the microphone to the wake word service until it detects; None when the mic ends."""
        while True:
            try:
                async with AsyncClient.from_uri(self.settings.wake_uri) as wake:
                    names = [self.settings.wake_word] if self.settings.wake_word else None
                    await wake.write_event(Detect(names=names).event())
                    await wake.write_event(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
                    result = await _feed_until_detection(mic, wake)
                    if result is not _WAKE_GONE:
                        return result if isinstance(result, Detection) else None
            except OSError as err:
                _LOGGER.warning("Wake word service %s unreachable (%s); retrying", self.settings.wake_uri, err)
            await asyncio.sleep(_WAKE_RETRY_SECONDS)

    async def _stream_command(self, mic: MicProcessAsyncClient, connection: _Connection) -> bool:
        """Stream the spoken command to HA until it ends the stream; False when the mic ended."""
        self._stream_done.clear()
        self._streaming.set()
        await connection.send(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _MAX_STREAM_SECONDS
        while self._streaming.is_set() and loop.time() < deadline:
            event = await mic.read_event()
            if event is None:
                return False
            await connection.send(event)
        if self._streaming.is_set():
            # No transcript in time: tell HA the audio is over so its pipeline finishes.
            self._streaming.clear()
            await connection.send(AudioStop().event())
        return True


_WAKE_GONE = object()


async def _feed_until_detection(mic: MicProcessAsyncClient, wake: AsyncClient) -> object:
    """Returns a Detection, None (mic ended), or _WAKE_GONE (the wake service disconnected)."""
    wake_event = asyncio.create_task(wake.read_event())
    try:
        while True:
            mic_event = asyncio.create_task(mic.read_event())
            done, _ = await asyncio.wait({wake_event, mic_event}, return_when=asyncio.FIRST_COMPLETED)
            if wake_event in done:
                mic_event.cancel()
                event = wake_event.result()
                if event is None:
                    return _WAKE_GONE
                if Detection.is_type(event.type):
                    return Detection.from_event(event)
                wake_event = asyncio.create_task(wake.read_event())  # e.g. not-detected: keep listening
                if mic_event not in done:
                    continue
            chunk = mic_event.result()
            if chunk is None:
                return None
            await wake.write_event(chunk)
    finally:
        wake_event.cancel()


class _Connection:
    """One HA connection: answers its events and plays what it sends to the speaker."""

    def __init__(self, satellite: WyomingSatellite, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.satellite = satellite
        self.reader = reader
        self.writer = writer
        self._write_lock = asyncio.Lock()
        self._speaker: SndProcessAsyncClient | None = None

    async def send(self, event: Event) -> None:
        async with self._write_lock:
            await async_write_event(event, self.writer)

    def close(self) -> None:
        self.writer.close()

    async def run(self) -> None:
        try:
            while (event := await async_read_event(self.reader)) is not None:
                await self.handle(event)
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("HA connection lost: %s", err)
        finally:
            await self.satellite.release(self)
            await self._close_speaker()
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    async def handle(self, event: Event) -> None:
        satellite = self.satellite
        if Ping.is_type(event.type):
            await self.send(Pong(text=Ping.from_event(event).text).event())
            satellite.pings_answered += 1
        elif Describe.is_type(event.type):
            await self.send(satellite.info().event())
        elif RunSatellite.is_type(event.type):
            await satellite.take_over(self)
        elif PauseSatellite.is_type(event.type):
            await satellite.release(self)
        elif Transcript.is_type(event.type) or Error.is_type(event.type):
            satellite.end_stream()
            if Transcript.is_type(event.type):
                text = Transcript.from_event(event).text
                satellite.last_transcript = (time.monotonic(), text)
                _LOGGER.info("HA heard: %s", text)
            if Error.is_type(event.type):
                _LOGGER.warning("Pipeline error from HA: %s", Error.from_event(event).text)
        elif AudioStart.is_type(event.type):
            await self._open_speaker()
        elif AudioChunk.is_type(event.type):
            if self._speaker is None:
                await self._open_speaker()
            assert self._speaker is not None
            await self._speaker.write_event(event)
        elif AudioStop.is_type(event.type):
            await self._close_speaker()
            await self.send(Played().event())
        else:
            _LOGGER.debug("Ignoring %s from HA", event.type)

    async def _open_speaker(self) -> None:
        await self._close_speaker()
        command = self.satellite.settings.snd_command
        self._speaker = SndProcessAsyncClient(
            rate=RATE, width=WIDTH, channels=CHANNELS, program=command[0], program_args=command[1:]
        )
        await self._speaker.connect()

    async def _close_speaker(self) -> None:
        """Closing the speaker's stdin lets it play out; waiting for it makes `played` honest."""
        speaker, self._speaker = self._speaker, None
        if speaker is not None:
            await speaker.disconnect()
