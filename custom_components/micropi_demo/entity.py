"""What every demo entity shares: one device per entity, in its room, marked as a demo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, ToggleEntity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DEVICES, DOMAIN, MANUFACTURER, MODEL, DemoDevice


class DemoEntity(Entity):
    _attr_should_poll = False
    _attr_has_entity_name = True
    _attr_name = None  # the device's name is the entity's

    def __init__(self, device: DemoDevice) -> None:
        # A plain id, not HA's area-prefixed default (light.nappali_nappali_lampa).
        self.entity_id = f"{device.platform}.{device.key}"
        self._attr_unique_id = device.key
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, device.key)},
            name=device.name,
            manufacturer=MANUFACTURER,
            model=MODEL,
            suggested_area=device.area,
        )


class DemoOnOff(DemoEntity, ToggleEntity):
    """Something that is on or off (a light, a switch); starts off."""

    def __init__(self, device: DemoDevice) -> None:
        super().__init__(device)
        self._attr_is_on = False

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_is_on = True
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_is_on = False
        self.async_write_ha_state()


def add_demo_entities(
    platform: str, make: Callable[[DemoDevice], Entity], async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities([make(device) for device in DEVICES if device.platform == platform])
