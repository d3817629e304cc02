"""The home as the model sees it: every exposed entity with its state, compact, grouped by area.

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
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent

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


@callback
def async_exposed_states(hass: HomeAssistant, assistant: str) -> list[State]:
    """The states of the entities exposed to the assistant."""
    return [state for state in hass.states.async_all() if async_should_expose(hass, assistant, state.entity_id)]


@callback
def async_render_home(
    hass: HomeAssistant, assistant: str, *, max_chars: int | None = None, focus: Callable[[str], bool] | None = None
) -> str:
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
        return "No devices are exposed to you. If the user wants to control one, tell them to expose it to Assist."
    order = sorted(by_area, key=lambda key: (key == NO_AREA, key.casefold()))
    blocks = {
        area_key: f"{area_titles.get(area_key, NO_AREA)}:\n"
        + "\n".join(line for _key, line in sorted(by_area[area_key]))
        for area_key in order
    }
    full = f"{FULL_HOME_HEADING}\n" + "\n".join(blocks.values())
    if max_chars is None or len(full) <= max_chars:
        return full
    focused = [key for key in order if focus is not None and any(focus(name) for name in area_names.get(key, ()))]
    counted = [
        f"- {area_titles.get(key, NO_AREA)}: "
        + ", ".join(f"{count} {domain}" for domain, count in sorted(kinds[key].items()))
        for key in order
        if key not in focused
    ]
    return "\n".join(
        [
            f"{SUMMARISED_HOME_HEADING} Listed with their state are only the areas"
            " the user mentioned or is in; to act on any other device call the tools with the name"
            " the user said, and call GetLiveContext to read states.",
            *(blocks[key] for key in focused),
            "Other areas, devices counted by kind:",
            *counted,
        ]
    )
