"""How a turn of tool rounds ends well: loops stopped early, and nothing meant for the model spoken.

A small model that is refused often repeats itself until the round limit, or ends the turn by
reading out the guard's correction, a tool result's JSON, or an English sentence to a Hungarian
household. `RoundWatch` follows the tool results of one turn and says when to stop: the same call
refused twice, `MAX_REFUSALS_IN_A_ROW` refusals one after the other, a tool that does not exist
called twice, or an action that was done made again (the model does not see it is done).
`machine_text` tells whether a final answer is fit to be spoken; where it is not (or the turn was
stopped), the household hears a short answer in its own language instead, a question naming the
closest matches when the guard had some.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from homeassistant.components import conversation

from .tool_repair import loads_lenient
from .vocabulary import words

MAX_REFUSALS_IN_A_ROW = 3
# A refused call's data may name the closest matches (`choices`), and why it was refused (`reason`).
CHOICES = "choices"
REASON = "reason"
UNKNOWN_TOOL = "unknown_tool"
MAX_CHOICES = 3


class Stop(StrEnum):
    """Why a turn was ended before the model answered."""

    REPEATED = "repeated"
    REFUSALS = "refusals"
    UNKNOWN_TOOL = "unknown_tool"


def _refused(result: Any) -> bool:
    return isinstance(result, dict) and ("error" in result or result.get("response_type") == "error")


def _call_key(name: str, args: Any) -> str:
    return f"{name}:{json.dumps(args, sort_keys=True, default=str)}"


@dataclass
class RoundWatch:
    """What the tool rounds of one turn have brought so far."""

    refusals_in_a_row: int = 0
    refused_calls: dict[str, int] = field(default_factory=dict)
    unknown_tools: int = 0
    succeeded: int = 0
    # How many of those changed something (HA's "action_done"): only then is "done" an answer.
    acted: int = 0
    # The actions done so far (HA's "action_done" results), by call.
    done_calls: set[str] = field(default_factory=set)
    # What the guard told the model: never to be spoken.
    corrections: list[str] = field(default_factory=list)
    # The closest matches of the latest refusal that had any.
    choices: list[str] = field(default_factory=list)
    # Why the turn was stopped, if it was.
    stopped: Stop | None = None
    # How many chat log contents were there before (the turn's own come after).
    seen: int = 0

    def observe(self, contents: list[conversation.Content]) -> Stop | None:
        """Read the chat log's contents added since the last look; why to stop now, if so."""
        new = contents[self.seen :]
        self.seen = len(contents)
        calls = {
            call.id: call
            for content in new
            if isinstance(content, conversation.AssistantContent)
            for call in content.tool_calls or ()
            if not call.external
        }
        stop: Stop | None = None
        for content in new:
            if not isinstance(content, conversation.ToolResultContent) or content.tool_call_id not in calls:
                continue
            call = calls[content.tool_call_id]
            data = content.result.data if content.result is not None else None
            if not (_refused(data) or (content.result is not None and content.result.error)):
                self.succeeded += 1
                self.refusals_in_a_row = 0
                if isinstance(data, dict) and data.get("response_type") == "action_done":
                    self.acted += 1
                    key = _call_key(call.tool_name, call.tool_args)
                    stop = Stop.REPEATED if key in self.done_calls else stop
                    self.done_calls.add(key)
                continue
            stop = self._refusal(call.tool_name, call.tool_args, data if isinstance(data, dict) else {}) or stop
        self.stopped = self.stopped or stop
        return stop

    def _refusal(self, name: str, args: Any, data: dict[str, Any]) -> Stop | None:
        self.refusals_in_a_row += 1
        if isinstance(text := data.get("error_text"), str):
            self.corrections.append(text)
        if isinstance(choices := data.get(CHOICES), list) and choices:
            self.choices = [str(choice) for choice in choices[:MAX_CHOICES]]
        key = _call_key(name, args)
        self.refused_calls[key] = self.refused_calls.get(key, 0) + 1
        if data.get(REASON) == UNKNOWN_TOOL:
            self.unknown_tools += 1
            if self.unknown_tools >= 2:
                return Stop.UNKNOWN_TOOL
        if self.refused_calls[key] >= 2:
            return Stop.REPEATED
        if self.refusals_in_a_row >= MAX_REFUSALS_IN_A_ROW:
            return Stop.REFUSALS
        return None


# ----- is an answer fit to be spoken? -------------------------------------------------------------

# What tool results and the guard's corrections say, and people never do.
_MACHINE = re.compile(
    r"error_text|\"error\"|```|intent__|(?:\b|__)Hass[A-Z]\w+|There is no (tool|device|area|floor|entity)\b|"
    r"Exposed (names|devices):|is not exposed to you|The user did not|Call it again|must be one \w+",
)
_ENGLISH = frozenset(
    str.split(
        "the is are you your to i have has there sorry please it this that of and what which turned on off "
        "light lights set now can could would"
    )
)
_HUNGARIAN = frozenset(str.split("a az és nem van vagy egy is meg ezt azt hogy mit melyik szeretnéd kérlek"))
_HUNGARIAN_LETTERS = frozenset("áéíóöőúüű")
_JSON_LIST = re.compile(r"\[\s*[\[{\"]")


def _word_counts(text: str) -> tuple[int, int]:
    """How many words of the text are English, and how many Hungarian."""
    said = [word.strip(".,!?:;\"'") for word in text.casefold().split()]
    english = sum(word in _ENGLISH for word in said)
    hungarian = sum(word in _HUNGARIAN or any(letter in _HUNGARIAN_LETTERS for letter in word) for word in said)
    return english, hungarian


def _looks_english(text: str) -> bool:
    """Mostly English words: a Hungarian device name inside ("the Nappali lámpa") does not save it."""
    english, hungarian = _word_counts(text)
    return english >= 2 and english > hungarian


def _looks_hungarian(text: str) -> bool:
    """Mostly Hungarian words ("A garázskapu bezárva."); "the Nappali lámpa is on" is not."""
    english, hungarian = _word_counts(text)
    return hungarian >= 2 and hungarian > english


def _spoken_in(text: str) -> str | None:
    """The language of the user's sentence, short as it may be ("És most?"), if it shows."""
    english, hungarian = _word_counts(text)
    if english > hungarian:
        return "en"
    return "hu" if hungarian > english else None


def _is_json(text: str) -> bool:
    """JSON, or braces, or a list of objects or strings: nobody speaks those ("[1] Az első lépés." is fine)."""
    if text[:1] == "{" or _JSON_LIST.match(text):
        return True
    if text[:1] != "[":
        return False
    try:
        return isinstance(loads_lenient(text), dict | list)
    except ValueError:
        return False


def machine_text(text: str, language: str | None, corrections: Iterable[str] = (), asked: str = "") -> bool:
    """Whether a final answer is not for the household: JSON, a correction meant for the model, a
    tool name, or in another language than the user's: English to a Hungarian sentence, Hungarian to
    an English one (`asked`, the user's sentence; without it the turn's `language` is the user's)."""
    body = text.strip()
    if not body:
        return False
    if body.startswith("```") or "<tool_call>" in body or "[TOOL_CALLS]" in body or _is_json(body):
        return True
    if _MACHINE.search(body):
        return True
    answer = set(words(body))
    for correction in corrections:
        told = set(words(correction))
        if len(told) >= 3 and len(told & answer) >= 0.6 * len(told):
            return True
    spoken = _spoken_in(asked) or ("hu" if (language or "").split("-")[0].lower() == "hu" else "en")
    if _looks_english(body):
        return spoken == "hu"
    return _looks_hungarian(body) and spoken == "en"


def spoken_choices(choices: list[str], or_word: str) -> str:
    """ "A, B or C" in the household's language."""
    if len(choices) < 2:
        return "".join(choices)
    return f"{', '.join(choices[:-1])} {or_word} {choices[-1]}"
