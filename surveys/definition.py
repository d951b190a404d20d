"""The survey definition: what is asked, in which languages, and who sees which question.

Definitions come from YAML files written by people, so validation is strict and every
error says where it is; the handlers can then trust a loaded definition completely
(ids fit into Telegram callback data, every text exists in every language, every
``show_if`` refers to an earlier question with values that can actually occur).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from surveys.languages import Language
from surveys.nps import NPS_MAX, NPS_MIN, NpsCategory, classify

AnswerValue = int | str | None
"""int for nps/rating, option id for choice, the text for text, None for a skipped text question."""

RATING_MIN = 1
RATING_MAX = 5
MIN_OPTIONS = 2
MAX_OPTIONS = 8
DEFAULT_MAX_LENGTH = 1000
MAX_ANSWER_LENGTH = 4000
"""Upper bound for ``max_length``: a Telegram message holds at most 4096 characters."""
MAX_TEXT_LENGTH = 4096
"""A text we send must fit into one Telegram message."""

SURVEY_PROBLEMS_ERROR = "survey_problems"
"""Pydantic error type carrying problems that span several questions (see the loader)."""

Location = tuple[str | int, ...]

_T = TypeVar("_T")


def _identifier(max_length: int) -> Callable[[object], str]:
    """A validator for ids that end up in callback data, with messages a YAML author understands."""
    pattern = re.compile(rf"[a-z0-9_]{{1,{max_length}}}")

    def check(value: object) -> str:
        if isinstance(value, bool):
            raise ValueError("YAML read this as true/false; put the id in quotes")
        if not isinstance(value, str):
            raise ValueError(f"must be a text, got {value!r}; put the id in quotes")
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid id: use 1-{max_length} characters of a-z, 0-9 and _")
        return value

    return check


def _text(value: object) -> str:
    """Texts must be real strings with content; surrounding whitespace from YAML blocks is dropped."""
    if not isinstance(value, str):
        raise ValueError(f"must be a text, got {value!r}")
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"is {len(value)} characters long; Telegram allows at most {MAX_TEXT_LENGTH}")
    return value


def _option_or_number(value: object) -> str | int:
    """An ``any_of`` entry: an option id or a whole number, never a YAML boolean."""
    if isinstance(value, bool):
        raise ValueError("YAML read this as true/false; put option ids in quotes")
    if isinstance(value, int | str):
        return value
    raise ValueError(f"must be an option id or a whole number, got {value!r}")


def _as_list(value: object) -> object:
    """Let authors write ``category: critic`` instead of ``category: [critic]``."""
    if isinstance(value, str | int):  # bool included, so the item check can explain it
        return [value]
    return value


QuestionId = Annotated[str, BeforeValidator(_identifier(16))]
OptionId = Annotated[str, BeforeValidator(_identifier(16))]
SurveyId = Annotated[str, BeforeValidator(_identifier(32))]
Text = Annotated[str, BeforeValidator(_text)]
OptionOrNumber = Annotated[str | int, PlainValidator(_option_or_number)]
_NonEmptyList = Annotated[tuple[_T, ...], BeforeValidator(_as_list), Field(min_length=1)]


class QuestionType(StrEnum):
    """How a question is answered: NPS 0-10 buttons, rating 1-5 buttons, option buttons, free text."""

    NPS = "nps"
    RATING = "rating"
    CHOICE = "choice"
    TEXT = "text"


def answer_scale(question_type: QuestionType) -> range | None:
    """The allowed numbers for nps and rating questions, None for the others."""
    if question_type is QuestionType.NPS:
        return range(NPS_MIN, NPS_MAX + 1)
    if question_type is QuestionType.RATING:
        return range(RATING_MIN, RATING_MAX + 1)
    return None


class LocalizedText(BaseModel):
    """One text per supported language; a missing translation is a definition error, not a fallback.

    One field per language (rather than a dict) so that YAML like ``text: {de: ..., en: ...}``
    validates directly and a missing or misspelled language is reported by name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    de: Text
    en: Text

    @model_validator(mode="before")
    @classmethod
    def _reject_plain_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError("needs one text per language, e.g. {de: '...', en: '...'}")
        return data

    def get(self, lang: Language) -> str:
        """The text in ``lang``; KeyError for a language the bot does not support."""
        texts: dict[str, str] = {"de": self.de, "en": self.en}
        return texts[lang]


class ChoiceOption(BaseModel):
    """One button of a choice question; the id is what gets stored and sent as callback data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: OptionId
    label: LocalizedText


class ShowIf(BaseModel):
    """Condition under which a question is asked, based on the answer to an earlier question.

    Exactly one of ``category`` (NPS groups), ``any_of`` (option ids or numbers) or a
    ``min``/``max`` range. Whether the condition fits the referenced question can only be
    checked by the survey, which knows all questions (see ``problems_with``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: QuestionId
    category: _NonEmptyList[NpsCategory] | None = None
    any_of: _NonEmptyList[OptionOrNumber] | None = None
    min: StrictInt | None = None
    max: StrictInt | None = None

    @model_validator(mode="after")
    def _exactly_one_condition(self) -> Self:
        given = [
            name
            for name, present in (
                ("category", self.category is not None),
                ("any_of", self.any_of is not None),
                ("min/max", self.min is not None or self.max is not None),
            )
            if present
        ]
        if not given:
            raise ValueError("needs a condition: category, any_of, or min/max")
        if len(given) > 1:
            raise ValueError(f"use only one condition, not {' and '.join(given)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def matches(self, value: AnswerValue) -> bool:
        """Whether an answer satisfies the condition; a skipped (None) answer never does."""
        if value is None or isinstance(value, bool):
            return False
        if self.category is not None:
            if not isinstance(value, int) or not NPS_MIN <= value <= NPS_MAX:
                return False
            return classify(value) in self.category
        if self.any_of is not None:
            return value in self.any_of
        if not isinstance(value, int):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def problems_with(self, target: Question) -> list[tuple[Location, str]]:
        """Why this condition cannot work on ``target`` (the referenced question), if at all.

        Locations are relative to this ShowIf so the caller can prefix them.
        """
        if target.type is QuestionType.TEXT:
            return [(("question",), f"{target.id!r} is a text question; show_if cannot depend on free text")]
        if self.category is not None:
            if target.type is not QuestionType.NPS:
                return [(("category",), f"only works with an nps question; {target.id!r} is {target.type}")]
            return []
        if self.any_of is not None:
            return self._any_of_problems(target)
        scale = answer_scale(target.type)
        if scale is None:
            return [
                (("question",), f"min/max need an nps or rating question; {target.id!r} is {target.type}")
            ]
        return [
            ((name,), f"{bound} is outside the scale of {target.id!r} ({_span(scale)})")
            for name, bound in (("min", self.min), ("max", self.max))
            if bound is not None and bound not in scale
        ]

    def _any_of_problems(self, target: Question) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        scale = answer_scale(target.type)
        for index, value in enumerate(self.any_of or ()):
            where: Location = ("any_of", index)
            if target.type is QuestionType.CHOICE:
                if not isinstance(value, str):
                    problems.append((where, f"{target.id!r} is a choice question; use an option id here"))
                elif target.option(value) is None:
                    known = ", ".join(option.id for option in target.options)
                    problems.append((where, f"{target.id!r} has no option {value!r} (options: {known})"))
            elif scale is not None and (not isinstance(value, int) or value not in scale):
                problems.append((where, f"{value!r} is not on the scale of {target.id!r} ({_span(scale)})"))
        return problems


class Question(BaseModel):
    """One question of a survey."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: QuestionId
    type: QuestionType
    text: LocalizedText
    options: tuple[ChoiceOption, ...] = Field(default=(), validate_default=True)
    show_if: ShowIf | None = None
    max_length: Annotated[int, Field(strict=True, ge=1, le=MAX_ANSWER_LENGTH)] = DEFAULT_MAX_LENGTH
    skippable: StrictBool = False
    """Text questions default to True (a Skip button); other types cannot be skipped."""

    @model_validator(mode="before")
    @classmethod
    def _default_skippable(cls, data: Any) -> Any:
        # The default depends on the type, which a plain field default cannot express.
        if isinstance(data, dict) and "skippable" not in data:
            return {**data, "skippable": data.get("type") == QuestionType.TEXT}
        return data

    @field_validator("options")
    @classmethod
    def _check_options(
        cls, options: tuple[ChoiceOption, ...], info: ValidationInfo
    ) -> tuple[ChoiceOption, ...]:
        question_type = info.data.get("type")
        if question_type is None:  # the type itself was invalid and is reported already
            return options
        if question_type is not QuestionType.CHOICE:
            if options:
                raise ValueError(f"only choice questions have options, this is {question_type}")
            return options
        if len(options) < MIN_OPTIONS:
            raise ValueError(f"at least {MIN_OPTIONS} options are required")
        if len(options) > MAX_OPTIONS:
            raise ValueError(f"at most {MAX_OPTIONS} options fit, got {len(options)}")
        ids = [option.id for option in options]
        duplicates = sorted({option_id for option_id in ids if ids.count(option_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate option ids: {', '.join(duplicates)}")
        return options

    @field_validator("max_length")
    @classmethod
    def _max_length_only_for_text(cls, max_length: int, info: ValidationInfo) -> int:
        question_type = info.data.get("type")
        if question_type is not None and question_type is not QuestionType.TEXT:
            raise ValueError(f"only text questions have a max_length, this is {question_type}")
        return max_length

    @field_validator("skippable")
    @classmethod
    def _skippable_only_for_text(cls, skippable: bool, info: ValidationInfo) -> bool:
        question_type = info.data.get("type")
        if skippable and question_type is not None and question_type is not QuestionType.TEXT:
            raise ValueError(f"only text questions can be skipped, this is {question_type}")
        return skippable

    def option(self, option_id: str) -> ChoiceOption | None:
        """The option with this id, or None (callback data is untrusted, so no KeyError)."""
        for option in self.options:
            if option.id == option_id:
                return option
        return None


class CheckinOption(BaseModel):
    """One quick answer of the check-in: its button and what the bot says when it is pressed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: LocalizedText
    reply: LocalizedText


class CheckinDefinition(BaseModel):
    """The message to a customer who went quiet, with its three quick answers.

    The answers are fixed by meaning, not free like a choice question's options: "question" opens a case
    for staff and "not_interested" stops further check-ins, so a file can word them but not add or drop
    one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: LocalizedText
    all_good: CheckinOption
    question: CheckinOption
    not_interested: CheckinOption

    def option(self, answer: str) -> CheckinOption:
        """The quick answer with this value (``CheckinAnswer``); KeyError for any other."""
        options = {
            "all_good": self.all_good,
            "question": self.question,
            "not_interested": self.not_interested,
        }
        return options[answer]


class SurveyDefinition(BaseModel):
    """A complete survey: intro, questions in asking order, closing thanks, and the check-in message
    for customers who went quiet (optional: without it, the shop checks in with nobody)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SurveyId
    version: Annotated[int, Field(strict=True, ge=1)]
    intro: LocalizedText
    thanks: LocalizedText
    questions: tuple[Question, ...]
    checkin: CheckinDefinition | None = None

    @field_validator("questions")
    @classmethod
    def _check_structure(cls, questions: tuple[Question, ...]) -> tuple[Question, ...]:
        problems = _structure_problems(questions)
        if problems:
            # One error can only carry one location, so the individual locations travel in
            # the context; the loader turns them into one line per problem.
            summary = "; ".join(": ".join([*map(str, where), message]) for where, message in problems)
            context = {"summary": summary, "problems": problems}
            raise PydanticCustomError(SURVEY_PROBLEMS_ERROR, "{summary}", context)
        return questions

    def question(self, question_id: str) -> Question:
        """The question with this id; KeyError if the survey has none (e.g. forged callback data)."""
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(f"survey {self.id!r} has no question {question_id!r}")

    def first_question(self) -> Question:
        """The opening NPS question, shown together with the intro."""
        return self.questions[0]


def _structure_problems(questions: tuple[Question, ...]) -> list[tuple[Location, str]]:
    """Problems that need more than one question to detect; locations are relative to ``questions``."""
    # Checked here rather than with Field(min_length=1): pydantic would also report that for a
    # list whose only question has an error of its own.
    if not questions:
        return [((), "at least one question is required")]
    problems: list[tuple[Location, str]] = []
    if questions[0].type is not QuestionType.NPS:
        problems.append(
            ((0, "type"), "the first question must be of type nps; the survey is built around it")
        )
    all_ids = {question.id for question in questions}
    earlier: dict[str, int] = {}
    for index, question in enumerate(questions):
        if question.id in earlier:
            first = earlier[question.id] + 1
            problems.append(
                ((index, "id"), f"duplicate question id {question.id!r}, already used by question #{first}")
            )
        if question.show_if is not None:
            referenced = _referenced_question(question.id, question.show_if, earlier, all_ids, questions)
            if isinstance(referenced, str):
                problems.append(((index, "show_if", "question"), referenced))
            else:
                problems.extend(
                    ((index, "show_if", *where), message)
                    for where, message in question.show_if.problems_with(referenced)
                )
        earlier.setdefault(question.id, index)
    return problems


def _referenced_question(
    question_id: str,
    show_if: ShowIf,
    earlier: dict[str, int],
    all_ids: set[str],
    questions: tuple[Question, ...],
) -> Question | str:
    """The earlier question ``show_if`` refers to, or why there is none.

    Only earlier questions may be referenced: that keeps the asking order obvious from the
    file and makes cycles impossible.
    """
    reference = show_if.question
    if reference == question_id:
        return "a question cannot depend on itself"
    if reference in earlier:
        return questions[earlier[reference]]
    if reference in all_ids:
        return f"refers to {reference!r}, which comes later; show_if can only refer to earlier questions"
    return f"there is no question {reference!r}"


def _span(scale: range) -> str:
    return f"{scale.start}-{scale.stop - 1}"
