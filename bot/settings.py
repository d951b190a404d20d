"""Settings from the environment or ``.env``; the names are a public contract (see .env.example)."""

from __future__ import annotations

import re
import urllib.parse
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.durations import format_duration, parse_duration
from surveys.contact_rules import ContactPolicy, QuietHours
from surveys.languages import Language

BOTFATHER_HINT = (
    "TELEGRAM_BOT_TOKEN is not set. Create a bot with @BotFather in Telegram (send /newbot), "
    "then put the token it gives you into .env as TELEGRAM_BOT_TOKEN=123456:ABC... "
    "(or export it in the environment)."
)


WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
MIN_RAW_UPDATE_RETENTION = timedelta(days=1)


class SettingsError(Exception):
    """A setting cannot work as given; the message names the setting, the value and what is allowed."""


class Settings(BaseSettings):
    """Everything the bot can be configured with."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = "sqlite:///kundenpuls.db"
    staff_chat_id: int | None = None
    manager_chat_ids: Annotated[tuple[int, ...], NoDecode] = ()
    # Who may work on cases (take, reply, resolve). Empty: whoever presses a card's button in the staff
    # chat, i.e. its members (set it for a public group, whose cards anyone can see).
    staff_user_ids: Annotated[tuple[int, ...], NoDecode] = ()
    # /export and `kundenpuls report --csv` name customers only by the shop's customer id; true adds their
    # name and Telegram id (personal data: only where the shop has a reason to process it).
    export_personal_data: bool = False
    # When every chat in MANAGER_CHAT_IDS gets the summary of the last complete week: a five-field cron
    # expression in TIMEZONE (minute hour day-of-month month day-of-week, Sunday 0 or 7).
    weekly_summary_cron: str = "0 9 * * 1"
    # A case nobody took within this is escalated once to MANAGER_CHAT_IDS; a taken one not resolved
    # within ALERT_RESOLVE_WITHIN likewise. RECOVERY_CHECK_AFTER after Resolve the customer is asked once
    # whether the problem was solved.
    alert_escalate_after: Annotated[timedelta, NoDecode] = timedelta(hours=4)
    alert_resolve_within: Annotated[timedelta, NoDecode] = timedelta(days=3)
    recovery_check_after: Annotated[timedelta, NoDecode] = timedelta(days=1)
    # A passive's or promoter's comment at or below this sentiment polarity opens a case for staff too.
    negative_comment_threshold: float = Field(default=-0.3, ge=-1, le=0)
    ingest_api_key: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    survey_delay: Annotated[timedelta, NoDecode] = timedelta(days=2)
    # A survey not finished REMINDER_AFTER after it was asked gets one reminder that goes on where the
    # customer stopped; SURVEY_EXPIRES_AFTER after it was asked it closes unanswered.
    reminder_after: Annotated[timedelta, NoDecode] = timedelta(days=2)
    survey_expires_after: Annotated[timedelta, NoDecode] = timedelta(days=7)
    # No unprompted message in these local hours (TIMEZONE, or the customer's own zone): it waits for the
    # morning. Empty for none.
    quiet_hours: str = "21:00-09:00"
    # At most one survey per SURVEY_COOLDOWN and MAX_PROACTIVE_PER_WEEK unprompted messages in any 7 days;
    # a purchase reported more than SURVEY_MAX_AGE after it happened gets no survey.
    survey_cooldown: Annotated[timedelta, NoDecode] = timedelta(days=30)
    max_proactive_per_week: int = Field(default=2, ge=1, le=50)
    survey_max_age: Annotated[timedelta, NoDecode] = timedelta(days=14)
    # A customer who has neither bought nor written for CHECKIN_FACTOR times the median gap between their
    # purchases (CHECKIN_AFTER for one-time buyers) gets one check-in message per silence.
    checkin_factor: float = Field(default=1.5, ge=1, le=100)
    checkin_after: Annotated[timedelta, NoDecode] = timedelta(days=30)
    sweep_interval: Annotated[timedelta, NoDecode] = timedelta(seconds=30)
    # Raw Telegram updates (what customers and staff wrote, as Telegram sent it) are deleted this long
    # after they arrived, once handled; at least 1d, since Telegram may deliver an update again for 24 h.
    raw_update_retention: Annotated[timedelta, NoDecode] = timedelta(days=30)
    # A purchase's deep link (start_link) connects a chat until this long after the purchase was recorded.
    start_link_expires_after: Annotated[timedelta, NoDecode] = timedelta(days=30)
    timezone: Annotated[ZoneInfo, NoDecode] = ZoneInfo("Europe/Berlin")
    default_language: Language = "de"
    # Message calls (sends and edits) per second, for all processes sharing the database together.
    # Telegram allows about 30; paid broadcasts up to 1000. Per-chat limits always apply on top.
    send_rate: float = Field(default=25, gt=0, le=1000)
    # Webhook mode: Telegram posts updates to this public https:// URL instead of being polled.
    webhook_url: str | None = None
    # Required in webhook mode: Telegram sends it back in X-Telegram-Bot-Api-Secret-Token.
    webhook_secret: SecretStr | None = None

    @field_validator(
        "telegram_bot_token",
        "ingest_api_key",
        "staff_chat_id",
        "webhook_url",
        "webhook_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL such as https://api.telegram.org")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urllib.parse.urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be a public https:// URL such as https://shop.example/telegram")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value().strip()
        if not WEBHOOK_SECRET_PATTERN.fullmatch(secret):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return SecretStr(secret)

    @field_validator("manager_chat_ids", "staff_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            what = "user" if info.field_name == "staff_user_ids" else "chat"
            try:
                return tuple(int(part) for part in parts)
            except ValueError:
                message = f"must be Telegram {what} ids separated by commas, such as 1234,5678"
                raise ValueError(message) from None
        return value

    @field_validator(
        "survey_delay",
        "sweep_interval",
        "alert_escalate_after",
        "alert_resolve_within",
        "recovery_check_after",
        "reminder_after",
        "survey_expires_after",
        "survey_cooldown",
        "survey_max_age",
        "checkin_after",
        "raw_update_retention",
        "start_link_expires_after",
        mode="before",
    )
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator("sweep_interval")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("raw_update_retention")
    @classmethod
    def _retention_outlasts_redelivery(cls, value: timedelta) -> timedelta:
        # A stored update is what makes a redelivered one a no-op (storage/inbox.py); Telegram keeps
        # unconfirmed updates for 24 hours, so one pruned sooner could be handled twice.
        if value < MIN_RAW_UPDATE_RETENTION:
            raise ValueError("must be at least 1d: Telegram may deliver an update again within 24 hours")
        return value

    @field_validator("start_link_expires_after")
    @classmethod
    def _positive_link_lifetime(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be longer than 0s, for example 30d")
        return value

    @field_validator("weekly_summary_cron")
    @classmethod
    def _check_weekly_summary_cron(cls, value: str) -> str:
        from bot.weekly_schedule import ScheduleError, WeeklySchedule

        try:  # whether it is a valid expression does not depend on the zone
            WeeklySchedule(value.strip(), ZoneInfo("UTC"))
        except ScheduleError as error:
            raise ValueError(str(error)) from None
        return value.strip()

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str) -> str:
        quiet = QuietHours.parse(value)  # its ValueError says what is wrong and what is expected
        return "" if quiet is None else str(quiet)

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> Settings:
        if self.reminder_after >= self.survey_expires_after:
            raise ValueError(
                f"REMINDER_AFTER ({format_duration(self.reminder_after)}) must be shorter than "
                f"SURVEY_EXPIRES_AFTER ({format_duration(self.survey_expires_after)}): "
                "a reminder for a closed survey is never sent"
            )
        return self

    @property
    def contact_policy(self) -> ContactPolicy:
        """The rules for unprompted messages (surveys/contact_rules.py) as these settings set them."""
        return ContactPolicy(
            quiet_hours=QuietHours.parse(self.quiet_hours),
            zone=self.timezone,
            survey_cooldown=self.survey_cooldown,
            max_proactive_per_week=self.max_proactive_per_week,
            survey_max_age=self.survey_max_age,
            checkin_factor=self.checkin_factor,
            checkin_after=self.checkin_after,
        )

    @field_validator("timezone", mode="before")
    @classmethod
    def _parse_zone(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return ZoneInfo(value.strip())
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("must be an IANA time zone such as Europe/Berlin") from None
        return value

    @field_validator("default_language", mode="before")
    @classmethod
    def _lower_language(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def webhook_mode(self) -> bool:
        """Whether Telegram delivers updates by webhook (WEBHOOK_URL is set) instead of being polled."""
        return self.webhook_url is not None

    def require_webhook_secret(self) -> str:
        """Return WEBHOOK_SECRET, or raise SettingsError: a webhook without it would accept anyone's posts."""
        if self.webhook_secret is None:
            raise SettingsError(
                "WEBHOOK_SECRET is not set: webhook mode needs it so that only Telegram can post updates. "
                'Generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return self.webhook_secret.get_secret_value()

    @property
    def token(self) -> str:
        """Return the bot token, or raise SettingsError with how to get one."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value().strip():
            raise SettingsError(BOTFATHER_HINT)
        return self.telegram_bot_token.get_secret_value().strip()


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning a validation error into one line per wrong setting."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            name = str(problem["loc"][0]).upper() if problem["loc"] else "setting"
            value = problem.get("input")
            message = str(problem["msg"]).removeprefix("Value error, ")
            if problem["type"] == "literal_error" and name == "DEFAULT_LANGUAGE":
                message = "must be one of: de, en"
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            lines.append(f"{name}{shown}: {message}")
        raise SettingsError("\n".join(lines)) from None
