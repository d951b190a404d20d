"""Tests for surveys.texts: the catalogue of the bot's own texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from surveys.languages import SUPPORTED_LANGUAGES
from surveys.texts import LOCALES_DIR, Catalogue, CatalogueError, Html, load_catalogue, placeholders

SEEDED_KEYS = {
    "start_welcome": set(),
    "start_linked": {"order_id"},
    "start_resumed": set(),
    "link_invalid": set(),
    "link_used": set(),
    "link_expired": set(),
    "mydata_not_customer": {"name", "telegram_id", "days"},
    "forget_confirm": set(),
    "forget_done": set(),
    "case_card_erased": {"at"},
    "help": set(),
    "stop_confirmed": set(),
    "stop_already": set(),
    "language_choose": set(),
    "language_set": {"language_name"},
    "language_name_de": set(),
    "language_name_en": set(),
    "survey_thanks_fallback": set(),
    "answer_recorded": set(),
    "answer_already": set(),
    "button_invalid": set(),
    "button_not_yours": set(),
    "skip_button": set(),
    "your_answer": {"answer"},
    "skipped": set(),
    "text_too_long": {"max_length"},
    "text_empty": set(),
    "unknown_message": set(),
    "choose_with_buttons": set(),
    "case_card_head": {"icon", "case_id", "name", "customer_id"},
    "case_card_score": {"score", "category"},
    "case_card_reason": {"reason"},
    "case_card_comment": {"sentiment", "comment"},
    "case_card_order": {"order_id", "amount", "date"},
    "case_reply_to_customer": {"text"},
    "case_customer_message": {"case_id", "name", "text"},
    "error_generic": set(),
    "commands_start": set(),
    "commands_help": set(),
    "commands_language": set(),
    "commands_stop": set(),
}

_LOCALE_FILES = {language: LOCALES_DIR / f"{language}.yaml" for language in SUPPORTED_LANGUAGES}
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class TestShippedCatalogue:
    """The locale files that ship with the bot."""

    def test_all_languages_have_the_same_keys_and_placeholders(self) -> None:
        """A text missing in one language or with other {fields} fails here, not in front of a customer."""
        catalogue = load_catalogue()
        reference = {key: placeholders(catalogue.raw("de", key)) for key in catalogue.text_keys()}
        for language in SUPPORTED_LANGUAGES:
            assert {
                key: placeholders(catalogue.raw(language, key)) for key in catalogue.text_keys()
            } == reference

    def test_seeded_keys_exist_with_their_placeholders(self) -> None:
        """The handlers call these keys with exactly these parameters."""
        catalogue = load_catalogue()
        for key, fields in SEEDED_KEYS.items():
            for language in SUPPORTED_LANGUAGES:
                assert placeholders(catalogue.raw(language, key)) == fields, (language, key)

    def test_placeholders_are_plain_names(self) -> None:
        """No positional, attribute or index fields, which format_map would fail on or misuse."""
        catalogue = load_catalogue()
        for language in SUPPORTED_LANGUAGES:
            for key in catalogue.text_keys():
                assert all(
                    _IDENTIFIER.fullmatch(name) for name in placeholders(catalogue.raw(language, key))
                ), key

    def test_every_text_formats_with_its_placeholders(self) -> None:
        """Stray braces would only show up at runtime otherwise."""
        catalogue = load_catalogue()
        for language in SUPPORTED_LANGUAGES:
            for key in catalogue.text_keys():
                params = dict.fromkeys(placeholders(catalogue.raw(language, key)), "X")
                assert catalogue.text(language, key, **params)

    def test_texts_are_safe_telegram_html(self) -> None:
        """Only <b> and <code> tags are used; a bare < or & would make Telegram reject the message."""
        catalogue = load_catalogue()
        for language in SUPPORTED_LANGUAGES:
            for key in catalogue.text_keys():
                text = re.sub(r"</?(?:b|code)>", "", catalogue.raw(language, key))
                assert not re.search(r"[<>]|&(?!(?:lt|gt|amp|quot);)", text), (language, key)

    def test_toasts_fit_into_a_callback_answer(self) -> None:
        """answerCallbackQuery shows at most 200 characters."""
        catalogue = load_catalogue()
        toasts = [
            "answer_recorded",
            "answer_already",
            "button_invalid",
            "button_not_yours",
            "choose_with_buttons",
        ]
        for language in SUPPORTED_LANGUAGES:
            for key in toasts:
                assert len(catalogue.text(language, key)) <= 200, (language, key)

    def test_command_descriptions_fit_telegram_limits(self) -> None:
        """BotCommand descriptions must be 3 to 256 characters long."""
        catalogue = load_catalogue()
        for language in SUPPORTED_LANGUAGES:
            for key in ("commands_start", "commands_help", "commands_language", "commands_stop"):
                assert 3 <= len(catalogue.text(language, key)) <= 256, (language, key)

    def test_help_lists_all_commands(self) -> None:
        """The help text mentions every command in the menu."""
        catalogue = load_catalogue()
        for language in SUPPORTED_LANGUAGES:
            help_text = catalogue.text(language, "help")
            for command in ("/start", "/help", "/language", "/pause", "/stop"):
                assert command in help_text, (language, command)

    def test_languages_differ(self) -> None:
        """German and English are actually translated (names of languages excepted)."""
        catalogue = load_catalogue()
        same = {key for key in catalogue.text_keys() if catalogue.raw("de", key) == catalogue.raw("en", key)}
        # "Status" is the same word in both; a choice's label in /mydata is already in its language.
        assert same == {
            "language_name_de",
            "language_name_en",
            "sentiment_neutral",
            "case_list_status",
            "mydata_answer_choice",
            "summary_title",  # "Kundenpuls · {period}"
            "chart_nps",
        }

    def test_load_catalogue_is_cached(self) -> None:
        """The files are read once and the catalogue shared."""
        assert load_catalogue() is load_catalogue()


class TestCatalogueBehaviour:
    """Formatting and errors of Catalogue.text."""

    def test_text_fills_in_parameters(self) -> None:
        """str.format_map substitutes the named parameters, ints included."""
        catalogue = load_catalogue()
        assert catalogue.text("en", "your_answer", answer="9") == "Your answer: 9"
        assert "1000" in catalogue.text("de", "text_too_long", max_length=1000)

    def test_parameter_values_are_not_formatted_again(self) -> None:
        """Braces in a customer's text stay literal."""
        assert load_catalogue().text("en", "your_answer", answer="{order_id}") == "Your answer: {order_id}"

    def test_parameters_are_html_escaped_by_the_catalogue(self) -> None:
        """A customer's markup and ampersands show as typed; no caller has to remember escaping."""
        text = load_catalogue().text("en", "your_answer", answer="<b>A&B</b>")
        assert text == "Your answer: &lt;b&gt;A&amp;B&lt;/b&gt;"

    def test_plain_texts_keep_parameters_as_typed_for_fields_that_are_not_html(self) -> None:
        """A forum topic's name is plain text: escaping there would show ``&amp;`` to the staff."""
        name = load_catalogue().plain("en", "case_topic_name", case_id=7, name="<b>A&B</b>", score="2")
        assert name == "Case #7: <b>A&B</b> · 2/10"
        assert not isinstance(name, Html)

    def test_html_parameters_and_catalogue_texts_go_in_as_they_are(self) -> None:
        """A text from the catalogue is Html, so it can be a parameter of another text unescaped."""
        catalogue = load_catalogue()
        skipped = catalogue.text("en", "skipped")
        assert isinstance(skipped, Html)
        assert catalogue.text("en", "your_answer", answer=skipped) == f"Your answer: {skipped}"
        assert catalogue.text("en", "your_answer", answer=Html("<b>9</b>")) == "Your answer: <b>9</b>"

    def test_missing_key_is_a_clear_key_error(self) -> None:
        """The message names the key and the language."""
        with pytest.raises(KeyError, match="no text 'no_such_key' in the 'de' catalogue"):
            load_catalogue().text("de", "no_such_key")

    def test_missing_parameter_is_a_clear_key_error(self) -> None:
        """The message names the text and the parameter it needs."""
        with pytest.raises(KeyError, match="text 'start_linked' \\(en\\) needs the parameter 'order_id'"):
            load_catalogue().text("en", "start_linked")

    def test_unknown_language_is_a_key_error(self) -> None:
        """Only supported languages have texts."""
        with pytest.raises(KeyError, match="no language 'fr'"):
            load_catalogue().text("fr", "help")  # type: ignore[arg-type]

    def test_extra_parameters_are_ignored(self) -> None:
        """Callers may pass a shared context to texts that use only part of it."""
        assert load_catalogue().text("en", "skip_button", order_id="A1") == "Skip"


class TestCatalogueLoading:
    """Locale files that must be refused when the bot starts."""

    def _write(self, directory: Path, de: str, en: str) -> Path:
        (directory / "de.yaml").write_text(de, encoding="utf-8")
        (directory / "en.yaml").write_text(en, encoding="utf-8")
        return directory

    def test_key_missing_in_one_language(self, tmp_path: Path) -> None:
        """A key only in German names the missing language."""
        directory = self._write(tmp_path, "a: Hallo\nb: Tschüss\n", "a: Hello\n")
        with pytest.raises(CatalogueError, match="b: missing in en"):
            Catalogue.from_directory(directory)

    def test_placeholders_differ(self, tmp_path: Path) -> None:
        """A translated placeholder name is caught."""
        directory = self._write(tmp_path, "a: Bestellung {bestellung}\n", "a: Order {order_id}\n")
        with pytest.raises(CatalogueError, match="a: placeholders differ"):
            Catalogue.from_directory(directory)

    def test_duplicate_key(self, tmp_path: Path) -> None:
        """A key written twice would silently lose one text."""
        directory = self._write(tmp_path, "a: Hallo\na: Servus\n", "a: Hello\n")
        with pytest.raises(CatalogueError, match=r"de\.yaml: key 'a' appears twice \(line 2\)"):
            Catalogue.from_directory(directory)

    @pytest.mark.parametrize("content", ["- a\n", "a: ''\n", "a: 3\n", "a: [x]\n", "a: {b\n"])
    def test_malformed_locale_file(self, tmp_path: Path, content: str) -> None:
        """Non-mappings, empty or non-text values and bad YAML name the file."""
        directory = self._write(tmp_path, content, "a: Hello\n")
        with pytest.raises(CatalogueError, match=r"de\.yaml"):
            Catalogue.from_directory(directory)

    def test_missing_locale_file(self, tmp_path: Path) -> None:
        """Every supported language needs its file."""
        (tmp_path / "de.yaml").write_text("a: Hallo\n", encoding="utf-8")
        with pytest.raises(CatalogueError, match=r"en\.yaml: cannot load"):
            Catalogue.from_directory(tmp_path)

    def test_shipped_files_are_the_ones_loaded(self) -> None:
        """LOCALES_DIR holds one file per supported language."""
        assert all(path.is_file() for path in _LOCALE_FILES.values())
