"""A small real home for the agent's tests, and helpers to talk to the agent.

The devices are real HA entities of the `light` and `climate` domains (a test platform of HA's own
entity classes) and an `input_boolean` (a lock class for tests that add one); services change their
states as a device would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.climate import ClimateEntity, ClimateEntityFeature, HVACMode
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.light import ATTR_BRIGHTNESS, ColorMode, LightEntity
from homeassistant.components.lock import LockEntity
from homeassistant.components.sensor import SensorDeviceClass, SensorEntity
from homeassistant.const import ATTR_TEMPERATURE, CONF_MODEL, CONF_URL, UnitOfTemperature
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, setup_test_component_platform

from bench.ollama_wire import DEFAULT_MODEL, Reply
from custom_components.micropi_llm.const import (
    DEFAULT_AGENT_OPTIONS,
    DEFAULT_AGENT_TITLE,
    DOMAIN,
    SUBENTRY_CONVERSATION,
)

AGENT_ID = "conversation.micropi"


class HomeLight(LightEntity):
    """A dimmable light."""

    _attr_should_poll = False
    _attr_supported_color_modes = {ColorMode.BRIGHTNESS}  # noqa: RUF012
    _attr_color_mode = ColorMode.BRIGHTNESS

    def __init__(self, name: str, unique_id: str, *, on: bool = False, brightness: int | None = None) -> None:
        self._attr_name = name
        self._attr_unique_id = unique_id
        self._attr_is_on = on
        self._attr_brightness = brightness

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_is_on = True
        self._attr_brightness = kwargs.get(ATTR_BRIGHTNESS, self._attr_brightness or 255)
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_is_on = False
        self.async_write_ha_state()


class HomeThermostat(ClimateEntity):
    """A heating thermostat with a target temperature."""

    _attr_should_poll = False
    _attr_hvac_modes = [HVACMode.OFF, HVACMode.HEAT]  # noqa: RUF012
    _attr_supported_features = (
        ClimateEntityFeature.TARGET_TEMPERATURE | ClimateEntityFeature.TURN_ON | ClimateEntityFeature.TURN_OFF
    )
    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_target_temperature_step = 0.5

    def __init__(self, name: str, unique_id: str) -> None:
        self._attr_name = name
        self._attr_unique_id = unique_id
        self._attr_hvac_mode = HVACMode.HEAT
        self._attr_current_temperature = 21.5
        self._attr_target_temperature = 22.0

    async def async_set_temperature(self, **kwargs: Any) -> None:
        self._attr_target_temperature = kwargs[ATTR_TEMPERATURE]
        self.async_write_ha_state()

    async def async_set_hvac_mode(self, hvac_mode: HVACMode) -> None:
        self._attr_hvac_mode = hvac_mode
        self.async_write_ha_state()


class HomeLock(LockEntity):
    """A lock: HA's lock services lock and unlock it."""

    _attr_should_poll = False

    def __init__(self, name: str, unique_id: str) -> None:
        self._attr_name = name
        self._attr_unique_id = unique_id
        self._attr_is_locked = True

    async def async_lock(self, **kwargs: Any) -> None:
        self._attr_is_locked = True
        self.async_write_ha_state()

    async def async_unlock(self, **kwargs: Any) -> None:
        self._attr_is_locked = False
        self.async_write_ha_state()


class HomeSensor(SensorEntity):
    """A temperature sensor."""

    _attr_should_poll = False
    _attr_device_class = SensorDeviceClass.TEMPERATURE
    _attr_native_unit_of_measurement = UnitOfTemperature.CELSIUS

    def __init__(self, name: str, unique_id: str, value: float) -> None:
        self._attr_name = name
        self._attr_unique_id = unique_id
        self._attr_native_value = value


# Rooms of the extra devices in a larger home (for measuring the prompt's size).
EXTRA_ROOMS = ["Nappali", "Konyha", "Hálószoba", "Fürdőszoba", "Gyerekszoba", "Dolgozószoba", "Előszoba", "Kert"]


@dataclass
class Home:
    living_light: str = "light.nappali_lampa"
    kitchen_light: str = "light.konyhai_lampa"
    bedroom_light: str = "light.haloszoba_lampa"
    garage_light: str = "light.garazs_lampa"  # not exposed
    thermostat: str = "climate.termosztat"
    guest_mode: str = "input_boolean.vendeg_mod"


async def async_setup_home(hass: HomeAssistant, *, extra: int = 0) -> Home:
    """Set up the home; `extra` adds that many more exposed lights and sensors, spread over rooms."""
    home = Home()
    assert await async_setup_component(hass, "intent", {})
    lights = [
        HomeLight("Nappali lámpa", "living", on=True, brightness=204),
        HomeLight("Konyhai lámpa", "kitchen"),
        HomeLight("Hálószoba lámpa", "bedroom"),
        HomeLight("Garázs lámpa", "garage"),
        *(HomeLight(f"Lámpa {n}", f"extra_{n}", on=n % 4 == 0, brightness=128) for n in range(0, extra, 2)),
    ]
    sensors = [HomeSensor(f"Hőmérő {n}", f"extra_{n}", 20 + n % 7 + 0.25) for n in range(1, extra, 2)]
    setup_test_component_platform(hass, "light", lights)
    setup_test_component_platform(hass, "sensor", sensors)
    setup_test_component_platform(hass, "climate", [HomeThermostat("Termosztát", "thermostat")])
    assert await async_setup_component(hass, "light", {"light": {"platform": "test"}})
    assert await async_setup_component(hass, "climate", {"climate": {"platform": "test"}})
    assert await async_setup_component(hass, "sensor", {"sensor": {"platform": "test"}})
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"vendeg_mod": {"name": "Vendég mód"}}})
    await hass.async_block_till_done()

    areas = ar.async_get(hass)
    living = areas.async_create("Nappali", aliases={"living room"})
    kitchen = areas.async_create("Konyha", aliases={"kitchen"})
    bedroom = areas.async_create("Hálószoba", aliases={"bedroom"})
    garage = areas.async_create("Garázs")
    entities = er.async_get(hass)
    entities.async_update_entity(home.living_light, area_id=living.id, aliases=[er.COMPUTED_NAME, "mennyezeti lámpa"])
    entities.async_update_entity(home.kitchen_light, area_id=kitchen.id)
    entities.async_update_entity(home.bedroom_light, area_id=bedroom.id)
    entities.async_update_entity(home.garage_light, area_id=garage.id)
    entities.async_update_entity(home.thermostat, area_id=living.id)
    for n, entity in enumerate([*lights[4:], *sensors]):
        room = EXTRA_ROOMS[n % len(EXTRA_ROOMS)]
        area = areas.async_get_area_by_name(room) or areas.async_create(room)
        assert entity.entity_id is not None
        entities.async_update_entity(entity.entity_id, area_id=area.id)

    for state in hass.states.async_all():
        async_expose_entity(hass, conversation.DOMAIN, state.entity_id, state.entity_id != home.garage_light)
    return home


async def async_setup_agent(
    hass: HomeAssistant, url: str, options: dict[str, Any] | None = None, *, api_key: str | None = None
) -> MockConfigEntry:
    """A server entry with the default agent, set up."""
    data = {CONF_URL: url} | ({"api_key": api_key} if api_key else {})
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=url,
        data=data,
        subentries_data=[
            {
                "subentry_type": SUBENTRY_CONVERSATION,
                "title": DEFAULT_AGENT_TITLE,
                "data": {**DEFAULT_AGENT_OPTIONS, CONF_MODEL: DEFAULT_MODEL, **(options or {})},
                "unique_id": None,
            }
        ],
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def async_ask(
    hass: HomeAssistant, text: str, language: str = "hu", conversation_id: str | None = None
) -> conversation.ConversationResult:
    """One turn through HA's conversation API, as `conversation.process` does it."""
    return await conversation.async_converse(
        hass, text, conversation_id, Context(), language=language, agent_id=AGENT_ID
    )


def speech(result: conversation.ConversationResult) -> str:
    text: str = result.response.speech["plain"]["speech"]
    return text


def is_error(result: conversation.ConversationResult) -> bool:
    return result.response.response_type is intent.IntentResponseType.ERROR


def script(*steps: Reply | Callable[[dict[str, Any]], Reply]) -> Callable[[dict[str, Any]], Reply]:
    """A responder answering the n-th chat request with the n-th step (a Reply or a function of the body)."""
    queue = list(steps)

    def respond(body: dict[str, Any]) -> Reply:
        step = queue.pop(0)
        return step(body) if callable(step) else step

    return respond


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool messages of a chat request, their content decoded."""
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def system_prompt(body: dict[str, Any]) -> str:
    content: str = body["messages"][0]["content"]
    assert body["messages"][0]["role"] == "system"
    return content


def tool_names(body: dict[str, Any]) -> set[str]:
    return {tool["function"]["name"] for tool in body.get("tools") or []}


def users(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def all_lines(text: str) -> Iterable[str]:
    return (line.strip() for line in text.splitlines())
