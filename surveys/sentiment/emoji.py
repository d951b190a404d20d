"""Emoji, emoticons and star ratings: polarity that needs no language.

Comments in a chat are often nothing but "👍" or "😡😡😡", and language detection has nothing to
work with there, so emoji score the same whichever analyzer reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from surveys.sentiment.datafile import DATA_DIR, LexiconError, read_data_file, text_list, weight_map
from surveys.sentiment.text import STAR_EMPTY, STAR_FULL, Tokenizer, emoji_base

EMOJI_FILE = DATA_DIR / "emoji.yaml"

# A run of n full stars without empty ones reads as "n out of 5" (⭐⭐⭐⭐⭐ is top marks).
STAR_SCALE = 5
_RATING_POLARITY = {5: 0.8, 4: 0.5, 3: 0.0, 2: -0.5, 1: -0.8, 0: -0.9}
LONE_STAR_POLARITY = 0.3
"""A single ⭐ without empty stars is decoration more often than a one-star verdict."""


@dataclass(frozen=True, slots=True)
class EmojiTable:
    """Polarity per emoji and emoticon, and which emoji mark sarcasm."""

    polarity: Mapping[str, float]
    sarcasm: frozenset[str]
    tokenizer: Tokenizer
    """Recognises exactly this table's emoji and emoticons."""


def star_rating_polarity(stars: str) -> float:
    """The polarity of a run of stars: ★★★★☆ is 4 of 5, a bare ⭐⭐ is 2 of 5, a lone ⭐ mild praise."""
    full = sum(1 for star in stars if star in STAR_FULL)
    empty = sum(1 for star in stars if star in STAR_EMPTY)
    if empty == 0 and full == 1:
        return LONE_STAR_POLARITY
    total = full + empty if empty else max(full, STAR_SCALE)
    out_of_five = round(STAR_SCALE * full / total)
    return _RATING_POLARITY[out_of_five]


def parse_emoji_table(path: Path) -> EmojiTable:
    """Load and check an emoji file (see emoji.yaml for the format)."""
    data = read_data_file(path, {"emoji": True, "emoticons": True, "sarcasm": False})
    problems: list[str] = []
    emoji = weight_map(data["emoji"], "emoji", problems, low=-1.0, high=1.0)
    emoticons = weight_map(data["emoticons"], "emoticons", problems, low=-1.0, high=1.0)
    sarcasm = text_list(data.get("sarcasm"), "sarcasm", problems)
    polarity: dict[str, float] = {}
    for key, weight in emoji.items():
        base = emoji_base(key)
        if base in polarity:
            problems.append(f"emoji: {key!r} is {base!r} again (with a variation selector or skin tone)")
        polarity[base] = weight
    problems += [f"emoticons: {key!r} is also an emoji" for key in emoticons if key in polarity]
    tokenizer = Tokenizer(polarity, emoticons)
    polarity.update(emoticons)
    sarcasm_bases = frozenset(emoji_base(key) for key in sarcasm)
    problems += [f"sarcasm: {key!r} is not in the emoji section" for key in sarcasm_bases - polarity.keys()]
    if problems:
        raise LexiconError(path, problems)
    return EmojiTable(polarity=polarity, sarcasm=sarcasm_bases, tokenizer=tokenizer)


@functools.cache
def emoji_table() -> EmojiTable:
    """The shipped emoji table, loaded once."""
    return parse_emoji_table(EMOJI_FILE)
