"""Which way a sentence asks a device to go, and whether it asks at all.

"Tegnap elfelejtettem bezárni az ajtót" ("yesterday I forgot to lock the door") speaks of the
door, so the grounding check lets a call on the door through; a small model unlocked it. So an
action tool's direction (HA's meaning: HassTurnOn locks a lock and opens a cover, HassTurnOff
unlocks and closes) must not be the opposite of what the verbs of the sentence ask, and a sentence
that only tells of the past asks for no action. Conservative: a sentence with no verb we know, or
with both directions on one axis ("kapcsold fel a lámpát és le a tévét"), asks for nothing here,
and the call goes on as before.

Verbs are matched folded (no accents), with their prefix attached ("bezárni", "felkapcsolod") or
separate, just before or after ("zárd be", "kapcsold fel", "fel tudnád kapcsolni", "turn it off").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .vocabulary import words

ON, OFF, OPEN, CLOSE = "on", "off", "open", "close"
OPPOSITE = {ON: OFF, OFF: ON, OPEN: CLOSE, CLOSE: OPEN}

# A Hungarian verb stem: the directions its prefixes give it (None: the stem alone, no prefix).
_HU_VERBS: dict[str, dict[str | None, str]] = {
    "kapcsol": {"fel": ON, "be": ON, "ki": OFF, "le": OFF},
    "gyujt": {"fel": ON, "meg": ON, None: ON},
    "olt": {"le": OFF, "ki": OFF, "el": OFF, None: OFF},
    "indit": {"el": ON, "be": ON, None: ON},
    "allit": {"le": OFF},
    "zar": {"be": CLOSE, "le": CLOSE, "ossze": CLOSE, None: CLOSE},
    "csuk": {"be": CLOSE, "le": CLOSE, "ossze": CLOSE, None: CLOSE},
    "nyit": {"ki": OPEN, "fel": OPEN, None: OPEN},
    "nyis": {"ki": OPEN, "fel": OPEN, None: OPEN},
    "old": {"fel": OPEN, "ki": OPEN},
    "enged": {"le": CLOSE, "fel": OPEN},
    "huz": {"le": CLOSE, "fel": OPEN},
    "ereszt": {"le": CLOSE, "fel": OPEN},
    "eressz": {"le": CLOSE, "fel": OPEN},
}
_HU_PREFIXES = ("fel", "be", "ki", "le", "el", "meg", "ossze")
# Endings a verb stem takes (imperative, infinitive, conditional, present, past). The bare stem,
# "zárat" or "zárja" can be the noun "lock", so they are no verb here.
# (An alternation: the match is anchored at the word's end, so their order does not matter.)
_HU_ENDINGS = (
    "sd|s|sa|sad|son|d|j|jad|jon|jatok|junk|juk|ni|ani|eni|nad|nal|na|nank|anad|anal|ana|ened|enel"
    "|od|om|ed|em|ta|tam|tad|tak|tuk|te|tem|ted|tek|ott|ottam|ottad|otta|ottuk|ett|ettem|ette|va"
)
_HU_VERB = re.compile(
    rf"^(?P<prefix>{'|'.join(_HU_PREFIXES)})?(?P<stem>{'|'.join(sorted(_HU_VERBS, key=len, reverse=True))})"
    rf"(?P<ending>{_HU_ENDINGS})$"
)
# Endings that neither ask nor tell: the infinitive ("bezárni", after "elfelejtettem" or "tudnád")
# and the state ("zárva").
_HU_NEUTRAL = frozenset({"ni", "ani", "eni", "va"})
# English verbs and their directions, and the particles of "turn/switch/power ... on/off".
_EN_VERBS = {"lock": CLOSE, "close": CLOSE, "shut": CLOSE, "lower": CLOSE, "unlock": OPEN, "open": OPEN, "raise": OPEN}
_EN_PHRASAL = frozenset({"turn", "switch", "power"})
_EN_PARTICLES = {"on": ON, "off": OFF}
# "I locked", "we turned ...": told of, not asked ("the door is locked" is not).
_EN_PAST = re.compile(r"^(?:locked|unlocked|closed|shut|opened|turned|switched|lowered|raised)$")
_EN_SUBJECTS = frozenset({"i", "we", "i've", "ive", "we've"})
# Words that tell a sentence tells of the past ("elfelejtettem", "I forgot", "tegnap").
_TOLD = re.compile(r"^(?:el)?felejtett|^forgot|^yesterday$|^tegnap")
# Words that ask, whatever else the sentence says ("légyszi", "please", "could you").
_ASKING = frozenset(
    {"legyszi", "legyszives", "kerlek", "kerem", "please", "pls", "can", "could", "would", "tudnad", "tudnal", "most"}
)
# Words either side of a Hungarian verb that can be its separate prefix ("zárd be", "fel tudnád
# kapcsolni"), and after an English one its particle ("turn the kitchen light off").
_HU_NEAR = 2
_EN_NEAR = 4


def _hu_verb(said: Sequence[str], n: int) -> tuple[str | None, str | None]:
    """The direction of the Hungarian verb at `n` (None if none) and its tense: "ask", "told" or None."""
    match = _HU_VERB.match(said[n])
    if match is None:
        return None, None
    meanings = _HU_VERBS[match["stem"]]
    prefix = match["prefix"]
    if prefix is None:
        near = [*said[max(0, n - _HU_NEAR) : n], *said[n + 1 : n + 1 + _HU_NEAR]]
        prefix = next((word for word in near if word in meanings), None)
    ending = match["ending"]
    tense = None if ending in _HU_NEUTRAL else "told" if ending.startswith(("t", "ott", "ett")) else "ask"
    return meanings.get(prefix), tense


def _en_verb(said: Sequence[str], n: int) -> str | None:
    word = said[n]
    if word in _EN_PHRASAL:
        return next((_EN_PARTICLES[w] for w in said[n + 1 : n + 1 + _EN_NEAR] if w in _EN_PARTICLES), None)
    return _EN_VERBS.get(word)


def _read(text: str) -> tuple[set[str], bool, bool]:
    """The directions a text's verbs speak of, whether it asks, whether it tells of the past."""
    said = words(text)
    directions: set[str] = set()
    asking = told = False
    for n, word in enumerate(said):
        direction, tense = _hu_verb(said, n)
        direction = direction or _en_verb(said, n)
        if direction:
            directions.add(direction)
        asking = asking or tense == "ask" or word in _ASKING
        told = told or tense == "told" or bool(_TOLD.search(word))
        told = told or bool(_EN_PAST.match(word) and _EN_SUBJECTS & set(said[:n]))
    return directions, asking, told


def asked_directions(text: str) -> frozenset[str]:
    """The directions a sentence asks for, one per axis at most (both said: none on that axis)."""
    directions, _asking, _told = _read(text)
    return frozenset(d for d in directions if OPPOSITE[d] not in directions)


def tells_only(text: str) -> bool:
    """Whether the sentence tells of something done or forgotten and asks for nothing."""
    _directions, asking, told = _read(text)
    return told and not asking and not text.rstrip().endswith("?")


def call_direction(tool: str, domain: str | None) -> str | None:
    """The direction an action tool goes in, in HA's meaning for the domain it acts on."""
    intent = tool.rpartition("__")[2]
    if intent in ("HassTurnOn", "HassTurnOff"):
        on = intent == "HassTurnOn"
        if domain == "lock":
            return CLOSE if on else OPEN  # HA: turning a lock on locks it
        if domain in ("cover", "valve"):
            return OPEN if on else CLOSE
        return (ON if on else OFF) if domain else None
    return {"HassMediaUnpause": ON, "HassMediaPause": OFF, "HassVacuumStart": ON, "HassVacuumReturnToBase": OFF}.get(
        intent
    )


_SAYS = {ON: "turn on", OFF: "turn off", OPEN: "open or unlock", CLOSE: "close or lock"}


def direction_problem(tool: str, domains: Sequence[str], asked: frozenset[str], told: bool) -> str | None:
    """Why the call goes against what was asked (a correction for the model), else None."""
    if told:
        return "The user told you something; they did not ask for an action. Answer them; do not act."
    candidates: list[str | None] = [*domains] or [None]
    for domain in candidates:
        going = call_direction(tool, domain)
        if going and OPPOSITE[going] in asked and going not in asked:
            return f"The user asked to {_SAYS[OPPOSITE[going]]}, not to {_SAYS[going]}. Call the tool that does that."
    return None
