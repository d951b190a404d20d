"""Check Bot API requests against the official method and type descriptions (``api.json``).

Why: the real Telegram server accepts a lot silently (unknown parameters are ignored) and rejects other
things only in production (a 65-byte ``callback_data``, a 4097-character text, an unescaped ``.`` in
MarkdownV2). Validating every request the bot makes in tests against the scraped official spec catches
both kinds of mistakes before a customer does.

The spec lives outside the repository, at ``../shared/telegram-bot-api/api.json`` relative to the repo
root; the environment variable ``TELEGRAM_API_SPEC`` overrides the location. When the file is missing,
``SPEC_AVAILABLE`` is ``False``, :func:`load_spec` returns ``None`` and :func:`validate_request` returns no
violations: validation is skipped, it does not fail. The fake server keeps working without it.

What is checked (all cheap, all from the spec text rather than hand-written tables where possible):

* the method exists (names are case-insensitive, like Telegram's);
* required parameters are present and no unknown parameters are sent (stricter than Telegram, which
  ignores them: an unknown parameter is almost always a typo that silently does nothing);
* value types, recursively into objects (``reply_markup``, ``scope``, ``commands`` ...): Integer, Float,
  Boolean, String, ``Array of X``, object types with their required fields, subtypes told apart by their
  ``type`` discriminator ("must be chat");
* length limits written in field descriptions ("1-4096 characters", "1-64 bytes"). Fields counted "after
  entities parsing" are parsed with their ``parse_mode`` first (HTML tags stripped and entities unescaped;
  MarkdownV2 markup removed), and markup Telegram would refuse to parse is reported with Telegram's wording.
  Characters are counted as Unicode code points, as the Bot API documentation states;
* ``BotCommand.command`` syntax and ``parse_mode`` values, which Telegram rejects but the spec only
  describes in prose.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

SPEC_ENV_VAR = "TELEGRAM_API_SPEC"
"""Environment variable that points at an ``api.json`` elsewhere (CI machines, other checkouts)."""

_DEFAULT_SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "telegram-bot-api" / "api.json"

_LIMIT_RE = re.compile(r"(\d+)-(\d+) (characters|bytes)")
_DISCRIMINATOR_RE = re.compile(r"must be (\w+)")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_INT_RE = re.compile(r"-?\d+")
_PARSE_MODES = frozenset({"html", "markdownv2", "markdown"})
_PRIMITIVES = frozenset({"Integer", "Float", "Boolean", "String", "InputFile"})


def find_spec_path() -> Path | None:
    """Return the location of ``api.json``, or ``None`` when it is not there.

    ``TELEGRAM_API_SPEC`` wins over the default so CI can point at its own copy; the default is resolved
    from this file, not the working directory, so pytest can be started from anywhere.
    """
    override = os.environ.get(SPEC_ENV_VAR)
    path = Path(override) if override else _DEFAULT_SPEC_PATH
    return path if path.is_file() else None


SPEC_PATH: Path | None = find_spec_path()
SPEC_AVAILABLE: bool = SPEC_PATH is not None
"""Whether the official spec was found at import time; when ``False`` validation is skipped."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request; stands in for the spec's ``InputFile`` after decoding."""

    filename: str
    content_type: str
    size: int
    content: bytes = field(default=b"", repr=False, compare=False)
    """What was uploaded, so a test can read the file the bot sent."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A length limit scraped from a field description, e.g. ``1-64 bytes``."""

    minimum: int
    maximum: int
    unit: Literal["characters", "bytes"]
    after_entities: bool


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One parameter of a method or one field of a type."""

    name: str
    types: tuple[str, ...]
    required: bool
    description: str
    limit: Limit | None
    discriminator: str | None = None


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A Bot API method: its canonical name, parameters and return types."""

    name: str
    fields: Mapping[str, FieldSpec]
    returns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """A Bot API object type; abstract types (``BotCommandScope``) list their concrete subtypes."""

    name: str
    fields: Mapping[str, FieldSpec]
    subtypes: tuple[str, ...]
    discriminator: str | None


@dataclass(slots=True)
class ParsedText:
    """Text as Telegram shows it after applying ``parse_mode``: plain text, entities, parse errors."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets and lengths."""
    return len(text.encode("utf-16-le")) // 2


def _parse_field(raw: Mapping[str, Any]) -> FieldSpec:
    description = str(raw.get("description", ""))
    limit = None
    match = _LIMIT_RE.search(description)
    if match:
        unit: Literal["characters", "bytes"] = "bytes" if match.group(3) == "bytes" else "characters"
        limit = Limit(int(match.group(1)), int(match.group(2)), unit, "after entities parsing" in description)
    discriminator = None
    if raw["name"] == "type":
        found = _DISCRIMINATOR_RE.search(description)
        discriminator = found.group(1) if found else None
    return FieldSpec(
        name=str(raw["name"]),
        types=tuple(raw.get("types", ())),
        required=bool(raw.get("required", False)),
        description=description,
        limit=limit,
        discriminator=discriminator,
    )


class BotApiSpec:
    """The parsed spec plus the request checks built on it.

    Method lookups are case-insensitive and precomputed, because the fake server validates every request
    of multi-thousand-update benchmarks.
    """

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.version: str = str(raw.get("version", "unknown"))
        self.methods: dict[str, MethodSpec] = {}
        for name, method in raw.get("methods", {}).items():
            fields = {f["name"]: _parse_field(f) for f in method.get("fields", ())}
            self.methods[name.lower()] = MethodSpec(name, fields, tuple(method.get("returns", ())))
        self.types: dict[str, TypeSpec] = {}
        for name, type_ in raw.get("types", {}).items():
            fields = {f["name"]: _parse_field(f) for f in type_.get("fields", ())}
            type_field = fields.get("type")
            self.types[name] = TypeSpec(
                name,
                fields,
                tuple(type_.get("subtypes", ())),
                type_field.discriminator if type_field else None,
            )

    @classmethod
    def from_file(cls, path: Path) -> BotApiSpec:
        """Load ``api.json`` from ``path``."""
        with path.open(encoding="utf-8") as handle:
            return cls(json.load(handle))

    def method(self, name: str) -> MethodSpec | None:
        """Look a method up the way Telegram does: case-insensitively."""
        return self.methods.get(name.lower())

    # ----------------------------------------------------------------------------------------- decoding

    def decode_params(self, method: str, raw: Mapping[str, object]) -> dict[str, object]:
        """Turn transport values into typed values using the parameter types of ``method``.

        PTB sends form fields in which strings are raw and everything else is JSON; the field's spec type
        decides which one a value is (``"123"`` is text for a String field but a number for ``chat_id``).
        Values that already have a JSON type (from an ``application/json`` body) are kept.
        """
        spec = self.method(method)
        fields = spec.fields if spec else {}
        result: dict[str, object] = {}
        for name, value in raw.items():
            field_spec = fields.get(name)
            result[name] = decode_value(field_spec.types if field_spec else None, value)
        return result

    # --------------------------------------------------------------------------------------- validation

    def validate(self, method: str, params: Mapping[str, object]) -> list[str]:
        """Return human-readable violations of the spec; an empty list means Telegram would accept it."""
        spec = self.method(method)
        if spec is None:
            return [f"{method}: unknown method '{method}'"]
        problems: list[str] = []
        problems.extend(
            f"missing required parameter '{name}'"
            for name, field_spec in spec.fields.items()
            if field_spec.required and name not in params
        )
        for name, value in params.items():
            known = spec.fields.get(name)
            if known is None:
                problems.append(f"unknown parameter '{name}'")
                continue
            self._check_value(value, known, params, name, problems)
        return [f"{spec.name}: {problem}" for problem in problems]

    def _check_value(
        self,
        value: object,
        field_spec: FieldSpec,
        container: Mapping[str, object],
        path: str,
        problems: list[str],
    ) -> None:
        errors = self._type_errors(value, field_spec.types, path)
        if errors:
            problems.extend(errors)
            return
        if field_spec.discriminator is not None and value != field_spec.discriminator:
            problems.append(f"'{path}' must be '{field_spec.discriminator}', got {value!r}")
        if field_spec.name.endswith("parse_mode") and isinstance(value, str):
            if value.lower() not in _PARSE_MODES:
                problems.append(f"unsupported parse_mode {value!r} in '{path}'")
            return
        if field_spec.limit is not None and isinstance(value, str):
            self._check_limit(value, field_spec, container, path, problems)

    def _check_limit(
        self,
        value: str,
        field_spec: FieldSpec,
        container: Mapping[str, object],
        path: str,
        problems: list[str],
    ) -> None:
        limit = field_spec.limit
        assert limit is not None
        if limit.unit == "bytes":
            size = len(value.encode("utf-8"))
            if not limit.minimum <= size <= limit.maximum:
                problems.append(
                    f"'{path}' is {size} bytes in UTF-8, allowed {limit.minimum}-{limit.maximum} bytes"
                )
            return
        text = value
        if limit.after_entities:
            mode = container.get(f"{field_spec.name}_parse_mode", container.get("parse_mode"))
            parsed = parse_formatted_text(value, mode if isinstance(mode, str) else None)
            if parsed.errors:
                problems.extend(f"can't parse entities in '{path}': {e}" for e in parsed.errors)
                return
            text = parsed.text
        size = len(text)
        if limit.minimum >= 1 and not text.strip():
            problems.append(f"'{path}' is empty (message text is empty)")
        elif size > limit.maximum or size < limit.minimum:
            after = " after entity parsing" if limit.after_entities else ""
            problems.append(
                f"'{path}' is {size} characters{after}, allowed {limit.minimum}-{limit.maximum} characters"
                + (" (too long)" if size > limit.maximum else "")
            )

    def _type_errors(self, value: object, types: tuple[str, ...], path: str) -> list[str]:
        """Errors for ``value`` against a union of spec types; empty if any alternative fits.

        Alternatives of the wrong shape are dropped first, and objects that carry all required fields of
        an alternative are tried first, so a broken ``ReplyKeyboardMarkup`` is not explained as a missing
        ``inline_keyboard``.
        """
        if not types:
            return []
        candidates = [t for t in types if _shape_ok(value, t)]
        if not candidates:
            return [f"'{path}' has type {_json_type(value)}, expected {' or '.join(types)}"]
        if len(candidates) > 1 and isinstance(value, dict):
            candidates.sort(key=lambda t: self._missing_required(value, t))
        first: list[str] | None = None
        for type_name in candidates:
            errors = self._errors_for_type(value, type_name, path)
            if not errors:
                return []
            first = first or errors
        return first or []

    def _missing_required(self, value: dict[str, object], type_name: str) -> int:
        type_spec = self.types.get(type_name)
        if type_spec is None:
            return 0
        return sum(1 for name, f in type_spec.fields.items() if f.required and name not in value)

    def _errors_for_type(self, value: object, type_name: str, path: str) -> list[str]:
        """Deep errors of a value whose shape already fits ``type_name``."""
        if type_name.startswith("Array of "):
            assert isinstance(value, list)
            inner = (type_name[len("Array of ") :],)
            for index, item in enumerate(value):
                errors = self._type_errors(item, inner, f"{path}[{index}]")
                if errors:
                    return errors
            return []
        if isinstance(value, dict):
            return self._object_errors(value, type_name, path)
        return []

    def _object_errors(self, value: dict[str, object], type_name: str, path: str) -> list[str]:
        type_spec = self.types.get(type_name)
        if type_spec is None:
            return []
        if type_spec.subtypes:
            candidates = [
                self.types[s]
                for s in type_spec.subtypes
                if s in self.types
                and (self.types[s].discriminator is None or self.types[s].discriminator == value.get("type"))
            ]
            if not candidates:
                return [f"'{path}' has unknown {type_name} type {value.get('type')!r}"]
            first: list[str] = []
            for candidate in candidates:
                candidate_errors = self._object_errors(value, candidate.name, path)
                if not candidate_errors:
                    return []
                first = first or candidate_errors
            return first
        errors: list[str] = [
            f"'{path}' ({type_name}) lacks required field '{name}'"
            for name, field_spec in type_spec.fields.items()
            if field_spec.required and name not in value
        ]
        for name, item in value.items():
            known = type_spec.fields.get(name)
            if known is None:
                errors.append(f"'{path}' ({type_name}) has unknown field '{name}'")
                continue
            self._check_value(item, known, value, f"{path}.{name}", errors)
        if type_name == "BotCommand" and isinstance(value.get("command"), str):
            command = str(value["command"])
            if not _BOT_COMMAND_RE.fullmatch(command):
                errors.append(
                    f"'{path}.command' {command!r} must be 1-32 lowercase English letters, digits or "
                    "underscores (Telegram answers BOT_COMMAND_INVALID)"
                )
        return errors


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, UploadedFile):
        return "InputFile"
    return type(value).__name__


def _shape_ok(value: object, type_name: str) -> bool:
    """Whether ``value`` has the JSON shape of ``type_name`` (array, scalar or object)."""
    if type_name.startswith("Array of "):
        return isinstance(value, list)
    if type_name in _PRIMITIVES:
        return _primitive_ok(value, type_name)
    return isinstance(value, dict)


def _primitive_ok(value: object, type_name: str) -> bool:
    if type_name == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "Boolean":
        return isinstance(value, bool)
    if type_name == "String":
        return isinstance(value, str)
    # InputFile: an uploaded part, or a string (file_id, URL, or "attach://<part>" reference).
    return isinstance(value, UploadedFile | str)


# Fields that are plain text in the methods the fake implements; only used when the spec is missing.
_FALLBACK_STRING_FIELDS = frozenset(
    {"text", "caption", "callback_query_id", "parse_mode", "url", "language_code", "action",
     "secret_token", "inline_message_id", "business_connection_id", "message_effect_id", "ip_address"}
)  # fmt: skip


def decode_value(types: tuple[str, ...] | None, value: object) -> object:
    """Decode one transport value: raw for String fields, JSON for everything else.

    ``types`` is ``None`` for parameters the spec does not know (or no spec at all): then JSON is tried and
    the raw string kept when that fails, except for a few well-known text fields.
    """
    if not isinstance(value, str):
        return value
    if types is None:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if types == ("String",):
        return value
    if "Integer" in types and _INT_RE.fullmatch(value):
        return int(value)
    if "String" in types and not value.startswith(("{", "[")):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def decode_without_spec(raw: Mapping[str, object]) -> dict[str, object]:
    """Best-effort decoding when ``api.json`` is unavailable: JSON everywhere except known text fields."""
    result: dict[str, object] = {}
    for name, value in raw.items():
        result[name] = value if name in _FALLBACK_STRING_FIELDS else decode_value(None, value)
    return result


# ------------------------------------------------------------------------------------------ formatting

_HTML_ENTITY_TYPES: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}


class _TelegramHtml(HTMLParser):
    """Parses Telegram's HTML subset into plain text + entities, reporting what Telegram would refuse."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0]
        for index, char in enumerate(source):
            if char == "\n":
                self._line_starts.append(index + 1)
        self.parts: list[str] = []
        self.position16 = 0
        self.stack: list[tuple[str, dict[str, Any], int]] = []
        self.entities: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def _byte_offset(self) -> int:
        line, column = self.getpos()
        index = self._line_starts[line - 1] + column
        return len(self._source[:index].encode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.errors:
            return
        attributes = dict(attrs)
        entity_type = _HTML_ENTITY_TYPES.get(tag)
        if entity_type is None or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            self.errors.append(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')
            return
        entity: dict[str, Any] = {"type": entity_type}
        if tag == "a":
            entity["url"] = attributes.get("href") or ""
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        elif tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        elif tag == "code" and self.stack and self.stack[-1][0] == "pre":
            # <pre><code class="language-x"> is one pre entity with a language, not two entities.
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                self.stack[-1][1]["language"] = language
            entity = {}
        self.stack.append((tag, entity, self.position16))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.errors:
            self.errors.append(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')

    def handle_endtag(self, tag: str) -> None:
        if self.errors:
            return
        if not self.stack or self.stack[-1][0] != tag:
            expected = f'"</{self.stack[-1][0]}>"' if self.stack else "no end tag"
            self.errors.append(
                f"Unmatched end tag at byte offset {self._byte_offset()}, "
                f'expected {expected}, found "</{tag}>"'
            )
            return
        _, entity, start = self.stack.pop()
        if entity and self.position16 > start:
            self.entities.append({**entity, "offset": start, "length": self.position16 - start})

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.position16 += utf16_len(data)

    def finish(self) -> ParsedText:
        self.close()
        if self.stack and not self.errors:
            self.errors.append(f'Can\'t find end tag corresponding to start tag "{self.stack[0][0]}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return ParsedText("".join(self.parts), self.entities, self.errors)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
}


def _find_closing(text: str, token: str, start: int) -> int:
    """Index of the next unescaped ``token`` at or after ``start``, or -1."""
    index = start
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text.startswith(token, index):
            return index
        index += 1
    return -1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def _parse_markdown_v2(text: str) -> ParsedText:
    """Plain text of a MarkdownV2 string and Telegram's first parse error, if any (no entities)."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    expandable = False
    index = 0

    def offset(at: int) -> int:
        return len(text[:at].encode("utf-8"))

    def fail(message: str) -> ParsedText:
        return ParsedText("".join(out), errors=[message])

    while index < len(text):
        char = text[index]
        line_start = index == 0 or text[index - 1] == "\n"
        if char == "\\":
            if index + 1 < len(text) and 0 < ord(text[index + 1]) < 127:
                out.append(text[index + 1])
                index += 2
                continue
            return fail("Character '\\' is reserved and must be escaped with the preceding '\\'")
        if line_start:
            if not text.startswith(">", index) and not text.startswith("**>", index):
                expandable = False
            if text.startswith("**>", index):
                expandable = True
                index += 3
                continue
            if char == ">":
                index += 1
                continue
        if char == "`":
            fence = "```" if text.startswith("```", index) else "`"
            end = _find_closing(text, fence, index + len(fence))
            if end < 0:
                name = "Pre" if fence == "```" else "Code"
                return fail(f"Can't find end of {name} entity at byte offset {offset(index)}")
            body = text[index + len(fence) : end]
            if fence == "```" and "\n" in body:
                first, rest = body.split("\n", 1)
                if first and not any(c.isspace() for c in first):
                    body = rest
            out.append(_unescape(body))
            index = end + len(fence)
            continue
        marker = None
        if text.startswith("__", index):
            marker = "__"
        elif text.startswith("||", index):
            if expandable and (index + 2 == len(text) or text[index + 2] == "\n"):
                index += 2
                continue
            marker = "||"
        elif char in "*_~":
            marker = char
        if marker is not None:
            open_markers = [m for m, _ in stack]
            if marker in open_markers:
                del stack[len(open_markers) - 1 - open_markers[::-1].index(marker)]
            else:
                stack.append((marker, offset(index)))
            index += len(marker)
            continue
        if char == "[" or (char == "!" and text.startswith("![", index)):
            stack.append(("[", offset(index)))
            index += 2 if char == "!" else 1
            continue
        if char == "]" and any(m == "[" for m, _ in stack):
            position = max(i for i, (m, _) in enumerate(stack) if m == "[")
            del stack[position]
            index += 1
            if text.startswith("(", index):
                end = _find_closing(text, ")", index + 1)
                if end < 0:
                    return fail(f"Can't find end of a URL at byte offset {offset(index)}")
                index = end + 1
            continue
        if char in _MDV2_RESERVED:
            return fail(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
        out.append(char)
        index += 1
    if stack:
        marker, at = stack[0]
        return fail(f"Can't find end of {_MDV2_NAMES[marker]} entity at byte offset {at}")
    return ParsedText("".join(out))


def _parse_markdown_legacy(text: str) -> ParsedText:
    """Plain text of a legacy Markdown string; entities cannot nest, only ``_*`[`` can be escaped."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in "_*`[":
            out.append(text[index + 1])
            index += 2
            continue
        if char in "_*`[":
            token = "```" if text.startswith("```", index) else ("]" if char == "[" else char)
            start = index + (3 if token == "```" else 1)
            end = text.find(token, start)
            if end < 0:
                at = len(text[:index].encode("utf-8"))
                error = f"Can't find end of the entity starting at byte offset {at}"
                return ParsedText("".join(out), errors=[error])
            out.append(text[start:end])
            index = end + len(token)
            if char == "[" and text.startswith("(", index):
                close = text.find(")", index)
                index = close + 1 if close >= 0 else len(text)
            continue
        out.append(char)
        index += 1
    return ParsedText("".join(out))


def parse_formatted_text(text: str, parse_mode: str | None) -> ParsedText:
    """Apply ``parse_mode`` the way Telegram does before it counts length and stores the message.

    HTML yields real entities (offsets in UTF-16 units) because the fake returns them in messages; the
    Markdown flavours yield plain text and parse errors only.
    """
    mode = (parse_mode or "").lower()
    if mode == "html":
        parser = _TelegramHtml(text)
        parser.feed(text)
        return parser.finish()
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown_legacy(text)
    return ParsedText(text)


# ------------------------------------------------------------------------------------------ module API


@functools.cache
def _load_cached(path: Path) -> BotApiSpec:
    return BotApiSpec.from_file(path)


def load_spec(path: Path | None = None) -> BotApiSpec | None:
    """Load (and cache) the spec at ``path`` or the default location; ``None`` if the file is missing."""
    resolved = path if path is not None else find_spec_path()
    if resolved is None or not resolved.is_file():
        return None
    return _load_cached(resolved.resolve())


def validate_request(method: str, params: dict[str, object]) -> list[str]:
    """Violations of the official spec by one request with already-decoded ``params``.

    Returns ``[]`` when the spec file is not available: validation is skipped rather than failing tests
    on machines without the shared directory.
    """
    spec = load_spec()
    if spec is None:
        return []
    return spec.validate(method, params)
