"""Evaluation datasets read into one shape: `Case` = one sentence to say in one fresh home.

Two input formats:
- the public "assist" format of home-assistant-datasets (`_fixtures.yaml` + task files), plus our
  `expect_response` extension;
- the Hungarian test files of the Home Assistant intents project (a small home and `tests[]` with the
  expected intent slots). Those name an intent, not a state: the bench turns the expected intent into
  expected state changes by running that very intent with those slots through HA's own intent
  handlers in a second fresh home (see `bench.harness.oracle_changes`), and for that sets the home
  up so the action is visible (lights off before "turn on", a player playing before "pause", ...).
  Intents that change no state (timers, time, weather, questions) cannot be scored that way and are
  left out and counted. A sentence that names no place ("turn off the lights here") is said to a
  voice satellite in the living room, where the bench puts the device it acts on. The spoken
  `response` is not required: an LLM agent phrases it its own way.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FIXTURES_FILE = "_fixtures.yaml"


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message names the file and what to fix."""


@dataclass(frozen=True)
class Floor:
    id: str
    name: str
    level: int | None = None


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    floor: str | None = None


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    area: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EntitySpec:
    entity_id: str
    name: str
    area: str | None = None
    device: str | None = None
    state: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]


@dataclass(frozen=True)
class Home:
    floors: tuple[Floor, ...] = ()
    areas: tuple[Area, ...] = ()
    devices: tuple[Device, ...] = ()
    entities: tuple[EntitySpec, ...] = ()
    # The household's HA language, in which its sentences are said (`language:` in `_fixtures.yaml`).
    language: str = "en"


@dataclass(frozen=True)
class ExpectedIntent:
    name: str
    slots: dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One sentence of one test, with everything needed to run and score it."""

    dataset: str
    category: str
    sentence: str
    home: Home
    # entity_id -> {"state": ..., "attributes": {...}} applied after the home is built.
    setup: dict[str, dict[str, Any]] = field(default_factory=dict)
    # entity_id -> {"state": ..., "attributes": {...}}; None when an expected intent decides instead.
    expect_changes: dict[str, dict[str, Any]] | None = None
    # entity_id -> attribute names to ignore, or None to ignore the whole entity.
    ignore_changes: dict[str, list[str] | None] = field(default_factory=dict)
    context_device: str | None = None
    expect_response: tuple[str, ...] = ()
    language: str = "en"
    expected_intent: ExpectedIntent | None = None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DatasetError(f"{path}: cannot read YAML ({err})") from err


def _as_dict(value: Any, path: Path, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DatasetError(f"{path}: `{what}` must be a mapping of entity_id to values, got {type(value).__name__}")
    return value


def _state_spec(value: Any) -> dict[str, Any]:
    spec = dict(value or {})
    if "state" in spec:
        spec["state"] = _state_text(spec["state"])
    return spec


def _state_text(value: Any) -> str:
    """States as HA writes them: YAML `on`/`false` booleans become "on"/"off"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _ignore_rules(value: Any, path: Path) -> dict[str, list[str] | None]:
    rules: dict[str, list[str] | None] = {}
    for entity_id, attrs in _as_dict(value, path, "ignore_changes").items():
        if attrs is None:
            rules[entity_id] = None
        elif isinstance(attrs, dict):
            rules[entity_id] = list(attrs)
        elif isinstance(attrs, list):
            rules[entity_id] = [str(a) for a in attrs]
        else:
            rules[entity_id] = [str(attrs)]
    return rules


# ----- the "assist" format -------------------------------------------------------------------------


def load_home(path: Path) -> Home:
    """A `_fixtures.yaml`: areas (with floors), devices, entities and the home's language (default en)."""
    data = _read_yaml(path)
    if not isinstance(data, dict) or "entities" not in data:
        raise DatasetError(f"{path}: expected a mapping with `areas`, `devices` and `entities`")
    language = data.get("language", "en")
    if not isinstance(language, str) or not language.strip():
        raise DatasetError(f"{path}: `language` must be a language code such as `hu` or `en`, got {language!r}")
    floors: dict[str, Floor] = {}
    areas = []
    for raw in data.get("areas") or []:
        floor = raw.get("floor")
        if floor and floor not in floors:
            floors[floor] = Floor(id=floor, name=str(floor).replace("_", " ").title())
        areas.append(Area(id=str(raw.get("id") or raw["name"]), name=str(raw["name"]), floor=floor))
    for raw in data.get("floors") or []:
        floors[str(raw.get("id") or raw["name"])] = Floor(
            id=str(raw.get("id") or raw["name"]), name=str(raw["name"]), level=raw.get("level")
        )
    devices = tuple(
        Device(id=str(raw["id"]), name=str(raw["name"]), area=raw.get("area"), info=dict(raw.get("info") or {}))
        for raw in data.get("devices") or []
    )
    entities = []
    for raw in data["entities"]:
        if "id" not in raw or "." not in str(raw["id"]):
            raise DatasetError(f"{path}: entity {raw!r} needs an `id` like `light.kitchen`")
        state = raw.get("state")
        entities.append(
            EntitySpec(
                entity_id=str(raw["id"]),
                name=str(raw.get("name") or raw["id"]),
                area=raw.get("area"),
                device=raw.get("device"),
                state=None if state is None else _state_text(state),
                attributes=dict(raw.get("attributes") or {}),
            )
        )
    return Home(
        floors=tuple(floors.values()),
        areas=tuple(areas),
        devices=devices,
        entities=tuple(entities),
        language=language.strip(),
    )


def _home_dirs(root: Path) -> list[Path]:
    if (root / FIXTURES_FILE).is_file():
        return [root]
    homes = sorted(p.parent for p in root.glob(f"*/{FIXTURES_FILE}"))
    if not homes:
        raise DatasetError(f"{root}: no `{FIXTURES_FILE}` here or in its sub-directories; is this an assist dataset?")
    return homes


def load_assist(root: Path) -> list[Case]:
    """Every sentence of every task file of one home directory or of a dataset of homes."""
    cases: list[Case] = []
    for home_dir in _home_dirs(root):
        home = load_home(home_dir / FIXTURES_FILE)
        for task_file in sorted(home_dir.glob("*.yaml")):
            if task_file.name == FIXTURES_FILE or task_file.name.startswith("_"):
                continue
            task = _read_yaml(task_file)
            if not isinstance(task, dict) or "tests" not in task:
                continue
            category = task.get("category", task_file.stem)
            if isinstance(category, list):
                category = "/".join(str(c) for c in category)
            for index, test in enumerate(task["tests"]):
                if not test.get("sentences"):
                    raise DatasetError(f"{task_file}: test {index} has no `sentences`")
                setup = {k: _state_spec(v) for k, v in _as_dict(test.get("setup"), task_file, "setup").items()}
                expect = {
                    k: _state_spec(v)
                    for k, v in _as_dict(test.get("expect_changes"), task_file, "expect_changes").items()
                }
                responses = test.get("expect_response") or ()
                if isinstance(responses, str):
                    responses = (responses,)
                for sentence in test["sentences"]:
                    cases.append(
                        Case(
                            dataset=f"{root.name}/{home_dir.name}" if home_dir != root else root.name,
                            category=str(category),
                            sentence=str(sentence),
                            home=home,
                            setup=setup,
                            expect_changes=expect,
                            ignore_changes=_ignore_rules(test.get("ignore_changes"), task_file),
                            context_device=test.get("context_device"),
                            expect_response=tuple(str(r) for r in responses),
                            language=home.language,
                        )
                    )
    return cases


# ----- the Hungarian intents test format -----------------------------------------------------------

# Intents whose effect is a state change the bench can observe, with the domain they act on.
INTENT_DOMAINS = {
    "HassTurnOn": "light",
    "HassTurnOff": "light",
    "HassLightSet": "light",
    "HassSetPosition": "cover",
    "HassFanSetSpeed": "fan",
    "HassClimateSetTemperature": "climate",
    "HassVacuumStart": "vacuum",
    "HassVacuumReturnToBase": "vacuum",
    "HassMediaPause": "media_player",
    "HassMediaUnpause": "media_player",
    "HassMediaNext": "media_player",
    "HassMediaPrevious": "media_player",
    "HassSetVolume": "media_player",
    "HassSetVolumeRelative": "media_player",
    "HassMediaPlayerMute": "media_player",
    "HassMediaPlayerUnmute": "media_player",
    "HassListAddItem": "todo",
    "HassListCompleteItem": "todo",
    "HassListRemoveItem": "todo",
    "HassShoppingListAddItem": "todo",
    "HassShoppingListCompleteItem": "todo",
}

# A Hungarian noun for an entity the bench has to add because the test's home lacks one.
_NOUNS = {
    "light": "lámpa",
    "switch": "kapcsoló",
    "cover": "redőny",
    "valve": "szelep",
    "fan": "ventilátor",
    "climate": "termosztát",
    "vacuum": "porszívó",
    "media_player": "lejátszó",
    "todo": "bevásárlólista",
    "lock": "zár",
}

# State before the sentence, per intent and domain, so that the expected action changes something.
_ON = {"light": "on", "switch": "on", "fan": "on", "cover": "open", "valve": "open", "lock": "locked"}
_OFF = {"light": "off", "switch": "off", "fan": "off", "cover": "closed", "valve": "closed", "lock": "unlocked"}


def _before(intent: str, domain: str, slots: dict[str, Any]) -> dict[str, Any]:
    if intent == "HassTurnOn":
        return {"state": _OFF.get(domain, "off")}
    if intent == "HassTurnOff":
        return {"state": _ON.get(domain, "playing" if domain == "media_player" else "on")}
    if intent == "HassLightSet":
        attributes: dict[str, Any] = {"brightness": 128}
        if "color" in slots or "temperature" in slots:
            attributes |= {"hs_color": [240.0, 100.0], "color_temp_kelvin": 2500}
        return {"state": "on", "attributes": attributes}
    if intent == "HassSetPosition":
        return {"state": "open" if slots.get("position") == 0 else "closed"}
    if intent == "HassFanSetSpeed":
        return {"state": "on", "attributes": {"percentage": 10 if slots.get("percentage") != 10 else 90}}
    if intent == "HassClimateSetTemperature":
        return {"state": "heat", "attributes": {"temperature": 18 if slots.get("temperature") != 18 else 25}}
    if intent == "HassVacuumStart":
        return {"state": "docked"}
    if intent == "HassVacuumReturnToBase":
        return {"state": "cleaning"}
    if intent in {"HassMediaPause", "HassMediaNext", "HassMediaPrevious"}:
        return {"state": "playing", "attributes": {"media_track": 5}}
    if intent == "HassMediaUnpause":
        return {"state": "paused"}
    if intent in {"HassSetVolume", "HassSetVolumeRelative"}:
        level = slots.get("volume_level")
        return {"state": "playing", "attributes": {"volume_level": 0.3 if level != 30 else 0.6}}
    if intent == "HassMediaPlayerMute":
        return {"state": "playing", "attributes": {"is_volume_muted": False}}
    if intent == "HassMediaPlayerUnmute":
        return {"state": "playing", "attributes": {"is_volume_muted": True}}
    if intent in {"HassListCompleteItem", "HassListRemoveItem", "HassShoppingListCompleteItem"}:
        return {"attributes": {"todo_items": [str(slots.get("item", "tej"))]}}
    return {}


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "_".join("".join(c if c.isalnum() else " " for c in ascii_text.lower()).split()) or "x"


# Where a sentence names no place ("kapcsold ki a lámpákat itt"), it is said to a voice satellite
# in this room, as in a real home; the bench passes that device as the conversation's device.
SATELLITE_AREA = "nappali"
SATELLITE = Device(id="hangasszisztens", name="Hangasszisztens", area=slugify(SATELLITE_AREA))


def _intents_home(
    data: dict[str, Any], intent: str, slots: dict[str, Any]
) -> tuple[Home, dict[str, dict[str, Any]], str | None]:
    """The file's small home, completed so that the test's target exists, the set-up for the intent,
    and the context device (a satellite in the living room) when the sentence names no place."""
    floors = {str(f["name"]): Floor(id=slugify(str(f["name"])), name=str(f["name"])) for f in data.get("floors") or []}
    areas = {str(a["name"]): Area(id=slugify(str(a["name"])), name=str(a["name"])) for a in data.get("areas") or []}
    entities: dict[str, EntitySpec] = {}
    for raw in data.get("entities") or []:
        domain = str(raw.get("domain") or "light")
        entity_id = f"{domain}.{slugify(str(raw['name']))}"
        state = raw.get("state")
        entities[entity_id] = EntitySpec(
            entity_id=entity_id,
            name=str(raw["name"]),
            area=slugify(str(raw["area"])) if raw.get("area") else None,
            state=None if state is None else _state_text(state),
            attributes=dict(raw.get("attributes") or {}),
        )
    for name in (slots.get("area"), slots.get("floor")):
        if name and str(name) not in areas and str(name) not in floors:
            areas[str(name)] = Area(id=slugify(str(name)), name=str(name))
    floor_name = slots.get("floor")
    area_name = slots.get("area")
    context_device = None
    if not (area_name or floor_name or slots.get("name")):
        area_name = SATELLITE_AREA
        areas.setdefault(area_name, Area(id=slugify(area_name), name=area_name))
        context_device = SATELLITE.id
    if floor_name and str(floor_name) in floors and not area_name:
        # A floor needs a room on it for its devices.
        area_name = f"{floor_name} szoba"
        areas[area_name] = Area(id=slugify(area_name), name=area_name, floor=floors[str(floor_name)].id)
    domain = str(slots.get("domain") or INTENT_DOMAINS[intent])
    area_id = slugify(str(area_name)) if area_name else None
    name = slots.get("name")
    if name:
        matches = [e for e in entities.values() if e.name.lower() == str(name).lower()]
        if matches:
            # The slot says where the named device is; the file does not always.
            target = matches[0]
            if area_id and target.area is None:
                entities[target.entity_id] = EntitySpec(
                    target.entity_id, target.name, area_id, None, target.state, target.attributes
                )
        else:
            entity_id = f"{domain}.{slugify(str(name))}"
            entities[entity_id] = EntitySpec(entity_id, str(name), area_id)
    elif not any(e.domain == domain and (area_id is None or e.area == area_id) for e in entities.values()):
        noun = _NOUNS.get(domain, domain)
        label = f"{area_name} {noun}" if area_name else noun
        attributes = {"device_class": slots["device_class"]} if slots.get("device_class") else {}
        entity_id = f"{domain}.{slugify(label)}"
        entities[entity_id] = EntitySpec(entity_id, label, area_id, attributes=attributes)
    before = _before(intent, domain, slots)
    setup = {e.entity_id: before for e in entities.values() if e.domain == domain and before}
    home = Home(
        floors=tuple(floors.values()),
        areas=tuple(areas.values()),
        devices=(SATELLITE,) if context_device else (),
        entities=tuple(entities.values()),
    )
    return home, setup, context_device


@dataclass
class LeftOut:
    """Sentences a loader could not turn into scorable cases, by reason."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, sentences: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + sentences


def load_intents(root: Path, left_out: LeftOut | None = None) -> list[Case]:
    """The intents project's test files (`<Intent>/<variant>.yaml`) under `root`."""
    files = sorted(root.rglob("*.yaml"))
    if not files:
        raise DatasetError(f"{root}: no intents test files (`<Intent>/<name>.yaml`) found")
    cases: list[Case] = []
    for path in files:
        data = _read_yaml(path)
        if not isinstance(data, dict) or "tests" not in data:
            raise DatasetError(f"{path}: expected a mapping with `tests`")
        intent = path.parent.name
        language = str(data.get("language") or "hu")
        for test in data["tests"]:
            sentences = [str(s) for s in test.get("sentences") or []]
            if intent not in INTENT_DOMAINS:
                if left_out is not None:
                    left_out.add(f"{intent}: changes no state the bench can check", len(sentences))
                continue
            slots = dict(test.get("slots") or {})
            home, setup, context_device = _intents_home(data, intent, slots)
            for sentence in sentences:
                cases.append(
                    Case(
                        dataset=f"{root.name}/{intent}/{path.stem}",
                        category=intent,
                        sentence=sentence,
                        home=home,
                        setup=setup,
                        context_device=context_device,
                        language=language,
                        expected_intent=ExpectedIntent(intent, slots),
                    )
                )
    return cases


def load(root: Path, left_out: LeftOut | None = None) -> list[Case]:
    """Either format, told apart by the `_fixtures.yaml` of the assist format."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory; give a dataset directory such as .../ha-datasets/assist-mini")
    if (root / FIXTURES_FILE).is_file() or any(root.glob(f"*/{FIXTURES_FILE}")):
        return load_assist(root)
    return load_intents(root, left_out)
