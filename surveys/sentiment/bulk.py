"""Scoring comments in bulk: JSON lines in, JSON lines out, one for one and in order.

Each input line is ``{"text": ..., "lang": "de"|"en"}`` (``lang`` optional: without it the comment's own
language decides). Each output line is ``{"polarity": float, "label": ...}``, or ``{"error": ...}`` for a
line that is not such an object; one bad line never stops the rest. Blank lines are kept as errors too,
so output line N always answers input line N.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from surveys.sentiment import score


def score_line(line: str) -> dict[str, Any]:
    """The answer to one input line."""
    try:
        item = json.loads(line)
    except ValueError as error:
        return {"error": f"not valid JSON: {error}"}
    if not isinstance(item, dict):
        return {"error": "expected a JSON object with a 'text'"}
    text, lang = item.get("text"), item.get("lang")
    if not isinstance(text, str):
        return {"error": "'text' must be a string"}
    if lang is not None and lang not in ("de", "en"):
        return {"error": '\'lang\' must be "de" or "en" when given'}
    result = score(text, lang)
    return {"polarity": round(result.polarity, 4), "label": result.label.value}


def score_lines(lines: Iterable[str]) -> Iterator[str]:
    """Answer each input line with one JSON line (no trailing newline)."""
    for line in lines:
        yield json.dumps(score_line(line.rstrip("\r\n")), ensure_ascii=False)
