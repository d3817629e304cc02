"""The guard: every tool call the model makes is checked before it reaches HA.

Every call goes through `GuardedAPIInstance.async_call_tool`: a call naming an unknown tool, an
unexposed, unknown or malformed target, or arguments that were not JSON is refused with a message
the model can correct on, and never reaches HA. What can be repaired without guessing is repaired:
a one-item list where a name belongs, an entity id where the name belongs, "None" in an optional
field, a room given as the name or the floor, an English word for a Hungarian home's room or device
(and the other way round) where exactly one name of that kind fits (`vocabulary`). Where several
fit, the refusal names them (`choices`), so the household can be asked which one. An action whose
target the user never spoke of is refused too (`grounding`). Whatever a call does, it never
raises: the turn goes on.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, override

import probatio as vol
from homeassistant.core import HomeAssistant, State
from homeassistant.core import valid_entity_id as is_entity_id
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.helpers import intent, llm

from .direction import direction_problem
from .grounding import Said, as_strings, async_grounding_problem
from .home_names import async_exposed_states
from .rounds import CHOICES, REASON, UNKNOWN_TOOL
from .tool_repair import INVALID_ARGUMENTS
from .vocabulary import same_kind_names

_LOGGER = logging.getLogger(__name__)

# Tool parameters that say a tool acts on entities matched by name (HA's intent slots).
ENTITY_MATCH_PARAMETERS = frozenset({"domain", "device_class"})

# Optional target filters a model may fill with a word for "nothing", and those words.
OPTIONAL_TARGETS = ("area", "floor", "domain", "device_class")
PLACEHOLDERS = frozenset({"", "none", "null", "nil", "n/a", "unknown", "undefined"})


# Close matches a refusal names at most (the model reads them; the household may be asked).
MAX_CLOSE = 3
# Tools that only read (answers come from the live state); the others act and must be grounded.
READ_ONLY_PREFIXES = ("HassGet", "Get")
# Parameters that say a tool acts on devices in the home (HassClimateSetTemperature has no
# domain, but a name, area and floor; a list's or a timer's `name` is not a device's).
TARGET_PARAMETERS = ENTITY_MATCH_PARAMETERS | {"area", "floor"}


class Correction(str):
    """Why a call is refused, for the model; `choices` are the closest names, if any."""

    choices: tuple[str, ...] = ()

    @classmethod
    def naming(cls, text: str, choices: Sequence[str]) -> Correction:
        correction = cls(text)
        correction.choices = tuple(choices)
        return correction


def refusal(text: str, *, choices: Sequence[str] = (), reason: str | None = None) -> llm.ToolResult:
    data: dict[str, Any] = {"error": "refused", "error_text": text}
    if choices:
        data[CHOICES] = list(choices)
    if reason:
        data[REASON] = reason
    return llm.ToolResult(data=data, error=True)


# ----- checking targets ---------------------------------------------------------------------------


def _parameter_names(tool: llm.Tool) -> set[str]:
    schema = getattr(tool.parameters, "schema", None)
    return {str(key) for key in schema} if isinstance(schema, dict) else set()


def _is_placeholder(value: Any) -> bool:
    """A value that stands for no value: "None", "null", "", or a list of only those."""
    if isinstance(value, list):
        return all(_is_placeholder(item) for item in value)
    return value is None or (isinstance(value, str) and value.strip().casefold() in PLACEHOLDERS)


def _one_string(value: Any) -> str | None:
    """A single non-empty string; a one-item list of one is unwrapped."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value.strip() if isinstance(value, str) and value.strip() else None


def _close(word: str, choices: list[str]) -> list[str]:
    """The names most like `word`: of its kind in either language, else spelt alike."""
    return (same_kind_names(word, choices) or difflib.get_close_matches(word, choices, n=MAX_CLOSE, cutoff=0.5))[
        :MAX_CLOSE
    ]


def _not_found(text: str, word: str, choices: list[str]) -> Correction:
    """A refusal naming the closest of `choices` (or, with none close, the first few of all)."""
    close = _close(word, choices)
    listed = ", ".join(close or sorted(choices)[:12]) or "none"
    return Correction.naming(f"{text} {listed}.", close)


@dataclass
class _Home:
    """What the model may target: the exposed entities, and the home's areas and floors."""

    hass: HomeAssistant
    assistant: str
    exposed: dict[str, State] = field(init=False)

    def __post_init__(self) -> None:
        self.exposed = {state.entity_id: state for state in async_exposed_states(self.hass, self.assistant)}

    def names(self, *, acting: bool = False) -> list[str]:
        """Names and aliases of the exposed entities; `acting`: only of those a service can act on (the
        curtain, not its battery sensor)."""
        registry = er.async_get(self.hass)
        return [
            name
            for state in self.exposed.values()
            if not acting or _actionable(self.hass, state)
            for name in intent.async_get_entity_aliases(
                self.hass, registry.async_get(state.entity_id), state=state, allow_empty=False
            )
            if name
        ]

    def entity_problem(self, entity_id: str) -> str | None:
        if entity_id in self.exposed:
            return None
        if self.hass.states.get(entity_id) is not None:
            return f"{entity_id} is not exposed to you, so you cannot see or control it. Tell the user."
        return _not_found(f"There is no entity {entity_id}. Exposed devices:", entity_id, list(self.exposed))


def check_arguments(
    hass: HomeAssistant, tool: llm.Tool, arguments: dict[str, Any], assistant: str
) -> dict[str, Any] | str:
    """The arguments (repaired where that is safe), or why the call is refused."""
    args = dict(arguments)
    parameters = _parameter_names(tool)
    home = _Home(hass, assistant)

    if "entity_id" in args:
        ids = args["entity_id"] if isinstance(args["entity_id"], list) else [args["entity_id"]]
        for entity_id in ids:
            if not isinstance(entity_id, str) or not is_entity_id(entity_id):
                return f"entity_id must be an entity id like light.kitchen (or a list of them), not {entity_id!r}."
            if problem := home.entity_problem(entity_id):
                return problem

    if not parameters & ENTITY_MATCH_PARAMETERS:
        return args  # not a tool that matches entities by name (timers, lists, scripts' own fields)

    if "name" in args:
        name = _one_string(args["name"])
        if name is None:
            return f"name must be one device name as a string, not {args['name']!r}."
        if is_entity_id(name):
            if problem := home.entity_problem(name):
                return problem
            name = home.exposed[name].name  # the model gave the id where the name belongs
        args["name"] = name

    for key in OPTIONAL_TARGETS:
        # Small models fill every optional field, with "None" or "null" where they mean nothing.
        if key in args and _is_placeholder(args[key]):
            del args[key]

    for key, finder in (("area", _find_area), ("floor", _find_floor)):
        if key not in args:
            continue
        value = _one_string(args[key])
        if value is None:
            return f"{key} must be one {key} name as a string, not {args[key]!r}."
        if key == "floor" and _find_floor(hass, value) and not _find_area(hass, value):
            # A room given as the floor ("floor": "Living Room"): the area is meant (if no other is given).
            del args["floor"]
            args.setdefault("area", value)
            continue
        if problem := finder(hass, value):
            # "living room" in a home whose room is Nappali: the one place of that kind is meant.
            if len(problem.choices) != 1 or not same_kind_names(value, list(problem.choices)):
                return problem
            value = problem.choices[0]
        args[key] = value

    if problem := _sort_domains_and_classes(home, args):
        return problem

    if "name" in args:
        return _check_name(hass, tool, home, args)
    return args


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sort_domains_and_classes(home: _Home, args: dict[str, Any]) -> str | None:
    """Check `domain` and `device_class`, moving each value where it belongs; why not, if not.

    Small models swap them: "domain": "garage" for the garage door, "device_class": "light" for
    the lights. A value that is only the home's device class, or only its domain, is moved there.
    """
    known = {state.domain for state in home.exposed.values()}
    classes_of = {state.attributes.get("device_class") for state in home.exposed.values()} - {None}
    domains = _as_list(args.pop("domain")) if "domain" in args else []
    classes = _as_list(args.pop("device_class")) if "device_class" in args else []
    if not all(isinstance(device_class, str) for device_class in classes):
        return f"device_class must be a device class (or a list of them), not {classes!r}."
    to_classes = [d for d in domains if isinstance(d, str) and d not in known and d in classes_of]
    to_domains = [c for c in classes if c not in classes_of and c in known]
    domains = [d for d in domains if d not in to_classes] + [c for c in to_domains if c not in domains]
    classes = [c for c in classes if c not in to_domains] + to_classes
    for domain in domains:
        if not isinstance(domain, str) or domain not in known:
            return f"domain {domain!r} has no exposed device. Domains: {', '.join(sorted(known)) or 'none'}."
    if domains:
        args["domain"] = domains
    if classes:
        args["device_class"] = classes
    return None


def _find_area(hass: HomeAssistant, name: str) -> Correction | None:
    registry = ar.async_get(hass)
    if list(intent.find_areas(name, registry)):
        return None
    areas = [area.name for area in registry.async_list_areas()]
    return _not_found(f"There is no area {name!r}. Areas:", name, areas)


def _find_floor(hass: HomeAssistant, name: str) -> Correction | None:
    registry = fr.async_get(hass)
    if list(intent.find_floors(name, registry)):
        return None
    floors = [floor.name for floor in registry.async_list_floors()]
    return _not_found(f"There is no floor {name!r}. Floors:", name, floors)


def _check_name(hass: HomeAssistant, tool: llm.Tool, home: _Home, args: dict[str, Any]) -> dict[str, Any] | str:
    """The named device must be exposed (and in the area, if one is given)."""
    constraints = intent.MatchTargetsConstraints(
        name=args["name"], area_name=args.get("area"), floor_name=args.get("floor"), allow_duplicate_names=True
    )
    exposed = intent.async_match_targets(hass, constraints, states=list(home.exposed.values()))
    if exposed.is_match:
        # The name decides: a domain or device class none of the named devices has is the model's
        # guess ("domain": "water" for the irrigation valve, whose meter is the water sensor).
        for key, of in (("domain", _domain_of), ("device_class", _device_class_of)):
            if key in args and not any(of(state) in as_strings(args[key]) for state in exposed.states):
                args = {name: value for name, value in args.items() if name != key}
        return _narrowed_by_domain(hass, tool, args, exposed.states)
    if (
        "floor" not in args
        and str(args.get("area", args["name"])).casefold() == args["name"].casefold()
        and not _find_area(hass, args["name"])
    ):
        # Small models often put the room into `name` ("turn off Nappali"), sometimes into
        # `area` as well: it targets the area.
        repaired = {key: value for key, value in args.items() if key != "name"}
        return {**repaired, "area": args["name"]}
    everywhere = intent.async_match_targets(hass, constraints)
    if everywhere.is_match:
        return f"{args['name']!r} is not exposed to you, so you cannot see or control it. Tell the user."
    where = f" in {args.get('area') or args.get('floor')}" if args.get("area") or args.get("floor") else ""
    acting = acts(tool)
    in_place = [state for state in _in_place(hass, home, args) if not acting or _actionable(hass, state)]
    names = sorted({state.name for state in in_place} or set(home.names(acting=acting)))
    problem = _not_found(f"There is no device named {args['name']!r}{where}. Exposed names:", args["name"], names)
    if (
        len(problem.choices) == 1
        and problem.choices[0] != args["name"]
        and same_kind_names(args["name"], list(problem.choices))
    ):
        # "kitchen light" in a home whose one kitchen lamp is Konyhai lámpa: that one is meant.
        return _check_name(hass, tool, home, {**args, "name": problem.choices[0]})
    return problem


def _actionable(hass: HomeAssistant, state: State) -> bool:
    """Whether a service can act on the entity (a lock can; its battery sensor cannot)."""
    return bool(hass.services.async_services_for_domain(state.domain))


def _domain_of(state: State) -> str:
    return state.domain


def _device_class_of(state: State) -> str | None:
    device_class = state.attributes.get("device_class")
    return str(device_class) if device_class is not None else None


def _in_place(hass: HomeAssistant, home: _Home, args: dict[str, Any]) -> list[State]:
    """The exposed devices in the call's area or floor (none without one)."""
    if not (args.get("area") or args.get("floor")):
        return []
    constraints = intent.MatchTargetsConstraints(
        area_name=args.get("area"), floor_name=args.get("floor"), allow_duplicate_names=True
    )
    return intent.async_match_targets(hass, constraints, states=list(home.exposed.values())).states


def _narrowed_by_domain(
    hass: HomeAssistant, tool: llm.Tool, args: dict[str, Any], states: list[State]
) -> dict[str, Any]:
    """Name only the domain that can carry out the action, when a name is shared across domains.

    A lock and its own lock sensor are both "Smart Lock"; HA refuses "turn off Smart Lock" as
    ambiguous, though only the lock can act. Narrowed only when exactly one domain with services
    remains, so a real ambiguity (two lights of one name) still goes back to the model.
    """
    if len(states) < 2 or "domain" in args or "device_class" in args or tool.name.endswith(intent.INTENT_GET_STATE):
        return args
    actionable = {state.domain for state in states if _actionable(hass, state)}
    if len(actionable) != 1 or len(actionable) == len({state.domain for state in states}):
        return args
    return {**args, "domain": sorted(actionable)}


# ----- the API instance the model calls tools on -----------------------------------------------------


def acts(tool: llm.Tool) -> bool:
    """Whether a tool changes something in the home (its target must then be grounded)."""
    return bool(_parameter_names(tool) & TARGET_PARAMETERS) and not tool.name.rpartition("__")[2].startswith(
        READ_ONLY_PREFIXES
    )


def ungrounded(hass: HomeAssistant, assistant: str, tool: str, args: dict[str, Any], said: Said) -> str | None:
    """Why the checked call's target is not one the user spoke of, or goes against what they asked."""
    matched: list[State] = []
    if isinstance(args.get("name"), str):
        constraints = intent.MatchTargetsConstraints(
            name=args["name"], area_name=args.get("area"), floor_name=args.get("floor"), allow_duplicate_names=True
        )
        matched = intent.async_match_targets(hass, constraints, states=async_exposed_states(hass, assistant)).states
    domains = as_strings(args.get("domain")) or sorted({state.domain for state in matched})
    return async_grounding_problem(hass, args, matched, said) or direction_problem(
        tool, domains, said.directions, said.told
    )


@dataclass
class GuardedAPIInstance(llm.APIInstance):
    """HA's tools, each call checked first; an action only on what the user said (`said`)."""

    said: Said | None = None

    @override
    async def async_call_tool(self, tool_input: llm.ToolInput) -> llm.ToolResult:
        tool = next((tool for tool in self.tools if tool.name == tool_input.tool_name), None)
        if tool is None:
            # Models know HA's tools by their old names ("HassTurnOn" for "intent__HassTurnOn"), or
            # give one the prefix of another ("intent__HassVacuumStart" for "vacuum__HassVacuumStart").
            wanted = tool_input.tool_name.rpartition("__")[2]
            same = [tool for tool in self.tools if tool.name.rpartition("__")[2] == wanted]
            tool = same[0] if len(same) == 1 else None
        if tool is None:
            names = ", ".join(tool.name for tool in self.tools)
            text = f"There is no tool {tool_input.tool_name!r}. Tools: {names}."
            return self._refuse(tool_input, text, reason=UNKNOWN_TOOL)
        if INVALID_ARGUMENTS in tool_input.tool_args:
            reason = tool_input.tool_args[INVALID_ARGUMENTS]
            return self._refuse(
                tool_input,
                f"The arguments of {tool.name} could not be read ({reason}). Call it again with a JSON object.",
            )
        hass, assistant = self.api.hass, self.llm_context.assistant
        checked = check_arguments(hass, tool, tool_input.tool_args, assistant)
        if isinstance(checked, str):
            return self._refuse(tool_input, checked)
        if (
            self.said is not None
            and acts(tool)
            and (problem := ungrounded(hass, assistant, tool.name, checked, self.said))
        ):
            return self._refuse(tool_input, problem)
        try:
            return await super().async_call_tool(
                llm.ToolInput(tool_name=tool.name, tool_args=checked, id=tool_input.id)
            )
        except (HomeAssistantError, vol.Invalid) as err:  # the intent's own refusal: the model may correct it
            return self._refuse(tool_input, f"{type(err).__name__}: {err}")
        except Exception as err:
            _LOGGER.warning("Tool %s failed on %s", tool.name, checked, exc_info=True)
            return self._refuse(tool_input, f"{tool.name} failed ({type(err).__name__}). Try other arguments.")

    @staticmethod
    def _refuse(tool_input: llm.ToolInput, text: str, *, reason: str | None = None) -> llm.ToolResult:
        _LOGGER.info("Refused tool call %s(%s): %s", tool_input.tool_name, tool_input.tool_args, text)
        return refusal(text, choices=text.choices if isinstance(text, Correction) else (), reason=reason)
