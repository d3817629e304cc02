"""A demo switch (the coffee machine's plug)."""

from __future__ import annotations

from homeassistant.components.switch import SwitchEntity
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import DemoOnOff, add_demo_entities


class DemoSwitch(DemoOnOff, SwitchEntity):
    _attr_device_class = SwitchDeviceClass.OUTLET


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_demo_entities("switch", DemoSwitch, async_add_entities)
