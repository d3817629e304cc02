"""The home as our assistant sees it: which entities are exposed, and knowing cheaply when names changed.

The names the model and the local matcher see (exposed entities' names and aliases, areas,
floors, and which entities are exposed) change rarely, but reading and folding them costs more
than the rest of a turn in a large home. Like HA's default agent, we listen for the events that
can change them and count a generation; what is built from the names is kept until it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_listen_entity_updates, async_should_expose
from homeassistant.const import ATTR_FRIENDLY_NAME, EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.util.hass_dict import HassKey

DATA_HOME_NAMES: HassKey[HomeNames] = HassKey("micropi_llm_home_names")

# Every assistant whose exposure settings our names follow (HA's conversation agents use this one).
ASSISTANT = "conversation"


@callback
def async_exposed_states(hass: HomeAssistant, assistant: str) -> list[State]:
    """The states of the entities exposed to the assistant."""
    return [state for state in hass.states.async_all() if async_should_expose(hass, assistant, state.entity_id)]


@dataclass
class HomeNames:
    """A generation count that moves on whenever a name or an exposure may have changed."""

    generation: int = 0
    _kept: dict[Any, tuple[int, Any]] = field(default_factory=dict)

    @callback
    def changed(self, _event: Event[Any] | None = None) -> None:
        self.generation += 1

    def kept[T](self, key: Any, build: Callable[[], T]) -> T:
        """`build()`'s result, built again only when the names changed since it was kept."""
        if (found := self._kept.get(key)) is not None and found[0] == self.generation:
            result: T = found[1]
            return result
        value = build()
        self._kept[key] = (self.generation, value)
        return value


@callback
def _name_or_presence_changed(event_data: EventStateChangedData) -> bool:
    old, new = event_data["old_state"], event_data["new_state"]
    if old is None or new is None:
        return True
    return bool(old.attributes.get(ATTR_FRIENDLY_NAME) != new.attributes.get(ATTR_FRIENDLY_NAME))


@callback
def async_home_names(hass: HomeAssistant) -> HomeNames:
    """The home's name tracker, listening from its first use for as long as HA runs."""
    if (names := hass.data.get(DATA_HOME_NAMES)) is not None:
        return names
    names = hass.data[DATA_HOME_NAMES] = HomeNames()
    for event_type in (
        ar.EVENT_AREA_REGISTRY_UPDATED,
        fr.EVENT_FLOOR_REGISTRY_UPDATED,
        er.EVENT_ENTITY_REGISTRY_UPDATED,
        dr.EVENT_DEVICE_REGISTRY_UPDATED,
    ):
        hass.bus.async_listen(event_type, names.changed)
    hass.bus.async_listen(EVENT_STATE_CHANGED, names.changed, event_filter=_name_or_presence_changed)
    async_listen_entity_updates(hass, ASSISTANT, names.changed)
    return names
