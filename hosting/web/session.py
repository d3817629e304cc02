"""The browser's session: the refresh token in a cookie the page's scripts cannot read.

A browser asks for this with `X-MicroPi-Session: cookie` on log-in, sign-up, refresh and password change:
the refresh token then travels only in `micropi_refresh` (HttpOnly, SameSite=Strict, Path=/api/auth/refresh,
Secure under HTTPS) and is left out of the JSON; the access token stays in the page's memory. The refresh
endpoint takes the cookie (POST: a new pair; DELETE: log out), and because a cookie is sent by the browser
on its own, every call it authenticates must come from our own origin (the Origin header is checked).
API clients (curl, the Pi) keep sending the refresh token in the body and get it back in the body.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from hosting.errors import ApiError
from hosting.keys import SETTINGS_KEY

REFRESH_COOKIE = "micropi_refresh"
REFRESH_PATH = "/api/auth/refresh"
SESSION_HEADER = "X-MicroPi-Session"


def wants_cookie(request: web.Request) -> bool:
    return request.headers.get(SESSION_HEADER, "").lower() == "cookie"


def from_trusted_proxy(request: web.Request) -> bool:
    """The peer is one of `MICROPI_TRUSTED_PROXIES`: its X-Forwarded-Proto/-Host say what the browser used."""
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(peer in network for network in request.app[SETTINGS_KEY].trusted_proxies)


def forwarded(request: web.Request, header: str) -> str:
    """A forwarding header's first value, from a trusted proxy only ("" otherwise)."""
    return request.headers.get(header, "").split(",")[0].strip().lower() if from_trusted_proxy(request) else ""


def is_https(request: web.Request) -> bool:
    # Behind the production reverse proxy TLS ends there; it says so in X-Forwarded-Proto.
    return request.secure or forwarded(request, "X-Forwarded-Proto") == "https"


def check_origin(request: web.Request) -> None:
    """A cookie-authenticated call must come from a page of ours: its Origin's host is the one it was sent to
    (behind a trusted reverse proxy that rewrites Host: the one in its X-Forwarded-Host).

    Browsers always send Origin on POST/DELETE fetches and no page can forge it (nor add X-Forwarded-Host
    to a request it may send without asking); a missing Origin is refused."""
    origin = request.headers.get(hdrs.ORIGIN, "")
    host = urlsplit(origin).netloc.lower() if origin and origin != "null" else ""
    ours = {request.host.lower()}
    if proxied_host := forwarded(request, "X-Forwarded-Host"):
        ours.add(proxied_host)
    if not host or host not in ours:
        raise ApiError(
            403,
            "cross_origin",
            "this call uses the session cookie, so it must come from the MicroPi app's own pages "
            f"(Origin {origin or 'missing'} is not {request.host})",
        )


def refresh_token_from_cookie(request: web.Request) -> str | None:
    """The cookie's refresh token (its Origin checked), or None when there is no cookie."""
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        return None
    check_origin(request)
    return token


def set_refresh_cookie(request: web.Request, response: web.StreamResponse, token: str, max_age: int) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        path=REFRESH_PATH,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def clear_refresh_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(REFRESH_COOKIE, path=REFRESH_PATH, secure=is_https(request), httponly=True, samesite="Strict")


def tokens_response(
    request: web.Request, body: dict[str, Any], tokens: dict[str, Any], status: int = 200, *, cookie: bool = False
) -> web.Response:
    """`body` (which holds `tokens`) as JSON; for a browser session (asked for, or `cookie`: the call was
    authenticated by the cookie) the refresh token goes to the cookie."""
    if not (cookie or wants_cookie(request)):
        return web.json_response(body, status=status)
    check_origin(request)
    refresh = tokens.pop("refresh_token")
    response = web.json_response(body, status=status)
    set_refresh_cookie(request, response, refresh, int(tokens["refresh_expires_in"]))
    return response
