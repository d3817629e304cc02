"""Dimmable demo lights."""

from __future__ import annotations

from typing import Any

from homeassistant.components.light import LightEntity
from homeassistant.components.light.const import ATTR_BRIGHTNESS, ColorMode
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DemoDevice
from .entity import DemoOnOff, add_demo_entities


class DemoLight(DemoOnOff, LightEntity):
    _attr_color_mode = ColorMode.BRIGHTNESS
    _attr_supported_color_modes = {ColorMode.BRIGHTNESS}  # noqa: RUF012  # HA's attribute pattern

    def __init__(self, device: DemoDevice) -> None:
        super().__init__(device)
        self._attr_brightness = 255

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_brightness = kwargs.get(ATTR_BRIGHTNESS, self._attr_brightness)
        await super().async_turn_on()


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_demo_entities("light", DemoLight, async_add_entities)
