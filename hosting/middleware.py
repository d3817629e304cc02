"""What every request passes through, in one middleware: request id, CORS, the error shape, metrics; and
the access log, one line per request.

One middleware rather than three: each aiohttp middleware layer is a coroutine frame and a closure per
request, and the profile of `bench.hosting_load` (GET /api/me) counted the three layers, uuid4 and the
default access-log format among the larger costs of a request once the database read was cheap.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import time

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from hosting import metrics
from hosting.errors import ERROR_CODE_KEY, REQUEST_ID_HEADER, REQUEST_ID_KEY, error_for_exception, error_response
from hosting.keys import SETTINGS_KEY
from hosting.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
_CORS_MAX_AGE = "600"
_EXPOSED_HEADERS = f"{REQUEST_ID_HEADER}, Retry-After"

# Request ids need to be unique, not secret: a random per-process prefix and a counter (32 hex digits).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    # A caller's own request id is kept when harmless (for tracing across services), else a fresh one.
    incoming = request.headers.get(REQUEST_ID_HEADER)
    request_id = incoming if incoming is not None and _SAFE_REQUEST_ID.match(incoming) else new_request_id()
    request[REQUEST_ID_KEY] = request_id
    client_address(request)  # resolved while the app is known, for the handlers and the access log
    origin = request.headers.get(hdrs.ORIGIN)
    allowed = origin is not None and origin.rstrip("/") in request.app[SETTINGS_KEY].cors_origins
    try:
        if request.method == hdrs.METH_OPTIONS and origin and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
            response: web.StreamResponse = _preflight(request, origin, allowed)
        else:
            response = await handler(request)
    except web.HTTPException as err:
        if err.status < 400:  # redirects and 2xx raised as exceptions pass through
            raise
        response = error_for_exception(request, err)
    except Exception as err:  # noqa: BLE001  # every failure becomes the one error shape
        response = error_for_exception(request, err)
    if not response.prepared:  # a streamed response (download, WebSocket) has sent its headers already
        headers = response.headers
        headers[REQUEST_ID_HEADER] = request_id
        if allowed:
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin  # type: ignore[assignment]  # allowed: not None
            headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = _EXPOSED_HEADERS
        if origin is not None:
            headers.add(hdrs.VARY, "Origin")
    metrics.observe_request(request, response.status, time.perf_counter() - started)
    return response


def _preflight(request: web.Request, origin: str, allowed: bool) -> web.Response:
    """CORS for the origins in `Settings.cors_origins` only (the API uses bearer tokens, no cookies)."""
    if not allowed:
        return error_response(
            request, 403, "cors_origin_denied", f"origin {origin} is not allowed; add it to MICROPI_CORS_ORIGINS"
        )
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, PUT, PATCH, DELETE",
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: _CORS_ALLOW_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: _CORS_MAX_AGE,
        },
    )


CLIENT_ADDRESS_KEY = web.RequestKey("client_address", str)


def client_address(request: web.BaseRequest) -> str:
    """The client's IP address. The peer's, unless the peer is one of `MICROPI_TRUSTED_PROXIES`: then the
    nearest address in X-Forwarded-For (or, without it, Forwarded) that is not itself a trusted proxy,
    read from the right - everything left of that was written by the client and proves nothing."""
    known: str | None = request.get(CLIENT_ADDRESS_KEY)
    if known is not None:
        return known
    peer = request.remote or ""
    address = peer
    trusted = request.app[SETTINGS_KEY].trusted_proxies if isinstance(request, web.Request) else ()
    if trusted and _is_trusted(peer, trusted):
        for hop in reversed(_forwarded_chain(request)):
            parsed = _ip(hop)
            if parsed is None:  # "unknown", an obfuscated name or garbage: the hop right of it is all we know
                break
            address = str(parsed)
            if not any(parsed in network for network in trusted):
                break
    request[CLIENT_ADDRESS_KEY] = address
    return address


def _forwarded_chain(request: web.BaseRequest) -> list[str]:
    forwarded_for = request.headers.getall(hdrs.X_FORWARDED_FOR, [])
    if forwarded_for:
        return [hop.strip() for header in forwarded_for for hop in header.split(",")]
    return [str(element.get("for", "")) for element in request.forwarded]


def _ip(text: str) -> IPAddress | None:
    """An address from a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, `2001:db8::1`."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(peer: str, trusted: tuple[IPNetwork, ...]) -> bool:
    parsed = _ip(peer)
    return parsed is not None and any(parsed in network for network in trusted)


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, request line, status, error code (if any), time, request id. A caller's
    mistake is this line and nothing more (no traceback); the text is escaped, so a caller cannot forge lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        code = request.get(ERROR_CODE_KEY, "-")
        self.logger.info(
            '%s "%s %s" %s %s %.1fms %s',
            request.get(CLIENT_ADDRESS_KEY, request.remote),  # not set: aiohttp refused the request itself
            request.method,
            ascii(request.path_qs)[1:-1],
            response.status,
            code,
            time * 1000,
            request.get(REQUEST_ID_KEY, "-"),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class ProtocolErrorsInOneLine(logging.Filter):
    """aiohttp logs each malformed HTTP request (a NUL in a header, a broken request line) at ERROR with a
    traceback: anyone could flood the log with them. A caller's mistake is one INFO line, like any other 4xx."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            detail = " ".join(str(error).split())
            record.msg, record.args = "%s: %s", (record.getMessage(), detail)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_protocol_errors() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ProtocolErrorsInOneLine) for f in logger.filters):
        logger.addFilter(ProtocolErrorsInOneLine())
