"""The base of every fixture entity: identity from the fixture, state set by `apply`."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntFlag
from typing import Any

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity

from . import DOMAIN, FixtureHomeConfigEntry


def enum_value(value: Any) -> Any:
    """`binary_sensor.BinarySensorDeviceClass.LOCK` (how the datasets write enums) -> `lock`."""
    if isinstance(value, str) and value.count(".") >= 1 and value.split(".")[-1].isupper():
        return value.split(".")[-1].lower()
    return value


def as_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"on", "true", "1", "yes", "open", "home", "detected"}


def as_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except TypeError, ValueError:
        return None


class FixtureEntity(Entity):
    """An entity whose id, name and device come from the dataset's `_fixtures.yaml`."""

    _attr_should_poll = False
    _attr_has_entity_name = False

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.entity_id = spec.entity_id
        self._attr_unique_id = spec.entity_id
        self._attr_name = spec.name
        if spec.device:
            self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, spec.device)})
        attributes = {key: enum_value(value) for key, value in (spec.attributes or {}).items()}
        if "device_class" in attributes:
            self._attr_device_class = attributes["device_class"]
        self.apply(spec.state, attributes)

    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        """Take a state and attributes as the datasets write them (initial fixture or a test's `setup`)."""
        raise NotImplementedError


def add_fixture_entities(
    entry: FixtureHomeConfigEntry, domain: str, factory: Callable[[Any], FixtureEntity]
) -> list[FixtureEntity]:
    """The entities of one domain, remembered by entity_id so the bench can apply a test's `setup`."""
    created = []
    for spec in entry.runtime_data.home.entities:
        if spec.domain == domain:
            entity = factory(spec)
            entry.runtime_data.entities[spec.entity_id] = entity
            created.append(entity)
    return created


def features[F: IntFlag](attributes: dict[str, Any], flags: type[F], default: F) -> F:
    """`supported_features` as the datasets list them (`vacuum.VacuumEntityFeature.START`), else `default`.

    `default` is what the entity implements: a fixture may leave features out, never add one the
    entity cannot serve (HA would then ask it for fan modes or sources it does not have).
    """
    names = attributes.get("supported_features")
    if not isinstance(names, list):
        return default
    result = flags(0)
    for name in names:
        member = str(name).rsplit(".", 1)[-1]
        if member in flags.__members__:
            result |= flags[member]
    return result & default
