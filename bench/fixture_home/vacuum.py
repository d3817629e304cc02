"""Robot vacuums: start cleaning, pause, stop, return to the dock."""

from __future__ import annotations

from typing import Any

from homeassistant.components.vacuum import StateVacuumEntity
from homeassistant.components.vacuum.const import VacuumActivity, VacuumEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, features

ALL = (
    VacuumEntityFeature.START
    | VacuumEntityFeature.STOP
    | VacuumEntityFeature.PAUSE
    | VacuumEntityFeature.RETURN_HOME
    | VacuumEntityFeature.STATE
)


class FixtureVacuum(FixtureEntity, StateVacuumEntity):
    _attr_activity = VacuumActivity.DOCKED

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        self._attr_supported_features = features(attributes, VacuumEntityFeature, ALL)
        if state is not None and str(state) in {activity.value for activity in VacuumActivity}:
            self._attr_activity = VacuumActivity(str(state))

    def _set(self, activity: VacuumActivity) -> None:
        self._attr_activity = activity
        self.async_write_ha_state()

    async def async_start(self) -> None:
        self._set(VacuumActivity.CLEANING)

    async def async_pause(self) -> None:
        self._set(VacuumActivity.PAUSED)

    async def async_stop(self, **kwargs: Any) -> None:
        self._set(VacuumActivity.IDLE)

    async def async_return_to_base(self, **kwargs: Any) -> None:
        # A real robot drives back first; the dataset expects `returning` right after the command.
        self._set(VacuumActivity.RETURNING)


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "vacuum", FixtureVacuum))
