"""Read survey definitions from YAML and explain every problem in terms of the file.

Survey files are edited by people who never see a pydantic traceback, so each error line
names the file, the question (by id), the field and the line, e.g.
``post_purchase.yaml: question 'reason': options: at least 2 options are required (line 14)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from surveys.definition import SURVEY_PROBLEMS_ERROR, Location, SurveyDefinition

POST_PURCHASE_SURVEY_ID = "post_purchase"
"""The survey every purchase gets (the only one so far)."""
BUILTIN_SURVEYS_DIR = Path(__file__).parent / "definitions"

_SURVEY_ID = re.compile(r"[a-z0-9_]{1,32}")
# List fields whose items have an id; errors inside them name the item by id.
_ITEM_LABELS = {"questions": "question", "options": "option"}
_MESSAGES = {"missing": "required field is missing", "extra_forbidden": "unknown field"}


@dataclass(frozen=True, slots=True)
class SurveyProblem:
    """One problem in a survey file; ``where`` is e.g. ``question 'reason': options``."""

    where: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.line is not None:
            position = f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")
            text += f" ({position})"
        return text


class SurveyFileError(Exception):
    """A survey file that cannot be used; str() has one line per problem, each naming the file."""

    def __init__(self, path: Path, problems: Sequence[SurveyProblem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{self.path.name}: {problem}" for problem in self.problems)


def load_survey(path: Path) -> SurveyDefinition:
    """Load and validate one survey file; raises SurveyFileError for anything wrong with it."""
    text = _read_text(path)
    try:
        # compose only builds nodes (no Python objects); they carry the line numbers.
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SurveyFileError(path, [_yaml_problem(error)]) from None
    duplicates = list(_duplicate_keys(root, (), data))
    if duplicates:
        raise SurveyFileError(path, duplicates)
    if not isinstance(data, dict):
        found = "the file is empty" if data is None else f"found {type(data).__name__}"
        message = f"expected a mapping with id, version, intro, thanks and questions; {found}"
        raise SurveyFileError(path, [SurveyProblem("", message)])
    try:
        return SurveyDefinition.model_validate(data)
    except ValidationError as error:
        raise SurveyFileError(path, list(_validation_problems(error, data, root))) from None


@functools.cache
def load_builtin_survey(survey_id: str = POST_PURCHASE_SURVEY_ID) -> SurveyDefinition:
    """Load a survey shipped in ``surveys/definitions`` (cached: definitions are immutable).

    The id must match the file name, so the id stored with every answer always leads back
    to the file that produced it.
    """
    if not _SURVEY_ID.fullmatch(survey_id):
        raise ValueError(f"{survey_id!r} is not a valid survey id")
    path = BUILTIN_SURVEYS_DIR / f"{survey_id}.yaml"
    survey = load_survey(path)
    if survey.id != survey_id:
        problem = SurveyProblem("id", f"is {survey.id!r}, but must match the file name ({survey_id!r})")
        raise SurveyFileError(path, [problem])
    return survey


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SurveyFileError(
            path, [SurveyProblem("", f"cannot read the file: {error.strerror or error}")]
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        problem = SurveyProblem("", f"is not valid UTF-8 (byte 0x{raw[error.start]:02x})", line)
        raise SurveyFileError(path, [problem]) from None


def _yaml_problem(error: yaml.YAMLError) -> SurveyProblem:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    detail = " ".join(part for part in (context, problem) if part) or str(error)
    if mark is None:
        return SurveyProblem("", f"invalid YAML: {detail}")
    return SurveyProblem("", f"invalid YAML: {detail}", mark.line + 1, mark.column + 1)


def _duplicate_keys(node: yaml.Node | None, loc: Location, data: Any) -> Iterator[SurveyProblem]:
    """Keys that appear twice in one mapping; plain YAML silently keeps only the last one."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                message = f"key {key!r} appears more than once"
                yield SurveyProblem(_describe(loc, data), message, key_node.start_mark.line + 1)
            seen.add(key)
            yield from _duplicate_keys(value_node, (*loc, key), data)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index), data)


def _validation_problems(
    error: ValidationError, data: Any, root: yaml.Node | None
) -> Iterator[SurveyProblem]:
    for detail in error.errors(include_url=False):
        for loc, message in _expand(detail):
            yield SurveyProblem(_describe(loc, data), message, _line_of(root, loc))


def _expand(detail: ErrorDetails) -> list[tuple[Location, str]]:
    """One (location, message) per problem; cross-question errors carry several in their context."""
    loc: Location = tuple(detail["loc"])
    context = detail.get("ctx") or {}
    if detail["type"] == SURVEY_PROBLEMS_ERROR:
        return [((*loc, *where), message) for where, message in context["problems"]]
    message = _MESSAGES.get(detail["type"], detail["msg"]).removeprefix("Value error, ")
    return [(loc, message)]


def _describe(loc: Location, data: Any) -> str:
    """``question 'reason': option 'price': label.en`` for a pydantic/YAML location."""
    parts: list[str] = []
    field: list[str] = []
    node = data
    index = 0
    while index < len(loc):
        segment = loc[index]
        following = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(segment, str) and segment in _ITEM_LABELS and isinstance(following, int):
            if field:
                parts.append(".".join(field))
                field = []
            items = node.get(segment) if isinstance(node, dict) else None
            item = items[following] if isinstance(items, list) and following < len(items) else None
            parts.append(f"{_ITEM_LABELS[segment]} {_label(item, following)}")
            node = item
            index += 2
            continue
        if isinstance(segment, int) and field:
            field[-1] += f" #{segment + 1}"
        else:
            field.append(f"#{segment + 1}" if isinstance(segment, int) else segment)
        node = _child(node, segment)
        index += 1
    if field:
        parts.append(".".join(field))
    return ": ".join(parts)


def _label(item: Any, index: int) -> str:
    item_id = item.get("id") if isinstance(item, dict) else None
    return repr(item_id) if isinstance(item_id, str) and item_id else f"#{index + 1}"


def _child(node: Any, segment: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(segment)
    if isinstance(node, list) and isinstance(segment, int) and segment < len(node):
        return node[segment]
    return None


def _line_of(root: yaml.Node | None, loc: Location) -> int | None:
    """Line of the deepest YAML node on the path ``loc`` (the parent, for missing fields)."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for segment in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == str(segment)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(segment, int) and segment < len(node.value):
            child = node.value[segment]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
