"""The grounding guard's rule and the bilingual kinds, on plain data (the wiring is tested in test_safety)."""

import pytest

from custom_components.micropi_llm.grounding import Call, Place, Said, Thing, grounding_problem
from custom_components.micropi_llm.vocabulary import device_kinds, is_kind_word, kinds_in, same_kind_names

NAPPALI = Place(("Nappali", "living room"))
HALO = Place(("Hálószoba",))
KONYHA = Place(("Konyha",))
PLACES = [NAPPALI, HALO, KONYHA, Place(("Emelet",)), Place(("Földszint",))]

FAN = Thing(("Ventilátor",), "fan", area=NAPPALI)
BEDROOM_AC = Thing(("Hálószoba klíma",), "climate", area=HALO)
BEDROOM_BLIND = Thing(("Hálószoba redőny",), "cover", "blind", area=HALO)
TV = Thing(("Nappali TV",), "media_player", "tv", area=NAPPALI)
SPEAKER = Thing(("Hangszóró",), "media_player", "speaker", area=NAPPALI)
THERMOSTAT = Thing(("Termosztát",), "climate", area=NAPPALI)
LIVING_LAMP = Thing(("Nappali mennyezeti lámpa", "csillár"), "light", area=NAPPALI)
KITCHEN_LAMP = Thing(("Konyhai lámpa",), "light", area=KONYHA)
FLOOR_LAMP = Thing(("Állólámpa",), "light", area=NAPPALI)


def problem(sentence: str, call: Call, *, earlier: tuple[str, ...] = (), satellite: Place | None = None) -> str | None:
    return grounding_problem(call, Said.of([*earlier, sentence], satellite), PLACES)


@pytest.mark.parametrize(
    ("sentence", "call"),
    [
        ("Jó reggelt!", Call(name="Ventilátor", things=[FAN])),
        ("Jó reggelt!", Call(domains=["fan"])),
        ("Sötétíts be a hálószobában", Call(name="Hálószoba klíma", things=[BEDROOM_AC])),
        ("Vedd lejjebb a fűtést", Call(name="Nappali TV", things=[TV])),
        ("Vedd lejjebb a fűtést", Call(name="Hangszóró", things=[SPEAKER])),
        ("Kapcsold fel a lámpát a konyhában", Call(name="Nappali mennyezeti lámpa", things=[LIVING_LAMP])),
        ("Kapcsold fel a lámpát", Call(domains=["light"], area=KONYHA)),
        ("Turn on the light upstairs", Call(domains=["light"], floor=Place(("Földszint",)))),
        ("Mennyi az idő?", Call(name="Állólámpa", things=[FLOOR_LAMP])),
        ("Kapcsold le a konyhai ventilátort", Call(name="Konyhai lámpa", things=[KITCHEN_LAMP])),
        ("Ne kapcsold le a villanyt", Call(domains=["light"])),
        ("Please don't turn on the kitchen light", Call(name="Konyhai lámpa", things=[KITCHEN_LAMP])),
        # A room said with a kind: only that kind there (a small model turned on the kitchen's speaker).
        ("Kapcsold már fel a villanyt a konyhában", Call(area=KONYHA, domains=["media_player"])),
        ("Kapcsold már fel a villanyt a konyhában", Call(area=KONYHA)),
        ("Turn on the TV in the living room", Call(area=NAPPALI, domains=["light"])),
    ],
)
def test_actions_nobody_asked_for_are_refused(sentence: str, call: Call) -> None:
    correction = problem(sentence, call)
    assert correction is not None
    assert "did not" in correction


@pytest.mark.parametrize(
    ("sentence", "call"),
    [
        ("Kapcsold be a ventilátort", Call(name="Ventilátor", things=[FAN])),
        ("Sötétíts be a hálószobában", Call(name="Hálószoba redőny", things=[BEDROOM_BLIND])),
        ("Vedd lejjebb a fűtést", Call(name="Termosztát", things=[THERMOSTAT])),
        ("Kapcsold fel a nappali lámpát", Call(name="Nappali mennyezeti lámpa", things=[LIVING_LAMP])),
        ("Kapcsold fel a csillárt", Call(name="Nappali mennyezeti lámpa", things=[LIVING_LAMP])),
        ("Kapcsold fel az állólámpát", Call(name="Állólámpa", things=[FLOOR_LAMP])),
        ("Turn on the kitchen light", Call(name="Konyhai lámpa", things=[KITCHEN_LAMP])),
        ("Turn off the TV", Call(name="Nappali TV", things=[TV])),
        ("Turn off the living room", Call(area=NAPPALI)),
        ("Kapcsolj le mindent a konyhában", Call(area=KONYHA, domains=["light"])),
        ("Kapcsold már fel a villanyt a konyhában", Call(area=KONYHA, domains=["light"])),
        ("Turn on the TV in the living room", Call(area=NAPPALI, domains=["media_player"], device_classes=["tv"])),
        ("Kapcsold fel a lámpákat", Call(domains=["light"])),
        ("Ne a tévét, hanem a lámpát kapcsold le", Call(domains=["light"])),
        ("Unlock smart lock", Call(name="Smart Lock", things=[Thing(("Smart Lock",), "lock")], area=Place(("Entry",)))),
        ("Kapcsold le a világítást az emeleten", Call(domains=["light"], floor=Place(("Emelet",)))),
    ],
)
def test_what_was_asked_for_passes(sentence: str, call: Call) -> None:
    assert problem(sentence, call) is None


def test_the_satellites_area_grounds_a_command_naming_only_a_kind() -> None:
    call = Call(domains=["light"], area=KONYHA)
    assert problem("Kapcsold fel a lámpát", call, satellite=KONYHA) is None
    assert problem("Kapcsold fel a lámpát", call, satellite=NAPPALI) is not None
    # Without a kind said, the satellite's room grounds nothing ("jó reggelt" lit the living room).
    assert problem("Jó reggelt!", Call(area=NAPPALI), satellite=NAPPALI) is not None
    assert problem("Jó reggelt!", Call(area=NAPPALI, domains=["light"]), satellite=NAPPALI) is not None
    assert problem("Kapcsold fel a lámpát", Call(area=NAPPALI), satellite=NAPPALI) is not None  # not all of it
    lamp = Call(name="Nappali mennyezeti lámpa", things=[LIVING_LAMP], area=NAPPALI)
    assert problem("Kapcsold fel a lámpát", lamp, satellite=NAPPALI) is None


def test_an_earlier_turn_of_the_conversation_grounds_a_follow_up() -> None:
    call = Call(domains=["light"], area=KONYHA)
    assert problem("És a konyhában is", call, earlier=("Kapcsold fel a lámpát a nappaliban",)) is None
    assert problem("És a konyhában is", call) is None  # the area alone is grounded
    named = Call(name="Konyhai lámpa", things=[KITCHEN_LAMP])
    assert problem("És a konyhában is", named, earlier=("Kapcsold fel a lámpát a nappaliban",)) is None
    assert problem("És a konyhában is", named) is not None  # no lamp was spoken of
    assert problem("Köszönöm", named) is not None
    assert problem("Köszönöm", named, earlier=("Kapcsold fel a konyhai lámpát",)) is None


def test_a_name_of_room_words_only_is_grounded_by_them() -> None:
    room_named = Thing(("Nappali",), "light", area=NAPPALI)
    assert problem("Kapcsold le a nappalit", Call(name="Nappali", things=[room_named])) is None
    assert problem("Jó éjt", Call(name="Nappali", things=[room_named])) is not None


def test_kinds_across_languages_and_inflections() -> None:
    assert kinds_in("Kapcsold fel a lámpát a nappaliban") == {"light", "living_room"}
    assert kinds_in("turn on the living room lights") == {"light", "living_room"}
    assert kinds_in("konyhalámpa") == {"kitchen", "light"}  # a compound
    assert kinds_in("hallgassunk zenét") == {"media"}  # "hall" is a whole word only
    assert kinds_in("Jó reggelt!") == set()
    assert is_kind_word("lampat")
    assert not is_kind_word("allolampa")
    assert device_kinds("media_player", "tv") == {"tv", "media"}
    assert device_kinds("sensor", None) == set()
    assert "temperature" in device_kinds("climate", None)


def test_english_words_resolve_to_the_homes_own_names_where_unambiguous() -> None:
    assert same_kind_names("living room", ["Nappali", "Konyha"]) == ["Nappali"]
    assert same_kind_names("study", ["Dolgozószoba", "Nappali"]) == ["Dolgozószoba"]
    assert same_kind_names("kitchen light", ["Konyhai lámpa", "Nappali lámpa", "Konyha"]) == ["Konyhai lámpa"]
    assert same_kind_names("TV", ["Nappali TV", "Hálószoba TV"]) == ["Hálószoba TV", "Nappali TV"]
    assert same_kind_names("nappali", ["Living Room", "Kitchen"]) == ["Living Room"]
    assert same_kind_names("Gizmo", ["Nappali"]) == []
