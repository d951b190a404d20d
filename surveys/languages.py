"""The languages the bot speaks and how to pick one for a customer.

Telegram reports a user's client language as an IETF tag such as ``de-AT`` or ``en-US``
(or nothing at all); the bot only needs the primary language.
"""

from __future__ import annotations

from typing import Literal, TypeGuard

Language = Literal["de", "en"]
SUPPORTED_LANGUAGES: tuple[Language, ...] = ("de", "en")


def is_supported(code: str) -> TypeGuard[Language]:
    """True if ``code`` is exactly one of SUPPORTED_LANGUAGES (no normalisation)."""
    return code in SUPPORTED_LANGUAGES


def normalize_language(code: str | None) -> Language | None:
    """Reduce a language tag like ``de-AT``, ``en_US`` or ``EN`` to a supported language.

    Returns None for empty or unsupported tags so callers can fall back explicitly.
    """
    if not code:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if is_supported(primary) else None


def pick_language(*candidates: str | None, default: Language) -> Language:
    """The first candidate that maps to a supported language, else ``default``.

    Callers pass candidates in order of preference, e.g. the language the customer chose
    with /language, then Telegram's ``language_code``, then the shop's setting.
    """
    for candidate in candidates:
        language = normalize_language(candidate)
        if language is not None:
            return language
    return default
