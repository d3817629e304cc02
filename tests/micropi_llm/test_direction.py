"""Which way a sentence asks a device to go: "tegnap elfelejtettem bezárni az ajtót" unlocks nothing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.micropi_llm.direction import (
    CLOSE,
    OFF,
    ON,
    OPEN,
    asked_directions,
    call_direction,
    direction_problem,
    tells_only,
)
from custom_components.micropi_llm.grounding import Said


@pytest.mark.parametrize(
    ("sentence", "direction"),
    [
        ("zárd be az ajtót", CLOSE),
        ("zard be az ajtot", CLOSE),
        ("zárd kulcsra a bejárati ajtót", CLOSE),
        ("csukd be az ablakot", CLOSE),
        ("bezárnád az ajtót?", CLOSE),
        ("engedd le a redőnyt", CLOSE),
        ("húzd le a redőnyt", CLOSE),
        ("nyisd ki a bejárati ajtót", OPEN),
        ("nyitsd ki az ajtot", OPEN),
        ("oldd fel a bejárati ajtó zárját", OPEN),
        ("kinyitni az ajtót", OPEN),
        ("húzd fel a redőnyt", OPEN),
        ("kapcsold fel a lámpát", ON),
        ("kapcsold be a tévét", ON),
        ("fel tudnád kapcsolni a lámpát?", ON),
        ("felkapcsolnád a villanyt", ON),
        ("gyújtsd fel a villanyt", ON),
        ("indítsd el a porszívót", ON),
        ("kapcsold ki a tévét", OFF),
        ("oltsd le a villanyt", OFF),
        ("lock the door", CLOSE),
        ("unlock the front door", OPEN),
        ("open the blinds", OPEN),
        ("turn the kitchen light off", OFF),
        ("switch on the TV", ON),
    ],
)
def test_the_verbs_say_the_direction(sentence: str, direction: str) -> None:
    assert asked_directions(sentence) == {direction}
    assert not tells_only(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "a nappali lámpát légyszi",
        "lights please",
        "és a konyhában is",
        "Jó reggelt!",
        "Vedd lejjebb a fűtést két fokkal",
        "nyisd ki a zárat és zárd be az ablakot",  # both on one axis: nothing is said here
        "kapcsold fel a lámpát és kapcsold le a tévét",
        "make sure the door is locked",
    ],
)
def test_no_clear_direction_asks_for_none(sentence: str) -> None:
    assert not asked_directions(sentence)
    assert not tells_only(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "tegnap elfelejtettem bezárni az ajtót",
        "Tegnap elfelejtettem bezarni az ajtot.",
        "bezártam az ajtót",
        "lekapcsoltam a lámpát",
        "I forgot to lock the door",
        "I locked the door yesterday",
    ],
)
def test_a_sentence_that_tells_of_the_past_asks_for_nothing(sentence: str) -> None:
    assert tells_only(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "tegnap elfelejtettem bezárni az ajtót, zárd be légyszi",
        "I forgot to lock the door, can you lock it?",
        "bezártad az ajtót?",
    ],
)
def test_a_request_beside_the_past_still_asks(sentence: str) -> None:
    assert not tells_only(sentence)


def test_calls_go_in_has_meaning_of_their_domain() -> None:
    assert call_direction("intent__HassTurnOn", "lock") == CLOSE  # HA: turning a lock on locks it
    assert call_direction("HassTurnOff", "lock") == OPEN
    assert call_direction("HassTurnOn", "cover") == OPEN
    assert call_direction("HassTurnOff", "valve") == CLOSE
    assert call_direction("HassTurnOff", "light") == OFF
    assert call_direction("HassTurnOn", None) is None  # an area with no domain: not known
    assert call_direction("HassMediaPause", None) == OFF
    assert call_direction("HassLightSet", "light") is None


def test_the_opposite_of_what_was_asked_is_refused() -> None:
    asked = asked_directions("zárd be az ajtót")
    assert direction_problem("HassTurnOff", ["lock"], asked, told=False) == (
        "The user asked to close or lock, not to open or unlock. Call the tool that does that."
    )
    assert direction_problem("HassTurnOn", ["lock"], asked, told=False) is None
    assert direction_problem("HassTurnOff", ["light"], asked, told=False) is None  # another axis
    assert direction_problem("HassTurnOn", ["light"], asked_directions("kapcsold ki a lámpát"), told=False)
    assert direction_problem("HassTurnOn", [], frozenset(), told=True) == (
        "The user told you something; they did not ask for an action. Answer them; do not act."
    )


def test_an_earlier_turn_carries_its_direction() -> None:
    said = Said.of(["kapcsold le a nappaliban a lámpát", "és a konyhában is"])
    assert said.directions == {OFF} and not said.told
    assert Said.of(["kapcsold le a lámpát", "kapcsold fel a konyhában"]).directions == {ON}
    told = Said.of(["tegnap elfelejtettem bezárni az ajtót"])
    assert told.told and told.directions == {CLOSE}


@given(st.text())
def test_any_text_reads_without_error(text: str) -> None:
    assert asked_directions(text) <= {ON, OFF, OPEN, CLOSE}
    assert isinstance(tells_only(text), bool)
