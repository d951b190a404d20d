"""Tests for surveys.definition and surveys.loader: what a valid survey is and how errors read."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from surveys.definition import LocalizedText, Question, QuestionType, ShowIf, SurveyDefinition
from surveys.loader import BUILTIN_SURVEYS_DIR, SurveyFileError, load_builtin_survey, load_survey
from surveys.nps import NpsCategory


def _text(word: str) -> dict[str, str]:
    return {"de": f"{word} (de)", "en": f"{word} (en)"}


MINIMAL: dict[str, Any] = {
    "id": "mini",
    "version": 1,
    "intro": _text("intro"),
    "thanks": _text("thanks"),
    "questions": [
        {"id": "nps", "type": "nps", "text": _text("nps")},
        {
            "id": "reason",
            "type": "choice",
            "text": _text("reason"),
            "show_if": {"question": "nps", "category": ["critic"]},
            "options": [
                {"id": "price", "label": _text("price")},
                {"id": "service", "label": _text("service")},
            ],
        },
        {"id": "stars", "type": "rating", "text": _text("stars")},
        {
            "id": "comment",
            "type": "text",
            "text": _text("comment"),
            "show_if": {"question": "stars", "max": 2},
        },
    ],
}


def _survey(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(changes)
    return data


def _write(tmp_path: Path, data: Any, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _error_lines(path: Path) -> list[str]:
    with pytest.raises(SurveyFileError) as caught:
        load_survey(path)
    assert caught.value.path == path
    return str(caught.value).splitlines()


class TestShippedSurvey:
    """The survey that ships with the bot."""

    def test_loads_and_starts_with_the_nps_question(self) -> None:
        """post_purchase.yaml is valid, its id matches the file and it opens with NPS."""
        survey = load_builtin_survey()
        assert survey.id == "post_purchase"
        assert survey.first_question().id == "nps"
        assert survey.first_question().type is QuestionType.NPS

    def test_has_the_agreed_questions_and_options(self) -> None:
        """Handlers and reports rely on these ids; changing them breaks stored answers."""
        survey = load_builtin_survey()
        assert [question.id for question in survey.questions] == [
            "nps",
            "reason",
            "comment",
            "liked",
            "improve",
        ]
        assert [option.id for option in survey.question("reason").options] == [
            "price",
            "quality",
            "service",
            "delivery",
            "competitor",
            "not_needed",
            "other",
        ]
        assert survey.question("comment").skippable
        assert survey.question("improve").skippable

    def test_has_both_languages_everywhere(self) -> None:
        """Every text of the shipped survey exists in German and English and they differ."""
        survey = load_builtin_survey()
        texts = [survey.intro, survey.thanks]
        for question in survey.questions:
            texts.append(question.text)
            texts.extend(option.label for option in question.options)
        for text in texts:
            assert text.get("de")
            assert text.get("en")
            assert text.get("de") != text.get("en")

    def test_builtin_survey_is_cached(self) -> None:
        """Handlers may call load_builtin_survey per update without re-reading the file."""
        assert load_builtin_survey("post_purchase") is load_builtin_survey("post_purchase")

    @pytest.mark.parametrize("survey_id", ["../secrets", "Post_Purchase", ""])
    def test_builtin_survey_rejects_ids_that_are_not_ids(self, survey_id: str) -> None:
        """The id becomes a file name, so path tricks are refused before touching the disk."""
        with pytest.raises(ValueError, match="not a valid survey id"):
            load_builtin_survey(survey_id)

    def test_unknown_builtin_survey_is_a_file_error(self) -> None:
        """A missing built-in survey names the file it looked for."""
        with pytest.raises(SurveyFileError, match=r"no_such_survey\.yaml: cannot read the file"):
            load_builtin_survey("no_such_survey")

    def test_builtin_directory_holds_the_shipped_file(self) -> None:
        """BUILTIN_SURVEYS_DIR points at the package data declared in pyproject.toml."""
        assert (BUILTIN_SURVEYS_DIR / "post_purchase.yaml").is_file()


class TestValidSurveys:
    """Definitions that must load, and what the loaded models provide."""

    def test_minimal_survey_loads(self, tmp_path: Path) -> None:
        """The test fixture itself is a valid survey."""
        survey = load_survey(_write(tmp_path, MINIMAL))
        assert survey.id == "mini"
        assert survey.question("reason").option("price") is not None
        assert survey.question("reason").option("forged") is None

    def test_text_questions_are_skippable_by_default_and_others_not(self) -> None:
        """The Skip button default depends on the question type."""
        survey = SurveyDefinition.model_validate(MINIMAL)
        assert survey.question("comment").skippable is True
        assert survey.question("nps").skippable is False
        assert survey.question("reason").skippable is False

    def test_text_question_can_be_made_mandatory(self) -> None:
        """skippable: false removes the Skip button from a text question."""
        data = _survey()
        data["questions"][3]["skippable"] = False
        assert SurveyDefinition.model_validate(data).question("comment").skippable is False

    def test_unknown_question_id_is_a_key_error(self) -> None:
        """question() raises KeyError so forged callback data cannot pass unnoticed."""
        survey = SurveyDefinition.model_validate(MINIMAL)
        with pytest.raises(KeyError, match="forged"):
            survey.question("forged")

    def test_models_are_frozen(self) -> None:
        """A loaded definition is shared between updates and must not be changed by one of them."""
        survey = SurveyDefinition.model_validate(MINIMAL)
        with pytest.raises(ValidationError, match="frozen"):
            survey.first_question().id = "other"  # type: ignore[misc]

    def test_localized_text_strips_surrounding_whitespace(self) -> None:
        """YAML block scalars leave trailing newlines that must not reach Telegram."""
        text = LocalizedText.model_validate({"de": "  Hallo\n", "en": "Hello\n\n"})
        assert (text.get("de"), text.get("en")) == ("Hallo", "Hello")

    def test_show_if_accepts_a_single_category_without_a_list(self) -> None:
        """``category: critic`` reads naturally and means the same as ``[critic]``."""
        condition = ShowIf.model_validate({"question": "nps", "category": "critic"})
        assert condition.category == (NpsCategory.CRITIC,)

    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ({"category": ["critic", "passive"]}, 7, True),
            ({"category": ["critic"]}, 9, False),
            ({"any_of": [9, 10]}, 10, True),
            ({"any_of": [9, 10]}, "10", False),
            ({"any_of": ["price"]}, "price", True),
            ({"min": 1, "max": 2}, 2, True),
            ({"min": 4}, 3, False),
            ({"max": 2}, 1, True),
            ({"category": ["critic"]}, None, False),
            ({"any_of": [1]}, True, False),
        ],
    )
    def test_show_if_matches(self, condition: dict[str, Any], value: Any, expected: bool) -> None:
        """Conditions compare values exactly; skipped answers and bools never match."""
        assert ShowIf.model_validate({"question": "q", **condition}).matches(value) is expected

    def test_question_can_be_built_in_python(self) -> None:
        """Handlers' tests can construct questions directly, with the same defaults as YAML."""
        question = Question(id="note", type=QuestionType.TEXT, text=LocalizedText(de="Notiz", en="Note"))
        assert question.skippable is True
        assert question.max_length == 1000


class TestLoaderErrors:
    """Every error names the file, the question (by id) and the field, one line per problem."""

    def test_missing_english_text(self, tmp_path: Path) -> None:
        """A missing translation is reported with its language and the line of the text."""
        path = tmp_path / "mini.yaml"
        path.write_text(
            "id: mini\n"
            "version: 1\n"
            "intro: {de: Hallo, en: Hello}\n"
            "thanks: {de: Danke, en: Thanks}\n"
            "questions:\n"
            "  - id: nps\n"
            "    type: nps\n"
            "    text:\n"
            "      de: Wie wahrscheinlich …?\n",
            encoding="utf-8",
        )
        assert _error_lines(path) == [
            "mini.yaml: question 'nps': text.en: required field is missing (line 9)"
        ]

    def test_empty_option_label(self, tmp_path: Path) -> None:
        """Errors inside an option name the option by id."""
        data = _survey()
        data["questions"][1]["options"][1]["label"]["de"] = "   "
        (line,) = _error_lines(_write(tmp_path, data))
        assert line.startswith("mini.yaml: question 'reason': option 'service': label.de: must not be empty")

    def test_duplicate_question_ids(self, tmp_path: Path) -> None:
        """The second use of an id is reported, pointing to the first."""
        data = _survey()
        data["questions"][3]["id"] = "reason"
        (line,) = _error_lines(_write(tmp_path, data))
        assert line.startswith("mini.yaml: question 'reason': id: duplicate question id 'reason'")
        assert "already used by question #2" in line

    def test_show_if_on_a_later_question(self, tmp_path: Path) -> None:
        """show_if may only look back, which also rules out cycles."""
        data = _survey()
        data["questions"][1]["show_if"] = {"question": "stars", "max": 2}
        (line,) = _error_lines(_write(tmp_path, data))
        assert line.startswith(
            "mini.yaml: question 'reason': show_if.question: refers to 'stars', which comes later"
        )

    def test_show_if_on_itself(self, tmp_path: Path) -> None:
        """A question cannot be its own condition."""
        data = _survey()
        data["questions"][2]["show_if"] = {"question": "stars", "min": 3}
        assert (
            "question 'stars': show_if.question: a question cannot depend on itself"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_show_if_on_an_unknown_question(self, tmp_path: Path) -> None:
        """A typo in the referenced id is caught."""
        data = _survey()
        data["questions"][3]["show_if"] = {"question": "starz", "max": 2}
        assert "show_if.question: there is no question 'starz'" in _error_lines(_write(tmp_path, data))[0]

    def test_unknown_option_in_any_of(self, tmp_path: Path) -> None:
        """any_of on a choice question must use existing option ids, and the error lists them."""
        data = _survey()
        data["questions"][3]["show_if"] = {"question": "reason", "any_of": ["price", "cheap"]}
        (line,) = _error_lines(_write(tmp_path, data))
        assert line.startswith(
            "mini.yaml: question 'comment': show_if.any_of #2: 'reason' has no option 'cheap'"
        )
        assert "(options: price, service)" in line

    def test_any_of_number_off_the_scale(self, tmp_path: Path) -> None:
        """Numbers in any_of must be possible answers of the referenced question."""
        data = _survey()
        data["questions"][3]["show_if"] = {"question": "stars", "any_of": [1, 6]}
        assert (
            "show_if.any_of #2: 6 is not on the scale of 'stars' (1-5)"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_category_on_a_question_that_is_not_nps(self, tmp_path: Path) -> None:
        """NPS categories only exist for the nps question."""
        data = _survey()
        data["questions"][3]["show_if"] = {"question": "stars", "category": ["critic"]}
        assert (
            "question 'comment': show_if.category: only works with an nps question"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_range_outside_the_nps_scale(self, tmp_path: Path) -> None:
        """min/max must lie on the referenced scale."""
        data = _survey()
        data["questions"][3]["show_if"] = {"question": "nps", "min": 0, "max": 11}
        assert (
            "show_if.max: 11 is outside the scale of 'nps' (0-10)" in _error_lines(_write(tmp_path, data))[0]
        )

    def test_show_if_on_a_text_question(self, tmp_path: Path) -> None:
        """Free text cannot be a condition."""
        data = _survey()
        data["questions"].append(
            {
                "id": "more",
                "type": "text",
                "text": _text("more"),
                "show_if": {"question": "comment", "any_of": "x"},
            }
        )
        assert (
            "question 'more': show_if.question: 'comment' is a text question"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_show_if_needs_exactly_one_condition(self, tmp_path: Path) -> None:
        """category, any_of and min/max exclude each other."""
        data = _survey()
        data["questions"][1]["show_if"] = {"question": "nps", "category": ["critic"], "max": 6}
        assert (
            "question 'reason': show_if: use only one condition, not category and min/max"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_yaml_booleans_are_not_option_ids(self, tmp_path: Path) -> None:
        """An unquoted ``no`` is a YAML boolean; the error says how to fix it."""
        data = _survey()
        data["questions"][1]["show_if"] = {"question": "nps", "any_of": "NO_PLACEHOLDER"}
        path = _write(tmp_path, data)
        path.write_text(path.read_text(encoding="utf-8").replace("NO_PLACEHOLDER", "no"), encoding="utf-8")
        assert (
            "show_if.any_of #1: YAML read this as true/false; put option ids in quotes"
            in _error_lines(path)[0]
        )

    def test_survey_needs_a_question(self, tmp_path: Path) -> None:
        """An empty question list is reported once, on the questions field."""
        (line,) = _error_lines(_write(tmp_path, _survey(questions=[])))
        assert line.startswith("mini.yaml: questions: at least one question is required (line ")

    def test_first_question_must_be_nps(self, tmp_path: Path) -> None:
        """The product is built around the NPS question, so it has to come first."""
        data = _survey()
        data["questions"] = data["questions"][2:]
        lines = _error_lines(_write(tmp_path, data))
        assert lines[0].startswith(
            "mini.yaml: question 'stars': type: the first question must be of type nps"
        )

    def test_too_few_options(self, tmp_path: Path) -> None:
        """A choice question needs at least two options."""
        data = _survey()
        del data["questions"][1]["options"][1]
        assert _error_lines(_write(tmp_path, data))[0].startswith(
            "mini.yaml: question 'reason': options: at least 2 options are required"
        )

    def test_too_many_options(self, tmp_path: Path) -> None:
        """More than eight buttons do not fit a phone screen."""
        data = _survey()
        data["questions"][1]["options"] = [{"id": f"o{n}", "label": _text(f"o{n}")} for n in range(9)]
        assert (
            "question 'reason': options: at most 8 options fit, got 9"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_duplicate_option_ids(self, tmp_path: Path) -> None:
        """Option ids are the stored answers and must be unique within a question."""
        data = _survey()
        data["questions"][1]["options"][1]["id"] = "price"
        assert (
            "question 'reason': options: duplicate option ids: price"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_options_on_a_question_that_is_not_choice(self, tmp_path: Path) -> None:
        """Options on an nps question are a mistake, not something to ignore."""
        data = _survey()
        data["questions"][0]["options"] = data["questions"][1]["options"]
        assert (
            "question 'nps': options: only choice questions have options"
            in _error_lines(_write(tmp_path, data))[0]
        )

    def test_max_length_and_skippable_only_on_text_questions(self, tmp_path: Path) -> None:
        """Text-only settings on other types are reported, both of them."""
        data = _survey()
        data["questions"][2].update(max_length=100, skippable=True)
        lines = _error_lines(_write(tmp_path, data))
        assert [line.split(" (line")[0] for line in lines] == [
            "mini.yaml: question 'stars': max_length: only text questions have a max_length, this is rating",
            "mini.yaml: question 'stars': skippable: only text questions can be skipped, this is rating",
        ]

    @pytest.mark.parametrize("max_length", [0, 4001])
    def test_max_length_bounds(self, tmp_path: Path, max_length: int) -> None:
        """max_length must allow at least one character and fit into a Telegram message."""
        data = _survey()
        data["questions"][3]["max_length"] = max_length
        assert "question 'comment': max_length:" in _error_lines(_write(tmp_path, data))[0]

    @pytest.mark.parametrize("question_id", ["Reason", "with space", "a" * 17, ""])
    def test_question_ids_must_fit_into_callback_data(self, tmp_path: Path, question_id: str) -> None:
        """Ids are limited to 16 lowercase characters; the error names the question by position."""
        data = _survey()
        data["questions"][2]["id"] = question_id
        lines = _error_lines(_write(tmp_path, data))
        assert any(line.startswith(f"mini.yaml: question {question_id!r}: id: ") for line in lines) or any(
            line.startswith("mini.yaml: question #3: id: ") for line in lines
        )
        assert "is not a valid id" in "\n".join(lines)

    def test_question_without_id_is_named_by_position(self, tmp_path: Path) -> None:
        """Without an id the question is called #n (1-based)."""
        data = _survey()
        del data["questions"][2]["id"]
        assert _error_lines(_write(tmp_path, data))[0].startswith(
            "mini.yaml: question #3: id: required field is missing"
        )

    def test_misspelled_field(self, tmp_path: Path) -> None:
        """extra="forbid" turns a typo into an error instead of a silently ignored key."""
        data = _survey()
        data["questions"][1]["show_iff"] = data["questions"][1].pop("show_if")
        assert (
            "mini.yaml: question 'reason': show_iff: unknown field" in _error_lines(_write(tmp_path, data))[0]
        )

    def test_text_must_be_per_language(self, tmp_path: Path) -> None:
        """A plain string instead of {de, en} explains the expected shape."""
        data = _survey(intro="Hallo")
        assert _error_lines(_write(tmp_path, data))[0].startswith(
            "mini.yaml: intro: needs one text per language"
        )

    def test_several_errors_give_one_line_each(self, tmp_path: Path) -> None:
        """All problems are reported at once so authors do not fix them one run at a time."""
        data = _survey(version=0)
        del data["thanks"]
        data["questions"][3]["show_if"] = {"question": "nope", "max": 2}
        lines = _error_lines(_write(tmp_path, data))
        assert len(lines) == 3
        assert all(line.startswith("mini.yaml: ") for line in lines)
        assert any(line.startswith("mini.yaml: version: ") for line in lines)
        assert any(line.startswith("mini.yaml: thanks: required field is missing") for line in lines)

    def test_bad_yaml_names_file_and_line(self, tmp_path: Path) -> None:
        """Syntax errors point to the line and column PyYAML reports."""
        path = tmp_path / "broken.yaml"
        path.write_text("id: broken\n  version: 1\n", encoding="utf-8")
        assert _error_lines(path) == [
            "broken.yaml: invalid YAML: mapping values are not allowed here (line 2, column 10)"
        ]

    def test_duplicate_yaml_keys_are_errors(self, tmp_path: Path) -> None:
        """PyYAML would silently keep the last of two equal keys."""
        path = tmp_path / "dup.yaml"
        path.write_text(
            yaml.safe_dump(_survey()).replace("  type: choice\n", "  type: choice\n  type: text\n"),
            encoding="utf-8",
        )
        (line,) = _error_lines(path)
        assert line.startswith("dup.yaml: question 'reason': key 'type' appears more than once (line ")

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            ("", "the file is empty"),
            ("# only a comment\n", "the file is empty"),
            ("- id: nps\n", "found list"),
            ("just text\n", "found str"),
        ],
    )
    def test_document_must_be_a_mapping(self, tmp_path: Path, content: str, expected: str) -> None:
        """Anything but a mapping at the top level is rejected with what was found."""
        path = tmp_path / "odd.yaml"
        path.write_text(content, encoding="utf-8")
        (line,) = _error_lines(path)
        assert line.startswith("odd.yaml: expected a mapping")
        assert expected in line

    def test_non_utf8_file(self, tmp_path: Path) -> None:
        """A Latin-1 file from an old editor is reported with its line."""
        path = tmp_path / "latin1.yaml"
        path.write_bytes("id: x\nintro: {de: Grüße}\n".encode("latin-1"))
        assert _error_lines(path) == ["latin1.yaml: is not valid UTF-8 (byte 0xfc) (line 2)"]

    def test_missing_file(self, tmp_path: Path) -> None:
        """An unreadable path is a SurveyFileError, not an OSError."""
        assert _error_lines(tmp_path / "gone.yaml")[0].startswith("gone.yaml: cannot read the file")

    def test_python_objects_in_yaml_are_refused(self, tmp_path: Path) -> None:
        """Only safe YAML is read: tags that would construct Python objects are errors."""
        path = tmp_path / "evil.yaml"
        path.write_text("id: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
        assert _error_lines(path)[0].startswith("evil.yaml: invalid YAML: ")
