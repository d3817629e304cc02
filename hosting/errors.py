"""One error shape for every failure: `{"error": {"code", "message"}, "request_id"}` with an honest status.

Handlers raise `ApiError`; `hosting.middleware` turns it, aiohttp's own HTTP errors (404, 405, 413, ...)
and anything unexpected into that shape. Every response carries `X-Request-ID`, which is also in the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import asyncpg
from aiohttp import web
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

_LOGGER = logging.getLogger(__name__)

REQUEST_ID_KEY = web.RequestKey("request_id", str)
REQUEST_ID_HEADER = "X-Request-ID"
# The error code a response carried, for the access log.
ERROR_CODE_KEY = web.RequestKey("error_code", str)

# Codes for aiohttp's own HTTP errors.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


# The database is unreachable, gone or shutting down (asyncpg raises some of these unwrapped on connect).
_DATABASE_DOWN = (
    OperationalError,
    PoolTimeoutError,
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


class ApiError(Exception):
    """An expected failure, sent to the client as it is."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    request: web.Request, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    request[ERROR_CODE_KEY] = code  # for the access log's one line
    body = {"error": {"code": code, "message": message}, "request_id": request.get(REQUEST_ID_KEY, "")}
    return web.json_response(body, status=status, headers=headers)


def error_for_exception(request: web.Request, err: Exception) -> web.Response:
    """The one error shape for anything a handler raised. A caller's mistake is a 4xx and the access log's
    line; only our own bugs (500) are logged with a traceback."""
    request_id = request.get(REQUEST_ID_KEY, "")
    match err:
        case ApiError():
            return error_response(request, err.status, err.code, err.message, err.headers)
        case web.HTTPException():
            message = err.text if err.text and err.text != f"{err.status}: {err.reason}" else err.reason
            if err.status in (404, 405):
                message = f"{message}: {request.method} {request.path}; the API is described at /api/openapi.json"
            headers = {k: v for k, v in err.headers.items() if k in {"Allow", "Retry-After"}}
            return error_response(request, err.status, _HTTP_CODES.get(err.status, "http_error"), message, headers)
        case _ if isinstance(err, _DATABASE_DOWN) or (isinstance(err, DBAPIError) and err.connection_invalidated):
            _LOGGER.warning("request %s: database unavailable: %s", request_id, type(err).__name__)
            message = "the database is unreachable; try again shortly"
            return error_response(request, 503, "database_unavailable", message)
        case _:
            _LOGGER.exception("request %s failed", request_id)
            return error_response(request, 500, "internal_error", "unexpected error; quote the request id to support")
