"""The Hungarian rewrite itself (`hungarian.py`), on HA's own Hungarian and English templates; no HA core needed."""

import pytest
from hassil.intents import Intents
from home_assistant_intents import get_intents

from custom_components.micropi_llm.hungarian import (
    HomeName,
    LanguageWords,
    fold,
    learn_language,
    normalize_sentence,
    reading_answer,
    rewrites,
    split_commands,
    spoken_number,
    yes_no_answer,
)


@pytest.fixture(scope="module")
def hungarian() -> LanguageWords:
    return learn_language(Intents.from_dict(get_intents("hu")))


NAMES = [
    HomeName("area", "Hálószoba"),
    HomeName("area", "Konyha"),
    HomeName("area", "Kert"),
    HomeName("floor", "Első emelet"),
    HomeName("name", "Mennyezeti lámpa"),
    HomeName("name", "Konyhai lámpa"),
    HomeName("name", "Ventilátor"),
    HomeName("name", "!!!"),  # nothing left to match once punctuation goes
]


@pytest.mark.parametrize(
    ("said", "rewritten"),
    [
        ("kapcsold fel a lámpát a hálószobában", "kapcsold fel a lámpát a Hálószobaban"),
        # The entity "Konyhai lámpa" is a longer name than the area "Konyha", so it wins.
        ("kapcsold fel a konyhai lampat", "kapcsold fel a Konyhai lámpat"),
        ("kapcsold fel a konyhai lampakat", "kapcsold fel a Konyhai lámpákat"),
        # An accusative the area templates only take as "-t": "{area}t".
        ("kapcsold fel a lámpákat a kertet", "kapcsold fel a lámpákat a Kertt"),
        ("a ventilatort kapcsold ki", "a Ventilátort kapcsold ki"),
        (
            "allitsd be az elso emeleten a homersekletet 22 fokra",
            "állítsd be az Első emeleten a hőmérsékletet 22 fokra",
        ),
        # A case the templates never put after an area stays as said; HA decides.
        ("hozd ki a konyhából", "hozd ki a Konyhabol"),
        # Not a case ending: no name here, only a word without accents.
        ("a konyhaszekrény lampa", "a konyhaszekrény lámpa"),
        # Punctuation stays where it was; words the templates spell this way stay as typed.
        ("„Kapcsold fel a hálószobai lámpát!” - meg", "„Kapcsold fel a Hálószobai lámpát!” - meg"),
    ],
)
def test_normalize_sentence(hungarian: LanguageWords, said: str, rewritten: str) -> None:
    assert normalize_sentence(said, NAMES, hungarian, "hu") == rewritten


def test_rewrites_try_template_words_before_names(hungarian: LanguageWords) -> None:
    names = [*NAMES, HomeName("name", "Lámpa")]
    assert rewrites("kapcsold fel a lámpát a konyhában", names, hungarian, "hu") == [
        "kapcsold fel a lámpát a Konyhaban",
        "kapcsold fel a Lámpat a Konyhaban",
    ]
    assert rewrites("kapcsold fel a lámpát", names, hungarian, "hu") == ["kapcsold fel a Lámpat"]
    assert rewrites("mesélj egy viccet", names, hungarian, "hu") == []


def test_english_names_are_matched_without_case_endings() -> None:
    english = learn_language(Intents.from_dict(get_intents("en")))
    names = [HomeName("area", "Kitchen"), HomeName("name", "Café light")]
    assert normalize_sentence("turn on the cafe light in the kitchens", names, english, "en") == (
        "turn on the Café light in the kitchens"
    )


def test_learnt_hungarian_words_and_endings(hungarian: LanguageWords) -> None:
    assert hungarian.words["lampat"] == "lámpát"
    assert hungarian.words["lampa"] == "lámpa"  # not the stem "lámpá" of "lámpát"
    assert "kapcsold" in hungarian.spellings
    # Words of the intents' own lists ({cover_states}, {color_temperature_names}).
    assert hungarian.words["zarva"] == "zárva"
    assert hungarian.words["feherre"] == "fehérre"
    assert {"ban", "ben", "t", "i"} <= set(hungarian.endings["area"])
    assert {"t", "ot", "et", "nak", "ra"} <= set(hungarian.endings["name"])
    assert set(hungarian.endings["floor"]) == {"", "en", "i"}


def test_fold() -> None:
    assert fold("Hálószobában ŐSZI Ünnep") == "haloszobaban oszi unnep"


def test_a_room_named_szoba_is_said_without_it(hungarian: LanguageWords) -> None:
    names = [HomeName("area", "Fürdőszoba"), HomeName("area", "Kisszoba")]
    assert normalize_sentence("gyújtsd fel a villanyt a fürdőben", names, hungarian, "hu").endswith("a Fürdőszobaben")
    assert normalize_sentence("furdoben oltsd le", names, hungarian, "hu").startswith("Fürdőszobaben")
    # "kis" is too short to stand for the room.
    assert normalize_sentence("a kisben", names, hungarian, "hu") == "a kisben"


@pytest.mark.parametrize(
    ("said", "commands"),
    [
        ("kapcsold fel a lámpát és indítsd el a kávéfőzőt", ("kapcsold fel a lámpát", "indítsd el a kávéfőzőt")),
        # The second borrows the first one's verb; a trailing "is" goes.
        ("kapcsold fel a lámpát és a pultot is", ("kapcsold fel a lámpát", "kapcsold fel a pultot")),
        ("kapcsold be a mosógépet, és a szárítót", ("kapcsold be a mosógépet", "kapcsold be a szárítót")),
        ("kapcsold be a mosogepet es inditsd el", ("kapcsold be a mosogepet", "inditsd el")),
        # Object first: nothing to borrow.
        ("a lámpát kapcsold fel és a pultot", ("a lámpát kapcsold fel", "a pultot")),
        ("só és bors", ("só", "bors")),
        ("kapcsold fel a lámpát", None),
        ("a és b és c", None),
        ("és", None),
        ("kapcsold fel és", None),
    ],
)
def test_split_commands(said: str, commands: tuple[str, str] | None) -> None:
    assert split_commands(said) == commands


@pytest.mark.parametrize(
    ("value", "spoken"),
    [("3.5", "3,5"), ("-2.25", "-2,25"), ("21", "21"), ("1356", "1356"), ("65536", "65 536"), ("on", "on")],
)
def test_spoken_number(value: str, spoken: str) -> None:
    assert spoken_number(value) == spoken


def test_answers_about_one_thing() -> None:
    assert reading_answer("Terasz hőmérő Hőmérséklet", "3.5", "°C") == "A Terasz hőmérő Hőmérséklet 3,5 °C."
    assert reading_answer("Nappali páratartalom", "48", "%") == "A Nappali páratartalom 48%."
    assert reading_answer("Ablak", "nyitva", None) == "Az Ablak nyitva."
    assert yes_no_answer(True, "Bejárati ajtó", "lock", "locked") == "Igen, a Bejárati ajtó be van zárva."
    assert yes_no_answer(False, "Kiskapu", "lock", "unlocked") == "Nem, a Kiskapu nincs bezárva."
    assert yes_no_answer(False, "Garázskapu", "cover", "closed") == "Nem, a Garázskapu zárva van."
    assert yes_no_answer(True, "Ablak", "binary_sensor", "on") == "Igen, az Ablak nyitva van."
    assert yes_no_answer(True, "Lámpa", "light", "on") == "Igen, a Lámpa be van kapcsolva."
    # A state we cannot put in words is left to the model.
    assert yes_no_answer(False, "TV", "media_player", "playing") is None
