"""Durations as people write them in settings: ``0s``, ``90m``, ``36h``, ``2d`` (or combined, ``1d12h``)."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+[smhdw])+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``90m`` or ``1d12h``; raise ValueError with the allowed form otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError("use a number with a unit s, m, h, d or w, for example 0s, 90m, 36h or 2d")
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(compact))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a duration back in the same notation (for logs and messages)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)
