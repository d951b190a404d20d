"""A compiled sentiment lexicon: the lookup tables the rule engine reads.

``lexicon_file.parse_lexicon`` builds one from a YAML file; see there for the file format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from surveys.languages import Language
from surveys.sentiment.emoji import EmojiTable


@dataclass(frozen=True, slots=True)
class KeyTable:
    """Exact words, stems (``x*``) and compound tails (``*x``) with a value each; see lexicon_file."""

    exact: Mapping[str, float]
    prefixes: Mapping[str, float]
    suffixes: Mapping[str, float]
    _prefix_lengths: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _suffix_lengths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_prefix_lengths", tuple(sorted({len(k) for k in self.prefixes}, reverse=True))
        )
        object.__setattr__(
            self, "_suffix_lengths", tuple(sorted({len(k) for k in self.suffixes}, reverse=True))
        )

    def lookup(self, word: str) -> float | None:
        """The value of a normalised word, or None when the table does not know it."""
        value = self._lookup_whole(word)
        if value is None and "-" in word:
            # "Kunden-Service", "top-Qualität": the last part carries the meaning.
            value = self._lookup_whole(word.rsplit("-", 1)[1])
        return value

    def _lookup_whole(self, word: str) -> float | None:
        value = self.exact.get(word)
        if value is not None:
            return value
        size = len(word)
        for length in self._prefix_lengths:
            if length <= size:
                value = self.prefixes.get(word[:length])
                if value is not None:
                    return value
        for length in self._suffix_lengths:
            if length < size:
                value = self.suffixes.get(word[-length:])
                if value is not None:
                    return value
        return None


@dataclass(frozen=True, slots=True)
class Phrase:
    """Several words matched as one unit; a token ending in ``*`` is a stem."""

    tokens: tuple[str, ...]
    value: float
    is_modifier: bool
    key: str

    def matches(self, words: list[str], start: int) -> bool:
        """True if the phrase's tokens are the words at ``start``."""
        if start + len(self.tokens) > len(words):
            return False
        for offset, token in enumerate(self.tokens):
            word = words[start + offset]
            if token.endswith("*"):
                if not word.startswith(token[:-1]):
                    return False
            elif word != token:
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """A fixed expression or factual complaint matched on the normalised, space-joined tokens."""

    regex: re.Pattern[str]
    polarity: float
    source: str
    expanded: str
    """The expression with macros and umlauts expanded, before the whole-token wrapping."""
    verdict: bool = False
    """A rating stated outright ("5 out of 5"): the rules' reading stands, whatever the model says."""


def combine_patterns(patterns: Iterable[CompiledPattern]) -> re.Pattern[str] | None:
    """One expression for all patterns, so a comment is scanned once instead of once per pattern.

    The alternative that matches is named ``p<index>``. Matches do not overlap: the leftmost
    wins, and at the same position the pattern listed first.
    """
    alternatives = "|".join(f"(?P<p{index}>{pattern.expanded})" for index, pattern in enumerate(patterns))
    return re.compile(rf"(?<!\S)(?:{alternatives})(?!\S)", re.IGNORECASE) if alternatives else None


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Everything the rule engine needs to know about one language."""

    language: Language
    words: KeyTable
    modifiers: Mapping[str, float]
    phrases: Mapping[str, tuple[Phrase, ...]]
    negators: KeyTable
    negation_scope: int
    negation_backward: bool
    sentence_adverbs: frozenset[str]
    """'leider', 'unfortunately': a negator after them neither flips them nor finds its word in them."""
    trailing_particles: frozenset[str]
    """Words that may follow a clause-final negator ('empfehle ich nicht weiter')."""
    emphatic_particles: frozenset[str]
    """'mal', 'even': right after a negator they make 'nicht mal' / 'not even', a complaint in itself."""
    emphatic_articles: frozenset[str]
    """'ein', 'a': 'nicht mal einen Kratzer' denies a complaint like 'kein Kratzer' does."""
    resolvable: KeyTable
    """Process words ('Rücksendung', 'refund') that are no complaint when the same part praises."""
    contrast: frozenset[str]
    contrast_at_clause_start: frozenset[str]
    concessive: Mapping[str, int]
    patterns: tuple[CompiledPattern, ...]
    all_patterns: re.Pattern[str] | None
    """``patterns`` combined by ``combine_patterns``; this is what the rules run."""
    sarcasm_openers: frozenset[str]
    sarcasm_fillers: frozenset[str]
    sarcasm_markers: re.Pattern[str] | None
    emoji: EmojiTable

    def phrase_at(self, words: list[str], start: int) -> Phrase | None:
        """The longest phrase (or multi-word modifier) starting at ``start``, if any."""
        for phrase in self.phrases.get(words[start], ()):
            if phrase.matches(words, start):
                return phrase
        return None
