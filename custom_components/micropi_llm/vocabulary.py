"""Words for kinds of rooms and devices in English and Hungarian, and matching words through inflection.

Many households mix the two languages: they say "living room" or "TV" in a home whose area is
Nappali and whose device is Nappali TV, and a small model passes the English word on. A kind ties
such words together ("living room" and "nappali" are one room kind; "lamp", "light" and "lámpa"
one device kind), so a word the home does not have can be resolved to the home's own name when
exactly one name is of that kind, and the guard can tell which devices a sentence speaks of.

Words are compared folded (lower case, no accents) and by stem: a Hungarian word is its stem plus
endings ("konyhában" is "konyha" + "ban", "lámpát" is "lámpa" + "t"), an English one may add "s".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .hungarian import fold

# Shorter stems must match a whole word ("tv" is not the start of "tvshow"; "ac" of "action").
MIN_PREFIX_STEM = 3
# Stems at least this long are also found inside a Hungarian compound ("konyhalámpa", "garázskapu").
MIN_COMPOUND_STEM = 5
# Marks a stem that must be the whole word, or the word with an English plural "s" ("hall" is
# not the start of "hallgass", "fan" of "fancy").
WHOLE_WORD = "!"
# Domains whose entities are of a kind only through their device class (a sensor measures what?).
SENSOR_DOMAINS = frozenset({"sensor", "binary_sensor"})


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of room or device; `words` in both languages (stems, some of several words)."""

    key: str
    words: tuple[str, ...]
    # The HA domains (and device classes) a device of this kind belongs to; none for a room.
    domains: tuple[str, ...] = ()
    device_classes: tuple[str, ...] = ()

    @property
    def is_room(self) -> bool:
        return not self.domains


ROOMS = (
    Kind("living_room", ("living room", "lounge", "sitting room", "nappali")),
    Kind("kitchen", ("kitchen", "konyha")),
    Kind("bedroom", ("bedroom", "hálószoba", "háló")),
    Kind("bathroom", ("bathroom", "fürdőszoba", "fürdő")),
    Kind("toilet", ("toilet", "wc", "mosdó")),
    Kind("study", ("study", "office", "dolgozószoba", "dolgozó", "iroda")),
    Kind("kids_room", ("kids room", "children's room", "nursery", "gyerekszoba")),
    Kind("dining_room", ("dining room", "étkező", "ebédlő")),
    Kind("hall", ("hallway", "hall!", "entrance", "előszoba", "folyosó", "bejárat")),
    Kind("garage", ("garage", "garázs")),
    Kind("garden", ("garden", "yard", "backyard", "kert", "udvar")),
    Kind("terrace", ("terrace", "balcony", "patio", "terasz", "erkély")),
    Kind("basement", ("basement", "cellar", "pince")),
    Kind("attic", ("attic", "loft", "padlás", "tetőtér")),
    Kind("guest_room", ("guest room", "vendégszoba")),
    Kind("laundry", ("laundry", "mosókonyha")),
    Kind("upstairs", ("upstairs", "first floor", "upper floor", "emelet")),
    Kind("downstairs", ("downstairs", "ground floor", "földszint")),
)

DEVICES = (
    Kind(
        "light",
        ("light", "lamp", "dark", "lámpa", "világítás", "világos", "villany", "fény", "égő", "sötét"),
        ("light",),
    ),
    Kind("tv", ("tv", "television", "tévé", "televízió"), ("media_player",), ("tv",)),
    Kind("speaker", ("speaker", "hangszóró", "hangfal"), ("media_player",), ("speaker",)),
    Kind(
        "media",
        ("music", "radio", "song!", "volume", "louder", "quieter", "zene", "rádió", "hangerő", "hangos", "halk"),
        ("media_player",),
    ),
    Kind("fan", ("fan!", "ventilátor", "ventillátor"), ("fan",)),
    Kind("air_conditioner", ("air conditioner", "air conditioning", "ac", "aircon", "klíma", "légkondi"), ("climate",)),
    Kind("heating", ("heating", "heater", "thermostat", "radiator", "fűt", "termosztát", "radiátor"), ("climate",)),
    Kind(
        "blind",
        ("blind", "shutter", "shade", "dark", "redőny", "roló", "árnyékoló", "zsalu", "sötét"),
        ("cover",),
        ("blind", "shutter", "shade"),
    ),
    Kind("curtain", ("curtain", "drape", "függöny", "sötétítő"), ("cover",), ("curtain",)),
    Kind("garage_door", ("garage door", "garázskapu", "garázsajtó"), ("cover",), ("garage",)),
    Kind("gate", ("gate", "kapu"), ("cover",), ("gate",)),
    Kind("window", ("window", "ablak"), ("cover", "binary_sensor"), ("window",)),
    Kind("door", ("door", "ajtó"), ("lock", "cover", "binary_sensor"), ("door",)),
    Kind("lock", ("lock!", "zár"), ("lock",)),
    Kind("plug", ("plug", "socket", "outlet", "konnektor", "dugalj", "aljzat"), ("switch",), ("outlet",)),
    Kind("switch", ("switch", "kapcsoló"), ("switch", "input_boolean")),
    Kind("vacuum", ("vacuum", "robot", "porszívó"), ("vacuum",)),
    Kind("valve", ("valve", "szelep", "csap"), ("valve",)),
    Kind("water_heater", ("water heater", "boiler", "bojler", "vízmelegítő"), ("water_heater",)),
    Kind(
        "temperature",
        (
            "temperature",
            "thermometer",
            "degree",
            "warm",
            "cold",
            "hot",
            "hőmérséklet",
            "hőmérő",
            "fok",
            "meleg",
            "hideg",
        ),
        ("sensor", "climate"),
        ("temperature",),
    ),
    Kind("humidity", ("humidity", "páratartalom", "pára"), ("sensor",), ("humidity",)),
    Kind("shopping_list", ("shopping list", "to-do", "todo", "bevásárlólista", "lista"), ("todo",)),
)

KINDS = ROOMS + DEVICES
_WORD = re.compile(r"[\w'-]+")


def words(text: str) -> list[str]:
    """The folded words of a text."""
    return _WORD.findall(fold(text))


def stem_matches(stem: str, word: str) -> bool:
    """Whether `word` is `stem` inflected (or `stem` itself); both folded single words."""
    # Folded, a vowel lengthened before an ending is the same letter ("lámpa" -> "lampat").
    return _starts_with_stem(stem, word) or (
        not stem.endswith(WHOLE_WORD) and len(stem) >= MIN_COMPOUND_STEM and stem in word
    )


def phrase_in(phrase: str, said: list[str]) -> bool:
    """Whether the words of `phrase` occur in `said` one after the other, each inflected or not."""
    parts = fold(phrase).split()
    if not parts:
        return False
    for start in range(len(said) - len(parts) + 1):
        if all(stem_matches(part, said[start + n]) for n, part in enumerate(parts)):
            return True
    return False


def kinds_in(text: str | Iterable[str]) -> set[str]:
    """The keys of the kinds a text (or its folded words) speaks of."""
    said = words(text) if isinstance(text, str) else list(text)
    return {kind.key for kind in KINDS if any(phrase_in(word, said) for word in kind.words)}


def device_kinds(domain: str, device_class: str | None) -> set[str]:
    """The device kinds an entity of this domain (and device class) is of."""
    found = set()
    for kind in DEVICES:
        if domain not in kind.domains:
            continue
        if kind.device_classes and device_class is not None and device_class not in kind.device_classes:
            continue
        if kind.device_classes and device_class is None and domain in SENSOR_DOMAINS:
            continue  # a sensor is of a kind only through its device class
        found.add(kind.key)
    return found


def is_kind_word(word: str) -> bool:
    """Whether a folded word is a kind's own word, inflected ("lámpát"), not a compound ("állólámpa")."""
    return any(
        len(parts := fold(phrase).split()) == 1 and _starts_with_stem(parts[0], word)
        for kind in KINDS
        for phrase in kind.words
    )


def _starts_with_stem(stem: str, word: str) -> bool:
    if stem.endswith(WHOLE_WORD):
        return word in (stem[:-1], f"{stem[:-1]}s")
    return word == stem if len(stem) < MIN_PREFIX_STEM else word.startswith(stem)


def kind_of_word(word: str) -> Kind | None:
    """The one kind a whole word or phrase names ("living room", "lámpák"), else None."""
    found = [kind for kind in KINDS if kind.key in kinds_in(word)]
    return found[0] if len(found) == 1 else None


def same_kind_names(word: str, names: Iterable[str]) -> list[str]:
    """The names of the home that are of every kind `word` speaks of ("kitchen light" -> "Konyhai lámpa").

    Empty when the word names no kind; the caller resolves the word when one name remains and asks
    which one when several do.
    """
    wanted = kinds_in(word)
    if not wanted:
        return []
    return sorted({name for name in names if wanted <= kinds_in(name)})
