"""The German and English analyzers, as TextBlob sentiment analyzers.

Both plug into TextBlob's analyzer interface, so ``TextBlob(text, analyzer=GermanAnalyzer())
.sentiment`` works like TextBlob with a better analyzer. Both run the same rules
(``surveys.sentiment.rules``); they differ in the lexicon:

- German: ``lexicon_de.yaml``, written for this project.
Their polarity blends the rules' with a naive Bayes model learned from the project's labelled
comments (``surveys.sentiment.learned``), which reads the complaints that name no sentiment word.

- English: the lexicon TextBlob's own PatternAnalyzer uses (``en-sentiment.xml`` in the TextBlob
  wheel) with ``lexicon_en.yaml`` on top. PatternAnalyzer itself is not called: its rules are
  the ones that miss "I would not recommend this", "never arrived" and emoji, so its words are
  read with ours instead.
"""

from __future__ import annotations

import abc
import functools
import re

from textblob.base import CONTINUOUS, BaseSentimentAnalyzer
from textblob.en import sentiment as textblob_english_lexicon

from surveys.languages import Language
from surveys.sentiment.datafile import DATA_DIR
from surveys.sentiment.learned import blend, model_for
from surveys.sentiment.lexicon import Lexicon
from surveys.sentiment.lexicon_file import parse_lexicon
from surveys.sentiment.result import Sentiment
from surveys.sentiment.rules import Evaluation, evaluate
from surveys.sentiment.text import normalize

_ONE_TOKEN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")


@functools.cache
def textblob_english_words() -> dict[str, float]:
    """TextBlob's English polarity per word (all senses averaged, as PatternAnalyzer does).

    Multi-word entries ("for sure") are left out: TextBlob's own analyzer never matches them
    either. Words with polarity 0 are left out because they are no evidence.
    """
    words: dict[str, float] = {}
    for word in textblob_english_lexicon:
        if _ONE_TOKEN.fullmatch(word):
            polarity = float(textblob_english_lexicon[word][None][0])
            if polarity:
                words[normalize(word)] = polarity
    return words


@functools.cache
def german_lexicon() -> Lexicon:
    """The project's German lexicon (lexicon_de.yaml), loaded once."""
    return parse_lexicon(DATA_DIR / "lexicon_de.yaml")


@functools.cache
def english_lexicon() -> Lexicon:
    """TextBlob's English words with lexicon_en.yaml's additions and corrections, loaded once."""
    return parse_lexicon(DATA_DIR / "lexicon_en.yaml", base_words=textblob_english_words())


class RuleBasedAnalyzer(BaseSentimentAnalyzer, abc.ABC):  # type: ignore[misc]  # textblob has no type hints
    """A TextBlob analyzer that scores with ``rules.evaluate`` and one language's lexicon."""

    kind = CONTINUOUS
    language: Language

    @abc.abstractmethod
    def lexicon(self) -> Lexicon:
        """The lexicon this analyzer reads with."""

    def evaluate(self, text: str) -> Evaluation:
        """The polarity and the hits behind it (for callers that need to know whether any word counted)."""
        return evaluate(self.lexicon(), text)

    def analyze(self, text: str) -> Sentiment:
        """Score ``text``; TextBlob's ``.sentiment`` returns this."""
        return self.reading(text, self.evaluate(text))

    def reading(self, text: str, evaluation: Evaluation) -> Sentiment:
        """The sentiment of ``text`` from the rules' evaluation of it, blended with the model's."""
        model = model_for(self.language).polarity(text)
        polarity = blend(evaluation.polarity, model, verdict=evaluation.verdict)
        return Sentiment.of(polarity, self.language)


class GermanAnalyzer(RuleBasedAnalyzer):
    """German comments, read with the project's own German lexicon."""

    language: Language = "de"

    def lexicon(self) -> Lexicon:
        """The German lexicon."""
        return german_lexicon()


class EnglishAnalyzer(RuleBasedAnalyzer):
    """English comments, read with TextBlob's lexicon plus the project's English additions."""

    language: Language = "en"

    def lexicon(self) -> Lexicon:
        """The English lexicon."""
        return english_lexicon()


@functools.cache
def analyzer_for(language: Language) -> RuleBasedAnalyzer:
    """The analyzer for a supported language (one instance each; analyzers keep no state)."""
    analyzers: dict[Language, type[RuleBasedAnalyzer]] = {"de": GermanAnalyzer, "en": EnglishAnalyzer}
    return analyzers[language]()
