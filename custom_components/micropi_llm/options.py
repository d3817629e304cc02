"""An agent's settings, typed: built once from its subentry's data, and what the config flow saves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.const import CONF_LLM_HASS_API, CONF_MODEL, CONF_PROMPT

from .const import (
    CONF_KEEP_ALIVE,
    CONF_MAX_HISTORY,
    CONF_MAX_TOOL_ITERATIONS,
    CONF_NUM_CTX,
    CONF_PREFER_LOCAL,
    CONF_TEMPERATURE,
    CONF_TIMEOUT,
    DEFAULT_AGENT_OPTIONS,
    DEFAULT_MODEL,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOptions:
    """One conversation agent's settings (see strings.json for what each means)."""

    model: str
    prompt: str
    llm_hass_api: tuple[str, ...]
    max_history: int
    num_ctx: int
    keep_alive: int  # seconds; -1 keeps the model loaded
    temperature: float
    timeout: int  # seconds for a whole turn
    max_tool_iterations: int
    prefer_local: bool

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AgentOptions:
        """The options in a subentry's data (or the flow's form), defaults for what is missing.

        The number selector gives floats and an empty API selection may come as None: both are
        normalised here, once.
        """
        merged = {**DEFAULT_AGENT_OPTIONS, **data}
        return cls(
            model=str(merged.get(CONF_MODEL, DEFAULT_MODEL)).strip(),
            prompt=str(merged[CONF_PROMPT]),
            llm_hass_api=tuple(merged[CONF_LLM_HASS_API] or ()),
            max_history=int(merged[CONF_MAX_HISTORY]),
            num_ctx=int(merged[CONF_NUM_CTX]),
            keep_alive=int(merged[CONF_KEEP_ALIVE]),
            temperature=float(merged[CONF_TEMPERATURE]),
            timeout=int(merged[CONF_TIMEOUT]),
            max_tool_iterations=int(merged[CONF_MAX_TOOL_ITERATIONS]),
            prefer_local=bool(merged[CONF_PREFER_LOCAL]),
        )

    def as_data(self) -> dict[str, Any]:
        """The options as a subentry stores them."""
        return {
            CONF_MODEL: self.model,
            CONF_PROMPT: self.prompt,
            CONF_LLM_HASS_API: list(self.llm_hass_api),
            CONF_MAX_HISTORY: self.max_history,
            CONF_NUM_CTX: self.num_ctx,
            CONF_KEEP_ALIVE: self.keep_alive,
            CONF_TEMPERATURE: self.temperature,
            CONF_TIMEOUT: self.timeout,
            CONF_MAX_TOOL_ITERATIONS: self.max_tool_iterations,
            CONF_PREFER_LOCAL: self.prefer_local,
        }
