"""A demo TV: on/off, volume, play/pause."""

from __future__ import annotations

from homeassistant.components.media_player import MediaPlayerEntity
from homeassistant.components.media_player.const import (
    MediaPlayerDeviceClass,
    MediaPlayerEntityFeature,
    MediaPlayerState,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DemoDevice
from .entity import DemoEntity, add_demo_entities


class DemoTv(DemoEntity, MediaPlayerEntity):
    _attr_device_class = MediaPlayerDeviceClass.TV
    _attr_supported_features = (
        MediaPlayerEntityFeature.TURN_ON
        | MediaPlayerEntityFeature.TURN_OFF
        | MediaPlayerEntityFeature.VOLUME_SET
        | MediaPlayerEntityFeature.PLAY
        | MediaPlayerEntityFeature.PAUSE
    )

    def __init__(self, device: DemoDevice) -> None:
        super().__init__(device)
        self._attr_state = MediaPlayerState.OFF
        self._attr_volume_level = 0.3

    def _set(self, state: MediaPlayerState) -> None:
        self._attr_state = state
        self.async_write_ha_state()

    async def async_turn_on(self) -> None:
        self._set(MediaPlayerState.ON)

    async def async_turn_off(self) -> None:
        self._set(MediaPlayerState.OFF)

    async def async_media_play(self) -> None:
        self._set(MediaPlayerState.PLAYING)

    async def async_media_pause(self) -> None:
        self._set(MediaPlayerState.PAUSED)

    async def async_set_volume_level(self, volume: float) -> None:
        self._attr_volume_level = volume
        self.async_write_ha_state()


async def async_setup_entry(
    hass: HomeAssistant, entry: ConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_demo_entities("media_player", DemoTv, async_add_entities)
