"""Tests for surveys.flow: the paths through the shipped survey and the checking of answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from surveys.definition import AnswerValue, Question, QuestionType, SurveyDefinition
from surveys.flow import (
    SKIP_VALUE,
    InvalidAnswer,
    answer_label,
    button_values,
    next_question,
    parse_button_value,
    parse_text_answer,
)
from surveys.loader import load_builtin_survey


@pytest.fixture
def survey() -> SurveyDefinition:
    """The survey customers actually get."""
    return load_builtin_survey()


def _walk(survey: SurveyDefinition, replies: dict[str, AnswerValue]) -> list[str]:
    """Answer every question the flow asks with ``replies`` and return the asked ids in order."""
    answers: dict[str, AnswerValue] = {}
    asked: list[str] = []
    while (question := next_question(survey, answers)) is not None:
        asked.append(question.id)
        answers[question.id] = replies[question.id]
    return asked


def _all_paths(survey: SurveyDefinition) -> Iterator[list[str]]:
    """Every combination of nps score and first option of each choice, skipping every text."""
    for score in range(11):
        for pick in range(2):
            replies: dict[str, AnswerValue] = {"nps": score}
            for question in survey.questions[1:]:
                if question.type is QuestionType.CHOICE:
                    replies[question.id] = question.options[pick].id
                else:
                    replies[question.id] = None
            yield _walk(survey, replies)


class TestPathsThroughTheShippedSurvey:
    """Who gets which follow-up questions."""

    def test_everyone_starts_with_nps(self, survey: SurveyDefinition) -> None:
        """With no answers the first question is the NPS question."""
        question = next_question(survey, {})
        assert question is not None
        assert question.id == "nps"
        assert question is survey.first_question()

    def test_critic_is_asked_for_reason_and_comment(self, survey: SurveyDefinition) -> None:
        """Scores 0-6 lead to the reason and the comment for the team."""
        assert _walk(survey, {"nps": 3, "reason": "price", "comment": "Zu teuer."}) == [
            "nps",
            "reason",
            "comment",
        ]

    def test_passive_is_asked_what_would_make_it_a_ten(self, survey: SurveyDefinition) -> None:
        """Scores 7-8 lead to the single improvement question."""
        assert _walk(survey, {"nps": 8, "improve": "Schnellere Lieferung"}) == ["nps", "improve"]

    def test_promoter_is_asked_what_they_liked(self, survey: SurveyDefinition) -> None:
        """Scores 9-10 lead to the single 'liked most' question."""
        assert _walk(survey, {"nps": 10, "liked": "service"}) == ["nps", "liked"]

    def test_nobody_gets_more_than_two_follow_ups(self, survey: SurveyDefinition) -> None:
        """The survey stays short for every score and every choice."""
        for path in _all_paths(survey):
            assert path[0] == "nps"
            assert 2 <= len(path) <= 3

    def test_skipped_text_question_completes_the_survey(self, survey: SurveyDefinition) -> None:
        """A skipped comment (None) counts as answered."""
        answers: dict[str, AnswerValue] = {"nps": 0, "reason": "other", "comment": None}
        assert next_question(survey, answers) is None

    def test_survey_is_complete_after_the_last_follow_up(self, survey: SurveyDefinition) -> None:
        """Once the group's questions are answered, there is nothing more to ask."""
        assert next_question(survey, {"nps": 9, "liked": "product"}) is None

    def test_answers_to_questions_of_other_groups_do_not_matter(self, survey: SurveyDefinition) -> None:
        """Only the NPS group decides the path, not stray answers."""
        question = next_question(survey, {"nps": 7, "liked": "price"})
        assert question is not None
        assert question.id == "improve"


class TestShowIfSemantics:
    """How conditions treat missing and skipped answers."""

    @pytest.fixture
    def chained(self) -> SurveyDefinition:
        """NPS, an optional note, and a question that depends on the note."""
        text = {"de": "x", "en": "x"}
        return SurveyDefinition.model_validate(
            {
                "id": "chained",
                "version": 1,
                "intro": text,
                "thanks": text,
                "questions": [
                    {"id": "nps", "type": "nps", "text": text},
                    {"id": "stars", "type": "rating", "text": text, "show_if": {"question": "nps", "min": 9}},
                    {
                        "id": "why",
                        "type": "text",
                        "text": text,
                        "show_if": {"question": "stars", "any_of": [5]},
                    },
                    {"id": "last", "type": "text", "text": text},
                ],
            }
        )

    def test_question_depending_on_a_hidden_question_is_not_shown(self, chained: SurveyDefinition) -> None:
        """'stars' is hidden for a 3, so 'why' (which depends on it) is hidden too."""
        question = next_question(chained, {"nps": 3})
        assert question is not None
        assert question.id == "last"

    def test_chained_conditions_apply_in_order(self, chained: SurveyDefinition) -> None:
        """A 10 shows 'stars'; five stars then show 'why'."""
        first = next_question(chained, {"nps": 10})
        second = next_question(chained, {"nps": 10, "stars": 5})
        assert (first and first.id, second and second.id) == ("stars", "why")

    def test_recorded_none_never_matches(self, chained: SurveyDefinition) -> None:
        """A None answer counts as answered but satisfies no condition, so 'why' is left out."""
        question = next_question(chained, {"nps": 10, "stars": None})
        assert question is not None
        assert question.id == "last"


class TestButtonValues:
    """Values from callback data are validated strictly."""

    def test_every_button_value_parses(self, survey: SurveyDefinition) -> None:
        """button_values and parse_button_value agree for every question."""
        for question in survey.questions:
            for raw in button_values(question):
                parse_button_value(question, raw)

    def test_nps_buttons_are_zero_to_ten(self, survey: SurveyDefinition) -> None:
        """Eleven buttons with the plain numbers, parsed to ints."""
        nps = survey.question("nps")
        assert button_values(nps) == tuple(str(n) for n in range(11))
        assert parse_button_value(nps, "0") == 0
        assert parse_button_value(nps, "10") == 10

    @pytest.mark.parametrize("raw", ["11", "-1", "+5", "05", " 5", "5 ", "", "five", "٥", "5.0", "1_0"])
    def test_forged_nps_values_are_out_of_range(self, survey: SurveyDefinition, raw: str) -> None:
        """Anything int() would accept but a button never sends is refused."""
        with pytest.raises(InvalidAnswer) as caught:
            parse_button_value(survey.question("nps"), raw)
        assert caught.value.reason == "out_of_range"

    def test_rating_accepts_one_to_five_only(self) -> None:
        """Rating buttons are 1..5; 0 and 6 are forged."""
        rating = Question.model_validate({"id": "stars", "type": "rating", "text": {"de": "x", "en": "x"}})
        assert button_values(rating) == ("1", "2", "3", "4", "5")
        assert parse_button_value(rating, "5") == 5
        for raw in ("0", "6"):
            with pytest.raises(InvalidAnswer, match="out_of_range"):
                parse_button_value(rating, raw)

    def test_choice_accepts_existing_option_ids(self, survey: SurveyDefinition) -> None:
        """An option id comes back as the same string."""
        assert parse_button_value(survey.question("reason"), "competitor") == "competitor"

    @pytest.mark.parametrize("raw", ["cheap", "PRICE", "price ", "", "product"])
    def test_forged_option_ids_are_unknown(self, survey: SurveyDefinition, raw: str) -> None:
        """Ids of other questions, other spellings and inventions are refused."""
        with pytest.raises(InvalidAnswer) as caught:
            parse_button_value(survey.question("reason"), raw)
        assert caught.value.reason == "unknown_option"

    def test_skip_button_gives_none(self, survey: SurveyDefinition) -> None:
        """The Skip button of a skippable text question records None."""
        comment = survey.question("comment")
        assert button_values(comment) == (SKIP_VALUE,)
        assert parse_button_value(comment, SKIP_VALUE) is None

    def test_skip_on_a_mandatory_text_question_is_refused(self) -> None:
        """A forged Skip for a question without Skip button is not_skippable."""
        question = Question.model_validate(
            {"id": "must", "type": "text", "text": {"de": "x", "en": "x"}, "skippable": False}
        )
        assert button_values(question) == ()
        with pytest.raises(InvalidAnswer) as caught:
            parse_button_value(question, SKIP_VALUE)
        assert caught.value.reason == "not_skippable"

    def test_other_button_values_on_a_text_question_are_wrong_type(self, survey: SurveyDefinition) -> None:
        """Text questions are answered by message; any other button value is forged."""
        with pytest.raises(InvalidAnswer) as caught:
            parse_button_value(survey.question("comment"), "price")
        assert caught.value.reason == "wrong_type"

    def test_invalid_answer_is_a_value_error_with_a_readable_message(self, survey: SurveyDefinition) -> None:
        """Callers that only catch ValueError still work, and logs say what was wrong."""
        with pytest.raises(ValueError, match=r"out_of_range: '42' is not a number from 0 to 10"):
            parse_button_value(survey.question("nps"), "42")


class TestTextAnswers:
    """Typed answers to text questions."""

    def test_text_is_stripped(self, survey: SurveyDefinition) -> None:
        """Surrounding whitespace and newlines are dropped, inner ones kept."""
        assert (
            parse_text_answer(survey.question("comment"), "  Zu teuer.\nLeider.\n ") == "Zu teuer.\nLeider."
        )

    @pytest.mark.parametrize("text", ["", "   ", "\n\t"])
    def test_empty_text_is_refused(self, survey: SurveyDefinition, text: str) -> None:
        """Whitespace only is not an answer."""
        with pytest.raises(InvalidAnswer) as caught:
            parse_text_answer(survey.question("comment"), text)
        assert caught.value.reason == "empty"

    def test_text_longer_than_max_length_is_refused(self, survey: SurveyDefinition) -> None:
        """max_length counts characters after stripping."""
        comment = survey.question("comment")
        assert parse_text_answer(comment, " " + "x" * comment.max_length + " ") == "x" * comment.max_length
        with pytest.raises(InvalidAnswer) as caught:
            parse_text_answer(comment, "x" * (comment.max_length + 1))
        assert caught.value.reason == "too_long"

    def test_text_for_a_button_question_is_wrong_type(self, survey: SurveyDefinition) -> None:
        """Typing "9" does not answer the NPS question; the buttons do."""
        with pytest.raises(InvalidAnswer) as caught:
            parse_text_answer(survey.question("nps"), "9")
        assert caught.value.reason == "wrong_type"


class TestAnswerLabel:
    """How recorded answers are shown back."""

    def test_choice_shows_the_label_in_the_language(self, survey: SurveyDefinition) -> None:
        """Option ids become their localized label."""
        reason = survey.question("reason")
        assert answer_label(reason, "delivery", "de") == "Lieferung"
        assert answer_label(reason, "delivery", "en") == "Delivery"

    def test_other_answers_are_shown_as_they_are(self, survey: SurveyDefinition) -> None:
        """Numbers become text, text stays text, a skipped answer has no label."""
        assert answer_label(survey.question("nps"), 7, "en") == "7"
        assert answer_label(survey.question("comment"), "Gut", "de") == "Gut"
        assert answer_label(survey.question("comment"), None, "de") is None

    def test_removed_option_falls_back_to_its_id(self, survey: SurveyDefinition) -> None:
        """Old answers whose option no longer exists still display."""
        assert answer_label(survey.question("reason"), "gone", "en") == "gone"
