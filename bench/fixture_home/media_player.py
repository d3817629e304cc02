"""Media players: power, play/pause/stop, tracks, volume and mute."""

from __future__ import annotations

from typing import Any

from homeassistant.components.media_player import MediaPlayerEntity
from homeassistant.components.media_player.const import MediaPlayerEntityFeature, MediaPlayerState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, as_float, features

F = MediaPlayerEntityFeature
ALL = (
    F.TURN_ON
    | F.TURN_OFF
    | F.PLAY
    | F.PAUSE
    | F.STOP
    | F.NEXT_TRACK
    | F.PREVIOUS_TRACK
    | F.VOLUME_SET
    | F.VOLUME_STEP
    | F.VOLUME_MUTE
)


class FixtureMediaPlayer(FixtureEntity, MediaPlayerEntity):
    _attr_state = MediaPlayerState.IDLE
    _attr_volume_level = 0.5
    _attr_is_volume_muted = False
    _attr_volume_step = 0.1

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        self._attr_supported_features = features(attributes, MediaPlayerEntityFeature, ALL)
        if state is not None and str(state) in {s.value for s in MediaPlayerState}:
            self._attr_state = MediaPlayerState(str(state))
        volume = as_float(attributes.get("volume_level"))
        if volume is not None:
            self._attr_volume_level = volume
        if "is_volume_muted" in attributes:
            self._attr_is_volume_muted = bool(attributes["is_volume_muted"])
        for key in ("media_track", "media_title", "media_artist", "media_album_name", "media_content_type"):
            if key in attributes:
                setattr(self, f"_attr_{key}", attributes[key])

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, f"_attr_{key}", value)
        self.async_write_ha_state()

    async def async_turn_on(self) -> None:
        self._set(state=MediaPlayerState.ON)

    async def async_turn_off(self) -> None:
        self._set(state=MediaPlayerState.OFF)

    async def async_media_play(self) -> None:
        self._set(state=MediaPlayerState.PLAYING)

    async def async_media_pause(self) -> None:
        self._set(state=MediaPlayerState.PAUSED)

    async def async_media_stop(self) -> None:
        self._set(state=MediaPlayerState.IDLE)

    async def async_media_next_track(self) -> None:
        self._set(media_track=int(self._attr_media_track or 0) + 1)

    async def async_media_previous_track(self) -> None:
        self._set(media_track=max(1, int(self._attr_media_track or 1) - 1))

    async def async_set_volume_level(self, volume: float) -> None:
        self._set(volume_level=round(volume, 3))

    async def async_mute_volume(self, mute: bool) -> None:
        self._set(is_volume_muted=mute)


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "media_player", FixtureMediaPlayer))
