"""How the bench decides pass/fail from states: snapshots, the changes between two, the expectation.

Rule (the home-assistant-datasets one, spelled out):
- every entity named in `expect_changes` must end with the state it gives and with each attribute it
  lists at the value it gives (other attributes of that entity may change with it: a light that
  turns on also reports a brightness);
- no other entity may change at all, state or attribute, unless `ignore_changes` names it
  (`entity: null` ignores the whole entity, `entity: [attr, ...]` those attributes); an ignored
  attribute is not checked on an expected entity either (only its state is, with `null`);
- with `expect_response`, the final answer must also contain one of its strings (case-insensitive).
Numbers compare with the rounding a device does (brightness 0-255 vs percent, volume 0-1);
temperatures compare exactly (a thermostat one degree off is not what was asked).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# Attributes whose numbers carry no rounding: set points and readings in degrees.
EXACT_ATTRIBUTES = frozenset({"temperature", "target_temp_high", "target_temp_low", "current_temperature"})

type Snapshot = dict[str, dict[str, Any]]
type Changes = dict[str, dict[str, Any]]


def snapshot_states(states: Iterable[Any]) -> Snapshot:
    """`{entity_id: {"state": str, "attributes": {...}}}` of HA `State` objects."""
    return {s.entity_id: {"state": s.state, "attributes": dict(s.attributes)} for s in states}


def changes(before: Snapshot, after: Snapshot) -> Changes:
    """What differs: `{entity_id: {"state": new, "attributes": {name: new}}}` (only the parts that changed)."""
    diff: Changes = {}
    for entity_id in sorted(set(before) | set(after)):
        old = before.get(entity_id, {"state": None, "attributes": {}})
        new = after.get(entity_id, {"state": None, "attributes": {}})
        entry: dict[str, Any] = {}
        if old["state"] != new["state"]:
            entry["state"] = new["state"]
        attributes = {
            name: new["attributes"].get(name)
            for name in set(old["attributes"]) | set(new["attributes"])
            if not same(old["attributes"].get(name), new["attributes"].get(name), exact=True)
        }
        if attributes:
            entry["attributes"] = attributes
        if entry:
            diff[entity_id] = entry
    return diff


def same(expected: Any, actual: Any, *, exact: bool = False) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(expected) == bool(actual) and type(expected) is type(actual)
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if exact:
            return expected == actual
        # Brightness/percent round by one step; fractions (volume) by a hundredth.
        tolerance = 0.011 if max(abs(expected), abs(actual)) <= 1 else 1.0
        return math.isclose(expected, actual, abs_tol=tolerance)
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return len(expected) == len(actual) and all(
            same(e, a, exact=exact) for e, a in zip(expected, actual, strict=True)
        )
    if expected is None or actual is None:
        return expected is actual
    if not exact and isinstance(expected, str | int | float) and isinstance(actual, str | int | float):
        return str(expected).lower() == str(actual).lower()
    equal: bool = expected == actual
    return equal


def without_ignored(diff: Changes, ignore: Mapping[str, list[str] | None]) -> Changes:
    kept: Changes = {}
    for entity_id, entry in diff.items():
        if entity_id in ignore and ignore[entity_id] is None:
            continue
        ignored = set(ignore.get(entity_id) or ())
        new_entry = dict(entry)
        if "attributes" in entry:
            attributes = {k: v for k, v in entry["attributes"].items() if k not in ignored}
            if attributes:
                new_entry["attributes"] = attributes
            else:
                del new_entry["attributes"]
        if new_entry:
            kept[entity_id] = new_entry
    return kept


def mismatches(
    expected: Mapping[str, Mapping[str, Any]],
    ignore: Mapping[str, list[str] | None],
    before: Snapshot,
    after: Snapshot,
) -> list[str]:
    """Why the end states do not meet the expectation; empty when they do."""
    problems = []
    for entity_id, want in expected.items():
        if entity_id not in after:
            problems.append(f"{entity_id}: expected but not in the home")
            continue
        have = after[entity_id]
        if "state" in want and not same(want["state"], have["state"]):
            problems.append(f"{entity_id}: state {have['state']!r}, expected {want['state']!r}")
        # An ignored attribute is not checked even where the expectation names it (a curtain told
        # to go to 50% "expects" 100 but ignores the position: it may still be moving).
        ignored = ignore.get(entity_id, ()) if entity_id in ignore else ()
        for name, value in (want.get("attributes") or {}).items():
            if ignored is None or name in ignored:
                continue
            if not same(value, have["attributes"].get(name), exact=name in EXACT_ATTRIBUTES):
                problems.append(f"{entity_id}: {name} {have['attributes'].get(name)!r}, expected {value!r}")
    for entity_id, entry in without_ignored(changes(before, after), ignore).items():
        if entity_id not in expected:
            problems.append(f"{entity_id}: changed unexpectedly ({entry})")
    return problems


def response_matches(expect_response: Iterable[str], answer: str) -> bool:
    options = list(expect_response)
    return not options or any(option.lower() in answer.lower() for option in options)


# ----- what the household should never hear ------------------------------------------------------

# Phrases of the guard's corrections and of tool results, written for the model, not for people.
_MODEL_PHRASES = (
    "error_text",
    '"error"',
    "there is no tool",
    "there is no device named",
    "there is no area",
    "there is no floor",
    "there is no entity",
    "exposed names:",
    "exposed devices:",
    "tools:",
    "is not exposed to you",
    "call it again",
    "must be one",
    "intent__",
    "__hass",
)
_ENGLISH = frozenset(
    str.split(
        "the is are you your to i have has been turned there sorry please light lights room on off "
        "it this that of and what which am i'm i've it's was with for not be can can't"
    )
)
_HUNGARIAN = frozenset(
    str.split(
        "a az és nem van vagy egy sikerült kapcsoltam lekapcsoltam felkapcsoltam rendben melyik "
        "mire szeretnéd lámpa lámpát fok ezt azt is már most"
    )
)
_HUNGARIAN_LETTERS = frozenset("áéíóöőúüű")


def machine_text(answer: str, language: str) -> str | None:
    """Why an answer is not for the household (JSON, a correction meant for the model, another
    language than the user spoke), or None when it is fine."""
    text = answer.strip()
    if not text:
        return None
    if text[:1] in "{[" or text.startswith("```") or "<tool_call>" in text or "[TOOL_CALLS]" in text:
        return "json"
    lowered = text.casefold()
    if any(phrase in lowered for phrase in _MODEL_PHRASES):
        return "correction"
    words = [word.strip(".,!?:;\"'()") for word in lowered.split()]
    english = sum(word in _ENGLISH for word in words)
    hungarian = sum(word in _HUNGARIAN for word in words) + sum(
        any(letter in _HUNGARIAN_LETTERS for letter in word) for word in words
    )
    spoken = language.split("-", maxsplit=1)[0].lower()
    if spoken == "hu" and english >= 2 and english > hungarian:
        return "language"
    if spoken == "en" and hungarian >= 2 and hungarian > english:
        return "language"
    return None
