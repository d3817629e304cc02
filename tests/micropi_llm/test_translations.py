"""The integration's texts: strings.json and translations/en.json cannot drift apart, and nothing is untranslated."""

import json
from pathlib import Path
from typing import Any

from custom_components.micropi_llm.client import Failure

INTEGRATION = Path(__file__).parents[2] / "custom_components" / "micropi_llm"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((INTEGRATION / name).read_text(encoding="utf-8"))
    return loaded


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys |= _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return keys


def test_english_translation_is_strings_json() -> None:
    """HA serves translations/en.json, developers edit strings.json: they must be the same."""
    assert _load("translations/en.json") == _load("strings.json")


def test_hungarian_translates_every_text() -> None:
    english, hungarian = _keys(_load("strings.json")), _keys(_load("translations/hu.json"))
    assert english - hungarian == set(), "texts without a Hungarian translation"
    assert hungarian - english == set(), "Hungarian texts nothing uses"


def test_every_failure_can_be_spoken() -> None:
    exceptions = _load("strings.json")["exceptions"]
    assert {f"spoken_{failure.value}" for failure in Failure} <= set(exceptions)
