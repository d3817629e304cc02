"""Constants of the MicroPi LLM integration."""

from typing import Any, Final

from homeassistant.const import CONF_LLM_HASS_API, CONF_MODEL, CONF_PROMPT
from homeassistant.helpers import llm

DOMAIN: Final = "micropi_llm"

SUBENTRY_CONVERSATION: Final = "conversation"
DEFAULT_AGENT_TITLE: Final = "MicroPi"

DEFAULT_MODEL: Final = "ministral-3:3b-instruct-2512-q4_K_M"

CONF_MAX_HISTORY: Final = "max_history"
CONF_NUM_CTX: Final = "num_ctx"
CONF_KEEP_ALIVE: Final = "keep_alive"
CONF_TEMPERATURE: Final = "temperature"
CONF_TIMEOUT: Final = "timeout"
CONF_MAX_TOOL_ITERATIONS: Final = "max_tool_iterations"
CONF_PREFER_LOCAL: Final = "prefer_local"

DEFAULT_PROMPT: Final = (
    "You are MicroPi, the voice assistant of this home. Answer in the language the user speaks, "
    "briefly and in plain text: your answer is read aloud.\n"
    "The home's devices and their current states are listed below, so answer questions about "
    "them from that list. To change something, call a tool; for a relative change (e.g. two "
    "degrees lower, a bit brighter) work out the new value from the current state. Only control "
    "devices on the list. If a request is unclear, ask one short question."
)
# The same instructions in Hungarian, for a Hungarian HA: the model answers in kind more reliably.
DEFAULT_PROMPT_HU: Final = (
    "Te vagy a MicroPi, ennek az otthonnak a hangasszisztense. Azon a nyelven válaszolj, amelyen a "
    "felhasználó beszél (többnyire magyarul), röviden, egyszerű szöveggel: a válaszodat felolvassuk.\n"
    "Az otthon eszközei és jelenlegi állapotuk lent vannak felsorolva; az ezekre vonatkozó kérdésekre "
    "ebből válaszolj. Ha valamit módosítani kell, hívj meg egy eszközt (tool); viszonylagos kérésnél "
    "(pl. két fokkal lejjebb, kicsit világosabbra) a jelenlegi állapotból számold ki az új értéket. Csak "
    "a listán szereplő eszközöket vezéreld. Ha egy kérés nem egyértelmű, kérdezz vissza röviden."
)
DEFAULT_PROMPTS: Final = {"en": DEFAULT_PROMPT, "hu": DEFAULT_PROMPT_HU}


def default_prompt(language: str | None) -> str:
    """The default instructions in HA's language (English unless Hungarian)."""
    return DEFAULT_PROMPTS.get((language or "en").split("-")[0].lower(), DEFAULT_PROMPT)


DEFAULT_MAX_HISTORY: Final = 10  # user turns kept, besides the current one
DEFAULT_NUM_CTX: Final = 8192  # tokens
DEFAULT_KEEP_ALIVE: Final = -1  # seconds; -1 keeps the model loaded (our GPU box serves only this)
DEFAULT_TEMPERATURE: Final = 0.2  # low: commands should come out the same every time
DEFAULT_TIMEOUT: Final = 30  # seconds for a whole turn, tool calls included
DEFAULT_MAX_TOOL_ITERATIONS: Final = 5
DEFAULT_PREFER_LOCAL: Final = True

# An agent's options as a new agent starts with them (the model is chosen in the flow).
DEFAULT_AGENT_OPTIONS: Final[dict[str, Any]] = {
    CONF_PROMPT: DEFAULT_PROMPT,
    CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
    CONF_MAX_HISTORY: DEFAULT_MAX_HISTORY,
    CONF_NUM_CTX: DEFAULT_NUM_CTX,
    CONF_KEEP_ALIVE: DEFAULT_KEEP_ALIVE,
    CONF_TEMPERATURE: DEFAULT_TEMPERATURE,
    CONF_TIMEOUT: DEFAULT_TIMEOUT,
    CONF_MAX_TOOL_ITERATIONS: DEFAULT_MAX_TOOL_ITERATIONS,
    CONF_PREFER_LOCAL: DEFAULT_PREFER_LOCAL,
}

# Seconds for the quick calls (listing models, checking the server) in flows and at start-up.
CONNECT_TIMEOUT: Final = 10

# How many recent turns' figures diagnostics keep.
TURN_STATS_KEPT: Final = 20

__all__ = ["CONF_LLM_HASS_API", "CONF_MODEL", "CONF_PROMPT"]
