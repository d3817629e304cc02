"""No action nobody asked for: a call acts only on a target grounded in what the user said.

A small model, confused, acts anyway: "Jó reggelt!" turned on a fan, "darken the bedroom" changed
the bedroom's air conditioner, "turn the heating down" also turned on the TV. So before an action
runs, its target must be grounded, in the user's language or in English, inflected or not, in:
- a name or alias of the device, or a word for its kind (domain or device class: "lámpa",
  "light", "TV"); a name made only of room words is grounded by those;
- an area or floor the user said (by name, alias or room kind), or the satellite's own area, for a
  command that names only a kind ("kapcsold fel a lámpát");
- an earlier turn of the same conversation ("és a konyhában is"): `Said` holds all of them.
A device grounded only by its kind must also be in the room the user named, if they named one.
The check is plain data in, a correction out (the model can try again), so it is tested alone;
`async_grounding_problem` reads the data from HA's registries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.helpers import intent

from .direction import asked_directions, tells_only
from .vocabulary import ROOMS, device_kinds, is_kind_word, kinds_in, phrase_in, stem_matches, words

ROOM_KINDS = frozenset(kind.key for kind in ROOMS)
# "Ne kapcsold le a villanyt" asks for nothing: what follows a prohibition, up to the end of its
# clause, grounds no action ("nem" is left alone: "nem kapcsolnád fel?" is a polite request).
PROHIBITIONS = frozenset({"ne", "don't", "dont", "never", "sose", "soha"})
_CLAUSE_END = re.compile(r"[,;.!?]|\b(?:csak|hanem|de|but|only|instead)\b")
# Words too short to tell anything apart ("a", "az", "the" are dropped as well by length).
MIN_NAME_WORD = 2


@dataclass(frozen=True, slots=True)
class Place:
    """An area or floor: its name and aliases."""

    names: tuple[str, ...]

    def kinds(self) -> set[str]:
        return {kind for name in self.names for kind in kinds_in(name)} & ROOM_KINDS


@dataclass(frozen=True, slots=True)
class Thing:
    """A device a call would act on: names and aliases, domain, device class, area."""

    names: tuple[str, ...]
    domain: str
    device_class: str | None = None
    area: Place | None = None


@dataclass(frozen=True, slots=True)
class Said:
    """What the user said in this conversation (this turn and the earlier ones), and where."""

    words: tuple[str, ...]
    satellite_area: Place | None = None
    # The directions asked for ("zárd be": close), this turn's or else the latest earlier turn's
    # ("és a konyhában is"), and whether this turn only tells of the past ("elfelejtettem bezárni").
    directions: frozenset[str] = frozenset()
    told: bool = False
    kinds: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", frozenset(kinds_in(self.words)))

    @classmethod
    def of(cls, texts: Iterable[str], satellite_area: Place | None = None) -> Said:
        texts = list(texts)
        directions = next((found for text in reversed(texts) if (found := asked_directions(text))), frozenset())
        told = bool(texts) and tells_only(texts[-1])
        return cls(tuple(word for text in texts for word in _asked_words(text)), satellite_area, directions, told)

    def mentions(self, place: Place) -> bool:
        """Whether the user named this place, by name, alias or room kind."""
        return any(phrase_in(name, list(self.words)) for name in place.names) or bool(place.kinds() & self.kinds)


@dataclass(frozen=True, slots=True)
class Call:
    """The targets of one tool call, as the guard resolved them in the home."""

    name: str | None = None
    things: Sequence[Thing] = ()
    area: Place | None = None
    floor: Place | None = None
    domains: Sequence[str] = ()
    device_classes: Sequence[str] = ()


def grounding_problem(call: Call, said: Said, places: Sequence[Place]) -> str | None:
    """Why the call's target is not grounded in what was said (a correction for the model), else None.

    `places` are the home's areas and floors: their words are not a device's own words, and which
    of them the user named decides where a device known only by its kind must be. An area the user
    did not say only narrows a device they named by its own name (the model added where it is).
    """
    # The satellite's own area stands in for a room only when the user named a kind of device.
    kind_said = bool(said.kinds - ROOM_KINDS)
    place_problem = next(
        (
            f"The user did not mention the {key} {place.names[0]!r}. Leave {key} out, or use one the user said."
            for key, place in (("area", call.area), ("floor", call.floor))
            if place is not None and not (said.mentions(place) or (place == said.satellite_area and kind_said))
        ),
        None,
    )
    if call.name is not None:
        grounded = _name_grounding(call, said, places)
        if grounded is None:
            return f"The user did not ask about {call.name!r}. Act only on what the user asked for; if unsure, ask."
        return place_problem if grounded == "kind" else None
    if place_problem:
        return place_problem
    kinds = {
        kind
        for domain in call.domains
        for device_class in _or_none(call.device_classes)
        for kind in device_kinds(domain, device_class)
    }
    if any(place is not None and said.mentions(place) for place in (call.area, call.floor)):
        # Everything (of a kind) in a room the user named; but "the light in the kitchen" is not
        # the kitchen's speaker, nor all that is there.
        asked = said.kinds - ROOM_KINDS
        if asked and not kinds & asked:
            what = ", ".join([*call.domains, *call.device_classes]) or "everything there"
            return (
                f"The user did not ask for {what} there, only for {', '.join(sorted(asked))}. Give the domain "
                "of what the user asked for."
            )
        return None
    if (call.domains or call.device_classes or call.area or call.floor) and not kinds & said.kinds:
        what = ", ".join([*call.domains, *call.device_classes]) or "everything there"
        return f"The user did not ask about {what}. Act only on what the user asked for; if unsure, ask."
    return None


def _asked_words(text: str) -> list[str]:
    """The folded words of a text, less those under a prohibition ("don't turn off the lights")."""
    asked: list[str] = []
    for clause in _CLAUSE_END.split(text.replace("do not", "don't")):
        clause_words = words(clause)
        cut = next((n for n, word in enumerate(clause_words) if word in PROHIBITIONS), len(clause_words))
        asked += clause_words[:cut]
    return asked


def _or_none(values: Sequence[str]) -> list[str | None]:
    return [*values] or [None]


def _name_grounding(call: Call, said: Said, places: Sequence[Place]) -> str | None:
    """How the named device is grounded: "name" (its own words said), "kind" (a word for its kind,
    and it is in the room the user named, if any), or None."""
    location = {word for place in places for name in place.names for word in words(name)}
    named_places = [place for place in places if said.mentions(place)]
    by_kind = False
    for thing in call.things or [Thing(names=(call.name or "",), domain="")]:
        if _named(thing, said, location):
            return "name"
        own_kinds = device_kinds(thing.domain, thing.device_class) | {
            kind for name in thing.names for kind in kinds_in(name) if kind not in ROOM_KINDS
        }
        by_kind = by_kind or bool(
            own_kinds & said.kinds
            and (thing.area is None or not named_places or any(thing.area.names == p.names for p in named_places))
        )
    return "kind" if by_kind else None


def _is_location(word: str, location: set[str]) -> bool:
    """Whether a name's word speaks of a room ("konyhai" of Konyha), not of the device itself."""
    return any(stem_matches(place, word) for place in location) or bool(kinds_in([word]) & ROOM_KINDS)


def _named(thing: Thing, said: Said, location: set[str]) -> bool:
    """Whether the user said a word of the thing's own (not a room's, not a kind's) name or alias."""
    for name in thing.names:
        own = [word for word in words(name) if len(word) >= MIN_NAME_WORD and not _is_location(word, location)]
        distinctive = [word for word in own if not is_kind_word(word)]
        if any(phrase_in(word, list(said.words)) for word in distinctive):
            return True
        if not own and phrase_in(name, list(said.words)):  # a name of room words only ("Nappali")
            return True
    return False


# ----- reading it from the home ---------------------------------------------------------------------


def _area_place(area: ar.AreaEntry) -> Place:
    return Place((area.name, *sorted(area.aliases)))


def _floor_place(floor: fr.FloorEntry) -> Place:
    return Place((floor.name, *sorted(floor.aliases)))


def home_places(hass: HomeAssistant) -> list[Place]:
    return [_area_place(area) for area in ar.async_get(hass).async_list_areas()] + [
        _floor_place(floor) for floor in fr.async_get(hass).async_list_floors()
    ]


def satellite_place(hass: HomeAssistant, device_id: str | None) -> Place | None:
    """The area of the device the user spoke to, if it has one."""
    device = dr.async_get(hass).async_get(device_id) if device_id else None
    area_id = dr.async_get_effective_area_id(hass, device) if device else None
    area = ar.async_get(hass).async_get_area(area_id) if area_id else None
    return _area_place(area) if area else None


def thing_of(hass: HomeAssistant, state: State) -> Thing:
    entities = er.async_get(hass)
    entry = entities.async_get(state.entity_id)
    names = tuple(intent.async_get_entity_aliases(hass, entry, state=state, allow_empty=False)) or (state.name,)
    area_id = entry.area_id if entry else None
    if entry and area_id is None and entry.device_id and (device := dr.async_get(hass).async_get(entry.device_id)):
        area_id = device.area_id
    area = ar.async_get(hass).async_get_area(area_id) if area_id else None
    return Thing(
        names=names,
        domain=state.domain,
        device_class=state.attributes.get("device_class"),
        area=_area_place(area) if area else None,
    )


def as_strings(value: Any) -> list[str]:
    """The strings of a value that may be one string or a list of them."""
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]


def async_grounding_problem(hass: HomeAssistant, args: dict[str, Any], things: list[State], said: Said) -> str | None:
    """The grounding check for a call's checked arguments; `things` are the states its name matched."""
    area = floor = None
    if isinstance(args.get("area"), str):
        found = list(intent.find_areas(args["area"], ar.async_get(hass)))
        area = _area_place(found[0]) if found else None
    if isinstance(args.get("floor"), str):
        found_floors = list(intent.find_floors(args["floor"], fr.async_get(hass)))
        floor = _floor_place(found_floors[0]) if found_floors else None
    call = Call(
        name=args["name"] if isinstance(args.get("name"), str) else None,
        things=[thing_of(hass, state) for state in things],
        area=area,
        floor=floor,
        domains=as_strings(args.get("domain")),
        device_classes=as_strings(args.get("device_class")),
    )
    return grounding_problem(call, said, home_places(hass))
