"""Which language a comment is written in, offline, with py3langid limited to our languages.

The comment's own language decides which analyzer reads it: a customer with an English phone
may well write German. py3langid is restricted to SUPPORTED_LANGUAGES, so it only has to tell
those apart; below a confidence threshold (typical for one- or two-word comments such as
"Super" or "Top") it abstains and the caller falls back.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from py3langid import langid  # type: ignore[import-untyped]  # py3langid ships no type hints

from surveys.languages import SUPPORTED_LANGUAGES, Language, is_supported

CONFIDENT_AT = 0.8
"""Normalised probability needed to trust the detection.

Measured here on short comments: "Paket kam nie an" 0.98, "never arrived" 0.98, "good" 0.87,
but "Super" 0.59, "Top" 0.57 (as English), "Perfect" 0.68: one word is often not enough.
"""
MIN_LETTERS = 3
"""Fewer letters than this ("ok", "👍", ":)") are not worth asking about."""
_ENOUGH_LETTERS = re.compile(rf"(?:[^\W\d_][\W\d_]*){{{MIN_LETTERS}}}")


@functools.cache
def _identifier() -> Any:
    """py3langid's model restricted to our languages; loading takes about half a second, once."""
    cls = langid.LanguageIdentifier
    # py3langid 0.4 renamed from_pickled_model (0.3) to from_model_file.
    load = getattr(cls, "from_model_file", None) or cls.from_pickled_model
    identifier = load(langid.MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(SUPPORTED_LANGUAGES))
    return identifier


def detect_language(text: str) -> Language | None:
    """The language ``text`` is written in, or None when the text is too short to tell."""
    if not _ENOUGH_LETTERS.search(text):
        return None
    language, confidence = _identifier().classify(text)
    if float(confidence) < CONFIDENT_AT or not is_supported(language):
        return None
    return language


def load_language_model() -> None:
    """Load the model now (at startup) rather than on the first comment."""
    _identifier()
