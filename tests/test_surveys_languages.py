"""Tests for surveys.languages: mapping Telegram language codes to the bot's languages."""

from __future__ import annotations

import pytest

from surveys.definition import LocalizedText
from surveys.languages import SUPPORTED_LANGUAGES, normalize_language, pick_language


@pytest.mark.parametrize(
    ("code", "language"),
    [("de", "de"), ("de-AT", "de"), ("de_CH", "de"), ("EN", "en"), ("en-US", "en"), (" en-gb ", "en")],
)
def test_normalize_language_keeps_only_the_primary_subtag(code: str, language: str) -> None:
    """Regional variants and any capitalisation map to the supported base language."""
    assert normalize_language(code) == language


@pytest.mark.parametrize("code", [None, "", "  ", "fr", "fr-DE", "english", "deu", "-de"])
def test_normalize_language_returns_none_for_unsupported_codes(code: str | None) -> None:
    """Unknown or empty codes give None so the caller's fallback applies."""
    assert normalize_language(code) is None


def test_pick_language_takes_the_first_supported_candidate() -> None:
    """Earlier candidates win; unsupported and missing ones are skipped."""
    assert pick_language(None, "fr", "en-US", "de", default="de") == "en"


def test_pick_language_falls_back_to_the_default() -> None:
    """Without any usable candidate the default is returned."""
    assert pick_language(None, "", "pt-BR", default="en") == "en"
    assert pick_language(default="de") == "de"


def test_localized_text_has_a_field_for_every_supported_language() -> None:
    """Adding a language to SUPPORTED_LANGUAGES also needs a field on LocalizedText."""
    assert tuple(LocalizedText.model_fields) == SUPPORTED_LANGUAGES
