"""Locks: lock/unlock/open."""

from __future__ import annotations

from typing import Any

from homeassistant.components.lock import LockEntity
from homeassistant.components.lock.const import LockState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities


class FixtureLock(FixtureEntity, LockEntity):
    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        if state is not None:
            self._attr_is_locked = str(state) == LockState.LOCKED
            self._attr_is_open = str(state) == LockState.OPEN

    async def async_lock(self, **kwargs: Any) -> None:
        self._attr_is_locked, self._attr_is_open = True, False
        self.async_write_ha_state()

    async def async_unlock(self, **kwargs: Any) -> None:
        self._attr_is_locked = False
        self.async_write_ha_state()


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "lock", FixtureLock))
