"""Our Hungarian templates, tested as home-assistant/intents tests its own (`tests/hu/*.yaml`).

Each test file is named `<domain>_<Intent>.yaml` like upstream, and every sentence in it must give
that intent with exactly the slots (and context) the file says, against the home in
`_fixtures.yaml`, with HA's Hungarian intents and ours merged as the integration merges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hassil.intents import Intents, SlotList, TextSlotList
from hassil.recognize import recognize_best
from home_assistant_intents import get_intents

from custom_components.micropi_llm.sentences import (
    METADATA_OURS,
    SENTENCES_DIR,
    best_match,
    load_sentences,
    recognize,
    with_sentences,
)

TESTS_DIR = Path(__file__).parent / "sentences" / "hu"
TEST_FILES = sorted(p for p in TESTS_DIR.glob("*.yaml") if not p.name.startswith("_"))
# Intents whose upstream schema belongs to a domain (their files need no domain slot).
DOMAIN_INTENTS = {
    "HassLightSet": "light",
    "HassClimateSetTemperature": "climate",
    "HassClimateGetTemperature": "climate",
    "HassSetPosition": "homeassistant",
}

# Talk that must match nothing at all: greetings, negations, the past, the future, complaints.
NO_MATCH = [
    "szia, hogy vagy?",
    "ne kapcsold le a villanyt",
    "ne engedd le a redőnyt",
    "nem kell bekapcsolni a kávéfőzőt",
    "a konyhai lámpa már megint villog",
    "ki kapcsolta fel a villanyt a garázsban?",
    "tegnap elfelejtettem bezárni az ajtót",
    "holnap majd kapcsold be a kávéfőzőt",
    "a villany",
    "kint a teraszon",
]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ha_intents() -> dict[str, Any]:
    data = get_intents("hu")
    assert data is not None
    return data


@pytest.fixture(scope="module")
def intents(ha_intents: dict[str, Any]) -> Intents:
    ours = load_sentences("hu")
    assert ours is not None
    return with_sentences(ha_intents, ours)


@pytest.fixture(scope="module")
def slot_lists() -> dict[str, SlotList]:
    """Names to entity ids, areas and floors to their ids, as upstream's `get_slot_lists`."""
    fixtures = _yaml(TESTS_DIR / "_fixtures.yaml")
    names = []
    for entity in fixtures["entities"]:
        context = {"domain": entity["id"].split(".")[0]}
        if device_class := (entity.get("attributes") or {}).get("device_class"):
            context["device_class"] = device_class
        names.append((entity["name"], entity["id"], context))
    return {
        "name": TextSlotList.from_tuples(names, allow_template=False),
        "area": TextSlotList.from_tuples([(a["name"], a["id"]) for a in fixtures["areas"]], allow_template=False),
        "floor": TextSlotList.from_tuples([(f["name"], f["id"]) for f in fixtures["floors"]], allow_template=False),
    }


def _slot_ok(expected: Any, got: Any) -> bool:
    if isinstance(expected, list) and isinstance(got, list):
        return set(expected) <= set(got)
    if isinstance(expected, list):
        return got in expected
    if isinstance(got, list):
        return expected in got
    return bool(expected == got)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.stem)
def test_sentences_give_the_files_intent_and_slots(
    test_file: Path, intents: Intents, ha_intents: dict[str, Any], slot_lists: dict[str, SlotList]
) -> None:
    domain, intent_name = test_file.stem.rsplit("_", maxsplit=1)
    ha_only = Intents.from_dict(ha_intents)
    new_to_ha = 0
    for test in _yaml(test_file)["tests"]:
        expected = test["intent"]
        assert expected["name"] == intent_name, f"{test_file.name}: tests only {intent_name}"
        context = expected.get("context") or {}
        slots = expected.get("slots") or {}
        if domain != "homeassistant" and DOMAIN_INTENTS.get(intent_name) != domain:
            # Upstream's rule: a domain's file names its domain in a slot or in the context.
            assert domain in (slots.get("domain"), context.get("domain")), f"{test_file.name}: say the domain"
        for sentence in test["sentences"]:
            result = recognize(sentence, intents, slot_lists, context or None, "hu")
            assert result is not None, f"not recognised: {sentence!r}"
            assert result.intent.name == intent_name, f"{sentence!r}: {result.intent.name}"
            got = {entity.name: entity.value for entity in result.entities.values()}
            assert set(got) == set(slots), f"{sentence!r}: slots {got}, expected {slots}"
            for name, value in slots.items():
                assert _slot_ok(value, got[name]), f"{sentence!r}: {name}={got[name]!r}, expected {value!r}"
            if context:
                assert result.context == context, f"{sentence!r}: context {result.context}"
            as_ha = recognize_best(
                sentence, ha_only, slot_lists=slot_lists, intent_context=context or None, best_slot_name="name"
            )
            new_to_ha += as_ha is None
    # Each file is there for sentences HA's own templates miss.
    assert new_to_ha, f"{test_file.name}: HA matches every sentence already; test what ours add"


@pytest.mark.parametrize("sentence", NO_MATCH)
def test_talk_that_asks_for_nothing_matches_nothing(
    sentence: str, intents: Intents, slot_lists: dict[str, SlotList]
) -> None:
    for context in (None, {"area": "living_room"}):
        assert recognize(sentence, intents, slot_lists, context, "hu") is None


def test_every_template_file_has_tests_and_names_a_response(ha_intents: dict[str, Any]) -> None:
    ours = load_sentences("hu")
    assert ours is not None
    responses = ha_intents["responses"]["intents"]
    own = ours["responses"]["intents"]
    for intent_name, known in ours["intents"].items():
        for block in known["data"]:
            assert block["metadata"][METADATA_OURS] is True
            keys = {**responses.get(intent_name, {}), **own.get(intent_name, {})}
            assert block["response"] in keys, f"{intent_name}: no response {block['response']}"
    sentence_files = {p.stem for p in (SENTENCES_DIR / "hu").glob("*.yaml")}
    assert sentence_files - {"_common"} == {p.stem for p in TEST_FILES}


def test_a_language_we_ship_nothing_for(tmp_path: Path) -> None:
    assert load_sentences("en") is None
    (tmp_path / "hu").mkdir()
    (tmp_path / "hu" / "bad.yaml").write_text("- not an intents file\n")
    with pytest.raises(ValueError, match="intents file"):
        load_sentences("hu-HU", tmp_path)


def test_best_match_prefers_a_device_over_a_room_only_from_the_cautious_rewrite(
    intents: Intents, slot_lists: dict[str, SlotList]
) -> None:
    def attempt(text: str) -> Any:
        return recognize(text, intents, slot_lists, None, "hu")

    # Typed, only the room reads; the first rewrite names the device: it wins.
    found = best_match("kapcsold fel a villanyt a garázsban", ["kapcsold fel a kék neont"], attempt)
    assert found is not None and found[0] == "kapcsold fel a kék neont"
    # A later rewrite never turns a room reading into a device.
    found = best_match("kapcsold fel a villanyt a garázsban", ["nem illik ide", "kapcsold fel a kék neont"], attempt)
    assert found is not None and found[0] == "kapcsold fel a villanyt a garázsban"
    # Nothing typed: the first rewrite that matches.
    found = best_match("blabla", ["bla bla bla", "kék neon ki"], attempt)
    assert found is not None and found[1].intent.name == "HassTurnOff"
    assert best_match("blabla", [], attempt) is None
