"""The guard: the model acts on exposed entities only; bad calls are repaired when safe, else refused (never run)."""

from typing import Any

import pytest
from homeassistant.components import conversation
from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.switch import SwitchDeviceClass, SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, setup_test_component_platform

from bench.ollama_wire import OllamaWireServer, Reply

from .home import Home, async_ask, call, script, speech, tool_results


async def _one_call(
    hass: HomeAssistant,
    wire: OllamaWireServer,
    tool: str,
    said: str = "Kapcsold fel a konyhai lámpát",
    **arguments: Any,
) -> dict[str, Any]:
    """The user says `said`, the model makes one tool call, then answers; returns the tool result it got back."""
    wire.responder = script(Reply("", tool_calls=[call(tool, **arguments)]), Reply("Rendben."))
    result = await async_ask(hass, said)
    assert speech(result) in ("Rendben.", "Ezt nem értettem pontosan. Elmondanád másképp?")
    [tool_result] = tool_results(wire.requests[-1])
    return tool_result


async def test_unexposed_target_is_refused_and_left_alone(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", name="Garázs lámpa")
    assert result["error"] == "refused"
    assert "not exposed" in result["error_text"]
    assert hass.states.get(home.garage_light).state == "off"


@pytest.mark.parametrize("target", ["light.garazs_lampa", ["Garázs lámpa"]])
async def test_unexposed_target_in_other_forms_is_refused(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry, target: Any
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", name=target, domain=["light"])
    assert "not exposed" in result["error_text"]
    assert hass.states.get(home.garage_light).state == "off"


async def test_unknown_name_is_refused_with_close_names(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", said="Kapcsold fel a kamra lámpát", name="Kamra lámpa")
    assert result["error_text"].startswith("There is no device named 'Kamra lámpa'. Exposed names: ")
    assert result["choices"] == ["Hálószoba lámpa", "Konyhai lámpa", "Nappali lámpa"]  # each a lamp
    assert hass.states.get(home.kitchen_light).state == "off"


async def _add_exposed(hass: HomeAssistant, domain: str, entity: Entity) -> str:
    """One more device in the home, of a domain the home has none of yet, exposed to Assist; its entity id."""
    setup_test_component_platform(hass, domain, [entity])
    assert await async_setup_component(hass, domain, {domain: {"platform": "test"}})
    await hass.async_block_till_done()
    assert entity.entity_id is not None
    async_expose_entity(hass, conversation.DOMAIN, entity.entity_id, True)
    return entity.entity_id


class Named(Entity):
    """A test device known by its name, off at first."""

    _attr_should_poll = False

    def __init__(self, name: str) -> None:
        self._attr_name = name
        self._attr_unique_id = name
        self._attr_is_on = False  # through the subclass's own (cached) property, not a class attribute here


class Battery(Named, BinarySensorEntity):
    """A device's battery: it can be read, not acted on."""

    _attr_device_class = BinarySensorDeviceClass.BATTERY


async def test_an_action_is_offered_only_the_names_it_can_act_on(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    # The curtain and its battery ("Smart Curtain or Smart Curtain Battery?"): only the curtain opens.
    await _add_exposed(hass, "binary_sensor", Battery("Konyhai lámpa akkumulátor"))
    result = await _one_call(hass, wire, "intent__HassTurnOn", name="Konyhai lámpája")
    assert "error" not in result, result  # the one lamp of that name it can act on is meant
    assert hass.states.get(home.kitchen_light).state == "on"


@pytest.mark.parametrize(
    ("said", "arguments"),
    [
        ("Kapcsold fel a konyha lámpát", {"name": "Konyha lámpa"}),
        ("Turn on the kitchen light", {"name": "kitchen light"}),
        ("Turn on the light in the kitchen", {"domain": ["light"], "area": "kitchen"}),  # the area's own alias
        ("Turn on the kitchen lamp", {"name": "lamp", "area": "cooking room"}),  # no such area at all
    ],
)
async def test_words_of_either_language_resolve_to_the_homes_own_names(  # noqa: PLR0917
    hass: HomeAssistant,
    wire: OllamaWireServer,
    home: Home,
    agent_entry: MockConfigEntry,
    said: str,
    arguments: dict[str, Any],
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", said=said, **arguments)
    if "cooking room" in str(arguments):
        assert result["error_text"].startswith("There is no area 'cooking room'")
        assert hass.states.get(home.kitchen_light).state == "off"
        return
    assert "error" not in result, result
    assert hass.states.get(home.kitchen_light).state == "on"
    assert hass.states.get(home.living_light).state == "on"  # as it was


async def test_name_in_the_wrong_area_is_refused(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", name="Konyhai lámpa", area="Hálószoba")
    assert "There is no device named 'Konyhai lámpa' in Hálószoba" in result["error_text"]
    assert hass.states.get(home.kitchen_light).state == "off"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": 42}, "name must be one device name as a string, not 42."),
        ({"name": {"x": 1}}, "name must be one device name as a string"),
        ({"name": "light.nincs_ilyen"}, "There is no entity light.nincs_ilyen"),
        ({"area": "Padlás", "domain": ["light"]}, "There is no area 'Padlás'. Areas:"),
        ({"area": ["Konyha", "Nappali"]}, "area must be one area name as a string"),
        ({"floor": "Emelet"}, "There is no floor 'Emelet'"),
        ({"name": "Konyhai lámpa", "domain": ["lock"]}, "domain 'lock' has no exposed device"),
    ],
)
async def test_malformed_targets_are_refused(  # noqa: PLR0917
    hass: HomeAssistant,
    wire: OllamaWireServer,
    home: Home,
    agent_entry: MockConfigEntry,
    arguments: dict[str, Any],
    message: str,
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", **arguments)
    assert result["error"] == "refused"
    assert result["error_text"].startswith(message)
    assert hass.states.get(home.kitchen_light).state == "off"
    assert hass.states.get(home.living_light).state == "on"


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": ["Konyhai lámpa"]},  # a one-item list where the name belongs
        {"name": "light.konyhai_lampa"},  # the entity id where the name belongs
        {"name": '["Konyhai lámpa"]', "domain": '["light"]'},  # JSON inside strings
        {"name": "Konyhai lámpa", "area": ["kitchen"], "floor": None, "device_class": ""},  # alias, empty values
        {"area": "Konyha", "device_class": ["light"]},  # a domain given as the device class (lights have none)
        {"name": "Konyhai lámpa", "domain": ["climate"]},  # the name decides over a domain it does not have
        {"name": "Konyhai lámpa", "device_class": ["temperature"]},  # and over a device class
    ],
)
async def test_repairable_calls_are_repaired_and_run(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry, arguments: dict[str, Any]
) -> None:
    result = await _one_call(hass, wire, "intent__HassTurnOn", **arguments)
    assert "error" not in result, result
    assert hass.states.get(home.kitchen_light).state == "on"


async def test_tool_by_its_unprefixed_name_is_run(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(hass, wire, "HassTurnOn", name="Konyhai lámpa")
    assert "error" not in result, result
    assert hass.states.get(home.kitchen_light).state == "on"


async def test_tool_under_another_tools_prefix_is_run(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    # The climate intent's tool is climate__HassClimateSetTemperature; small models write intent__.
    result = await _one_call(
        hass, wire, "intent__HassClimateSetTemperature", said="Állítsd a termosztátot 20 fokra",
        name="Termosztát", temperature=20,
    )  # fmt: skip
    assert "error" not in result, result
    assert hass.states.get(home.thermostat).attributes["temperature"] == 20


class Outlet(Named, SwitchEntity):
    """A switch whose device class is outlet (a plug)."""

    _attr_device_class = SwitchDeviceClass.OUTLET

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_is_on = True
        self.async_write_ha_state()


async def test_a_device_class_given_as_the_domain_is_taken_as_the_device_class(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    plug = await _add_exposed(hass, "switch", Outlet("Kávéfőző"))
    result = await _one_call(
        hass, wire, "intent__HassTurnOn", said="Kapcsold be a kávéfőzőt", name="Kávéfőző", domain=["outlet"]
    )
    assert "error" not in result, result
    assert hass.states.get(plug).state == "on"
    # A word that is neither a domain nor a device class of the home is still refused.
    result = await _one_call(
        hass, wire, "intent__HassTurnOn", said="Kapcsold be a kávéfőzőt", name="Kávéfőző", domain=["coffee"]
    )
    assert result["error_text"].startswith("domain 'coffee' has no exposed device"), result


async def test_room_given_as_the_name_targets_the_room(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(
        hass, wire, "intent__HassTurnOff", said="Kapcsold le a nappaliban", name="Nappali", domain=["light"]
    )
    assert "error" not in result, result
    assert hass.states.get(home.living_light).state == "off"


async def test_unknown_tool_is_refused(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(hass, wire, "HassUnlockEverything", name="Bejárat")
    assert result["error_text"].startswith("There is no tool 'HassUnlockEverything'. Tools: ")
    assert "intent__HassTurnOn" in result["error_text"]


async def test_tool_without_entity_targets_passes(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    result = await _one_call(hass, wire, "llm__GetDateTime")
    assert "error" not in result and result["date"], result


async def test_entity_id_arguments_of_scripts_must_be_exposed(
    hass: HomeAssistant, wire: OllamaWireServer, home: Home, agent_entry: MockConfigEntry
) -> None:
    assert await async_setup_component(
        hass,
        "script",
        {
            "script": {
                "villogtatas": {
                    "alias": "Villogtatás",
                    "description": "Flash a light",
                    "fields": {"entity_id": {"description": "The light", "selector": {"entity": {"domain": "light"}}}},
                    "sequence": [{"action": "light.turn_on", "target": {"entity_id": "{{ entity_id }}"}}],
                }
            }
        },
    )
    async_expose_entity(hass, conversation.DOMAIN, "script.villogtatas", True)
    result = await _one_call(hass, wire, "script__villogtatas", entity_id="light.garazs_lampa")
    assert "not exposed" in result["error_text"]
    assert hass.states.get(home.garage_light).state == "off"
    result = await _one_call(hass, wire, "script__villogtatas", entity_id=["light.konyhai_lampa", 7])
    assert result["error_text"].startswith("entity_id must be an entity id")
    result = await _one_call(hass, wire, "script__villogtatas", entity_id="light.konyhai_lampa")
    assert "error" not in result, result
    await hass.async_block_till_done()
    assert hass.states.get(home.kitchen_light).state == "on"
