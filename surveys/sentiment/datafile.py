"""Reading the sentiment data files strictly, so a slip in a lexicon stops the bot at startup.

YAML forgives too much for a word list: a repeated key silently replaces the first one, and an
unquoted ``no`` or ``on`` turns into a boolean. Both would quietly change scores, so both are
errors here, and every message names the file, the section and, where YAML knows it, the line.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).parent


class LexiconError(Exception):
    """A sentiment data file that is missing, malformed or inconsistent; str() names the file."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{path.name}: {problem}" for problem in problems))


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    first_line: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {first_line[key]})", key_node.start_mark
            )
        first_line[key] = line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_data_file(path: Path, sections: Mapping[str, bool]) -> dict[str, Any]:
    """The top-level mapping of ``path``; ``sections`` says which keys exist and which are required."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except OSError as error:
        raise LexiconError(path, [f"cannot be read: {error.strerror or error}"]) from None
    except yaml.YAMLError as error:
        raise LexiconError(path, [str(error).replace("\n", " ")]) from None
    if not isinstance(data, dict):
        raise LexiconError(path, ["expected a mapping of sections at the top level"])
    problems = [f"unknown section {key!r}" for key in data if key not in sections]
    problems += [
        f"missing section {key!r}" for key, required in sections.items() if required and key not in data
    ]
    if problems:
        raise LexiconError(path, problems)
    return data


def weight_map(
    value: object, section: str, problems: list[str], *, low: float, high: float
) -> dict[str, float]:
    """A ``text: number`` section, each number in [low, high]; problems are appended, not raised."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{section}: expected a mapping of text to number")
        return {}
    result: dict[str, float] = {}
    for key, weight in value.items():
        if not isinstance(key, str) or not key.strip():
            problems.append(f"{section}: key {key!r} is not text (quote words such as no, on, yes)")
        elif isinstance(weight, bool) or not isinstance(weight, int | float):
            problems.append(f"{section}: {key!r}: weight {weight!r} is not a number")
        elif not low <= weight <= high:
            problems.append(f"{section}: {key!r}: weight {weight} is outside [{low}, {high}]")
        else:
            result[key.strip()] = float(weight)
    return result


def text_list(value: object, section: str, problems: list[str]) -> list[str]:
    """A list-of-text section; non-text items (an unquoted ``no``) are problems."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{section}: expected a list of text")
        return []
    result: list[str] = []
    for item in value:
        if isinstance(item, str) and item.strip():
            result.append(item.strip())
        else:
            problems.append(f"{section}: item {item!r} is not text (quote words such as no, on, yes)")
    return result
