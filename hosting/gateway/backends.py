"""The Ollama servers behind the gateway: health checks, the models each has, how busy each is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

_LOGGER = logging.getLogger(__name__)

# Weight of the newest measurement in the back-end's tokens-per-second average.
_TPS_WEIGHT = 0.2


def canonical_model(name: str) -> str:
    """Ollama's own normalisation: a name without a tag means `:latest`."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass(eq=False)
class Backend:
    url: str
    slots: int
    healthy: bool = False
    models: frozenset[str] = frozenset()
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)  # /api/tags entries by model name
    in_flight: int = 0
    queued: int = 0  # waiting requests that only this back-end could serve (for the operator's view)
    tokens_per_second: float | None = None
    last_error: str = ""
    checked_at: float = field(default=0.0)

    @property
    def free(self) -> bool:
        return self.healthy and self.in_flight < self.slots

    def has(self, model: str) -> bool:
        return canonical_model(model) in self.models

    def observe_final(self, final: dict[str, Any]) -> None:
        """Learn the generation speed from Ollama's final chunk."""
        count, duration = final.get("eval_count"), final.get("eval_duration")
        if isinstance(count, int) and isinstance(duration, int) and duration > 0 and count > 0:
            tps = count / (duration / 1e9)
            previous = self.tokens_per_second
            self.tokens_per_second = tps if previous is None else previous + _TPS_WEIGHT * (tps - previous)

    def view(self) -> dict[str, Any]:
        tps = self.tokens_per_second
        return {
            "url": self.url,
            "healthy": self.healthy,
            "in_flight": self.in_flight,
            "queued": self.queued,
            "slots": self.slots,
            "models": sorted(self.models),
            "tokens_per_second": None if tps is None else round(tps, 1),
            "last_error": self.last_error,
        }


class BackendPool:
    """Keeps each back-end's health and model list fresh (`/api/tags` every `interval` seconds)."""

    def __init__(
        self,
        urls: tuple[str, ...],
        slots: int,
        *,
        api_key: str = "",
        interval: float = 10.0,
        timeout: float = 5.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.backends = [Backend(url.rstrip("/"), slots) for url in urls]
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.interval = interval
        self.timeout = timeout
        self.on_change = on_change
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # No total timeout: an answer streams for as long as the model writes; each read has one.
            self._http = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=120),
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                auto_decompress=False,
            )
        return self._http

    async def start(self) -> None:
        await self.check_all()
        self._task = asyncio.create_task(self._loop(), name="gateway-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    def models(self) -> set[str]:
        return {m for b in self.backends if b.healthy for m in b.models}

    def mark_failed(self, backend: Backend, error: str) -> None:
        """A request found the back-end dead: stop sending it work until a health check finds it back."""
        if backend.healthy:
            _LOGGER.warning("gateway: back-end %s failed: %s", backend.url, error)
        backend.healthy = False
        backend.last_error = error
        self._wake.set()  # check again soon, not in `interval` seconds
        self.on_change()

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(b) for b in self.backends))
        self.on_change()

    async def _check(self, backend: Backend) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                async with self.http.get(f"{backend.url}/api/tags") as response:
                    response.raise_for_status()
                    listing = await response.json(content_type=None)
            entries = {}
            for entry in listing.get("models", []):
                name = entry.get("model") or entry.get("name")
                if isinstance(name, str) and name:
                    entries[canonical_model(name)] = entry
            backend.listing = entries
            backend.models = frozenset(entries)
            if not backend.healthy:
                _LOGGER.info("gateway: back-end %s is up with %d models", backend.url, len(backend.models))
            backend.healthy = True
            backend.last_error = ""
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as err:
            if backend.healthy:
                _LOGGER.warning("gateway: back-end %s is down: %s", backend.url, type(err).__name__)
            backend.healthy = False
            backend.last_error = f"{type(err).__name__}: {err}"[:200]
        backend.checked_at = time.monotonic()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
                    await asyncio.sleep(0.2)  # a failed back-end is re-checked shortly after, not in a spin
            self._wake.clear()
            await self.check_all()
