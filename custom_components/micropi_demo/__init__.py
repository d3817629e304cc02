"""MicroPi demo home: a few working (simulated) devices in Hungarian-named rooms, to try Assist on.

Everything belongs to the one config entry: deleting "Demó otthon" under Settings -> Devices & services
removes its devices and entities, and the rooms it made itself (HA's onboarding already makes
Nappali, Konyha and Hálószoba; those stay). States live in memory and start afresh at every HA start.
"""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .const import AREAS, CONF_AREAS_MADE, CONF_EXPOSED, PLATFORMS


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Add the devices in their rooms. The first time, make the rooms that are missing (and remember
    them), and expose every device to Assist (HA would leave the lock out by default)."""
    first = not entry.data.get(CONF_EXPOSED)
    made: list[str] = []
    if first:
        areas = ar.async_get(hass)
        made = [areas.async_create(name).id for name in AREAS if areas.async_get_area_by_name(name) is None]
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if first:
        for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
            async_expose_entity(hass, conversation.DOMAIN, entity.entity_id, True)
        hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_EXPOSED: True, CONF_AREAS_MADE: made})
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Remove the rooms the demo made, unless the household has put something of its own in them.
    (HA removes the entry's devices and entities itself, right after this.)"""
    areas = ar.async_get(hass)
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    for area_id in entry.data.get(CONF_AREAS_MADE, []):
        area = areas.async_get_area(area_id)
        if area is None:
            continue
        ours = {entry.entry_id}
        their_devices = [d for d in dr.async_entries_for_area(devices, area.id) if d.config_entries != ours]
        their_entities = [e for e in er.async_entries_for_area(entities, area.id) if e.config_entry_id not in ours]
        if not their_devices and not their_entities:
            areas.async_delete(area.id)
