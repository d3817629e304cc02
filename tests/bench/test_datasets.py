"""Both dataset formats read into cases."""

from pathlib import Path

import pytest

from bench.datasets import DatasetError, LeftOut, load, load_assist, load_intents

FIXTURES = Path(__file__).parent / "fixtures"


def test_assist_format_one_case_per_sentence_with_setup_expectations_and_ignores():
    cases = load_assist(FIXTURES / "assist-tiny")
    assert [c.sentence for c in cases] == [
        "Turn on the kitchen light",
        "Turn on the sauna heater",
        "Pause the porch speaker",
    ]
    first, second, third = cases
    assert first.category == "light"
    assert first.dataset == "assist-tiny/cottage"
    assert first.setup == {"light.kitchen_light": {"state": "off"}}
    assert first.expect_changes == {"light.kitchen_light": {"state": "on"}}
    assert first.ignore_changes == {"light.kitchen_light": ["color_mode"]}
    assert second.expect_changes == {}
    assert third.expect_response == ("paused",)
    home = first.home
    assert [a.floor for a in home.areas] == ["ground", None]
    assert [f.id for f in home.floors] == ["ground"]
    assert {e.entity_id: e.state for e in home.entities}["sensor.kitchen_temperature"] == "21.5"
    assert home.devices[0].info["sw_version"] == 1.2


def test_intents_format_expected_intent_home_completed_and_set_up_to_show_the_action():
    left_out = LeftOut()
    cases = load_intents(FIXTURES / "intents-tiny", left_out)
    assert [c.sentence for c in cases] == [
        "kapcsold ki a lámpákat itt",
        "kapcsold be a lámpákat a garázsban",
        "kapcsold be a műhely lámpát",
        "műhely lámpa",
    ]
    # "Here": said to a satellite in the living room, where the bench puts a light that is on.
    here = cases[0]
    assert here.context_device == "hangasszisztens"
    assert [(d.id, d.area) for d in here.home.devices] == [("hangasszisztens", "nappali")]
    assert [(e.entity_id, e.area) for e in here.home.entities] == [("light.nappali_lampa", "nappali")]
    assert here.setup == {"light.nappali_lampa": {"state": "on"}}
    area_case = cases[1]
    assert area_case.context_device is None
    assert area_case.language == "hu"
    assert area_case.expect_changes is None
    assert area_case.expected_intent is not None
    assert area_case.expected_intent.name == "HassTurnOn"
    assert area_case.expected_intent.slots == {"domain": "light", "area": "garázs"}
    # The file's only light is not in the garage, so the bench adds one there ...
    added = {e.entity_id: e for e in area_case.home.entities}["light.garazs_lampa"]
    assert added.area == "garazs"
    # ... and every light starts off, so that "turn on" changes something.
    assert area_case.setup == {"light.muhely_lampa": {"state": "off"}, "light.garazs_lampa": {"state": "off"}}
    assert left_out.counts == {"HassStartTimer: changes no state the bench can check": 1}


def test_assist_home_declares_its_language_default_english(tmp_path):
    hungarian = load_assist(FIXTURES / "assist-hu")
    assert {(c.language, c.home.language) for c in hungarian} == {("hu", "hu")}
    assert {c.language for c in load_assist(FIXTURES / "assist-tiny")} == {"en"}
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "_fixtures.yaml").write_text("language: [hu]\nentities: []\n")
    with pytest.raises(DatasetError, match="language"):
        load_assist(tmp_path)


def test_load_tells_the_formats_apart_and_explains_bad_input(tmp_path):
    assert load(FIXTURES / "assist-tiny")[0].language == "en"
    assert load(FIXTURES / "intents-tiny")[0].language == "hu"
    with pytest.raises(DatasetError, match="not a directory"):
        load(tmp_path / "missing")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "_fixtures.yaml").write_text("areas: []\n")
    with pytest.raises(DatasetError, match="entities"):
        load(tmp_path)
