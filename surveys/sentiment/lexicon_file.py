"""Reading a lexicon file (``lexicon_de.yaml``, ``lexicon_en.yaml``) into a Lexicon.

The loader is strict in the way the survey loader is: a weight out of range, a stem so short it
would match unrelated words, a pattern that does not match its own example or an umlaut-free
spelling that collides with another entry stops startup with a message naming the entry.

Key syntax, the same in every section that takes words:

- ``zufrieden``: the exact word (case-insensitive; "zufrieden" also matches "ZUFRIEDEN").
- ``enttäusch*``: a stem, matching every word that starts with it (enttäuscht, Enttäuschung).
  The longest matching stem wins, so ``schnellstmöglich*: 0`` keeps ``schnell*`` away from it.
- ``*schaden``: the last part of a compound ("Transportschaden").
- Weight 0 means "known, and not a sentiment word": it blocks stems and base-lexicon words.
- Umlauts match both umlaut-free spellings ("enttäuscht" also matches "enttaeuscht" and
  "enttauscht"), except for entries listed in ``keep_umlaut`` whose plain spelling is another
  word ("schön" → "schon").
- Patterns are regular expressions over the normalised words joined by single spaces;
  ``<name>`` expands a macro, umlauts match both spellings, and each pattern must match the
  example written next to it. ``verdict: true`` marks a rating stated outright ("5 out of 5"),
  which the learned model never overrules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import product
from pathlib import Path
from typing import Any

from surveys.languages import is_supported
from surveys.sentiment.datafile import LexiconError, read_data_file, text_list, weight_map
from surveys.sentiment.emoji import EmojiTable, emoji_table
from surveys.sentiment.lexicon import CompiledPattern, KeyTable, Lexicon, Phrase, combine_patterns
from surveys.sentiment.text import normalize, plain_vowel_spelling

MIN_WORD_STEM = 5
"""Shorter stems match too much by accident ("gut*" would match "Gutschein")."""
MIN_NEGATOR_STEM = 3
"""Negator stems are few and checked by hand ("kein*", "*n't")."""
MAX_MODIFIER = 2.0
_SECTIONS = {
    "language": True,
    "words": True,
    "phrases": False,
    "modifiers": False,
    "negators": True,
    "negation": False,
    "contrast": False,
    "contrast_at_clause_start": False,
    "resolvable": False,
    "concessive": False,
    "keep_umlaut": False,
    "macros": False,
    "patterns": False,
    "sarcasm": False,
}
_MACRO = re.compile(r"<([a-z_][a-z0-9_]*)>")
_UMLAUT_ALTERNATIVES = {"ä": "(?:ae|a)", "ö": "(?:oe|o)", "ü": "(?:ue|u)", "ß": "ss"}


def spellings(key: str, *, keep_umlaut: bool) -> list[str]:
    """The normalised spellings of one key: umlauts spelled out, and plain unless kept."""
    result = [normalize(key)]
    plain = None if keep_umlaut else plain_vowel_spelling(key)
    if plain is not None and plain != result[0]:
        result.append(plain)
    return result


def expand_pattern(source: str, macros: Mapping[str, str]) -> str:
    """``<name>`` replaced by its macro, and umlauts by both spellings ("ü" → "(?:ue|u)").

    Raises KeyError for an unknown macro.
    """
    expanded = _MACRO.sub(lambda match: macros[match.group(1)], source)
    for umlaut, alternatives in _UMLAUT_ALTERNATIVES.items():
        expanded = expanded.replace(umlaut, alternatives)
    return expanded


def compile_pattern(source: str, macros: Mapping[str, str]) -> re.Pattern[str]:
    """A pattern matched on whole tokens (see expand_pattern); raises KeyError or re.error."""
    return re.compile(rf"(?<!\S)(?:{expand_pattern(source, macros)})(?!\S)", re.IGNORECASE)


def joined_norms(text: str, table: EmojiTable) -> str:
    """The text the patterns see: normalised tokens joined by single spaces."""
    return " ".join(token.norm for token in table.tokenizer.tokenize(text))


class _Builder:
    """Collects one file's entries and problems, then freezes them into a Lexicon."""

    def __init__(self, path: Path, data: dict[str, Any], base_words: Mapping[str, float]) -> None:
        self.path = path
        self.data = data
        self.base_words = base_words
        self.problems: list[str] = []
        self.keep_umlaut = {
            normalize(k) for k in text_list(data.get("keep_umlaut"), "keep_umlaut", self.problems)
        }
        self.emoji = emoji_table()

    def build(self) -> Lexicon:
        language = self.data["language"]
        if not isinstance(language, str) or not is_supported(language):
            self.problems.append(f"language: {language!r} is not a supported language")
            language = "de"
        words = self._key_table(
            "words", weight_map(self.data["words"], "words", self.problems, low=-1, high=1)
        )
        negators = self._key_table(
            "negators",
            dict.fromkeys(text_list(self.data["negators"], "negators", self.problems), 1.0),
            min_stem=MIN_NEGATOR_STEM,
        )
        phrases, modifiers = self._phrases_and_modifiers()
        scope, backward, adverbs, particles, emphatic, articles = self._negation()
        resolvable_keys = text_list(self.data.get("resolvable"), "resolvable", self.problems)
        resolvable = self._key_table("resolvable", dict.fromkeys(resolvable_keys, 1.0))
        contrast = self._word_list("contrast")
        contrast_at_clause_start = self._word_list("contrast_at_clause_start")
        macros = {str(k): str(v) for k, v in (self.data.get("macros") or {}).items()}
        patterns = self._patterns(macros)
        openers, fillers, markers = self._sarcasm()
        concessive = weight_map(self.data.get("concessive"), "concessive", self.problems, low=0, high=5)
        if self.problems:
            raise LexiconError(self.path, self.problems)
        return Lexicon(
            language=language,
            words=words,
            modifiers=modifiers,
            phrases=phrases,
            negators=negators,
            negation_scope=scope,
            negation_backward=backward,
            sentence_adverbs=frozenset(self._spelled(adverbs)),
            trailing_particles=frozenset(self._spelled(particles)),
            emphatic_particles=frozenset(self._spelled(emphatic)),
            emphatic_articles=frozenset(self._spelled(articles)),
            resolvable=resolvable,
            contrast=contrast,
            contrast_at_clause_start=contrast_at_clause_start,
            concessive={s: int(hits) for key, hits in concessive.items() for s in self._spelled([key])},
            patterns=patterns,
            all_patterns=combine_patterns(patterns),
            sarcasm_openers=openers,
            sarcasm_fillers=fillers,
            sarcasm_markers=markers,
            emoji=self.emoji,
        )

    def _word_list(self, section: str) -> frozenset[str]:
        """A list of single words in all their spellings."""
        words = text_list(self.data.get(section), section, self.problems)
        self.problems += [f"{section}: {word!r}: one word per item" for word in words if " " in word]
        return frozenset(self._spelled(words))

    def _spelled(self, keys: Iterable[str]) -> list[str]:
        return [s for key in keys for s in spellings(key, keep_umlaut=normalize(key) in self.keep_umlaut)]

    def _key_table(
        self, section: str, entries: Mapping[str, float], min_stem: int = MIN_WORD_STEM
    ) -> KeyTable:
        tables: dict[str, dict[str, float]] = {"exact": dict(self.base_words) if section == "words" else {}}
        tables["prefix"], tables["suffix"] = {}, {}
        explicit: dict[str, tuple[str, dict[str, float]]] = {}
        variants: list[tuple[str, str, float, dict[str, float]]] = []
        for key, value in entries.items():
            kind, bare = _key_kind(key)
            table = tables[kind]
            if " " in bare or not bare:
                self.problems.append(f"{section}: {key!r}: one word per key (phrases go under 'phrases')")
                continue
            if kind != "exact" and len(normalize(bare)) < min_stem:
                self.problems.append(f"{section}: {key!r}: stems need at least {min_stem} letters")
                continue
            normal, *plain = spellings(bare, keep_umlaut=normalize(key) in self.keep_umlaut)
            if normal in explicit and explicit[normal][1] is table:
                self.problems.append(f"{section}: {key!r} is {explicit[normal][0]!r} again")
                continue
            explicit[normal] = (key, table)
            table[normal] = value
            variants += [(key, spelling, value, table) for spelling in plain]
        for key, spelling, value, table in variants:
            existing = explicit.get(spelling)
            if existing is not None and existing[1] is table and table[spelling] != value:
                self.problems.append(
                    f"{section}: {key!r} without umlauts is {existing[0]!r}, which has another weight; "
                    "list it under keep_umlaut"
                )
            else:
                table.setdefault(spelling, value)
        return KeyTable(exact=tables["exact"], prefixes=tables["prefix"], suffixes=tables["suffix"])

    def _phrases_and_modifiers(self) -> tuple[dict[str, tuple[Phrase, ...]], dict[str, float]]:
        phrases = weight_map(self.data.get("phrases"), "phrases", self.problems, low=-1, high=1)
        modifiers = weight_map(
            self.data.get("modifiers"), "modifiers", self.problems, low=-1, high=MAX_MODIFIER
        )
        index: dict[str, list[Phrase]] = {}
        single: dict[str, float] = {}
        for section, entries in (("phrases", phrases), ("modifiers", modifiers)):
            for key, value in entries.items():
                parts = key.split()
                if section == "modifiers" and value == 0:
                    self.problems.append(f"modifiers: {key!r}: a factor of 0 would erase the next word")
                elif section == "modifiers" and len(parts) == 1:
                    single.update(dict.fromkeys(self._spelled(parts), value))
                elif len(parts) < 2:
                    self.problems.append(f"phrases: {key!r}: a phrase has at least two words")
                elif parts[0].endswith("*") or parts[0].startswith("*"):
                    self.problems.append(f"{section}: {key!r}: the first word of a phrase cannot be a stem")
                else:
                    keep = normalize(key) in self.keep_umlaut
                    for tokens in product(*(spellings(part, keep_umlaut=keep) for part in parts)):
                        phrase = Phrase(tuple(tokens), value, section == "modifiers", " ".join(tokens))
                        index.setdefault(tokens[0], []).append(phrase)
        ordered = {
            first: tuple(sorted(group, key=lambda p: -len(p.tokens))) for first, group in index.items()
        }
        return ordered, single

    def _negation(self) -> tuple[int, bool, list[str], list[str], list[str], list[str]]:
        settings = self.data.get("negation") or {}
        known = {
            "scope",
            "backward",
            "sentence_adverbs",
            "trailing_particles",
            "emphatic",
            "emphatic_articles",
        }
        if not isinstance(settings, dict) or set(settings) - known:
            self.problems.append(f"negation: expected a mapping with {', '.join(sorted(known))}")
            settings = {}
        scope, backward = settings.get("scope", 3), settings.get("backward", False)
        adverbs = text_list(settings.get("sentence_adverbs"), "negation: sentence_adverbs", self.problems)
        particles = text_list(
            settings.get("trailing_particles"), "negation: trailing_particles", self.problems
        )
        emphatic = text_list(settings.get("emphatic"), "negation: emphatic", self.problems)
        articles = text_list(settings.get("emphatic_articles"), "negation: emphatic_articles", self.problems)
        if isinstance(scope, bool) or not isinstance(scope, int) or not 1 <= scope <= 6:
            self.problems.append(f"negation: scope {scope!r} must be a whole number from 1 to 6")
            scope = 3
        if not isinstance(backward, bool):
            self.problems.append(f"negation: backward {backward!r} must be true or false")
            backward = False
        return scope, backward, adverbs, particles, emphatic, articles

    def _patterns(self, macros: Mapping[str, str]) -> tuple[CompiledPattern, ...]:
        entries = self.data.get("patterns") or []
        if not isinstance(entries, list):
            self.problems.append("patterns: expected a list of {match, polarity, example[, verdict]}")
            return ()
        compiled: list[CompiledPattern] = []
        for number, entry in enumerate(entries, start=1):
            where = f"patterns: #{number}"
            if not isinstance(entry, dict) or not (
                {"match", "polarity", "example"} <= set(entry) <= {"match", "polarity", "example", "verdict"}
            ):
                self.problems.append(f"{where}: needs match, polarity and example, and may have verdict")
                continue
            verdict = entry.get("verdict", False)
            if not isinstance(verdict, bool):
                self.problems.append(f"{where}: verdict is true or false, not {verdict!r}")
                continue
            source, example = str(entry["match"]), str(entry["example"])
            polarity = weight_map({"polarity": entry["polarity"]}, where, self.problems, low=-1, high=1)
            try:
                regex = compile_pattern(source, macros)
            except KeyError as error:
                self.problems.append(f"{where} {source!r}: unknown macro <{error.args[0]}>")
                continue
            except re.error as error:
                self.problems.append(f"{where} {source!r}: {error}")
                continue
            if regex.groups:
                self.problems.append(f"{where} {source!r}: use (?:...) instead of capturing groups (...)")
            elif not regex.search(joined_norms(example, self.emoji)):
                self.problems.append(f"{where} {source!r} does not match its example {example!r}")
            if polarity:
                compiled.append(
                    CompiledPattern(
                        regex, polarity["polarity"], source, expand_pattern(source, macros), verdict
                    )
                )
        return tuple(compiled)

    def _sarcasm(self) -> tuple[frozenset[str], frozenset[str], re.Pattern[str] | None]:
        settings = self.data.get("sarcasm") or {}
        if not isinstance(settings, dict) or set(settings) - {"openers", "fillers", "markers"}:
            self.problems.append("sarcasm: expected a mapping with openers, fillers and markers")
            return frozenset(), frozenset(), None
        openers = [
            " ".join(s.split()) for s in text_list(settings.get("openers"), "sarcasm: openers", self.problems)
        ]
        fillers = text_list(settings.get("fillers"), "sarcasm: fillers", self.problems)
        markers = text_list(settings.get("markers"), "sarcasm: markers", self.problems)
        marker_regex = None
        if markers:
            alternatives = "|".join(" ".join(re.escape(normalize(w)) for w in m.split()) for m in markers)
            marker_regex = compile_pattern(alternatives, {})
        opener_keys = {" ".join(normalize(w) for w in o.split()) for o in openers}
        opener_keys |= {" ".join(plain_vowel_spelling(w) or normalize(w) for w in o.split()) for o in openers}
        return frozenset(opener_keys), frozenset(self._spelled(fillers)), marker_regex


def _key_kind(key: str) -> tuple[str, str]:
    """Whether a key is exact, a stem (``x*``) or a compound tail (``*x``), and the bare word."""
    if key.endswith("*"):
        return "prefix", key[:-1]
    if key.startswith("*"):
        return "suffix", key[1:]
    return "exact", key


def parse_lexicon(path: Path, base_words: Mapping[str, float] | None = None) -> Lexicon:
    """Load and check a lexicon file; ``base_words`` (e.g. TextBlob's English words) come first.

    Entries in the file override base words, so a file can correct or silence them (weight 0).
    """
    data = read_data_file(path, _SECTIONS)
    return _Builder(path, data, base_words or {}).build()
