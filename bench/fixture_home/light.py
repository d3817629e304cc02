"""Lights: on/off, brightness, colour (hs) and colour temperature, applied at once."""

from __future__ import annotations

from typing import Any

from homeassistant.components.light import LightEntity
from homeassistant.components.light.const import (
    ATTR_BRIGHTNESS,
    ATTR_COLOR_TEMP_KELVIN,
    ATTR_HS_COLOR,
    ATTR_RGB_COLOR,
    ColorMode,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import color as color_util

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_bool


class FixtureLight(FixtureEntity, LightEntity):
    _attr_min_color_temp_kelvin = 2000
    _attr_max_color_temp_kelvin = 6500

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        if state is not None:
            self._attr_is_on = as_bool(state)
        if attributes.get(ATTR_BRIGHTNESS) is not None:
            self._attr_brightness = int(attributes[ATTR_BRIGHTNESS])
        if attributes.get(ATTR_RGB_COLOR) is not None:
            self._attr_hs_color = color_util.color_RGB_to_hs(*attributes[ATTR_RGB_COLOR])
        if attributes.get(ATTR_HS_COLOR) is not None:
            self._attr_hs_color = tuple(attributes[ATTR_HS_COLOR])
        if attributes.get(ATTR_COLOR_TEMP_KELVIN) is not None:
            self._attr_color_temp_kelvin = int(attributes[ATTR_COLOR_TEMP_KELVIN])
        # A light whose fixture names a colour is a colour light; any other dims only.
        colour = any(key in attributes for key in (ATTR_RGB_COLOR, ATTR_HS_COLOR, ATTR_COLOR_TEMP_KELVIN))
        if colour or self._attr_supported_color_modes == {ColorMode.HS, ColorMode.COLOR_TEMP}:
            self._attr_supported_color_modes = {ColorMode.HS, ColorMode.COLOR_TEMP}
            if self._attr_color_mode not in (ColorMode.HS, ColorMode.COLOR_TEMP):
                self._attr_color_mode = ColorMode.HS if self._attr_hs_color else ColorMode.COLOR_TEMP
        else:
            self._attr_supported_color_modes = {ColorMode.BRIGHTNESS}
            self._attr_color_mode = ColorMode.BRIGHTNESS

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_is_on = True
        if ATTR_BRIGHTNESS in kwargs:
            self._attr_brightness = kwargs[ATTR_BRIGHTNESS]
        elif self._attr_brightness is None:
            # Like a real bulb, it comes back at its last brightness (the datasets' lights expect that).
            self._attr_brightness = 255
        if ATTR_HS_COLOR in kwargs and ColorMode.HS in (self._attr_supported_color_modes or ()):
            self._attr_hs_color = kwargs[ATTR_HS_COLOR]
            self._attr_color_mode = ColorMode.HS
        if ATTR_COLOR_TEMP_KELVIN in kwargs and ColorMode.COLOR_TEMP in (self._attr_supported_color_modes or ()):
            self._attr_color_temp_kelvin = kwargs[ATTR_COLOR_TEMP_KELVIN]
            self._attr_color_mode = ColorMode.COLOR_TEMP
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_is_on = False
        self.async_write_ha_state()


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "light", FixtureLight))
