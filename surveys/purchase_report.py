"""What a shop reports about a purchase, validated the same way for the HTTP API and the CSV import."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

_IdText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_GERMAN_DECIMAL = re.compile(r"^-?\d{1,3}(?:\.\d{3})*,\d{1,2}$|^-?\d+,\d{1,2}$")
_GERMAN_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


class PurchaseReport(BaseModel):
    """One purchase as the shop reports it; unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_id: _IdText
    customer_id: _IdText
    telegram_user_id: Annotated[int, Field(gt=0, lt=2**53)] | None = None
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    language: Literal["de", "en"] | None = None
    amount: Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"), decimal_places=2)] | None = None
    currency: str = "EUR"
    purchased_at: datetime | None = None
    time_zone: Annotated[str, StringConstraints(max_length=64)] | None = None
    """The customer's own IANA zone (Europe/Vienna), when the shop knows it: their quiet hours."""

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Europe/Berlin or America/New_York") from None
        return value

    @field_validator("telegram_user_id", mode="before")
    @classmethod
    def _reject_bool_and_float_ids(cls, value: object) -> object:
        # JSON true would otherwise become user 1, and 12.7 would be truncated.
        if isinstance(value, bool | float):
            raise ValueError("must be a whole number (the customer's numeric Telegram user id)")
        return value

    @field_validator("amount", mode="before")
    @classmethod
    def _accept_german_amount(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        # German spreadsheets export 1.234,50; read it as 1234.50.
        if isinstance(value, str) and _GERMAN_DECIMAL.match(value.strip()):
            return value.strip().replace(".", "").replace(",", ".")
        return value

    @field_validator("purchased_at", mode="before")
    @classmethod
    def _accept_german_date(cls, value: object) -> object:
        if isinstance(value, str) and (match := _GERMAN_DATE.match(value.strip())):
            day, month, year, hour, minute, second = match.groups()
            return (
                f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
                f"T{int(hour or 0):02d}:{int(minute or 0):02d}:{int(second or 0):02d}"
            )
        return value

    @field_validator(
        "name", "language", "telegram_user_id", "amount", "purchased_at", "time_zone", mode="before"
    )
    @classmethod
    def _empty_is_missing(cls, value: object) -> object:
        # A blank CSV cell means "not given", not "an empty name".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _normalize_currency(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return "EUR"
        if isinstance(value, str):
            value = value.strip().upper()
            if not _CURRENCY.match(value):
                raise ValueError("must be a three-letter ISO 4217 code such as EUR")
        return value

    @field_validator("purchased_at")
    @classmethod
    def _to_utc(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        # A time without an offset is the shop's local time (TIMEZONE), as spreadsheets write it.
        if value is None:
            return None
        if value.tzinfo is None:
            zone = (info.context or {}).get("timezone")
            value = value.replace(tzinfo=zone if isinstance(zone, ZoneInfo) else UTC)
        return value.astimezone(UTC)


def describe_validation_error(error: dict[str, object]) -> str:
    """Turn one pydantic error into "field: message" for a person to read."""
    raw_location = error.get("loc", ())
    parts = raw_location if isinstance(raw_location, tuple | list) else ()
    location = ".".join(str(part) for part in parts if isinstance(part, str | int))
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "is not a known field"
    if error.get("type") == "missing":
        message = "is required"
    return f"{location or 'body'}: {message}"
