"""Settings: the public names, their defaults, and one clear line for every wrong value."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.durations import format_duration, parse_duration
from bot.settings import BOTFATHER_HINT, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Keep the developer's environment and .env out of these tests."""
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_API_URL",
        "DATABASE_URL",
        "STAFF_CHAT_ID",
        "MANAGER_CHAT_IDS",
        "INGEST_API_KEY",
        "HTTP_HOST",
        "HTTP_PORT",
        "SURVEY_DELAY",
        "SWEEP_INTERVAL",
        "TIMEZONE",
        "DEFAULT_LANGUAGE",
        "SEND_RATE",
        "WEBHOOK_URL",
        "WEBHOOK_SECRET",
        "RAW_UPDATE_RETENTION",
        "START_LINK_EXPIRES_AFTER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


class TestDefaults:
    def test_defaults_match_the_documented_contract(self) -> None:
        """Every setting has the default .env.example promises."""
        settings = load_settings()
        assert settings.telegram_api_url == "https://api.telegram.org"
        assert settings.database_url == "sqlite:///kundenpuls.db"
        assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
        assert settings.survey_delay == timedelta(days=2)
        assert settings.sweep_interval == timedelta(seconds=30)
        assert str(settings.timezone) == "Europe/Berlin"
        assert settings.default_language == "de"
        assert settings.manager_chat_ids == ()
        assert settings.raw_update_retention == timedelta(days=30)
        assert settings.start_link_expires_after == timedelta(days=30)

    def test_values_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Environment variables with the documented names configure the bot."""
        monkeypatch.setenv("MANAGER_CHAT_IDS", "11, 22,33")
        monkeypatch.setenv("SURVEY_DELAY", "36h")
        monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
        monkeypatch.setenv("STAFF_CHAT_ID", "-1001234")
        monkeypatch.setenv("RAW_UPDATE_RETENTION", "2w")
        monkeypatch.setenv("START_LINK_EXPIRES_AFTER", "90d")
        settings = load_settings()
        assert settings.raw_update_retention == timedelta(weeks=2)
        assert settings.start_link_expires_after == timedelta(days=90)
        assert settings.manager_chat_ids == (11, 22, 33)
        assert settings.survey_delay == timedelta(hours=36)
        assert settings.telegram_api_url == "http://127.0.0.1:8081"
        assert settings.staff_chat_id == -1001234

    def test_env_file_is_read(self, tmp_path: object) -> None:
        """A .env file in the working directory is read."""
        with open(".env", "w", encoding="utf-8") as env_file:
            env_file.write("TELEGRAM_BOT_TOKEN=123:abc\nDEFAULT_LANGUAGE=en\n")
        settings = load_settings()
        assert settings.token == "123:abc"
        assert settings.default_language == "en"


class TestWrongValues:
    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("SURVEY_DELAY", "2 days", "SURVEY_DELAY (got '2 days'): use a number with a unit"),
            ("SWEEP_INTERVAL", "0s", "SWEEP_INTERVAL"),
            ("TIMEZONE", "Mars/Olympus", "TIMEZONE (got 'Mars/Olympus'): must be an IANA time zone"),
            ("DEFAULT_LANGUAGE", "fr", "DEFAULT_LANGUAGE (got 'fr'): must be one of: de, en"),
            ("HTTP_PORT", "99999", "HTTP_PORT (got '99999')"),
            ("MANAGER_CHAT_IDS", "12,abc", "MANAGER_CHAT_IDS (got '12,abc'): must be Telegram chat ids"),
            ("TELEGRAM_API_URL", "api.telegram.org", "TELEGRAM_API_URL (got 'api.telegram.org'): must be"),
            ("STAFF_CHAT_ID", "staff", "STAFF_CHAT_ID (got 'staff')"),
            ("RAW_UPDATE_RETENTION", "12h", "RAW_UPDATE_RETENTION (got '12h'): must be at least 1d"),
            ("RAW_UPDATE_RETENTION", "a month", "RAW_UPDATE_RETENTION (got 'a month'): use a number"),
            ("START_LINK_EXPIRES_AFTER", "0s", "START_LINK_EXPIRES_AFTER (got '0s'): must be longer"),
            ("WEEKLY_SUMMARY_CRON", "0 9 * *", "WEEKLY_SUMMARY_CRON (got '0 9 * *'): '0 9 * *' has 4 fields"),
            ("WEEKLY_SUMMARY_CRON", "0 9 * * 8", "WEEKLY_SUMMARY_CRON (got '0 9 * * 8'): day of week '8'"),
        ],
    )
    def test_wrong_value_names_setting_value_and_what_is_allowed(
        self, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
    ) -> None:
        """A wrong value gives one line with the setting, the value and the rule."""
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError) as raised:
            load_settings()
        assert str(raised.value).startswith(expected)
        assert "\n" not in str(raised.value)

    def test_missing_token_explains_botfather(self) -> None:
        """Asking for the token without one says how to get it."""
        with pytest.raises(SettingsError, match="BotFather"):
            _ = Settings(_env_file=None).token  # type: ignore[call-arg]
        assert ".env" in BOTFATHER_HINT


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"), [("0s", 0), ("90m", 5400), ("36h", 129600), ("2d", 172800), ("1d12h", 129600)]
    )
    def test_durations_parse(self, text: str, seconds: int) -> None:
        """The documented duration forms parse to the right length."""
        assert parse_duration(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "2", "d", "-1h", "1.5h", "2 days", "1y"])
    def test_bad_durations_are_rejected(self, text: str) -> None:
        """Anything else is refused with the allowed form."""
        with pytest.raises(ValueError, match="90m"):
            parse_duration(text)

    def test_format_round_trips(self) -> None:
        """Formatting a parsed duration gives the canonical text back."""
        assert format_duration(parse_duration("1d12h")) == "1d12h"
        assert format_duration(timedelta(0)) == "0s"
