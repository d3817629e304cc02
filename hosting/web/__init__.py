"""The MicroPi web app, served by the hosting service at `/` on the API's own origin.

Server-rendered pages (aiohttp-jinja2, autoescaped) give every page its structure, labels and text in the
visitor's language; small plain ES modules under `static/js/` (no build step) fill in the data from the
JSON API, always as text (`textContent`), never as HTML. The access token lives only in the page's memory;
the refresh token in an HttpOnly cookie (hosting.web.session). Live updates come over one server-sent-event
stream per page (hosting.web.live), fed by the internal event bus (hosting.events).

`setup(app)` adds the pages, the static files, the live-update and history endpoints' services and the
security headers (a strict Content-Security-Policy without inline script, on every response).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from hosting.web import pages

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# No inline script or style anywhere: everything the browser runs or styles with comes from /static.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and streams included, carries the headers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"  # revalidated (Last-Modified), so a deploy shows at once
    elif response.content_type == "text/html":
        response.headers["Cache-Control"] = "no-store"


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    pages.add_routes(app)
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.on_response_prepare.append(security_headers)
