"""A tool call HA cannot carry out goes back to the model, which corrects it; what can be fixed is fixed first."""

from typing import Any

import pytest
from homeassistant.components import conversation
from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, setup_test_component_platform

from bench.ollama_wire import OllamaWireServer, Reply
from custom_components.micropi_llm.const import CONF_PREFER_LOCAL

from .home import HomeLock, async_ask, async_setup_agent, call, script, speech, tool_results

LOCK = "lock.smart_lock"
LOCK_SENSOR = "binary_sensor.smart_lock"


class LockSensor(BinarySensorEntity):
    """The lock's own bolt sensor: same name, a read-only domain (as in the assist datasets' homes)."""

    _attr_should_poll = False
    _attr_device_class = BinarySensorDeviceClass.LOCK

    def __init__(self) -> None:
        self._attr_name = "Smart Lock"
        self._attr_unique_id = "smart_lock_sensor"
        self._attr_is_on = False


@pytest.fixture
async def lock_home(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "intent", {})
    setup_test_component_platform(hass, "lock", [HomeLock("Smart Lock", "smart_lock")])
    setup_test_component_platform(hass, "binary_sensor", [LockSensor()])
    assert await async_setup_component(hass, "lock", {"lock": {"platform": "test"}})
    assert await async_setup_component(hass, "binary_sensor", {"binary_sensor": {"platform": "test"}})
    await hass.async_block_till_done()
    floor = fr.async_get(hass).async_create("Ground floor")
    entry = ar.async_get(hass).async_create("Entry", floor_id=floor.floor_id)
    for entity_id in (LOCK, LOCK_SENSOR):
        er.async_get(hass).async_update_entity(entity_id, area_id=entry.id)
        async_expose_entity(hass, conversation.DOMAIN, entity_id, True)


@pytest.fixture
async def lock_agent(hass: HomeAssistant, wire: OllamaWireServer, lock_home: None) -> MockConfigEntry:
    return await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: False})


async def test_failed_tool_call_goes_back_to_the_model_which_corrects_it(
    hass: HomeAssistant, wire: OllamaWireServer, lock_agent: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock", area="Garage")]),
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock", area="Entry")]),
        Reply("The smart lock is unlocked."),
    )
    result = await async_ask(hass, "Unlock smart lock", language="en")
    assert speech(result) == "The smart lock is unlocked."
    assert hass.states.get(LOCK).state == "unlocked"
    [first] = tool_results(wire.requests[1])
    assert first["error_text"].startswith("There is no area 'Garage'")
    assert len(wire.requests) == 3


async def test_error_raised_by_the_intent_goes_back_to_the_model(
    hass: HomeAssistant, wire: OllamaWireServer, lock_agent: MockConfigEntry
) -> None:
    """HA's own refusal (here: the lock sensor cannot be locked) is the tool's result, not the answer."""
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock", domain=["binary_sensor"])]),
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock", domain=["lock"])]),
        Reply("Unlocked."),
    )
    result = await async_ask(hass, "Unlock smart lock", language="en")
    assert speech(result) == "Unlocked."
    assert hass.states.get(LOCK).state == "unlocked"
    [first] = tool_results(wire.requests[1])
    assert first["error"], first
    assert first["error_text"], first


async def test_name_shared_with_a_sensor_is_narrowed_to_the_domain_that_acts(
    hass: HomeAssistant, wire: OllamaWireServer, lock_agent: MockConfigEntry
) -> None:
    """Without narrowing HA answers "there are multiple devices called Smart Lock"."""
    wire.responder = script(Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock")]), Reply("Done."))
    result = await async_ask(hass, "Unlock smart lock", language="en")
    assert speech(result) == "Done."
    assert hass.states.get(LOCK).state == "unlocked"
    [tool_result] = tool_results(wire.requests[1])
    assert "error" not in tool_result, tool_result


@pytest.mark.parametrize("placeholder", ["None", "null", " ", ["None"]])
async def test_placeholder_floor_and_area_are_dropped(
    hass: HomeAssistant, wire: OllamaWireServer, lock_agent: MockConfigEntry, placeholder: Any
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock", floor=placeholder, area=placeholder)]),
        Reply("Done."),
    )
    await async_ask(hass, "Unlock smart lock", language="en")
    assert hass.states.get(LOCK).state == "unlocked"
    [tool_result] = tool_results(wire.requests[1])
    assert "error" not in tool_result, tool_result


async def test_failed_local_attempt_is_not_shown_to_the_model(
    hass: HomeAssistant, wire: OllamaWireServer, lock_home: None
) -> None:
    """HA's own matching fails on the shared name; the model makes its own call, which is narrowed.

    Shown the failed local call, small models repeat its error as their answer.
    """
    await async_setup_agent(hass, wire.url, {CONF_PREFER_LOCAL: True})
    wire.responder = script(Reply("", tool_calls=[call("intent__HassTurnOff", name="Smart Lock")]), Reply("Done."))
    result = await async_ask(hass, "Unlock Smart Lock", language="en")
    assert speech(result) == "Done."
    assert hass.states.get(LOCK).state == "unlocked"
    first = wire.requests[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user"], first
    assert "multiple devices" not in str(first)


async def test_room_given_as_name_and_area_targets_the_room(
    hass: HomeAssistant, wire: OllamaWireServer, lock_agent: MockConfigEntry
) -> None:
    wire.responder = script(
        Reply("", tool_calls=[call("intent__HassTurnOff", name="Entry", area="entry", domain=["lock"])]), Reply("Done.")
    )
    await async_ask(hass, "Unlock the entry", language="en")
    assert hass.states.get(LOCK).state == "unlocked"
    [tool_result] = tool_results(wire.requests[1])
    assert "error" not in tool_result, tool_result


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "Smart Lock", "floor": "Entry"},
        {"name": "Smart Lock", "area": "Entry", "floor": "entry"},
        {"name": "Entry", "area": "Entry", "floor": "Entry", "domain": ["lock"]},  # as Qwen2.5 1.5B wrote it
    ],
)
async def test_room_given_as_the_floor_targets_the_room(
    hass: HomeAssistant, wire: OllamaWireServer, lock_agent: MockConfigEntry, arguments: dict[str, Any]
) -> None:
    wire.responder = script(Reply("", tool_calls=[call("intent__HassTurnOff", **arguments)]), Reply("Done."))
    await async_ask(hass, "Unlock the lock in the entry", language="en")
    assert hass.states.get(LOCK).state == "unlocked"
    [tool_result] = tool_results(wire.requests[1])
    assert "error" not in tool_result, tool_result
