"""Talking to the Ollama server: the client, what each failure of a turn means, and the entry's runtime data."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import ollama
import pydantic
from homeassistant.config_entries import ConfigEntry
from homeassistant.util.ssl import get_default_context

from .const import CONNECT_TIMEOUT, TURN_STATS_KEPT
from .turn_report import TurnReporter

if TYPE_CHECKING:
    from .server_status import ServerStatus


class Failure(StrEnum):
    """What went wrong in a turn; each value is a translation key (errors, and `spoken_<value>` exceptions)."""

    CANNOT_CONNECT = "cannot_connect"
    INVALID_AUTH = "invalid_auth"
    MODEL_NOT_FOUND = "model_not_found"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    BROKEN_STREAM = "broken_stream"
    # A hosted gateway's limit or full queue (429/503 with Retry-After): "busy, try again in N seconds".
    BUSY = "busy"
    # Not the server's: an HA LLM API chosen for the agent is gone, or the model kept calling tools.
    LLM_API = "llm_api"
    TOOL_LOOP = "tool_loop"


class IncompleteStreamError(Exception):
    """The NDJSON stream ended without Ollama's final `done` chunk."""


class LLMAPIUnavailableError(Exception):
    """An HA LLM API chosen for the agent cannot be had (removed, or its integration not loaded)."""


class ToolLoopError(Exception):
    """The model was still calling tools when the agent's tool rounds ran out."""


def classify(err: BaseException) -> Failure:
    """Name the failure behind an exception raised during a turn (mostly while talking to Ollama)."""
    if isinstance(err, LLMAPIUnavailableError):
        return Failure.LLM_API
    if isinstance(err, ToolLoopError):
        return Failure.TOOL_LOOP
    if isinstance(err, ollama.ResponseError):
        if err.status_code == 429 or (err.status_code == 503 and retry_after(err) is not None):
            return Failure.BUSY
        if err.status_code == 503 and isinstance(err.error, dict) and err.error.get("code") == "no_backend":
            return Failure.CANNOT_CONNECT  # a hosted gateway whose model servers are all down: unreachable
        if err.status_code in (401, 403):
            return Failure.INVALID_AUTH
        if err.status_code == 404 and "model" in str(err.error).lower():
            return Failure.MODEL_NOT_FOUND
        if err.status_code == -1:  # an `{"error": ...}` line inside a 200 stream
            return Failure.BROKEN_STREAM
        if err.status_code == 404:  # something answers, but not Ollama's API
            return Failure.CANNOT_CONNECT
        return Failure.SERVER_ERROR
    if isinstance(err, (TimeoutError, httpx.TimeoutException)):
        return Failure.TIMEOUT
    if isinstance(err, (ConnectionError, httpx.ConnectError, httpx.UnsupportedProtocol, OSError)):
        return Failure.CANNOT_CONNECT
    if isinstance(err, (httpx.HTTPError, json.JSONDecodeError, pydantic.ValidationError, IncompleteStreamError)):
        return Failure.BROKEN_STREAM
    return Failure.SERVER_ERROR


def retry_after(err: BaseException) -> int | None:
    """The seconds a busy gateway asks us to wait (its error body's `retry_after`), if it said."""
    detail = err.error if isinstance(err, ollama.ResponseError) else None
    seconds = detail.get("retry_after") if isinstance(detail, dict) else None
    return seconds if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0 else None


def refused_by_operator(err: BaseException) -> bool:
    """A hosted gateway refused to pull: there the operator chooses the models (403 on /api/pull)."""
    return isinstance(err, ollama.ResponseError) and err.status_code == 403


# What `classify` understands; anything else is a bug of ours and should surface as one.
OLLAMA_ERRORS: tuple[type[BaseException], ...] = (
    ollama.ResponseError,
    ollama.RequestError,
    TimeoutError,
    ConnectionError,
    OSError,
    httpx.HTTPError,
    json.JSONDecodeError,
    pydantic.ValidationError,
    IncompleteStreamError,
)
# What ends a turn with a spoken error: the server's failures and the agent's own two.
TURN_ERRORS: tuple[type[BaseException], ...] = (*OLLAMA_ERRORS, LLMAPIUnavailableError, ToolLoopError)


def create_client(url: str, api_key: str | None) -> ollama.AsyncClient:
    """An Ollama client; the API key goes as a Bearer token (for a server behind a proxy)."""
    return ollama.AsyncClient(
        host=url,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
        # HA's shared SSL context: building one here would block the event loop.
        verify=get_default_context(),
    )


async def async_close(client: ollama.AsyncClient) -> None:
    """Close the client's connections (the `ollama` package leaves `close` untyped)."""
    await client.close()  # type: ignore[no-untyped-call]


async def async_list_models(client: ollama.AsyncClient) -> list[str]:
    """The names of the models the server has (`/api/tags`)."""
    async with asyncio.timeout(CONNECT_TIMEOUT):
        listed = await client.list()
    return [model.model for model in listed.models if model.model]


async def async_pull(client: ollama.AsyncClient, model: str, progress: Callable[[float], None]) -> None:
    """Pull a model, reporting the fraction done; an error line from the server raises."""
    async for status in await client.pull(model, stream=True):
        if status.total and status.completed is not None:
            progress(min(1.0, status.completed / status.total))


def redact_url(url: str) -> str:
    """The URL without user:password (safe for titles, logs and diagnostics)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"**REDACTED**@{host}", parts.path, parts.query, parts.fragment))


@dataclass(slots=True)
class TurnStats:
    """One model call's figures, from Ollama's final chunk (durations in milliseconds)."""

    agent: str
    model: str
    iteration: int
    prompt_eval_count: int | None
    eval_count: int | None
    total_ms: float | None
    load_ms: float | None
    prompt_eval_ms: float | None
    eval_ms: float | None
    wall_ms: float
    done_reason: str | None

    @classmethod
    def from_final(
        cls, agent: str, model: str, iteration: int, final: ollama.ChatResponse, wall_ms: float
    ) -> TurnStats:
        def ms(nanoseconds: int | None) -> float | None:
            return None if nanoseconds is None else round(nanoseconds / 1e6, 1)

        return cls(
            agent=agent,
            model=model,
            iteration=iteration,
            prompt_eval_count=final.prompt_eval_count,
            eval_count=final.eval_count,
            total_ms=ms(final.total_duration),
            load_ms=ms(final.load_duration),
            prompt_eval_ms=ms(final.prompt_eval_duration),
            eval_ms=ms(final.eval_duration),
            wall_ms=round(wall_ms, 1),
            done_reason=final.done_reason,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class MicroPiData:
    """What a loaded server entry holds (`entry.runtime_data`)."""

    client: ollama.AsyncClient
    status: ServerStatus
    reporter: TurnReporter
    turns: deque[TurnStats] = field(default_factory=lambda: deque(maxlen=TURN_STATS_KEPT))


type MicroPiConfigEntry = ConfigEntry[MicroPiData]
