"""Which question comes next, and which answers are acceptable.

Pure functions over a definition and the answers recorded so far, so the handlers can keep
the conversation state in the database and recompute the flow after every update (and
after a restart) instead of holding it in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from surveys.definition import AnswerValue, Question, QuestionType, SurveyDefinition, answer_scale
from surveys.languages import Language

SKIP_VALUE = "skip"
"""Button value of the Skip button of skippable text questions."""

InvalidAnswerReason = Literal[
    "out_of_range", "unknown_option", "empty", "too_long", "not_skippable", "wrong_type"
]


class InvalidAnswer(ValueError):
    """An answer the question does not accept; ``reason`` is a stable key for choosing the reply text."""

    def __init__(self, reason: InvalidAnswerReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: InvalidAnswerReason = reason
        self.detail = detail


def next_question(survey: SurveyDefinition, answers: Mapping[str, AnswerValue]) -> Question | None:
    """The first unanswered question in file order whose show_if matches; None when the survey is done.

    A key in ``answers`` counts as answered even when its value is None (a skipped text
    question). A question that depends on an unanswered or skipped question is not shown.
    """
    for question in survey.questions:
        if question.id in answers:
            continue
        condition = question.show_if
        if condition is not None and not condition.matches(answers.get(condition.question)):
            continue
        return question
    return None


def button_values(question: Question) -> tuple[str, ...]:
    """The values the inline buttons of ``question`` carry, in display order.

    The counterpart of ``parse_button_value``: every value returned here parses, nothing
    else does. Text questions only have a Skip button, and only when skippable.
    """
    scale = answer_scale(question.type)
    if scale is not None:
        return tuple(str(number) for number in scale)
    if question.type is QuestionType.CHOICE:
        return tuple(option.id for option in question.options)
    return (SKIP_VALUE,) if question.skippable else ()


def parse_button_value(question: Question, raw: str) -> AnswerValue:
    """Validate a value from callback data (never trusted) and turn it into an answer.

    Numbers must be spelled exactly as ``button_values`` produces them (no signs, spaces,
    leading zeros or non-ASCII digits, all of which ``int()`` would accept).
    """
    scale = answer_scale(question.type)
    if scale is not None:
        if raw not in button_values(question):
            raise InvalidAnswer(
                "out_of_range", f"{raw!r} is not a number from {scale.start} to {scale.stop - 1}"
            )
        return int(raw)
    if question.type is QuestionType.CHOICE:
        if question.option(raw) is None:
            raise InvalidAnswer("unknown_option", f"question {question.id!r} has no option {raw!r}")
        return raw
    if raw != SKIP_VALUE:
        raise InvalidAnswer(
            "wrong_type", f"text question {question.id!r} is answered with a message, not a button"
        )
    if not question.skippable:
        raise InvalidAnswer("not_skippable", f"question {question.id!r} cannot be skipped")
    return None


def parse_text_answer(question: Question, text: str) -> str:
    """Validate a typed answer to a text question and return it without surrounding whitespace."""
    if question.type is not QuestionType.TEXT:
        raise InvalidAnswer("wrong_type", f"question {question.id!r} is answered with the buttons")
    answer = text.strip()
    if not answer:
        raise InvalidAnswer("empty", "the answer is empty")
    if len(answer) > question.max_length:
        raise InvalidAnswer("too_long", f"{len(answer)} characters, at most {question.max_length} allowed")
    return answer


def answer_label(question: Question, value: AnswerValue, lang: Language) -> str | None:
    """How to show a recorded answer to people ("Your answer: …", staff alerts); None if skipped.

    Choice answers show the option label in ``lang``; an option id that no longer exists
    (the definition changed since) is shown as the raw id rather than failing.
    """
    if value is None:
        return None
    if question.type is QuestionType.CHOICE and isinstance(value, str):
        option = question.option(value)
        return option.label.get(lang) if option is not None else value
    return str(value)
