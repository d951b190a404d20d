"""The bot's own texts (greetings, errors, button labels, staff alerts) in every language.

Texts live in ``locales/<language>.yaml`` as flat ``key: text`` mappings so translators
never touch Python. They are Telegram HTML, and the catalogue escapes every value it puts into them, so
no caller can forget: a customer's ``<b>``, ``&`` or an order id like ``A&B`` shows as typed. What is
already HTML (another catalogue text, a fragment the bot built) is marked :class:`Html` and goes in as
it is.
"""

from __future__ import annotations

import functools
import html
import string
from collections.abc import Mapping
from pathlib import Path

import yaml

from surveys.languages import SUPPORTED_LANGUAGES, Language

LOCALES_DIR = Path(__file__).parent / "locales"


class Html(str):
    """A string that is already Telegram HTML: the catalogue puts it into a text without escaping it.

    Every text the catalogue returns is one, so a text can be a parameter of another.
    """

    __slots__ = ()


def escaped(value: str | int) -> str:
    """A parameter as it goes into HTML: plain strings escaped, ``Html`` and numbers as they are."""
    if isinstance(value, Html):
        return value
    if isinstance(value, str):
        return html.escape(value, quote=False)
    return str(value)


class CatalogueError(Exception):
    """A locale file that is missing, malformed or out of step with the other languages."""


def placeholders(text: str) -> frozenset[str]:
    """The ``{name}`` fields of a text (``{{`` and ``}}`` are literal braces)."""
    return frozenset(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)


class Catalogue:
    """Texts per language and key; every language must have the same keys and placeholders.

    Checked when loading, so a forgotten translation stops the bot at startup instead of
    raising a KeyError in the middle of a customer's conversation.
    """

    def __init__(self, texts: Mapping[Language, Mapping[str, str]]) -> None:
        self._texts = {language: dict(entries) for language, entries in texts.items()}
        problems = _consistency_problems(self._texts)
        if problems:
            raise CatalogueError("the locale files do not match:\n" + "\n".join(problems))

    @classmethod
    def from_directory(cls, directory: Path) -> Catalogue:
        """Load ``<language>.yaml`` for every supported language from ``directory``."""
        return cls(
            {language: _load_locale(directory / f"{language}.yaml") for language in SUPPORTED_LANGUAGES}
        )

    def text_keys(self) -> frozenset[str]:
        """All text keys (the same in every language)."""
        return frozenset(next(iter(self._texts.values()), {}))

    def languages(self) -> tuple[Language, ...]:
        """The languages this catalogue has texts for."""
        return tuple(self._texts)

    def raw(self, lang: Language, key: str) -> str:
        """The unformatted text, placeholders included."""
        try:
            entries = self._texts[lang]
        except KeyError:
            raise KeyError(f"the catalogue has no language {lang!r}") from None
        try:
            return entries[key]
        except KeyError:
            raise KeyError(
                f"no text {key!r} in the {lang!r} catalogue; add it to every locale file"
            ) from None

    def text(self, lang: Language, key: str, **params: str | int) -> Html:
        """The text for ``key`` in ``lang`` with ``params`` filled in, each escaped unless it is ``Html``.

        A missing parameter raises KeyError naming the text; extra parameters are ignored
        so callers can pass the same context to related texts.
        """
        template = self.raw(lang, key)
        try:
            return Html(template.format_map({name: escaped(value) for name, value in params.items()}))
        except KeyError as error:
            raise KeyError(f"text {key!r} ({lang}) needs the parameter {error.args[0]!r}") from None

    def plain(self, lang: Language, key: str, **params: str | int) -> str:
        """The text for ``key`` with ``params`` as they are, for a Bot API field that is not HTML (a forum
        topic's name shows ``&lt;`` literally). Only for keys whose template has no markup."""
        template = self.raw(lang, key)
        try:
            return template.format_map({name: str(value) for name, value in params.items()})
        except KeyError as error:
            raise KeyError(f"text {key!r} ({lang}) needs the parameter {error.args[0]!r}") from None


@functools.cache
def load_catalogue() -> Catalogue:
    """The shipped catalogue, loaded on first use and shared afterwards."""
    return Catalogue.from_directory(LOCALES_DIR)


def _load_locale(path: Path) -> dict[str, str]:
    try:
        source = path.read_text(encoding="utf-8")
        root = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CatalogueError(f"{path.name}: cannot load: {error}") from None
    # Plain YAML keeps the last of two equal keys; with dozens of texts that loses one silently.
    if isinstance(root, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, _ in root.value:
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                raise CatalogueError(f"{path.name}: key {key_node.value!r} appears twice (line {line})")
            seen.add(key_node.value)
    if not isinstance(data, dict):
        raise CatalogueError(f"{path.name}: expected a mapping of text keys to texts")
    texts: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
            raise CatalogueError(f"{path.name}: {key!r} must map to a non-empty text, got {value!r}")
        texts[key] = value
    return texts


def _consistency_problems(texts: Mapping[Language, Mapping[str, str]]) -> list[str]:
    """Keys or placeholders that differ between languages, one line each."""
    problems: list[str] = []
    all_keys = sorted(set().union(*texts.values())) if texts else []
    for key in all_keys:
        missing = [language for language, entries in texts.items() if key not in entries]
        if missing:
            problems.append(f"{key}: missing in {', '.join(missing)}")
            continue
        fields = {language: placeholders(entries[key]) for language, entries in texts.items()}
        if len(set(fields.values())) > 1:
            described = "; ".join(f"{language}: {sorted(names)}" for language, names in fields.items())
            problems.append(f"{key}: placeholders differ ({described})")
    return problems
