"""Pass/fail from states: what counts as a change, expected values, ignore rules."""

from bench.compare import changes, machine_text, mismatches, response_matches, same, without_ignored


def snap(**entities):
    return {eid.replace("__", "."): {"state": s, "attributes": a} for eid, (s, a) in entities.items()}


BEFORE = snap(
    light__kitchen=("off", {"brightness": None, "friendly_name": "Kitchen"}),
    light__hall=("on", {"brightness": 255}),
    media_player__porch=("playing", {"volume_level": 0.5, "media_track": 3}),
)


def test_changes_lists_only_what_differs():
    after = snap(
        light__kitchen=("on", {"brightness": 128, "friendly_name": "Kitchen"}),
        light__hall=("on", {"brightness": 255}),
        media_player__porch=("playing", {"volume_level": 0.5, "media_track": 4}),
    )
    assert changes(BEFORE, after) == {
        "light.kitchen": {"state": "on", "attributes": {"brightness": 128}},
        "media_player.porch": {"attributes": {"media_track": 4}},
    }


def test_expected_change_passes_and_side_attributes_of_that_entity_are_allowed():
    after = dict(BEFORE) | snap(light__kitchen=("on", {"brightness": 128, "friendly_name": "Kitchen"}))
    assert mismatches({"light.kitchen": {"state": "on"}}, {}, BEFORE, after) == []


def test_wrong_state_wrong_attribute_and_missing_change_fail():
    after = dict(BEFORE) | snap(light__kitchen=("on", {"brightness": 20, "friendly_name": "Kitchen"}))
    problems = mismatches({"light.kitchen": {"state": "on", "attributes": {"brightness": 128}}}, {}, BEFORE, after)
    assert problems == ["light.kitchen: brightness 20, expected 128"]
    unchanged = mismatches({"light.hall": {"state": "off"}}, {}, BEFORE, BEFORE)
    assert unchanged == ["light.hall: state 'on', expected 'off'"]


def test_unexpected_change_fails_unless_ignored():
    after = dict(BEFORE) | snap(media_player__porch=("paused", {"volume_level": 0.5, "media_track": 4}))
    problems = mismatches({}, {}, BEFORE, after)
    assert len(problems) == 1 and problems[0].startswith("media_player.porch: changed unexpectedly")
    # Ignoring one attribute is not enough when the state changed too ...
    assert mismatches({}, {"media_player.porch": ["media_track"]}, BEFORE, after)
    # ... ignoring the whole entity is.
    assert mismatches({}, {"media_player.porch": None}, BEFORE, after) == []
    only_track = dict(BEFORE) | snap(media_player__porch=("playing", {"volume_level": 0.5, "media_track": 4}))
    assert mismatches({}, {"media_player.porch": ["media_track"]}, BEFORE, only_track) == []


def test_without_ignored_drops_emptied_entries():
    diff = {"light.kitchen": {"attributes": {"color_mode": "brightness"}}, "light.hall": {"state": "off"}}
    assert without_ignored(diff, {"light.kitchen": ["color_mode"]}) == {"light.hall": {"state": "off"}}


def test_numbers_compare_with_device_rounding_but_not_beyond():
    assert same(128, 127.5)
    assert not same(128, 100)
    assert same(0.5, 0.504)
    assert not same(0.5, 0.6)
    assert same("on", "ON")
    assert not same(True, 1)
    assert same([0.0, 100.0], (0, 100))


def test_expected_response_is_case_insensitive_and_optional():
    assert response_matches([], "anything")
    assert response_matches(["Paused"], "Okay, paused the porch speaker")
    assert not response_matches(["paused"], "Turned off the light")


def test_ignored_attribute_is_not_checked_even_when_the_expectation_names_it():
    before = snap(cover__curtain=("closed", {"current_position": 0}))
    after = snap(cover__curtain=("open", {"current_position": 50}))
    expected = {"cover.curtain": {"state": "open", "attributes": {"current_position": 100}}}
    assert mismatches(expected, {}, before, after) == ["cover.curtain: current_position 50, expected 100"]
    assert mismatches(expected, {"cover.curtain": ["current_position"]}, before, after) == []
    assert mismatches(expected, {"cover.curtain": None}, before, after) == []
    wrong_state = snap(cover__curtain=("closed", {"current_position": 50}))
    assert mismatches(expected, {"cover.curtain": None}, before, wrong_state) == [
        "cover.curtain: state 'closed', expected 'open'"
    ]


def test_a_temperature_one_degree_off_is_not_the_one_asked_for():
    before = snap(climate__living_room=("heat", {"temperature": 21.0}))
    expected = {"climate.living_room": {"attributes": {"temperature": 20}}}
    assert mismatches(expected, {}, before, before) == ["climate.living_room: temperature 21.0, expected 20"]
    after = snap(climate__living_room=("heat", {"temperature": 20.0}))
    assert mismatches(expected, {}, before, after) == []


def test_machine_text_is_told_apart_from_answers_for_people():
    assert machine_text('{"error":"refused","error_text":"There is no tool"}', "hu") == "json"
    assert machine_text("There is no floor '1st Floor'. Floors: Emelet, Földszint.", "hu") == "correction"
    assert machine_text("I have turned on the light in the living room.", "hu") == "language"
    assert machine_text("Felkapcsoltam a nappali lámpát.", "hu") is None
    assert machine_text("I am a MicroPython device.", "hu") == "language"
    assert machine_text("Turned on the kitchen light.", "en") is None
    assert machine_text("Rendben, lekapcsoltam a lámpát.", "en") == "language"
    assert machine_text("", "hu") is None
