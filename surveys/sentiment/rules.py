"""The rule engine: from tokens and a lexicon to one polarity in [-1, 1].

The same rules read German and English; only the lexicon differs. In order:

1. Patterns (factual complaints such as "kam nie an", "still waiting") claim their tokens first,
   so a negator inside "nicht geliefert" is not applied a second time.
2. Left to right, phrases beat single words; a negator flips the next sentiment word within its
   scope (a few words, never across punctuation or "aber"/"but"); a modifier ("sehr", "a bit")
   scales the next one. German negation may also follow its word ("gefällt mir nicht").
3. Sarcasm: in a short comment whose only praise is a stock opener ("Super, ...", "Great, ...")
   next to a clear complaint, the praise counts as scorn.
4. The hits are averaged with negative ones weighing more (an unhappy customer must not vanish in
   politeness), words before a contrast ("..., aber ...") weighing less, and exclamation marks
   and shouting raising the result's magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from surveys.sentiment.emoji import star_rating_polarity
from surveys.sentiment.lexicon import Lexicon
from surveys.sentiment.text import Token, TokenKind

NEGATED_POSITIVE = -0.8
"""'nicht zufrieden' is nearly as bad as 'unzufrieden'."""
NEGATED_NEGATIVE = -0.5
"""'nicht schlecht' is mildly good, not as good as 'gut'."""
EMPHATIC_NEGATION = -0.4
"""'nicht mal' / 'not even' with no word of its own: 'war nicht mal angefangen', 'wasn't even right'."""
NEGATIVE_WEIGHT = 1.5
"""One complaint outweighs one compliment: missing an unhappy customer costs more."""
BEFORE_CONTRAST_WEIGHT = 0.5
"""In 'schnell, aber kaputt' the part after 'aber' is what the customer means."""
CONCESSIVE_WEIGHT = 0.3
"""'Obwohl es spät kam, ...' concedes a point that matters less."""
MODIFIER_REACH = 2
"""Tokens a modifier waits for its word ('sehr schnelle Lieferung' has none in between)."""
CAPS_EMPHASIS = 1.3
SHOUTING_EMPHASIS = 1.3
EXCLAMATION_STEP = 0.1
MAX_EXCLAMATIONS = 3
REPEAT_STEP = 0.15
MAX_REPEAT_BOOST = 1.45
"""'😡😡😡' is angrier than '😡', but not without limit."""
SARCASM_MAX_WORDS = 12
SARCASM_FACT_AT_MOST = -0.4
SARCASTIC_PRAISE = -0.5
"""The factor a sarcastic 'Super' is multiplied by."""
CUE_POLARITY = -0.3
"""Shouting or '?!' without a single sentiment word is more often anger than joy."""
SHOUTING_MIN_WORDS = 2
SHOUTING_MIN_SHARE = 0.6


class Source(Enum):
    """Where a hit came from."""

    WORD = "word"
    PHRASE = "phrase"
    PATTERN = "pattern"
    EMOJI = "emoji"
    CUE = "cue"


@dataclass(slots=True)
class Hit:
    """One piece of evidence: a word, phrase, pattern or emoji with its (adjusted) polarity."""

    polarity: float
    start: int
    end: int
    key: str
    source: Source
    segment: int
    weight: float = 1.0
    negated: bool = False
    resolvable: bool = False


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of the rules: the polarity and the hits it was computed from."""

    polarity: float
    hits: tuple[Hit, ...]
    known_words: int = 0
    """Words some rule of the lexicon recognised, sentiment or not: how well the language fits."""
    sarcastic: bool = False
    verdict: bool = False
    """The comment states its verdict outright ("5 out of 5", "3 von 5 Sternen"): no model overrules it."""


@dataclass(slots=True)
class _Negation:
    at: int
    left: int
    caps: bool
    emphatic: bool = False
    """'nicht mal', 'not even': a complaint even when it finds no word of its own."""
    keeps_negative: bool = False
    """'nicht mal lauwarm' is no praise; but 'nicht mal einen Kratzer' (an article follows) is."""


@dataclass(slots=True)
class _Scan:
    """The state of one left-to-right pass over the tokens."""

    lexicon: Lexicon
    tokens: list[Token]
    words: list[str]
    shouting: bool
    hits: list[Hit] = field(default_factory=list)
    clause_hits: list[Hit] = field(default_factory=list)
    unused_negators: list[int] = field(default_factory=list)
    segment: int = 0
    negation: _Negation | None = None
    factor: float = 1.0
    factor_left: int = 0
    discounted: int = 0
    """Hits still to be weighed down by a concessive ('trotz'); -1 means until the clause ends."""
    known_words: int = 0
    previous_clause_hit: Hit | None = None
    """The last hit of the clause before this one, for elliptic negation ('..., X leider nicht')."""
    previous_clause_asked: bool = False
    """True if the clause before ended with '?' ('Schnell? Nicht wirklich.')."""

    def add(self, polarity: float, start: int, end: int, key: str, source: Source, caps: bool = False) -> Hit:
        """Record a hit after applying the pending modifier and negation."""
        factor = self.factor
        negation = self.negation
        if negation is not None and factor > 1:
            factor = 1 / factor  # "nicht sehr gut" is milder than "nicht gut"
        value = polarity * factor
        if negation is not None and not (negation.keeps_negative and value < 0):
            value *= NEGATED_POSITIVE if value > 0 else NEGATED_NEGATIVE
        if negation is not None:
            caps = caps or negation.caps
            self.negation = None
        if caps and not self.shouting:
            value *= CAPS_EMPHASIS
        hit = Hit(
            max(-1.0, min(1.0, value)), start, end, key, source, self.segment, negated=negation is not None
        )
        if self.discounted:
            hit.weight *= CONCESSIVE_WEIGHT
            if self.discounted > 0:
                self.discounted -= 1
        self.hits.append(hit)
        self.clause_hits.append(hit)
        self.factor, self.factor_left = 1.0, 0
        return hit

    def drop_negation(self) -> None:
        """The pending negation found no word: keep it for backward negation, or, for 'nicht mal'
        / 'not even', record the complaint it is on its own.
        """
        negation = self.negation
        if negation is None:
            return
        self.negation = None
        if negation.emphatic:
            hit = Hit(
                EMPHATIC_NEGATION, negation.at, negation.at + 2, "not even", Source.PATTERN, self.segment
            )
            self.hits.append(hit)
            self.clause_hits.append(hit)
        else:
            self.unused_negators.append(negation.at)

    def tick(self) -> None:
        """A token that is neither sentiment word nor modifier uses up negation and modifier reach."""
        if self.negation is not None:
            self.negation.left -= 1
            if self.negation.left <= 0:
                self.drop_negation()
        if self.factor_left:
            self.factor_left -= 1
            if not self.factor_left:
                self.factor = 1.0

    def close_clause(self, end: int) -> None:
        """End the clause before token ``end``: negation and modifiers stop, and a negator that
        closes its clause negates backwards ('gefällt mir nicht', German) or, in a clause without
        a word of its own, the clause before ('Die Ware ist gut, der Service leider nicht').
        """
        self.drop_negation()
        for at in self.unused_negators:
            if not self._closes_clause(at, end):
                continue
            if self.lexicon.negation_backward and self._negate_backwards(at):
                continue
            if all(hit.key in self.lexicon.sentence_adverbs for hit in self.clause_hits):
                self._negate_previous_clause(at)
        self.unused_negators.clear()
        self.previous_clause_hit = self.clause_hits[-1] if self.clause_hits else None
        self.previous_clause_asked = end < len(self.tokens) and "?" in self.tokens[end].surface
        self.clause_hits.clear()
        self.factor, self.factor_left = 1.0, 0
        if self.discounted < 0:
            self.discounted = 0

    def _closes_clause(self, at: int, end: int) -> bool:
        """True if only particles ('mehr', 'weiter', 'so') follow the negator in its clause.

        'Paket verschwunden und keiner fühlt sich zuständig': 'keiner' starts a clause of its
        own and must not turn 'verschwunden' into praise.
        """
        particles = self.lexicon.trailing_particles
        return all(
            token.kind is not TokenKind.WORD or token.norm in particles for token in self.tokens[at + 1 : end]
        )

    def _negate_backwards(self, at: int) -> bool:
        """'Gefällt mir nicht', 'es fehlt nichts': flip the nearest hit before a negator that found
        nothing after it; True if one was flipped. Sentence adverbs stay as they are: 'leider
        nicht' is still a complaint.
        """
        for hit in reversed(self.clause_hits):
            if hit.end <= at and at - hit.end < self.lexicon.negation_scope:
                if (
                    not hit.negated
                    and hit.source is not Source.EMOJI
                    and hit.key not in self.lexicon.sentence_adverbs
                ):
                    hit.polarity *= NEGATED_POSITIVE if hit.polarity > 0 else NEGATED_NEGATIVE
                    hit.negated = True
                    return True
                return False
        return False

    def _negate_previous_clause(self, at: int) -> None:
        """'Die Ware ist gut, der Service leider nicht': the praise of the clause before, denied
        for something else; after a question ('Schnell? Nicht wirklich.') the praise itself.
        """
        praise = self.previous_clause_hit
        if praise is not None and praise.polarity > 0 and not praise.negated and self.previous_clause_asked:
            praise.polarity *= NEGATED_POSITIVE
            praise.negated = True
        elif praise is not None and praise.polarity > 0 and not praise.negated:
            polarity = praise.polarity * NEGATED_POSITIVE
            denied = Hit(polarity, at, at + 1, praise.key, praise.source, self.segment, negated=True)
            self.hits.append(denied)
            self.clause_hits.append(denied)

    def sentiment_follows(self, index: int) -> bool:
        """True if the token at ``index`` is a sentiment word or modifier ('super schnell')."""
        if index >= len(self.tokens) or self.tokens[index].kind is not TokenKind.WORD:
            return False
        word = self.words[index]
        return bool(self.lexicon.words.lookup(word)) or word in self.lexicon.modifiers


def evaluate(lexicon: Lexicon, text: str) -> Evaluation:
    """Score ``text`` with ``lexicon``'s words and this module's rules."""
    tokens = lexicon.emoji.tokenizer.tokenize(text)
    if not tokens:
        return Evaluation(0.0, ())
    words = [token.norm for token in tokens]
    scan = _Scan(lexicon, tokens, words, shouting=_is_shouting(tokens))
    claimed = _match_patterns(lexicon, words)
    index = 0
    while index < len(tokens):
        index = _step(scan, claimed, index)
    scan.close_clause(len(tokens))
    sarcastic = _apply_sarcasm(scan)
    if not scan.hits and (scan.shouting or any(_is_indignant(t) for t in tokens)):
        scan.hits.append(Hit(CUE_POLARITY, 0, len(tokens), "cue", Source.CUE, scan.segment))
    verdict = any(is_verdict for _, _, _, is_verdict in claimed.values())
    return Evaluation(_aggregate(scan), tuple(scan.hits), scan.known_words, sarcastic, verdict)


def _step(scan: _Scan, claimed: dict[int, tuple[int, float, str, bool]], index: int) -> int:
    """Handle the token at ``index``; returns the index of the next unhandled token."""
    lexicon, token, word = scan.lexicon, scan.tokens[index], scan.words[index]
    if index in claimed:
        end, claimed_polarity, key, _ = claimed[index]
        scan.known_words += sum(1 for token in scan.tokens[index:end] if token.kind is TokenKind.WORD)
        if claimed_polarity:  # a 0 pattern only keeps its words from other rules ("3 von 5 Sternen")
            scan.add(claimed_polarity, index, end, key, Source.PATTERN, caps=token.is_caps)
        return end
    if token.kind is TokenKind.PUNCT:
        scan.close_clause(index)
        return index + 1
    if token.kind is TokenKind.EMOJI or token.kind is TokenKind.STARS:
        _add_emoji(scan, index)
        return index + 1
    scan.known_words += 1  # undone below for a word no rule knows
    after_punctuation = index > 0 and scan.tokens[index - 1].kind is TokenKind.PUNCT
    if word in lexicon.contrast or (
        after_punctuation
        and word in lexicon.contrast_at_clause_start
        and not _number_follows(scan.tokens, index + 1)
    ):
        scan.close_clause(index)
        scan.segment += 1
        if not lexicon.words.lookup(word):
            return index + 1
        # 'Schön eingerichtet. Leider ...': a complaint marker opens the part that counts and
        # is evidence itself.
    concessive = lexicon.concessive.get(word)
    if concessive is not None:
        scan.discounted = int(concessive) or -1
        return index + 1
    phrase = lexicon.phrase_at(scan.words, index)
    if phrase is not None:
        end = index + len(phrase.tokens)
        scan.known_words += len(phrase.tokens) - 1
        if phrase.is_modifier:
            scan.factor, scan.factor_left = scan.factor * phrase.value, MODIFIER_REACH
        elif phrase.value:
            scan.add(phrase.value, index, end, phrase.key, Source.PHRASE, caps=token.is_caps)
        return end
    if lexicon.negators.lookup(word) is not None:
        scan.drop_negation()
        following = index + 1
        emphatic = (
            following < len(scan.tokens)
            and scan.tokens[following].kind is TokenKind.WORD
            and scan.words[following] in lexicon.emphatic_particles
        )
        article = (
            emphatic
            and following + 1 < len(scan.tokens)
            and scan.words[following + 1] in lexicon.emphatic_articles
        )
        scan.negation = _Negation(
            index, lexicon.negation_scope, token.is_caps, emphatic, emphatic and not article
        )
        return index + 2 if emphatic else index + 1
    factor = lexicon.modifiers.get(word)
    polarity = lexicon.words.lookup(word)
    if factor is not None and (not polarity or scan.sentiment_follows(index + 1)):
        scan.factor, scan.factor_left = scan.factor * factor, MODIFIER_REACH
        return index + 1
    if polarity:
        hit = scan.add(polarity, index, index + 1, word, Source.WORD, caps=token.is_caps)
        hit.resolvable = hit.polarity < 0 and lexicon.resolvable.lookup(word) is not None
    else:
        scan.known_words -= polarity is None
        scan.tick()
    return index + 1


def _number_follows(tokens: list[Token], index: int) -> bool:
    """True if a number comes next: 'Wow, nur 6 Wochen' is 'only', not 'but'."""
    return index < len(tokens) and tokens[index].kind is TokenKind.WORD and tokens[index].norm[:1].isdigit()


def _add_emoji(scan: _Scan, index: int) -> None:
    """Emoji and stars score alone: no negation, no modifier; a repeated emoji counts once, louder."""
    token = scan.tokens[index]
    if token.kind is TokenKind.STARS:
        base = star_rating_polarity(token.norm)
    else:
        base = scan.lexicon.emoji.polarity.get(token.norm, 0.0)
    previous = scan.hits[-1] if scan.hits else None
    if (
        previous is not None
        and previous.source is Source.EMOJI
        and (previous.key, previous.end) == (token.norm, index)
    ):
        repeats = index + 1 - previous.start
        previous.polarity = base * min(MAX_REPEAT_BOOST, 1 + REPEAT_STEP * (repeats - 1))
        previous.end = index + 1
        return
    if base:
        hit = Hit(base, index, index + 1, token.norm, Source.EMOJI, scan.segment)
        scan.hits.append(hit)
        scan.clause_hits.append(hit)


def _match_patterns(lexicon: Lexicon, words: list[str]) -> dict[int, tuple[int, float, str, bool]]:
    """Pattern hits by first token: (end token, polarity, matched text, whether it is a verdict);
    see combine_patterns."""
    if lexicon.all_patterns is None:
        return {}
    token_at: dict[int, int] = {}
    position = 0
    for index, word in enumerate(words):
        token_at[position] = index
        position += len(word) + 1
    claimed: dict[int, tuple[int, float, str, bool]] = {}
    for match in lexicon.all_patterns.finditer(" ".join(words)):
        pattern = lexicon.patterns[int(str(match.lastgroup)[1:])]
        end = token_at.get(match.end() + 1, len(words))
        claimed[token_at[match.start()]] = (end, pattern.polarity, match.group(), pattern.verdict)
    return claimed


def _apply_sarcasm(scan: _Scan) -> bool:
    """Turn stock praise into scorn in a short sarcastic comment; True if it did.

    Sarcastic when the comment is short, all its praise is stock openers ('Super', 'Great',
    'Danke', '👏'), and either an eye-roll emoji is present, or a clear complaint shares the
    opener's part of the comment while the opener stands alone in its clause, opens the comment
    ('Klasse Service, nie zurückgerufen') or a marker such as 'schon wieder' / 'again' appears.
    'Alles super, nur der Karton war eingedrückt' is not sarcasm: there the complaint is in
    another part of the comment. A process word ('Danke für die Rückerstattung') is no complaint.
    """
    words = sum(1 for token in scan.tokens if token.kind is TokenKind.WORD)
    praise = [hit for hit in scan.hits if hit.polarity > 0]
    lexicon = scan.lexicon
    if (
        words > SARCASM_MAX_WORDS
        or not praise
        or any(hit.key not in lexicon.sarcasm_openers for hit in praise)
    ):
        return False
    eye_roll = any(hit.source is Source.EMOJI and hit.key in lexicon.emoji.sarcasm for hit in scan.hits)
    if not eye_roll:
        segments = {hit.segment for hit in praise}
        facts = [
            h
            for h in scan.hits
            if h.polarity <= SARCASM_FACT_AT_MOST and h.segment in segments and not h.resolvable
        ]
        if not facts:
            return False
        marked = lexicon.sarcasm_markers is not None and lexicon.sarcasm_markers.search(" ".join(scan.words))
        opens = praise[0].start == _first_word(scan.tokens)
        if not marked and not opens and not any(_alone_in_clause(scan, hit) for hit in praise):
            return False
    for hit in praise:
        hit.polarity *= SARCASTIC_PRAISE
    return True


def _first_word(tokens: list[Token]) -> int:
    """The index of the comment's first word, or -1 if it has none."""
    return next((index for index, token in enumerate(tokens) if token.kind is TokenKind.WORD), -1)


def _alone_in_clause(scan: _Scan, hit: Hit) -> bool:
    """True if only fillers ('na', 'oh', 'echt') share the hit's clause: 'Super!', 'Na toll,'."""
    fillers = scan.lexicon.sarcasm_fillers
    for direction, edge in ((-1, hit.start - 1), (1, hit.end)):
        index = edge
        while 0 <= index < len(scan.tokens) and scan.tokens[index].kind is not TokenKind.PUNCT:
            if scan.tokens[index].kind is TokenKind.WORD and scan.words[index] not in fillers:
                return False
            index += direction
    return True


def _aggregate(scan: _Scan) -> float:
    """The weighted mean of the hits, then emphasis from '!' and shouting, clamped to [-1, 1].

    A process word ('Rücksendung', 'refund') in a part of the comment that also praises is the
    topic of the praise ('Die Rücksendung war kostenlos und einfach'), not a complaint.
    """
    praised = {hit.segment for hit in scan.hits if hit.polarity > 0 and not hit.resolvable}
    numerator = denominator = 0.0
    for hit in scan.hits:
        if hit.resolvable and hit.segment in praised:
            continue
        weight = hit.weight
        if hit.polarity < 0:
            weight *= NEGATIVE_WEIGHT
        if hit.segment < scan.segment:
            weight *= BEFORE_CONTRAST_WEIGHT
        numerator += weight * hit.polarity
        denominator += weight
    if not denominator:
        return 0.0
    exclamations = sum(token.surface.count("!") for token in scan.tokens if token.kind is TokenKind.PUNCT)
    emphasis = 1 + EXCLAMATION_STEP * min(exclamations, MAX_EXCLAMATIONS)
    if scan.shouting:
        emphasis += SHOUTING_EMPHASIS - 1
    return max(-1.0, min(1.0, emphasis * numerator / denominator))


def _is_shouting(tokens: list[Token]) -> bool:
    """Most words of three or more letters in capitals, and at least two of them."""
    long_words = [token for token in tokens if token.kind is TokenKind.WORD and len(token.surface) >= 3]
    caps = sum(1 for token in long_words if token.is_caps)
    return caps >= SHOUTING_MIN_WORDS and caps >= SHOUTING_MIN_SHARE * len(long_words)


def _is_indignant(token: Token) -> bool:
    """'??', '?!' or '!?': a question that is really a complaint ('Wo ist mein Paket?!')."""
    return token.kind is TokenKind.PUNCT and "?" in token.surface and len(token.surface.strip(".")) >= 2
