"""Fans: on/off and speed percentage."""

from __future__ import annotations

from typing import Any

from homeassistant.components.fan import FanEntity
from homeassistant.components.fan.const import FanEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_bool, as_float, features

ALL = FanEntityFeature.SET_SPEED | FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF


class FixtureFan(FixtureEntity, FanEntity):
    _attr_percentage = 0

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        self._attr_supported_features = features(attributes, FanEntityFeature, ALL)
        percentage = as_float(attributes.get("percentage"))
        if percentage is not None:
            self._attr_percentage = int(percentage)
        elif state is not None:
            self._attr_percentage = 100 if as_bool(state) else 0

    @property
    def is_on(self) -> bool:
        return bool(self._attr_percentage)

    async def async_turn_on(self, percentage: int | None = None, preset_mode: str | None = None, **kwargs: Any) -> None:
        self._attr_percentage = 100 if percentage is None else percentage
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_percentage = 0
        self.async_write_ha_state()

    async def async_set_percentage(self, percentage: int) -> None:
        self._attr_percentage = percentage
        self.async_write_ha_state()


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "fan", FixtureFan))
