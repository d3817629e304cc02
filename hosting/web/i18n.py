"""The app's two languages: Hungarian first, English second. Strings live in `i18n/<language>.json`, one
flat catalog per language with the same keys (a test checks), used by the templates and, embedded in each
page as JSON data, by the page's scripts.

The language is the `?lang=` of the request, else the `lang` cookie the language switch sets, else the
browser's first choice among ours (Accept-Language), else Hungarian.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from aiohttp import web

LANGUAGES = ("hu", "en")
DEFAULT = "hu"
_CATALOGS = Path(__file__).parent / "i18n"
_ACCEPT_ITEM = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


@functools.cache
def catalog(language: str) -> dict[str, str]:
    strings: dict[str, str] = json.loads((_CATALOGS / f"{language}.json").read_text(encoding="utf-8"))
    return strings


def from_accept_language(header: str) -> str | None:
    choices: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        match = _ACCEPT_ITEM.match(item)
        if not match:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        choices.append((-quality, position, match.group(1).lower()))
    for quality, _, language in sorted(choices):
        if quality < 0 and language in LANGUAGES:
            return language
    return None


def language_of(request: web.Request) -> str:
    for candidate in (request.query.get("lang"), request.cookies.get("lang")):
        if candidate in LANGUAGES:
            return candidate
    return from_accept_language(request.headers.get("Accept-Language", "")) or DEFAULT


def translator(language: str) -> functools.partial[str]:
    return functools.partial(translate, catalog(language))


def translate(strings: dict[str, str], key: str, **values: object) -> str:
    text = strings.get(key, key)
    return text.format(**values) if values else text
