"""Valves: open/close/position, reached at once."""

from __future__ import annotations

from typing import Any

from homeassistant.components.valve.const import ValveEntityFeature
from homeassistant.components.valve.entity import ValveEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_float, features

ALL = ValveEntityFeature.OPEN | ValveEntityFeature.CLOSE | ValveEntityFeature.SET_POSITION | ValveEntityFeature.STOP

# How the datasets write a shut cover or valve (`state: false` included).
CLOSED = {"closed", "closing", "off", "false"}


class FixtureValve(FixtureEntity, ValveEntity):
    _attr_reports_position = True
    _attr_current_valve_position = 0

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        self._attr_supported_features = features(attributes, ValveEntityFeature, ALL)
        position = as_float(attributes.get("current_position"))
        if position is not None:
            self._attr_current_valve_position = int(position)
        elif state is not None:
            self._attr_current_valve_position = 0 if str(state).lower() in CLOSED else 100

    async def async_set_valve_position(self, position: int) -> None:
        self._attr_current_valve_position = position
        self.async_write_ha_state()

    async def async_stop_valve(self) -> None:
        """Nothing moves over time here, so stopping changes nothing."""


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "valve", FixtureValve))
