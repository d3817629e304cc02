"""Rewriting a Hungarian (or accent-less) sentence into the spelling HA's own templates match.

Pure text work over hassil's templates; nothing here knows Home Assistant. `local_match.py` is the
HA glue that runs HA's matcher on the sentence as typed and then on these rewrites.

HA's Hungarian templates glue case endings straight onto a name (`{area}ban`, `{name}t`), so they
miss the spoken forms where the name's last vowel lengthens ("hálószoba" -> "hálószobában",
"lámpa" -> "lámpát"), and every sentence typed without accents ("lampat", "kapcsold be a
konyhat"). A sentence is rewritten so that:

1. a word (or run of words) that is an inflected, accent-less or differently cased form of an
   exposed entity's, an area's or a floor's name or alias becomes that name plus the ending
   HA's templates accept after such a name ("hálószobában" -> "Hálószobaban");
2. any other word written without accents becomes the template word it folds to
   ("lampat" -> "lámpát").

Both tables are read from the language's own templates, so there is nothing to keep in step
with HA's intents; only the list of Hungarian case endings is ours. A room named "...szoba" may be
said without it ("fürdőben" for "Fürdőszoba").

Also here, as pure text work: splitting two commands joined by "és" (`split_commands`), and the
spoken Hungarian answer to a question about one thing (`reading_answer`, `yes_no_answer`).
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hassil.expression import Expression, Group, ListReference, RuleReference, Sequence, TextChunk
from hassil.intents import Intents, TextSlotList
from hassil.util import remove_punctuation

# The slot lists that hold the home's names, as HA's default agent fills them.
NAME_LISTS = ("name", "area", "floor")

# Hungarian case endings as they fold (no accents), grouped by case. Within a group the
# endings differ only by vowel harmony or linking vowel, so any of them carries the same
# meaning; we output whichever one HA's templates accept after that kind of name.
_HU_CASE_ENDINGS: tuple[tuple[str, ...], ...] = (
    ("t", "at", "et", "ot"),  # accusative: lámpát, kertet, ventilátort, tükröt
    ("n", "on", "en"),  # superessive: emeleten, erkélyen, teraszon
    ("ban", "ben"),  # inessive: hálószobában, fürdőben
    ("ba", "be"),  # illative: konyhába
    ("ra", "re"),  # sublative: lámpára
    ("nak", "nek"),  # dative: lámpának
    ("i",),  # adjective: konyhai, nappali (of the living room)
    ("hoz", "hez"),  # allative
    ("bol",),  # elative: ból/ből
    ("rol",),  # delative: ról/ről
    ("tol",),  # ablative: tól/től
    ("nal", "nel"),  # adessive
    ("val", "vel"),  # instrumental
    ("ig",),  # terminative
)
CASE_ENDINGS: Mapping[str, tuple[tuple[str, ...], ...]] = {"hu": _HU_CASE_ENDINGS}

# A room named "...szoba" is said by its first part too ("fürdő", "háló", "dolgozó"), when that
# part is this long at least (so "kisszoba" stays whole).
_ROOM_WORD = "szoba"
_MIN_ROOM_SHORT_FORM = 4

# Rules within rules are followed this deep, against a custom rule that names itself.
_MAX_RULE_DEPTH = 8
_PUNCTUATION = string.punctuation + "„”“’«»…¿¡"


def fold(text: str) -> str:
    """Return text casefolded and without accents, the form two spellings are compared in."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@dataclass(frozen=True, slots=True)
class LanguageWords:
    """What a language's templates spell out, learnt once from HA's intents for it."""

    # Folded word -> the template's spelling of it ("lampat" -> "lámpát").
    words: Mapping[str, str]
    # Every spelling the templates use, so a word already spelt right is left alone.
    spellings: frozenset[str]
    # Slot list ("name", "area", "floor") -> folded ending -> the template's spelling of the
    # endings the templates accept right after a value of that list ("ban" -> "ban").
    endings: Mapping[str, Mapping[str, str]]


def learn_language(intents: Intents) -> LanguageWords:
    """Collect the words of a language's templates and the endings they put after names."""
    rules = {name: rule.expression for name, rule in intents.expansion_rules.items()}
    sentences = [
        template.expression
        for known_intent in intents.intents.values()
        for data in known_intent.data
        for template in data.sentences
    ]
    # The intents' own lists hold words too ("zárva", "meleg fehérre", "redőnyöket").
    list_values = [
        value.text_in
        for slot_list in intents.slot_lists.values()
        if isinstance(slot_list, TextSlotList)
        for value in slot_list.values
    ]
    # A rule stands for a word break in a sentence: its own words are learnt from the rule.
    template_words = _Words(rules, expand_rules=False)
    for template in (*rules.values(), *sentences, *list_values):
        template_words.add(template)
    words: dict[str, str] = {}
    spellings: set[str] = set()
    for word in template_words.words:
        if "{" not in word and not any(char.isdigit() for char in word):
            _keep_plainest(words, fold(word), word)
            spellings.add(word)

    # The endings after a name are spread over nested rules (<area> -> <area_ragok>), so
    # here rules are expanded.
    rule_words = _Words(rules, expand_rules=True)
    for rule in rules.values():
        rule_words.add(rule)
    endings: dict[str, dict[str, str]] = {list_name: {} for list_name in NAME_LISTS}
    for word in rule_words.words:
        for list_name, list_endings in endings.items():
            if word.startswith(f"{{{list_name}}}"):
                ending = word.removeprefix(f"{{{list_name}}}")
                _keep_plainest(list_endings, fold(ending), ending)
    return LanguageWords(words=words, spellings=frozenset(spellings), endings=endings)


# What a template part can produce, as far as word-building goes: either a piece of one word
# (no space in it), or a text with spaces, kept as the pieces before its first space and after
# its last, which may join the neighbours' pieces; the whole words between are already stored.
type _Shape = str | tuple[str, str]


class _Words:
    """Collect every whole word a template can produce, without listing every sentence."""

    def __init__(self, rules: Mapping[str, Expression], *, expand_rules: bool) -> None:
        self.words: set[str] = set()
        self._rules = rules
        self._expand_rules = expand_rules

    def add(self, template: Expression) -> None:
        for shape in self._shapes(template, depth=0):
            self._store(*((shape,) if isinstance(shape, str) else shape))

    def _store(self, *words: str) -> None:
        self.words.update(word.casefold() for word in words if word)

    def _shapes(self, expression: Expression, depth: int) -> set[_Shape]:
        match expression:
            case TextChunk():
                return {self._chunk(expression.original_text)}
            case ListReference():
                return {f"{{{expression.list_name}}}"}
            case RuleReference() if (
                self._expand_rules and depth < _MAX_RULE_DEPTH and expression.rule_name in self._rules
            ):
                return self._shapes(self._rules[expression.rule_name], depth + 1)
            case RuleReference():
                return {("", "")}
            case Sequence():
                shapes: set[_Shape] = {""}
                for item in expression.items:
                    parts = self._shapes(item, depth)
                    shapes = {self._join(left, right) for left in shapes for right in parts}
                return shapes
            case Group():
                # An alternative (an optional part included) or a permutation: hassil puts
                # spaces around a permutation's parts, so their order makes no new word.
                return set().union(*(self._shapes(item, depth) for item in expression.items))
        return set()  # pragma: no cover - hassil has no other kind of expression

    def _chunk(self, text: str) -> _Shape:
        if not any(char.isspace() for char in text):
            return text
        words = text.split()
        left = words.pop(0) if words and not text[0].isspace() else ""
        right = words.pop() if words and not text[-1].isspace() else ""
        self._store(*words)
        return (left, right)

    def _join(self, left: _Shape, right: _Shape) -> _Shape:
        match left, right:
            case str(), str():
                return left + right
            case str(), (first, last):
                return (left + first, last)
            case (first, last), str():
                return (first, last + right)
            case (first, last), (next_first, next_last):
                self._store(last + next_first)
                return (first, next_last)
        raise AssertionError  # pragma: no cover - the cases above are exhaustive


def _keep_plainest(table: dict[str, str], folded: str, spelling: str) -> None:
    """Map folded to spelling, preferring the spelling with the fewest accents on a tie.

    "lampa" could be "lámpa" or "lámpá" (a stem in "lámpát"); the plainer one is the word.
    """
    if (known := table.get(folded)) is None or (_accents(spelling), spelling) < (_accents(known), known):
        table[folded] = spelling


def _accents(text: str) -> int:
    return sum(1 for char in text if char != fold(char))


@dataclass(frozen=True, slots=True)
class HomeName:
    """A name the user can say for something in the home, as HA's slot lists hold it."""

    list_name: str  # "name" (an exposed entity), "area" or "floor"
    text: str


class NameIndex:
    """The home's names folded once, looked up by their first word.

    Folding every name on every sentence cost more than the rest of a turn in a large home,
    so the index is built when the names change (see `_async_name_index`), not per sentence.
    """

    def __init__(self, names: Iterable[HomeName]) -> None:
        # HA's slot lists hold names without punctuation, as the matcher compares them.
        spoken = {(name.list_name, remove_punctuation(name.text).strip()) for name in names}
        # Longest names first, so "konyhai lámpa" (an entity) wins over "konyha" (its area).
        said = [(tuple(fold(text).split()), list_name, text) for list_name, text in spoken if text]
        said += [
            (short, list_name, text) for words, list_name, text in said if (short := _room_short_form(words, list_name))
        ]
        ordered = sorted(said, key=lambda candidate: (-len(candidate[0]), -len("".join(candidate[0])), candidate[2]))
        self._by_first_word: dict[str, list[_Candidate]] = {}
        for rank, (words, list_name, text) in enumerate(ordered):
            self._by_first_word.setdefault(words[0], []).append(_Candidate(rank, words, list_name, text))

    def candidates(self, said: str) -> list[_Candidate]:
        """The names that may start at a word said as `said` (folded), longest first.

        Only a name's last word is inflected: a longer name's first word is said as it is,
        a one-word name's word is a prefix of what was said.
        """
        found = list(self._by_first_word.get(said, ()))
        for end in range(1, len(said)):
            found.extend(c for c in self._by_first_word.get(said[:end], ()) if len(c.words) == 1)
        return sorted(found, key=lambda candidate: candidate.rank)


def _room_short_form(words: tuple[str, ...], list_name: str) -> tuple[str, ...] | None:
    """ "fürdő" for the area "Fürdőszoba" (folded words), or None."""
    last = words[-1]
    if list_name != "area" or not last.endswith(_ROOM_WORD) or len(last) - len(_ROOM_WORD) < _MIN_ROOM_SHORT_FORM:
        return None
    return (*words[:-1], last.removesuffix(_ROOM_WORD))


@dataclass(frozen=True, slots=True)
class _Candidate:
    rank: int
    words: tuple[str, ...]
    list_name: str
    text: str


def rewrites(
    text: str, names: Iterable[HomeName] | NameIndex, language_words: LanguageWords, language: str
) -> list[str]:
    """Return the rewrites of a sentence to try after it as typed, the more cautious first.

    A home name can also be a template word: with a light named "Lámpa", "kapcsold fel a
    lámpát a konyhában" means the kitchen's lights, so the first rewrite keeps words that
    are template words; "kapcsold fel a lámpát" means that light, which the second finds.
    """
    index = names if isinstance(names, NameIndex) else NameIndex(names)
    tried = {text}
    found = []
    for names_over_words in (False, True):
        rewrite = normalize_sentence(text, index, language_words, language, names_over_words=names_over_words)
        if rewrite not in tried:
            tried.add(rewrite)
            found.append(rewrite)
    return found


def normalize_sentence(
    text: str,
    names: Iterable[HomeName] | NameIndex,
    language_words: LanguageWords,
    language: str,
    *,
    names_over_words: bool = True,
) -> str:
    """Rewrite a sentence's inflected or accent-less names and words into the spelling HA matches.

    Words already spelt as the templates spell them are left alone. With `names_over_words`
    false, a name all of whose words are (accent-less) template words is left to be a word.
    """
    index = names if isinstance(names, NameIndex) else NameIndex(names)
    case_groups = CASE_ENDINGS.get(language.split("-", maxsplit=1)[0].casefold(), ())
    ending_to_group = {ending: group for group in case_groups for ending in group}
    tokens = [_split_punctuation(token) for token in text.split()]
    folded_words = [fold(word) for _, word, _ in tokens]
    out: list[str] = []
    position = 0
    while position < len(tokens):
        name_match = _match_name(
            folded_words,
            position,
            index,
            ending_to_group=ending_to_group,
            accepted_endings=language_words.endings,
            template_words=None if names_over_words else language_words.words,
        )
        if name_match is not None:
            replacement, used = name_match
            out.append(tokens[position][0] + replacement + tokens[position + used - 1][2])
            position += used
            continue
        before, word, after = tokens[position]
        folded = folded_words[position]
        if word.casefold() not in language_words.spellings and folded in language_words.words:
            word = language_words.words[folded]
        out.append(before + word + after)
        position += 1
    return " ".join(out)


def _split_punctuation(token: str) -> tuple[str, str, str]:
    """Split "(lámpát)," into "(", "lámpát", "),"."""
    word = token.strip(_PUNCTUATION)
    if not word:
        return token, "", ""
    start = token.index(word)
    return token[:start], word, token[start + len(word) :]


def _match_name(
    folded_words: list[str],
    position: int,
    index: NameIndex,
    *,
    ending_to_group: Mapping[str, tuple[str, ...]],
    accepted_endings: Mapping[str, Mapping[str, str]],
    template_words: Mapping[str, str] | None,
) -> tuple[str, int] | None:
    """Match a home name (maybe inflected) at folded_words[position]; return its rewrite and its length.

    With `template_words`, words that are all template words are not taken for a name.
    """
    if not folded_words[position]:
        return None
    for candidate in index.candidates(folded_words[position]):
        name_words, size = candidate.words, len(candidate.words)
        said = folded_words[position : position + size]
        if len(said) < size or said[:-1] != list(name_words[:-1]):
            continue
        if template_words is not None and all(word in template_words for word in said):
            continue
        # Only the last word of a Hungarian name phrase is inflected; folding has already
        # undone the vowel lengthening before the ending (szobá-ban -> szoba-ban).
        last_word, last_said = name_words[-1], said[-1]
        if not last_said.startswith(last_word):
            continue
        ending = last_said.removeprefix(last_word)
        if not ending:
            return candidate.text, size
        accepted = _accepted_ending(ending, ending_to_group, accepted_endings.get(candidate.list_name, {}))
        if accepted is not None:
            return candidate.text + accepted, size
    return None


def _accepted_ending(
    ending: str, ending_to_group: Mapping[str, tuple[str, ...]], accepted: Mapping[str, str]
) -> str | None:
    """Return the spelling of this case ending that the templates accept, or None if not a case ending."""
    if (group := ending_to_group.get(ending)) is None:
        return None
    # The ending as said, else another form of the same case ("kertet" -> "{area}t").
    for form in (ending, *group):
        if form in accepted:
            return accepted[form]
    return ending


# ----- two commands in one sentence ---------------------------------------------------------------

_AND = "es"  # "és", folded
_ARTICLES = frozenset({"a", "az"})
_ALSO = "is"  # "... és a teraszvilágítást is"


def split_commands(text: str) -> tuple[str, str] | None:
    """The two commands of a sentence joined by one "és", or None.

    A second command that starts with its object ("kapcsold fel a konyhai lámpát és a pultot")
    borrows the first one's verb ("kapcsold fel a pultot"); a trailing "is" (too) goes.
    """
    tokens = text.split()
    joints = [i for i, token in enumerate(tokens) if fold(token.strip(_PUNCTUATION)) == _AND]
    if len(joints) != 1 or joints[0] in (0, len(tokens) - 1):
        return None
    first, second = tokens[: joints[0]], tokens[joints[0] + 1 :]
    first[-1] = first[-1].rstrip(",;")
    if len(second) > 1 and fold(second[-1].strip(_PUNCTUATION)) == _ALSO:
        second = second[:-1]
    folded_first = [fold(token) for token in first]
    if fold(second[0]) in _ARTICLES and folded_first[0] not in _ARTICLES:
        verb = next((first[:i] for i, word in enumerate(folded_first) if word in _ARTICLES), [])
        second = verb + second
    return " ".join(first), " ".join(second)


# ----- spoken answers about one thing ---------------------------------------------------------------

# What a state is, said after the thing's name, per domain ("" for any other domain).
_STATE_PHRASES: Mapping[tuple[str, str], str] = {
    ("lock", "locked"): "be van zárva",
    ("lock", "unlocked"): "nincs bezárva",
    ("lock", "open"): "nyitva van",
    ("cover", "open"): "nyitva van",
    ("cover", "closed"): "zárva van",
    ("cover", "opening"): "éppen nyílik",
    ("cover", "closing"): "éppen záródik",
    # Only doors and windows are asked about this way (see sentences/hu/binary_sensor_HassGetState.yaml).
    ("binary_sensor", "on"): "nyitva van",
    ("binary_sensor", "off"): "csukva van",
    ("", "on"): "be van kapcsolva",
    ("", "off"): "ki van kapcsolva",
}
_VOWELS = frozenset("aeiou")
# Integer parts this long are grouped by thousands ("65 536"); four digits stay whole ("1356").
_GROUP_FROM_DIGITS = 5


def _the(name: str) -> str:
    """The definite article for a name: "az" before a vowel, else "a"."""
    return "az" if fold(name[:1]) in _VOWELS else "a"


def spoken_number(value: str) -> str:
    """A number as Hungarian writes it: decimal comma, thousands grouped by a space ("3.5" -> "3,5")."""
    sign, digits = ("-", value[1:]) if value.startswith("-") else ("", value)
    whole, dot, fraction = digits.partition(".")
    if not whole.isdigit() or (dot and not fraction.isdigit()):
        return value
    if len(whole) >= _GROUP_FROM_DIGITS:
        whole = f"{int(whole):,}".replace(",", " ")
    return sign + whole + ("," + fraction if dot else "")


def reading_answer(name: str, state: str, unit: str | None) -> str:
    """ "A Terasz hőmérséklet 3,5 °C." """
    value = spoken_number(state)
    if unit:
        value += unit if unit == "%" else f" {unit}"
    return f"{_the(name).capitalize()} {name} {value}."


def yes_no_answer(yes: bool, name: str, domain: str, state: str) -> str | None:
    """ "Igen, a Bejárati ajtó be van zárva." ; None when we cannot say its state in words."""
    phrase = _STATE_PHRASES.get((domain, state)) or _STATE_PHRASES.get(("", state))
    if phrase is None:
        return None
    return f"{'Igen' if yes else 'Nem'}, {_the(name)} {name} {phrase}."
