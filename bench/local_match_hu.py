"""How many Hungarian test sentences HA matches locally, with and without our rewrite.

    python -m bench.local_match_hu [PATH_TO_intents/tests/hu]

Reads the test set of HA's own intents repository (by path; not copied here): each file holds a
small home (entities, areas, floors) and sentences with the intent and slots they must give.
Matching is what HA's default agent does in `_recognize_strict` (hassil's `recognize_best` with
HA's Hungarian intents and slot lists built as the agent builds them); "with our rewrite" tries the
sentence as typed first and then its `rewrites`; "micropi" is what `async_handle_locally` matches:
HA's templates and ours (`sentences/hu/`), ours first, the rewrites chosen by `best_match`.
Every sentence is also tried with its accents stripped. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hassil.intents import Intents, SlotList, TextSlotList
from hassil.recognize import RecognizeResult, recognize_best
from hassil.util import remove_punctuation
from home_assistant_intents import get_intents

from custom_components.micropi_llm.hungarian import HomeName, LanguageWords, NameIndex, fold, learn_language, rewrites
from custom_components.micropi_llm.sentences import best_match, load_sentences, with_sentences
from custom_components.micropi_llm.sentences import recognize as recognize_micropi

DEFAULT_TESTS = Path(os.environ.get("MICROPI_INTENTS_HU", "/work/shared/datasets/intents-hu/tests/hu"))
LANGUAGE = "hu"
# The state attributes HA's default agent puts in a name's matching context.
CONTEXT_ATTRIBUTES = ("device_class",)


@dataclass(frozen=True)
class Home:
    slot_lists: dict[str, SlotList]
    names: list[HomeName]


def build_home(fixture: dict[str, Any]) -> Home:
    """Slot lists as HA's default agent makes them (`_make_slot_lists`), and our name list."""
    names: list[HomeName] = []
    entity_tuples = []
    for entity in fixture.get("entities") or []:
        context = {"domain": entity["domain"]}
        attributes = entity.get("attributes") or {}
        context |= {key: attributes[key] for key in CONTEXT_ATTRIBUTES if key in attributes}
        for name in (entity["name"], *(entity.get("aliases") or [])):
            entity_tuples.append((remove_punctuation(name).strip(), name, context))
            names.append(HomeName("name", name))
    area_tuples: list[tuple[str, str]] = []
    floor_tuples: list[tuple[str, str]] = []
    for kind, tuples, key in (("area", area_tuples, "areas"), ("floor", floor_tuples, "floors")):
        for item in fixture.get(key) or []:
            for name in (item["name"], *(item.get("aliases") or [])):
                tuples.append((remove_punctuation(name).strip(), item["name"]))
                names.append(HomeName(kind, name))
    slot_lists: dict[str, SlotList] = {
        "name": TextSlotList.from_tuples(entity_tuples, allow_template=False),
        "area": TextSlotList.from_tuples(area_tuples, allow_template=False),
        "floor": TextSlotList.from_tuples(floor_tuples, allow_template=False),
    }
    return Home(slot_lists, names)


def recognize(text: str, intents: Intents, home: Home, area: str | None) -> RecognizeResult | None:
    """Match as the default agent does; `area` is the room of the satellite that heard it, if any."""
    return recognize_best(
        text,
        intents,
        slot_lists=home.slot_lists,
        intent_context={"area": {"value": area, "text": area}} if area else None,
        language=LANGUAGE,
        best_metadata_key="hass_custom_sentence",
        best_slot_name="name",
    )


def is_expected(result: RecognizeResult, intent_name: str, slots: dict[str, Any]) -> bool:
    """The intent and every expected slot value are what the test file says."""
    if result.intent.name != intent_name:
        return False
    for slot, expected in slots.items():
        if (entity := result.entities.get(slot)) is None:
            return False
        if not _same(entity.value, expected) and not _same(entity.text, expected):
            return False
    return True


def _same(got: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return fold(str(got).strip()) == fold(str(expected).strip())
    try:
        return math.isclose(float(got), float(expected))
    except TypeError, ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="?", type=Path, default=DEFAULT_TESTS)
    args = parser.parse_args(argv)
    files = sorted(args.tests.rglob("*.yaml"))
    if not files:
        print(f"No test files under {args.tests}: pass the path of intents/tests/hu.", file=sys.stderr)
        return 2

    if (intents_data := get_intents(LANGUAGE)) is None:
        print(f"home-assistant-intents has no {LANGUAGE!r} intents.", file=sys.stderr)
        return 2
    intents = Intents.from_dict(intents_data)
    words: LanguageWords = learn_language(intents)
    ours = load_sentences(LANGUAGE)
    assert ours is not None, "custom_components/micropi_llm/sentences/hu is missing"
    micropi = with_sentences(intents_data, ours)
    micropi_words = learn_language(micropi)
    counts: Counter[tuple[str, ...]] = Counter()
    for path in files:
        fixture = yaml.safe_load(path.read_text(encoding="utf-8"))
        home = build_home(fixture)
        index = NameIndex(home.names)
        intent_name = path.parent.name
        # Typed text (REST, conversation.process) comes from no room; a satellite's sentence
        # comes from its room, which the test files' homes put first among their areas.
        satellite_area = (fixture.get("areas") or [{}])[0].get("name")
        for test in fixture.get("tests") or []:
            for sentence in test["sentences"]:
                counts["sentences",] += 1
                for accents, text in (("with accents", sentence), ("accents stripped", fold(sentence))):
                    for where, area in (("typed, no room", None), ("satellite in room", satellite_area)):
                        as_typed = recognize(text, intents, home, area)
                        rewritten = as_typed
                        for rewrite in rewrites(text, home.names, words, LANGUAGE) if as_typed is None else []:
                            if (rewritten := recognize(rewrite, intents, home, area)) is not None:
                                break
                        context = {"area": {"value": area, "text": area}} if area else None
                        found = best_match(
                            text,
                            rewrites(text, index, micropi_words, LANGUAGE),
                            lambda t: recognize_micropi(t, micropi, home.slot_lists, context, LANGUAGE),  # noqa: B023
                        )
                        ours_result = found[1] if found else None
                        for way, result in (("as typed", as_typed), ("rewritten", rewritten), ("micropi", ours_result)):
                            if result is not None:
                                expected = is_expected(result, intent_name, test.get("slots") or {})
                                counts[accents, where, way, "right" if expected else "wrong"] += 1

    total = counts["sentences",]
    print(f"{total} sentences in {len(files)} files of {args.tests}")
    print("Matched with the expected intent and slots (wrong intent or slots in brackets):")
    print(f"{'':<38}{'HA as typed':>18}{'with our rewrite':>20}{'micropi':>20}")
    for accents in ("with accents", "accents stripped"):
        for where in ("typed, no room", "satellite in room"):
            cells = []
            for way in ("as typed", "rewritten", "micropi"):
                right, wrong = counts[accents, where, way, "right"], counts[accents, where, way, "wrong"]
                cells.append(f"{right:>4} {right / total:6.1%} ({wrong})")
            print(f"{accents + ', ' + where:<38}{cells[0]:>18}{cells[1]:>20}{cells[2]:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
