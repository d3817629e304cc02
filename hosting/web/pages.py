"""The app's pages: one server-rendered template each, in the visitor's language, plus its ES module.

Pages carry no personal data (the access token is in the page's memory, so the data comes from the API
after the page loaded); they are the same for everyone and safe to serve without a login. Each page's
script checks the session and sends a visitor without one to the log-in page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp_jinja2
from aiohttp import web

from hosting.keys import SETTINGS_KEY
from hosting.provision import STEPS
from hosting.web.i18n import LANGUAGES, catalog, language_of, translator


@dataclass(frozen=True)
class Page:
    path: str
    name: str  # template `<name>.html` and script `static/js/pages/<name>.js`
    area: str  # "public", "household" or "operator": which navigation it shows


PAGES = (
    Page("/", "login", "public"),
    Page("/signup", "signup", "public"),
    Page("/home", "home", "household"),
    Page("/devices", "devices", "household"),
    Page("/usage", "usage", "household"),
    Page("/account", "account", "household"),
    Page("/operator", "users", "operator"),
    Page("/operator/instances", "instances", "operator"),
    Page("/operator/devices", "fleet", "operator"),
    Page("/operator/system", "system", "operator"),
    Page("/operator/history", "history", "operator"),
)
NAVIGATION = {
    "household": [p for p in PAGES if p.area == "household"],
    "operator": [p for p in PAGES if p.area == "operator"],
}


def _handler(page: Page) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def show(request: web.Request) -> web.Response:
        language = language_of(request)
        context = {
            "lang": language,
            "other_languages": [other for other in LANGUAGES if other != language],
            "t": translator(language),
            "strings": catalog(language),
            "page": page,
            "navigation": NAVIGATION.get(page.area, []),
            # What the home page's progress lists: Home Assistant's start, then each provisioning step.
            "phases": ["start", *STEPS],
            "demo_home": request.app[SETTINGS_KEY].demo_home,  # the sign-up form's default
        }
        response = aiohttp_jinja2.render_template(f"{page.name}.html", request, context)
        response.headers["Content-Language"] = language
        response.headers["Vary"] = "Accept-Language, Cookie"
        return response

    show.__name__ = f"page_{page.name}"
    return show


def add_routes(app: web.Application) -> None:
    for page in PAGES:
        app.router.add_get(page.path, _handler(page), name=f"page_{page.name}")
