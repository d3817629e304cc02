"""What the model sees: every exposed entity with its state in the prompt, and the HA API that carries it.

With the states in the prompt the model answers "is the bedroom light on?" and works out "two
degrees lower" without asking for them first (no extra round trip). The text depends only on the
home, never on the request or the clock, and its order is fixed (area, then name), so Ollama's
prompt cache keeps holding while nothing changes.

    Nappali (aliases: living room):
    - Mennyezeti lámpa [light] on, 80% (aliases: plafon)
    - Termosztát [climate] heat, now 21.5 °C, target 22 °C
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, override

from homeassistant.components.homeassistant import llm as ha_llm
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent, llm

from .budget import ContextBudget
from .const import DOMAIN
from .grounding import Said, satellite_place
from .guard import GuardedAPIInstance
from .home_names import ASSISTANT, async_exposed_states, async_home_names
from .hungarian import fold

# Own tools exist for these, as in HA's own overview; listing them would only cost tokens.
SKIPPED_DOMAINS = frozenset({"calendar", "script", "todo"})

NO_AREA = "Other"
FULL_HOME_HEADING = "Devices by area, with their current state:"
SUMMARISED_HOME_HEADING = "This home has too many devices to list here."


def _number(value: Any) -> str:
    """12.0 -> 12, 21.55 -> 21.6: short but exact enough to speak."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded.is_integer() else str(rounded)


def _percent(fraction: Any) -> str | None:
    return f"{round(float(fraction) * 100)}%" if isinstance(fraction, int | float) else None


def _temperature_unit(hass: HomeAssistant, state: State) -> str:
    return str(state.attributes.get("temperature_unit") or hass.config.units.temperature_unit)


def _light(hass: HomeAssistant, state: State) -> list[str]:
    brightness = state.attributes.get("brightness")
    if state.state == "on" and isinstance(brightness, int | float):
        return [f"{max(1, round(brightness / 255 * 100))}%"]
    return []


def _now_and_target(state: State, current_key: str, target_key: str, unit: str) -> list[str]:
    """'now 21 °C', 'target 22 °C': the reading and the set point of a thermostat-like device."""
    parts = []
    if (current := state.attributes.get(current_key)) is not None:
        parts.append(f"now {_number(current)}{unit}")
    if (target := state.attributes.get(target_key)) is not None:
        parts.append(f"target {_number(target)}{unit}")
    return parts


def _climate(hass: HomeAssistant, state: State) -> list[str]:
    unit = _temperature_unit(hass, state)
    parts = _now_and_target(state, "current_temperature", "temperature", f" {unit}")
    low, high = state.attributes.get("target_temp_low"), state.attributes.get("target_temp_high")
    if low is not None and high is not None:
        parts.append(f"target {_number(low)}-{_number(high)} {unit}")
    if (humidity := state.attributes.get("current_humidity")) is not None:
        parts.append(f"humidity {_number(humidity)}%")
    return parts


def _water_heater(hass: HomeAssistant, state: State) -> list[str]:
    return _now_and_target(state, "current_temperature", "temperature", f" {_temperature_unit(hass, state)}")


def _cover(hass: HomeAssistant, state: State) -> list[str]:
    parts = []
    if (position := state.attributes.get("current_position")) is not None:
        parts.append(f"position {_number(position)}%")
    if (tilt := state.attributes.get("current_tilt_position")) is not None:
        parts.append(f"tilt {_number(tilt)}%")
    return parts


def _media_player(hass: HomeAssistant, state: State) -> list[str]:
    parts = []
    if (volume := _percent(state.attributes.get("volume_level"))) is not None:
        parts.append(f"volume {volume}")
    if state.attributes.get("is_volume_muted"):
        parts.append("muted")
    title, artist = state.attributes.get("media_title"), state.attributes.get("media_artist")
    if title:
        parts.append(f"playing {artist} - {title}" if artist else f"playing {title}")
    return parts


def _fan(hass: HomeAssistant, state: State) -> list[str]:
    percentage = state.attributes.get("percentage")
    return [f"speed {_number(percentage)}%"] if state.state == "on" and percentage is not None else []


def _humidifier(hass: HomeAssistant, state: State) -> list[str]:
    return _now_and_target(state, "current_humidity", "humidity", "%")


def _weather(hass: HomeAssistant, state: State) -> list[str]:
    parts = []
    if (temperature := state.attributes.get("temperature")) is not None:
        parts.append(f"{_number(temperature)} {state.attributes.get('temperature_unit', '')}".strip())
    if (humidity := state.attributes.get("humidity")) is not None:
        parts.append(f"humidity {_number(humidity)}%")
    return parts


def _device_class(hass: HomeAssistant, state: State) -> list[str]:
    # "on" means open for a door, wet for a moisture sensor: the class tells the model which.
    device_class = state.attributes.get("device_class")
    return [str(device_class)] if device_class else []


# The attributes that matter, per domain; a domain not here shows its state (and unit) only.
DETAILS: dict[str, Callable[[HomeAssistant, State], list[str]]] = {
    "light": _light,
    "climate": _climate,
    "water_heater": _water_heater,
    "cover": _cover,
    "valve": _cover,
    "media_player": _media_player,
    "fan": _fan,
    "humidifier": _humidifier,
    "weather": _weather,
    "binary_sensor": _device_class,
}


def _state_text(hass: HomeAssistant, state: State) -> str:
    if state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return state.state
    value = state.state
    if state.domain == "sensor":
        # HA's own display precision, so "21.4562" is spoken as the UI shows it.
        from homeassistant.components.sensor import async_rounded_state  # noqa: PLC0415

        value = async_rounded_state(hass, state.entity_id, state)
    if unit := state.attributes.get(ATTR_UNIT_OF_MEASUREMENT):
        value = f"{value} {unit}"
    details = DETAILS[state.domain](hass, state) if state.domain in DETAILS else []
    return ", ".join([value, *details])


@dataclass(frozen=True, slots=True)
class RenderedHome:
    """The home's text for the prompt, and whether it is summarised (then states are read with a tool)."""

    text: str
    summarised: bool = False


@callback
def async_render_home(
    hass: HomeAssistant, assistant: str, *, max_chars: int | None = None, focus: Callable[[str], bool] | None = None
) -> RenderedHome:
    """The exposed home, one line per entity, grouped by area; stable order.

    When the list is longer than `max_chars` (a large home in a small context window, where
    Ollama would cut the prompt's start, instructions included), only the areas `focus` picks
    (those the user named, the speaker's own) are listed in full; the others are counted by kind.
    """
    area_registry = ar.async_get(hass)
    entity_registry = er.async_get(hass)
    device_registry = dr.async_get(hass)
    by_area: dict[str, list[tuple[str, str]]] = defaultdict(list)
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    area_titles: dict[str, str] = {}
    area_names: dict[str, list[str]] = {}

    for state in async_exposed_states(hass, assistant):
        if state.domain in SKIPPED_DOMAINS:
            continue
        entry = entity_registry.async_get(state.entity_id)
        names = [name for name in intent.async_get_entity_aliases(hass, entry, state=state, allow_empty=False) if name]
        name = names[0] if names else state.name
        area_id = None
        if entry is not None:
            area_id = entry.area_id
            if area_id is None and entry.device_id and (device := device_registry.async_get(entry.device_id)):
                area_id = device.area_id
        area = area_registry.async_get_area(area_id) if area_id else None
        area_key = area.name if area else NO_AREA
        if area is not None and area_key not in area_titles:
            aliases = sorted(alias for alias in area.aliases if alias != area.name)
            area_titles[area_key] = f"{area.name} (aliases: {', '.join(aliases)})" if aliases else area.name
            area_names[area_key] = [area.name, *aliases]
        line = f"- {name} [{state.domain}] {_state_text(hass, state)}"
        if len(names) > 1:
            line += f" (aliases: {', '.join(names[1:])})"
        by_area[area_key].append((name.casefold(), line))
        kinds[area_key][state.domain] += 1

    if not by_area:
        return RenderedHome(
            "No devices are exposed to you. If the user wants to control one, tell them to expose it to Assist."
        )
    order = sorted(by_area, key=lambda key: (key == NO_AREA, key.casefold()))
    blocks = {
        area_key: f"{area_titles.get(area_key, NO_AREA)}:\n"
        + "\n".join(line for _key, line in sorted(by_area[area_key]))
        for area_key in order
    }
    full = f"{FULL_HOME_HEADING}\n" + "\n".join(blocks.values())
    if max_chars is None or len(full) <= max_chars:
        return RenderedHome(full)
    focused = [key for key in order if focus is not None and any(focus(name) for name in area_names.get(key, ()))]
    counted = [
        f"- {area_titles.get(key, NO_AREA)}: "
        + ", ".join(f"{count} {domain}" for domain, count in sorted(kinds[key].items()))
        for key in order
        if key not in focused
    ]
    summary = "\n".join(
        [
            f"{SUMMARISED_HOME_HEADING} Listed with their state are only the areas"
            " the user mentioned or is in; to act on any other device call the tools with the name"
            " the user said, and call GetLiveContext to read states.",
            *(blocks[key] for key in focused),
            "Other areas, devices counted by kind:",
            *counted,
        ]
    )
    return RenderedHome(summary, summarised=True)


# ----- the API that puts the home in the prompt ------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class HomeAPI(llm.API):
    """The user's chosen HA LLM APIs, with our live state in place of HA's own home overview."""

    api_ids: list[str]
    # The agent's context window (how long the home list may be), and what the user said (its
    # areas are listed first when the home does not fit).
    budget: ContextBudget | None = None
    sentence: str = ""
    # The user's earlier messages in this conversation: what they said grounds the actions too.
    earlier: tuple[str, ...] = ()

    @override
    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        inner = await llm.async_get_api(self.hass, self.api_ids, llm_context)
        prompt = inner.api_prompt
        # HA's overview (names without states, plus "call GetLiveContext for states") is replaced
        # by our list with states, which makes that tool's round trip unnecessary.
        for api_id in self.api_ids:
            if overview := self._overview(llm_context, api_id):
                prompt = prompt.replace(overview, "")
        home = async_render_home(
            self.hass,
            llm_context.assistant,
            max_chars=self.budget.home_chars if self.budget else None,
            focus=self._focus(llm_context),
        )
        # With every state listed, HA's state tool would only repeat them; a summarised home needs it.
        tools = [tool for tool in inner.tools if home.summarised or not tool.name.endswith("GetLiveContext")]
        return GuardedAPIInstance(
            api=self,
            api_prompt=f"{prompt.strip()}\n\n{home.text}",
            llm_context=llm_context,
            tools=tools,
            custom_serializer=inner.custom_serializer,
            said=Said.of([*self.earlier, self.sentence], satellite_place(self.hass, llm_context.device_id)),
        )

    def _focus(self, llm_context: llm.LLMContext) -> Callable[[str], bool]:
        """Whether an area name is one the user said (inflected or without accents) or the speaker's area."""
        said = fold(self.sentence)
        own_area = None
        if llm_context.device_id and (device := dr.async_get(self.hass).async_get(llm_context.device_id)):
            area_id = dr.async_get_effective_area_id(self.hass, device)
            own_area = ar.async_get(self.hass).async_get_area(area_id) if area_id else None

        def focus(area_name: str) -> bool:
            return fold(area_name) in said or (own_area is not None and area_name == own_area.name)

        return focus

    def _overview(self, llm_context: llm.LLMContext, api_id: str) -> str | None:
        """HA's overview prompt for this API, built again only when the home's names changed."""

        def build() -> str | None:
            overview = ha_llm.async_get_tools(self.hass, llm_context, api_id)
            return overview.prompt if overview else None

        if llm_context.assistant != ASSISTANT:  # the names are tracked for conversation agents
            return build()
        return async_home_names(self.hass).kept(("overview", api_id), build)


def home_api(
    hass: HomeAssistant,
    api_ids: list[str],
    *,
    budget: ContextBudget | None = None,
    sentence: str = "",
    earlier: tuple[str, ...] = (),
) -> HomeAPI:
    """The API for one turn: the chosen HA APIs, the home fitted to the budget, focused on the sentence."""
    return HomeAPI(
        hass=hass,
        id=f"{DOMAIN}:{'|'.join(api_ids)}",
        name="MicroPi",
        api_ids=api_ids,
        budget=budget,
        sentence=sentence,
        earlier=earlier,
    )
