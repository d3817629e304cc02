"""How an agent's context window (`num_ctx` tokens) is shared out: the one place for that policy.

Ollama cuts a prompt that does not fit from its start, instructions included, so we keep it in:

- a reserve is kept free for the model's answer;
- the home's live state gets at most half of the rest (a larger home is summarised, see
  `live_state.async_render_home`);
- the history gets what is left after the instructions and the tools, oldest turns dropped first.

Sizes are estimated from characters, not counted by a tokenizer: close enough, and free.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from homeassistant.helpers.json import json_dumps

_LOGGER = logging.getLogger(__name__)

# Characters per token (Hungarian splits into more tokens than English; 3 errs on the safe side for both).
CHARS_PER_TOKEN = 3
# Tokens kept free in the context window for the model's answer.
REPLY_RESERVE_TOKENS = 512

type Turn = list[dict[str, Any]]  # a user message with everything that answered it, as Ollama messages


def estimate_tokens(payload: Any) -> int:
    """About how many tokens the payload costs, as JSON."""
    return len(json_dumps(payload)) // CHARS_PER_TOKEN


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """The share-out of one agent's context window."""

    num_ctx: int

    @property
    def home_chars(self) -> int:
        """The longest home listing (in characters) the prompt may hold: half the window after the reserve."""
        return (self.num_ctx - REPLY_RESERVE_TOKENS) * CHARS_PER_TOKEN // 2

    def fit_history(
        self, head: list[dict[str, Any]], tools: list[dict[str, Any]] | None, turns: list[Turn]
    ) -> list[Turn]:
        """The newest turns that fit beside the system message (`head`) and the tools.

        The current turn always goes, even when it alone is too long (then a warning says so).
        """
        budget = self.num_ctx - REPLY_RESERVE_TOKENS - estimate_tokens(head) - (estimate_tokens(tools) if tools else 0)
        turns = list(turns)
        while len(turns) > 1 and estimate_tokens(turns) > budget:
            turns.pop(0)
        if estimate_tokens(turns) > budget:
            _LOGGER.warning(
                "The prompt (about %d tokens) does not fit num_ctx %d; raise the agent's context window",
                self.num_ctx - budget + estimate_tokens(turns),
                self.num_ctx,
            )
        return turns
