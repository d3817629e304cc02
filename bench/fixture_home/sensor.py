"""Sensors: a fixed reading with its unit."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import SensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_float


class FixtureSensor(FixtureEntity, SensorEntity):
    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        if "native_unit_of_measurement" in attributes or "unit_of_measurement" in attributes:
            unit = attributes.get("native_unit_of_measurement", attributes.get("unit_of_measurement"))
            self._attr_native_unit_of_measurement = unit
        if "state_class" in attributes:
            self._attr_state_class = attributes["state_class"]
        if state is not None:
            number = as_float(state)
            # Numeric device classes need a number; anything else is shown as written.
            self._attr_native_value = number if number is not None and self._attr_native_unit_of_measurement else state


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "sensor", FixtureSensor))
