"""MicroPi's own sentence templates, merged over Home Assistant's for local matching.

HA extends its matcher with custom sentences: hassil templates with lists, expansion rules and
wildcards in the home-assistant/intents format. We ship ours for the words households use that
HA's templates lack (`sentences/<language>/`, one file per domain and intent as upstream, with
`_common.yaml` for our rules and lists). They name HA's own intents and slots and reuse HA's rules,
so they can only add matches, and could be contributed upstream as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from hassil.intents import Intents, SlotList
from hassil.recognize import RecognizeResult, recognize_best
from hassil.util import merge_dict

SENTENCES_DIR = Path(__file__).parent / "sentences"

# Metadata every template of ours carries, so a match can tell where it came from.
METADATA_OURS = "micropi_sentence"
# Metadata of a template that names one thing without a name ("the TV"): act only if exactly one
# entity is meant, never on all of them.
METADATA_SINGLE_TARGET = "single_target"


def load_sentences(language: str, folder: Path = SENTENCES_DIR) -> dict[str, Any] | None:
    """Our templates for a language (`folder/<language>/*.yaml`) as one intents dict; None if none.

    Reads files: call it in an executor.
    """
    language_dir = folder / language.split("-", maxsplit=1)[0].casefold()
    files = sorted(language_dir.glob("*.yaml")) if language_dir.is_dir() else []
    if not files:
        return None
    merged: dict[str, Any] = {}
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an intents file (language, intents, lists, expansion_rules)")
        for known_intent in (data.get("intents") or {}).values():
            for block in known_intent.get("data") or []:
                block["metadata"] = {**(block.get("metadata") or {}), METADATA_OURS: True}
        merge_dict(merged, data)
    return merged


def with_sentences(base: Mapping[str, Any], ours: Mapping[str, Any]) -> Intents:
    """HA's intents for a language (its intents dict) with our templates, rules and lists added."""
    merged = copy.deepcopy(dict(base))
    merge_dict(merged, copy.deepcopy(dict(ours)))
    return Intents.from_dict(merged)


def recognize(
    text: str,
    intents: Intents,
    slot_lists: Mapping[str, SlotList],
    intent_context: dict[str, Any] | None,
    language: str,
) -> RecognizeResult | None:
    """The best match, as HA's default agent picks it, except that our templates come first.

    Where one of ours and one of HA's match the same words, ours is the more specific reading
    ("hány fok van a teraszon" asks the terrace's sensor, not a thermostat there is none of).
    """
    return recognize_best(
        text,
        intents,
        slot_lists=dict(slot_lists),
        intent_context=intent_context,
        language=language,
        best_metadata_key=METADATA_OURS,
        best_slot_name="name",
    )


def best_match(
    text: str, rewritten: Iterable[str], attempt: Callable[[str], RecognizeResult | None]
) -> tuple[str, RecognizeResult] | None:
    """The sentence as typed, else a rewrite of it, matched by `attempt`; a device beats a room.

    Typed, "kapcsold fel a konyhai lámpát" reads only as the kitchen's lights (the templates
    cannot lengthen "lámpa" into "lámpát"); the first, cautious rewrite finds the light named
    "Konyhai lámpa", and a reading by a device's name is taken over one by a room. Later
    rewrites (names over template words) are tried only when nothing matched.
    """
    typed = attempt(text)
    if typed is not None and "name" in typed.entities:
        return text, typed
    for position, rewrite in enumerate(rewritten):
        result = attempt(rewrite)
        if typed is None and result is not None:
            return rewrite, result
        if typed is not None:
            if position == 0 and result is not None and "name" in result.entities:
                return rewrite, result
            break
    return None if typed is None else (text, typed)
