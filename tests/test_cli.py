"""The ``kundenpuls`` command as a person uses it: exit codes and the lines they read."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.db import unit_of_work
from storage.migrate import head_revision
from storage.models import Customer
from storage.purchases import record_purchase
from surveys.loader import POST_PURCHASE_SURVEY_ID
from surveys.purchase_report import PurchaseReport
from tests.e2e import TOKEN
from tests.fakes.bot_api_server import FakeBotApiThread
from tests.report_shop import IN_WEEK, Shop, with_shop

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot.cli`` in a clean environment (no developer .env, no token), with ``input`` as
    what is typed on its terminal (nothing: a question read from it meets the end of input)."""
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestRun:
    def test_without_token_exits_2_with_one_line_about_botfather(self, tmp_path: Path) -> None:
        """``kundenpuls run`` without a token says where to get one and where to put it."""
        result = run_cli("run", cwd=tmp_path)
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1
        assert "@BotFather" in lines[0] and "TELEGRAM_BOT_TOKEN" in lines[0] and ".env" in lines[0]

    def test_wrong_setting_stops_the_start(self, tmp_path: Path) -> None:
        """A wrong value is named with what is allowed, and nothing starts."""
        result = run_cli("run", cwd=tmp_path, env={"TELEGRAM_BOT_TOKEN": "1:a", "SURVEY_DELAY": "soon"})
        assert result.returncode == 2
        assert "SURVEY_DELAY (got 'soon')" in result.stderr

    def test_token_is_never_logged(self, tmp_path: Path) -> None:
        """Even when Telegram is unreachable, the token does not appear in the output."""
        token = "987654:SECRET_token_value"
        result = run_cli(
            "run",
            cwd=tmp_path,
            env={
                "TELEGRAM_BOT_TOKEN": token,
                "TELEGRAM_API_URL": "http://127.0.0.1:9",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
                "HTTP_PORT": "0",
            },
        )
        assert result.returncode == 1
        assert "could not reach the Bot API at http://127.0.0.1:9" in result.stderr
        assert "Traceback" not in result.stderr
        assert "SECRET_token_value" not in result.stdout + result.stderr


class TestRunWebhook:
    def test_webhook_without_secret_exits_2_before_anything_starts(self, tmp_path: Path) -> None:
        """``run --webhook URL`` without WEBHOOK_SECRET says how to make one; no database is created."""
        database = tmp_path / "k.db"
        env = {"TELEGRAM_BOT_TOKEN": "1:a", "DATABASE_URL": f"sqlite:///{database}"}
        result = run_cli(
            "run", "--webhook", "https://shop.example/kundenpuls/telegram", cwd=tmp_path, env=env
        )
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1
        assert "WEBHOOK_SECRET is not set" in lines[0] and "secrets.token_urlsafe" in lines[0]
        assert not database.exists()

    def test_webhook_url_from_the_environment_needs_the_secret_too(self, tmp_path: Path) -> None:
        """WEBHOOK_URL in the environment turns webhook mode on just like ``--webhook``."""
        env = {"TELEGRAM_BOT_TOKEN": "1:a", "WEBHOOK_URL": "https://shop.example/hook"}
        result = run_cli("run", cwd=tmp_path, env=env)
        assert result.returncode == 2
        assert "WEBHOOK_SECRET is not set" in result.stderr

    @pytest.mark.parametrize("url", ["http://shop.example/hook", "shop.example/hook", "https:///hook"])
    def test_a_bad_webhook_url_exits_2_with_one_line(self, url: str, tmp_path: Path) -> None:
        """``--webhook`` is validated like WEBHOOK_URL: the value and what is allowed, on one line."""
        env = {"TELEGRAM_BOT_TOKEN": "1:a", "WEBHOOK_SECRET": "s3cret-token"}
        result = run_cli("run", "--webhook", url, cwd=tmp_path, env=env)
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1
        assert f"WEBHOOK_URL (got {url!r})" in lines[0] and "https://" in lines[0]

    def test_the_option_overrides_the_environment(self, tmp_path: Path) -> None:
        """A bad WEBHOOK_URL in the environment does not matter when ``--webhook`` gives a good one."""
        env = {"TELEGRAM_BOT_TOKEN": "1:a", "WEBHOOK_URL": "ftp://old.example"}
        result = run_cli("run", "--webhook", "https://shop.example/hook", cwd=tmp_path, env=env)
        assert result.returncode == 2
        assert "WEBHOOK_SECRET is not set" in result.stderr and "ftp://" not in result.stderr

    def test_a_webhook_url_with_the_token_is_refused_without_printing_it(self, tmp_path: Path) -> None:
        """The token in the webhook path would end up in access logs; the refusal does not repeat it."""
        token = "987654:SECRET_token_value"
        env = {"TELEGRAM_BOT_TOKEN": token, "WEBHOOK_SECRET": "s3cret-token"}
        result = run_cli("run", "--webhook", f"https://shop.example/{token}", cwd=tmp_path, env=env)
        assert result.returncode == 2
        assert "contains the bot token" in result.stderr
        assert "SECRET_token_value" not in result.stdout + result.stderr

    def test_a_webhook_telegram_refuses_exits_2_with_its_reason(self, tmp_path: Path) -> None:
        """When setWebhook is refused the start stops with Telegram's reason and the URL, on one line."""
        with FakeBotApiThread(token=TOKEN) as fake:
            fake.call(
                fake.server.fail_method, "setWebhook", 400, "Bad Request: bad webhook: Failed to resolve host"
            )
            env = {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": fake.url,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
                "HTTP_PORT": "0",
                "WEBHOOK_SECRET": "s3cret-token",
            }
            result = run_cli("run", "--webhook", "https://nowhere.example/hook", cwd=tmp_path, env=env)
        assert result.returncode == 2
        refusal = [line for line in result.stderr.splitlines() if line.startswith("kundenpuls:")]
        assert len(refusal) == 1
        assert "https://nowhere.example/hook" in refusal[0] and "failed to resolve host" in refusal[0].lower()
        assert "Traceback" not in result.stderr


class TestDatabase:
    def test_db_upgrade_creates_the_schema(self, database_url: str, tmp_path: Path) -> None:
        """``kundenpuls db upgrade`` migrates an empty database and is safe to repeat."""
        env = {"DATABASE_URL": database_url}
        first = run_cli("db", "upgrade", cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        second = run_cli("db", "upgrade", cwd=tmp_path, env=env)
        assert second.returncode == 0
        assert f"revision {head_revision()}" in second.stderr


class TestWhy:
    def test_why_for_an_unknown_customer_says_so_and_fails(self, database_url: str, tmp_path: Path) -> None:
        """``kundenpuls why`` with an id nobody reported: a one-line answer naming it, exit status 1."""
        result = run_cli("why", "C-nobody", cwd=tmp_path, env={"DATABASE_URL": database_url})
        assert result.returncode == 1
        assert "no customer with id 'C-nobody'" in result.stderr and "Traceback" not in result.stderr


class TestSurveysCheck:
    def test_shipped_survey_is_valid(self, tmp_path: Path) -> None:
        """The survey that ships with the bot passes the check."""
        result = run_cli(
            "surveys", "check", str(REPO / "surveys/definitions/post_purchase.yaml"), cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stderr

    def test_broken_survey_names_file_question_and_field(self, tmp_path: Path) -> None:
        """A broken file fails with the file, the question and the field in the message."""
        broken = tmp_path / "broken.yaml"
        broken.write_text(
            "id: broken\nversion: 1\nintro: {de: Hallo, en: Hello}\nthanks: {de: Danke, en: Thanks}\n"
            "questions:\n  - id: nps\n    type: nps\n    text: {de: Wie wahrscheinlich}\n",
            encoding="utf-8",
        )
        result = run_cli("surveys", "check", str(broken), cwd=tmp_path)
        assert result.returncode == 1
        assert "broken.yaml" in result.stderr and "'nps'" in result.stderr and "en" in result.stderr


@pytest.mark.parametrize("args", [["frobnicate"], []])
def test_unknown_command_is_a_usage_error(args: list[str], tmp_path: Path) -> None:
    """A mistyped command prints usage and exits 2."""
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: kundenpuls" in result.stderr


class TestForget:
    """``kundenpuls forget CUSTOMER_ID`` (tests/test_e2e_privacy.py erases through it with a bot running)."""

    @staticmethod
    def _customer(engine: Engine, external_id: str) -> None:
        with unit_of_work(engine) as session:
            record_purchase(
                session=session,
                report=PurchaseReport(
                    order_id=f"{external_id}-order", customer_id=external_id, name="Zoe Zett"
                ),
                survey_id=POST_PURCHASE_SURVEY_ID,
                survey_delay=timedelta(days=2),
                source="api",
            )

    @staticmethod
    def _names(engine: Engine) -> list[str | None]:
        with Session(engine) as session:
            return [customer.name for customer in session.exec(select(Customer)).all()]

    def test_an_unknown_customer_id_is_an_error(self, database_url: str, tmp_path: Path) -> None:
        """An id nobody reported: one line naming it, exit status 1, nothing asked."""
        result = run_cli("forget", "C-nobody", "--yes", cwd=tmp_path, env={"DATABASE_URL": database_url})
        assert result.returncode == 1
        assert "no customer with id 'C-nobody'" in result.stderr and "Traceback" not in result.stderr

    def test_it_asks_first_and_erases_only_after_yes(
        self, engine: Engine, database_url: str, tmp_path: Path
    ) -> None:
        """Without --yes it asks y/N; no answer, "n" or anything else erases nothing, "y" erases."""
        self._customer(engine, "C-42")
        env = {"DATABASE_URL": database_url}
        for typed in ("", "n\n", "maybe\n"):
            result = run_cli("forget", "C-42", cwd=tmp_path, env=env, input=typed)
            assert result.returncode == 1, typed
            assert "[y/N]" in result.stdout and "Nothing was erased." in result.stdout
        assert self._names(engine) == ["Zoe Zett"]
        result = run_cli("forget", "C-42", cwd=tmp_path, env=env, input="y\n")
        assert result.returncode == 0, result.stderr
        assert "Erased the data of customer C-42" in result.stdout and "purchases: 1" in result.stdout
        assert "Zoe" not in result.stdout + result.stderr  # what it prints may end up in a ticket
        assert self._names(engine) == [None]
        again = run_cli("forget", "C-42", "--yes", cwd=tmp_path, env=env)
        assert again.returncode == 1 and "erased already" in again.stderr


class TestReport:
    """``kundenpuls report``: the managers' figures in the terminal, as JSON, and the answers as CSV."""

    WEEK_OPTIONS = ("--from", "2026-11-30", "--to", "2026-12-06")

    @staticmethod
    def _shop(shop: Shop) -> None:
        customer = shop.customer(seen=IN_WEEK)
        for score in (10, 9, 8, 3):
            shop.survey(customer, score=score)
        critic = shop.survey(customer, score=2)
        shop.answer(critic, "reason", "choice", choice="price")
        shop.answer(critic, "comment", "text", text="Zu teuer; leider", polarity=-0.5)

    def test_json_gives_the_figures_of_the_days_named(
        self, engine: Engine, database_url: str, tmp_path: Path
    ) -> None:
        with_shop(engine, self._shop)
        result = run_cli(
            "report", *self.WEEK_OPTIONS, "--json", cwd=tmp_path, env={"DATABASE_URL": database_url}
        )
        assert result.returncode == 0, result.stderr
        figures = json.loads(result.stdout)
        assert figures["period"] == {
            "first_day": "2026-11-30",
            "last_day": "2026-12-06",
            "start": "2026-11-30T00:00:00+01:00",
            "end": "2026-12-07T00:00:00+01:00",
            "time_zone": "Europe/Berlin",
        }
        assert figures["nps"] == {
            "promoters": 2,
            "passives": 1,
            "critics": 2,
            "responses": 5,
            "nps": 0.0,
            "margin": figures["nps"]["margin"],
        }
        assert figures["surveys"]["delivered"] == 5 and figures["surveys"]["answered"] == 5
        assert figures["critic_reasons"] == [
            {"survey": "post_purchase", "question": "reason", "option": "price", "count": 1}
        ]

    def test_the_table_and_the_csv_of_the_same_days(
        self, engine: Engine, database_url: str, tmp_path: Path
    ) -> None:
        with_shop(engine, self._shop)
        export = tmp_path / "answers.csv"
        result = run_cli(
            "report",
            *self.WEEK_OPTIONS,
            "--csv",
            str(export),
            cwd=tmp_path,
            env={"DATABASE_URL": database_url},
        )
        assert result.returncode == 0, result.stderr
        assert "2026-11-30 – 2026-12-06" in result.stdout and "from 5 responses" in result.stdout
        assert f"answers written to {export}" in result.stderr
        rows = list(csv.DictReader(export.read_text(encoding="utf-8-sig").splitlines(), delimiter=";"))
        assert len(rows) == 7  # five scores, a reason and a comment
        assert "name" not in rows[0]  # EXPORT_PERSONAL_DATA is off by default

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--from", "2026-11-30"), "--from and --to go together"),
            (("--weeks", "0"), "--weeks must be from 1 to 52"),
            (("--from", "30.11.2026", "--to", "2026-12-06"), "is not a date"),
            (("--from", "2026-12-06", "--to", "2026-11-30"), "2026-11-30"),
        ],
    )
    def test_a_wrong_period_is_a_usage_error_in_one_line(
        self, args: tuple[str, ...], message: str, database_url: str, tmp_path: Path
    ) -> None:
        result = run_cli("report", *args, cwd=tmp_path, env={"DATABASE_URL": database_url})
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr
