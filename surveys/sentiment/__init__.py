"""Sentiment of free-text survey comments in German and English, offline and in well under 1 ms.

    >>> score("Paket kam nie an").label
    <Label.NEGATIVE: 'negative'>

``score`` picks the analyzer by the comment's own language (detected with py3langid); ``lang``
forces one, ``hint`` (e.g. the customer's interface language) only helps when the comment is
too short to tell. The analyzers are TextBlob analyzers (``GermanAnalyzer``, ``EnglishAnalyzer``)
built on the rules in ``rules.py`` and the lexicons in this folder.
"""

from __future__ import annotations

from surveys.languages import SUPPORTED_LANGUAGES, Language, normalize_language
from surveys.sentiment.analyzers import EnglishAnalyzer, GermanAnalyzer, RuleBasedAnalyzer, analyzer_for
from surveys.sentiment.language import detect_language, load_language_model
from surveys.sentiment.learned import model_for
from surveys.sentiment.result import NEGATIVE_AT_OR_BELOW, POSITIVE_AT_OR_ABOVE, Label, Sentiment, label_for

FALLBACK_LANGUAGE: Language = "de"
"""Wins the tie for a comment too short to detect (emoji only, no known word) without a usable hint."""

__all__ = [
    "FALLBACK_LANGUAGE",
    "NEGATIVE_AT_OR_BELOW",
    "POSITIVE_AT_OR_ABOVE",
    "EnglishAnalyzer",
    "GermanAnalyzer",
    "Label",
    "RuleBasedAnalyzer",
    "Sentiment",
    "analyzer_for",
    "detect_language",
    "label_for",
    "preload",
    "score",
]


def score(text: str, lang: str | None = None, *, hint: str | None = None) -> Sentiment:
    """The sentiment of one comment.

    ``lang`` ("de", "en", or a tag like "de-AT") forces that analyzer; anything else raises
    ValueError. Without it the comment's detected language decides, unless its analyzer finds
    no evidence and the other one does (a short English phrase detected as German). When the comment is too
    short to detect ("Top", "Not so great", "👍"), every analyzer reads it and the one that
    recognises the most words wins, then the one that finds any evidence ("Total rip-off.");
    on a tie (emoji only, or no known word) the language of ``hint`` does, else
    FALLBACK_LANGUAGE. Emoji score the same in every language.
    """
    if lang is not None:
        forced = normalize_language(lang)
        if forced is None:
            raise ValueError(f"lang must be one of {', '.join(SUPPORTED_LANGUAGES)}, got {lang!r}")
        return analyzer_for(forced).analyze(text)
    detected = detect_language(text)
    if detected is not None:
        return _read_as(detected, text)
    first = normalize_language(hint) or FALLBACK_LANGUAGE
    best: tuple[tuple[int, bool], Sentiment] | None = None
    for language in (first, *(other for other in SUPPORTED_LANGUAGES if other != first)):
        analyzer = analyzer_for(language)
        evaluation = analyzer.evaluate(text)
        rank = (evaluation.known_words, bool(evaluation.hits))
        if best is None or rank > best[0]:
            best = (rank, analyzer.reading(text, evaluation))
    assert best is not None  # SUPPORTED_LANGUAGES is never empty
    return best[1]


def _read_as(detected: Language, text: str) -> Sentiment:
    """The detected language's reading, unless it finds no evidence at all and another
    language's lexicon does with at least as many known words ("Total rip-off." looks German
    to the detector).
    """
    analyzer = analyzer_for(detected)
    evaluation = analyzer.evaluate(text)
    if not evaluation.hits:
        for other in SUPPORTED_LANGUAGES:
            if other == detected:
                continue
            alternative = analyzer_for(other).evaluate(text)
            if alternative.hits and alternative.known_words >= evaluation.known_words:
                return analyzer_for(other).reading(text, alternative)
    return analyzer.reading(text, evaluation)


def preload() -> None:
    """Load the language model and every lexicon now, so the first customer does not wait (~1 s)."""
    load_language_model()
    for language in SUPPORTED_LANGUAGES:
        analyzer_for(language).lexicon()
        model_for(language)
