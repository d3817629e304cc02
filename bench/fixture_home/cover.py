"""Covers (garage doors, curtains, blinds): open/close/position, reached at once."""

from __future__ import annotations

from typing import Any

from homeassistant.components.cover import ATTR_POSITION, CoverEntity, CoverEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_float, features

ALL = CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE | CoverEntityFeature.SET_POSITION | CoverEntityFeature.STOP

# How the datasets write a shut cover or valve (`state: false` included).
CLOSED = {"closed", "closing", "off", "false"}


class FixtureCover(FixtureEntity, CoverEntity):
    _attr_current_cover_position = 0

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        self._attr_supported_features = features(attributes, CoverEntityFeature, ALL)
        position = as_float(attributes.get("current_position"))
        if position is not None:
            self._attr_current_cover_position = int(position)
        elif state is not None:
            self._attr_current_cover_position = 0 if str(state).lower() in CLOSED else 100

    @property
    def is_closed(self) -> bool:
        return self._attr_current_cover_position == 0

    async def async_open_cover(self, **kwargs: Any) -> None:
        self._attr_current_cover_position = 100
        self.async_write_ha_state()

    async def async_close_cover(self, **kwargs: Any) -> None:
        self._attr_current_cover_position = 0
        self.async_write_ha_state()

    async def async_set_cover_position(self, **kwargs: Any) -> None:
        self._attr_current_cover_position = int(kwargs[ATTR_POSITION])
        self.async_write_ha_state()

    async def async_stop_cover(self, **kwargs: Any) -> None:
        """Nothing moves over time here, so stopping changes nothing."""


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "cover", FixtureCover))
