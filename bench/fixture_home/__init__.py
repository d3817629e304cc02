"""A home from an evaluation dataset, as real HA areas, floors, devices and entities.

The bench loads it as a custom integration into a fresh HA core per test. Each fixture entity becomes
an entity of its domain's platform here that reacts to its services the way a real device does
(instantly: a cover is `open` right after `open_cover`, no travel time), so an agent's tool calls
change real HA states that the evaluation then compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr

DOMAIN = "fixture_home"

# Domains the dataset homes use that this integration models; others are reported and left out.
PLATFORMS = [
    "binary_sensor",
    "climate",
    "cover",
    "fan",
    "light",
    "lock",
    "media_player",
    "sensor",
    "switch",
    "todo",
    "vacuum",
    "valve",
]


@dataclass
class HomeRuntime:
    """The home spec (a `bench.datasets.Home`) and the entities created from it, by entity_id."""

    home: Any
    entities: dict[str, Any] = field(default_factory=dict)
    area_ids: dict[str, str] = field(default_factory=dict)
    device_ids: dict[str, str] = field(default_factory=dict)


type FixtureHomeConfigEntry = ConfigEntry[HomeRuntime]


def _text(value: Any) -> str | None:
    """Fixtures write versions like `2.7` as YAML numbers; the device registry takes text."""
    return None if value is None else str(value)


async def async_setup_entry(hass: HomeAssistant, entry: FixtureHomeConfigEntry) -> bool:
    """Create floors, areas and devices, then the entities of each platform."""
    # The bench puts the home to build into hass.data before it adds the entry.
    runtime = entry.runtime_data = HomeRuntime(home=hass.data[DOMAIN])
    home = runtime.home
    floors = fr.async_get(hass)
    areas = ar.async_get(hass)
    devices = dr.async_get(hass)
    floor_ids: dict[str, str] = {}
    for floor in home.floors:
        floor_ids[floor.id] = floors.async_create(floor.name, level=floor.level).floor_id
    for area in home.areas:
        created = areas.async_create(area.name, floor_id=floor_ids.get(area.floor or ""))
        runtime.area_ids[area.id] = created.id
    for device in home.devices:
        created_device = devices.async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={(DOMAIN, device.id)},
            name=device.name,
            manufacturer=_text(device.info.get("manufacturer")),
            model=_text(device.info.get("model")),
            sw_version=_text(device.info.get("sw_version")),
        )
        area_id = runtime.area_ids.get(device.area or "")
        if area_id:
            devices.async_update_device(created_device.id, area_id=area_id)
        runtime.device_ids[device.id] = created_device.id
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # An entity sits in its own area when the fixture says so (or has no device to inherit one from).
    entity_registry = er.async_get(hass)
    device_areas = {device.id: device.area for device in home.devices}
    for spec in home.entities:
        if spec.area and spec.area != device_areas.get(spec.device or "") and spec.area in runtime.area_ids:
            entity_registry.async_update_entity(spec.entity_id, area_id=runtime.area_ids[spec.area])
    return True


async def async_unload_entry(hass: HomeAssistant, entry: FixtureHomeConfigEntry) -> bool:
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
