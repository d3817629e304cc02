"""To-do lists: add, update, remove items; the state is the number of open items."""

from __future__ import annotations

import uuid
from typing import Any

from homeassistant.components.todo.const import TodoItemStatus, TodoListEntityFeature
from homeassistant.components.todo.entity import TodoItem, TodoListEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import FixtureHomeConfigEntry
from .entity import FixtureEntity, add_fixture_entities, features

ALL = (
    TodoListEntityFeature.CREATE_TODO_ITEM
    | TodoListEntityFeature.UPDATE_TODO_ITEM
    | TodoListEntityFeature.DELETE_TODO_ITEM
)


class FixtureTodoList(FixtureEntity, TodoListEntity):
    def apply(self, state: Any, attributes: dict[str, Any]) -> None:
        # Completing an item is what "check off" does, so updates stay allowed even where the
        # fixture lists only create/delete.
        self._attr_supported_features = features(attributes, TodoListEntityFeature, ALL) | (
            TodoListEntityFeature.UPDATE_TODO_ITEM
        )
        if "todo_items" in attributes or self._attr_todo_items is None:
            self._attr_todo_items = [self._item(raw) for raw in attributes.get("todo_items") or []]

    @staticmethod
    def _item(raw: Any) -> TodoItem:
        if isinstance(raw, dict):
            status = TodoItemStatus(raw.get("status", TodoItemStatus.NEEDS_ACTION))
            return TodoItem(summary=str(raw.get("summary", "")), uid=str(raw.get("uid") or uuid.uuid4()), status=status)
        return TodoItem(summary=str(raw), uid=str(uuid.uuid4()), status=TodoItemStatus.NEEDS_ACTION)

    @property
    def items(self) -> list[TodoItem]:
        if self._attr_todo_items is None:
            self._attr_todo_items = []
        return self._attr_todo_items

    async def async_create_todo_item(self, item: TodoItem) -> None:
        self.items.append(TodoItem(summary=item.summary, uid=str(uuid.uuid4()), status=TodoItemStatus.NEEDS_ACTION))
        self.async_write_ha_state()

    async def async_update_todo_item(self, item: TodoItem) -> None:
        self._attr_todo_items = [item if existing.uid == item.uid else existing for existing in self.items]
        self.async_write_ha_state()

    async def async_delete_todo_items(self, uids: list[str]) -> None:
        self._attr_todo_items = [existing for existing in self.items if existing.uid not in uids]
        self.async_write_ha_state()


async def async_setup_entry(
    hass: HomeAssistant, entry: FixtureHomeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities(add_fixture_entities(entry, "todo", FixtureTodoList))
