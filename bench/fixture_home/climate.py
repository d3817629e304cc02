"""Thermostats: HVAC mode and target temperature."""

from __future__ import annotations

from typing import Any

from homeassistant.components.climate import ClimateEntity
from homeassistant.components.climate.const import ClimateEntityFeature, HVACMode
from homeassistant.const import ATTR_TEMPERATURE, UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_float, features

ALL = ClimateEntityFeature.TARGET_TEMPERATURE | ClimateEntityFeature.TURN_ON | ClimateEntityFeature.TURN_OFF


class FixtureClimate(FixtureEntity, ClimateEntity):
    _attr_hvac_modes = [HVACMode.OFF, HVACMode.HEAT, HVACMode.COOL, HVACMode.HEAT_COOL, HVACMode.AUTO]  # noqa: RUF012
    _attr_hvac_mode = HVACMode.HEAT
    _attr_target_temperature = 21.0
    _attr_current_temperature = 20.0
    _attr_target_temperature_step = 0.5

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        unit = attributes.get("unit_of_measurement", attributes.get("temperature_unit"))
        self._attr_temperature_unit = UnitOfTemperature.FAHRENHEIT if unit == "°F" else UnitOfTemperature.CELSIUS
        self._attr_supported_features = features(attributes, ClimateEntityFeature, ALL)
        if state is not None and str(state) in {mode.value for mode in HVACMode}:
            self._attr_hvac_mode = HVACMode(str(state))
        for key, name in (
            ("temperature", "_attr_target_temperature"),
            ("current_temperature", "_attr_current_temperature"),
        ):
            if as_float(attributes.get(key)) is not None:
                setattr(self, name, as_float(attributes[key]))

    async def async_set_temperature(self, **kwargs: Any) -> None:
        if ATTR_TEMPERATURE in kwargs:
            self._attr_target_temperature = float(kwargs[ATTR_TEMPERATURE])
        if kwargs.get("hvac_mode") is not None:
            self._attr_hvac_mode = HVACMode(kwargs["hvac_mode"])
        self.async_write_ha_state()

    async def async_set_hvac_mode(self, hvac_mode: HVACMode) -> None:
        self._attr_hvac_mode = hvac_mode
        self.async_write_ha_state()

    async def async_turn_on(self) -> None:
        await self.async_set_hvac_mode(HVACMode.HEAT)

    async def async_turn_off(self) -> None:
        await self.async_set_hvac_mode(HVACMode.OFF)


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "climate", FixtureClimate))
