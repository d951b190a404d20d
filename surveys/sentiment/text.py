"""Normalising and tokenising comments with regular expressions (no NLTK: its data is not here).

Every lookup key, in the lexicons and in the text, goes through ``normalize``: lower case,
umlauts spelled out (ä → ae, ß → ss) and typographic apostrophes made plain. "Enttäuscht",
"ENTTÄUSCHT" and "enttaeuscht" are then one key. The umlaut-free spelling with a plain vowel
("enttauscht") is not folded here, because it would turn "schön" into "schon"; the lexicon
loader adds such spellings word by word instead (see ``plain_vowel_spelling``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

_SPELL_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_PLAIN_VOWELS = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})

# Variation selectors, skin tones and zero-width-joiner sequences ("🤦‍♂️") follow a base emoji;
# the base alone decides its polarity.
_EMOJI_TAIL = "[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]*(?:\u200d\\S\ufe0f?[\U0001f3fb-\U0001f3ff]?)*"
_EMOJI_EXTRAS = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]|\u200d.*")
STAR_FULL = frozenset("\u2b50\u2605\U0001f31f")  # ⭐ ★ 🌟
STAR_EMPTY = frozenset("\u2606")  # ☆
_STARS = "(?:[\u2b50\u2605\u2606\U0001f31f]\ufe0f?)+"
_RATING = r"\d+/\d+"
_WORD = r"[^\W_]+(?:['\-][^\W_]+)*"
_PUNCT = r"[.!?,;:()…]+|(?<!\w)[-–—](?!\w)"


class TokenKind(Enum):
    """What a token is; only words are looked up in a lexicon."""

    WORD = "word"
    PUNCT = "punct"
    EMOJI = "emoji"
    STARS = "stars"


class Token(NamedTuple):
    """One token: ``surface`` as written (for shouting), ``norm`` as looked up.

    A NamedTuple rather than a dataclass: a comment has dozens, and they are built on every score.
    """

    surface: str
    norm: str
    kind: TokenKind

    @property
    def is_caps(self) -> bool:
        """True for a word of three or more letters written in capitals ("NIE", "SUPER")."""
        return self.kind is TokenKind.WORD and len(self.surface) >= 3 and self.surface.isupper()


def normalize(word: str) -> str:
    """The lookup key of a word: lower case, umlauts spelled out, plain apostrophes."""
    return unicodedata.normalize("NFC", word).lower().translate(_SPELL_OUT).translate(_APOSTROPHES)


def plain_vowel_spelling(word: str) -> str | None:
    """The key of ``word`` typed without umlauts on a keyboard that lacks them ("schön" → "schon").

    None when the word has no umlaut, so there is no second spelling to add.
    """
    lowered = unicodedata.normalize("NFC", word).lower()
    if not any(letter in lowered for letter in "äöü"):
        return None
    return lowered.translate(_PLAIN_VOWELS).translate(_APOSTROPHES)


def emoji_base(emoji: str) -> str:
    """An emoji without variation selector, skin tone or ZWJ continuation ("👍🏽" → "👍")."""
    return _EMOJI_EXTRAS.sub("", emoji)


def _emoticon_alternative(emoticon: str) -> str:
    """A regex for an emoticon whose last character may repeat (":)))", ":DDD")."""
    body = re.escape(emoticon[:-1]) + re.escape(emoticon[-1]) + "+"
    if emoticon[0].isalpha():
        return rf"(?<!\w){body}(?!\w)"
    # Not after punctuation ("https://" must not yield ":/"), not glued to a following word.
    return rf"(?<![^\s\w]){body}(?![^\s.,!?;])"


class Tokenizer:
    """Splits a comment into words, punctuation runs, emoji, emoticons and star ratings.

    Built from the emoji table so that only known emoji and emoticons become tokens; every
    other symbol is dropped like whitespace.
    """

    def __init__(self, emoji: Iterable[str], emoticons: Iterable[str]) -> None:
        self._emoticons = frozenset(emoticons)
        bases = {emoji_base(e) for e in emoji}
        # Single code points go into one character class: much faster than a long alternation.
        single = "".join(sorted(re.escape(e) for e in bases if len(e) == 1))
        longer = [re.escape(e) for e in sorted((e for e in bases if len(e) > 1), key=len, reverse=True)]
        emoji_alternatives = "|".join([*longer, f"[{single}]"] if single else longer) or "(?!)"
        # Words come before emoticons (most tokens are words); "xD" is turned back into an emoticon.
        self._letter_emoticons = frozenset(e for e in self._emoticons if e[0].isalpha())
        others = sorted(self._emoticons - self._letter_emoticons, key=len, reverse=True)
        emoticon_alternatives = "|".join(_emoticon_alternative(e) for e in others) or "(?!)"
        self._pattern = re.compile(
            f"(?P<word>{_RATING}|{_WORD})"
            f"|(?P<stars>{_STARS})"
            f"|(?P<emoji>(?:{emoji_alternatives}){_EMOJI_TAIL})"
            f"|(?P<emoticon>{emoticon_alternatives})"
            f"|(?P<punct>{_PUNCT})"
        )

    def tokenize(self, text: str) -> list[Token]:
        """The tokens of ``text`` in order."""
        text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
        tokens: list[Token] = []
        for match in self._pattern.finditer(text):
            surface = match.group()
            kind = match.lastgroup
            if kind == "word":
                if surface in self._letter_emoticons or surface[:2] in self._letter_emoticons:
                    canonical = self._canonical_emoticon(surface)
                    if canonical in self._emoticons:
                        tokens.append(Token(surface, canonical, TokenKind.EMOJI))
                        continue
                # The text is NFC already and its apostrophes plain: only case and umlauts remain.
                tokens.append(Token(surface, surface.lower().translate(_SPELL_OUT), TokenKind.WORD))
            elif kind == "punct":
                tokens.append(Token(surface, surface, TokenKind.PUNCT))
            elif kind == "emoji":
                tokens.append(Token(surface, emoji_base(surface), TokenKind.EMOJI))
            elif kind == "emoticon":
                tokens.append(Token(surface, self._canonical_emoticon(surface), TokenKind.EMOJI))
            else:
                tokens.append(Token(surface, surface.replace("\ufe0f", ""), TokenKind.STARS))
        return tokens

    def _canonical_emoticon(self, surface: str) -> str:
        """The table's spelling of an emoticon written with a repeated last character."""
        canonical = surface
        while canonical not in self._emoticons and len(canonical) > 1 and canonical[-1] == canonical[-2]:
            canonical = canonical[:-1]
        return canonical
