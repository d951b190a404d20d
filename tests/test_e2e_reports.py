"""The managers' reports end to end over HTTP against the fake Bot API server, on SQLite and PostgreSQL:
the weekly summary (text and chart, exactly once per manager and week: after a restart, after downtime,
with two processes), /report and /export for managers only, and the export as CSV.

The shop's week is written the way the bot leaves it (tests/report_shop.py); the bot's clock is moved to
the summary's moment instead of waiting for Monday.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from bot import report_jobs
from bot.settings import Settings
from bot.weekly_schedule import WeeklySchedule
from handlers.services import Services
from storage.db import create_db_engine
from storage.migrate import upgrade_database
from storage.models import OutboxMessage, ReportRequest
from storage.outbox import KIND_REPORT
from surveys.loader import load_builtin_survey
from surveys.report_period import ReportPeriod, last_complete_week
from surveys.texts import load_catalogue
from tests.e2e import MovableClock, RunningBot, make_settings, running_bot
from tests.fakes.bot_api_server import FakeUser
from tests.report_shop import BERLIN, Shop, with_shop

ANNA = FakeUser(id=7101, first_name="Anna", language_code="de")  # a manager
BEN = FakeUser(id=7102, first_name="Ben", language_code="en")  # a manager
OTTO = FakeUser(id=7103, first_name="Otto", language_code="de")  # a customer, not a manager
MANAGERS = f"{ANNA.id},{BEN.id}"


def _next_monday_nine() -> datetime:
    """A default summary moment at least three days after the real time: the bot's clock only moves
    forward, and a test starts the bot up to two days before it."""
    moment = WeeklySchedule("0 9 * * 1", BERLIN).next_after(datetime.now(UTC) + timedelta(days=3))
    assert moment is not None
    return moment


def _week_of(moment: datetime) -> ReportPeriod:
    return last_complete_week(moment, BERLIN)


def _labels(week: ReportPeriod) -> tuple[str, str]:
    """How the German and the English summary name the week."""
    return f"{week.first_day:%d.%m.%Y}–{week.last_day:%d.%m.%Y}", week.label


def _clock_at(moment: datetime) -> MovableClock:
    clock = MovableClock()
    clock.move_to(moment)
    return clock


def _answers_in(week: ReportPeriod) -> Callable[[Shop], None]:
    """Seven answers two days into ``week``: 3 promoters, 2 passives, 2 critics."""

    def build(shop: Shop) -> None:
        when = week.start + timedelta(days=2)
        customer = shop.customer(seen=when)
        for score in (10, 10, 9, 8, 7, 6, 2):
            shop.survey(customer, score=score, started=when)

    return build


def _summaries(env: RunningBot, chat_id: int) -> list[str]:
    return [str(m.get("text")) for m in env.api.messages_to(chat_id) if "Kundenpuls ·" in str(m.get("text"))]


def _charts(env: RunningBot, chat_id: int) -> list[dict[str, object]]:
    return [m for m in env.api.messages_to(chat_id) if "photo" in m]


async def _managers_started(env: RunningBot) -> None:
    for manager in (ANNA, BEN):
        env.api.user_sends_text(manager, "/start")
        await env.api.wait_for_message(manager.id)


async def _settle(env: RunningBot) -> None:
    await env.bot.worker.drain()
    await env.bot.sweep()
    await env.bot.sender.drain()


class TestWeeklySummary:
    async def test_a_new_installation_does_not_open_with_last_weeks_summary(self, database_url: str) -> None:
        """Started for the first time on a Wednesday: the Monday before was not missed, it was before the
        bot; the first summary is next Monday's."""
        moment = _next_monday_nine()
        clock = _clock_at(moment - timedelta(days=2))
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as env:
            await _managers_started(env)
            await _settle(env)
            await env.bot.sender.drain()
            assert _summaries(env, ANNA.id) == [] and _summaries(env, BEN.id) == []

    async def test_arrives_as_text_and_chart_in_every_manager_chat_once(self, database_url: str) -> None:
        """Monday 09:00: each manager gets the summary of last week in their language, and its chart;
        more sweeps that morning send nothing more."""
        moment = _next_monday_nine()
        week = _week_of(moment)
        clock = _clock_at(moment - timedelta(hours=1))
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as env:
            with_shop(env.engine, _answers_in(week))
            await _managers_started(env)
            await _settle(env)
            assert _summaries(env, ANNA.id) == []  # 08:00: not yet
            clock.move_to(moment + timedelta(minutes=1))
            await _settle(env)
            await env.api.wait_until(
                lambda: len(_charts(env, ANNA.id)) == 1 and len(_charts(env, BEN.id)) == 1
            )
            (german,) = _summaries(env, ANNA.id)
            (english,) = _summaries(env, BEN.id)
            german_label, english_label = _labels(week)
            assert german_label in german and "aus 7 Antworten" in german
            assert english_label in english and "from 7 responses" in english
            assert "late" not in english
            for _ in range(3):
                clock.advance(timedelta(minutes=5))
                await _settle(env)
            assert (len(_summaries(env, ANNA.id)), len(_charts(env, ANNA.id))) == (1, 1)

    async def test_a_restart_does_not_send_it_again(self, database_url: str) -> None:
        moment = _next_monday_nine()
        clock = _clock_at(moment - timedelta(hours=1))
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as env:
            with_shop(env.engine, _answers_in(_week_of(moment)))
            await _managers_started(env)
            await _settle(env)
            clock.move_to(moment + timedelta(minutes=1))
            await _settle(env)
            await env.api.wait_until(lambda: len(_charts(env, BEN.id)) == 1)
        clock.advance(timedelta(minutes=30))
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as again:
            await _settle(again)
            assert again.api.requests_for("sendPhoto") == []
            assert _summaries(again, ANNA.id) == [] and _summaries(again, BEN.id) == []

    async def test_missed_while_down_it_is_sent_on_start_and_marked_late(self, database_url: str) -> None:
        moment = _next_monday_nine()
        clock = _clock_at(moment - timedelta(days=1))  # it ran on Sunday, was down on Monday at 09:00
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as env:
            with_shop(env.engine, _answers_in(_week_of(moment)))
            await _managers_started(env)
            await _settle(env)
        clock.move_to(moment + timedelta(hours=6))  # and started again at 15:00
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as env:
            await _settle(env)
            await env.api.wait_until(lambda: len(_summaries(env, BEN.id)) == 1)
            due = moment.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M")
            assert f"Delivered late – it was due {due}." in _summaries(env, BEN.id)[0]

    async def test_a_week_without_responses_is_one_line_and_no_chart(self, database_url: str) -> None:
        moment = _next_monday_nine()
        clock = _clock_at(moment - timedelta(hours=1))
        async with running_bot(database_url, clock=clock, manager_chat_ids=MANAGERS) as env:
            await _managers_started(env)
            await _settle(env)
            clock.move_to(moment + timedelta(minutes=1))
            await _settle(env)
            await env.api.wait_until(lambda: len(_summaries(env, BEN.id)) == 1)
            assert _summaries(env, BEN.id)[0].splitlines()[1] == "No responses in this period."
            await env.bot.sender.drain()
            assert _charts(env, BEN.id) == []


def test_two_processes_ask_and_build_each_summary_once(database_url: str) -> None:
    """Two replicas' sweeps at the same moment, on their own engines: one request per manager, one set
    of messages (the unique request key and the outbox keys decide, not timing)."""
    moment = _next_monday_nine() + timedelta(minutes=1)
    settings = make_settings(database_url, "http://127.0.0.1:9", manager_chat_ids=MANAGERS)
    engines: list[Engine] = [create_db_engine(database_url) for _ in range(2)]
    upgrade_database(engines[0])
    with_shop(engines[0], _answers_in(_week_of(moment)))
    services = _services(settings)
    report_jobs.ask_weekly_summaries(engines[0], services, now=moment - timedelta(hours=1))  # it ran before
    start = threading.Barrier(2)
    delivered: list[int] = []

    def replica(engine: Engine) -> None:
        start.wait()
        report_jobs.ask_weekly_summaries(engine, services, now=moment)
        delivered.append(report_jobs.deliver_reports(engine, services, now=moment))

    threads = [threading.Thread(target=replica, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with Session(engines[0]) as session:
        requests = session.exec(select(func.count()).select_from(ReportRequest)).one()
        messages = session.exec(
            select(OutboxMessage.method, func.count())
            .where(OutboxMessage.kind == KIND_REPORT)
            .group_by(col(OutboxMessage.method))
        ).all()
    for engine in engines:
        engine.dispose()
    assert requests == 3  # the baseline and one summary per manager
    assert sum(delivered) == 2
    assert dict(messages) == {"sendMessage": 2, "sendPhoto": 2}


def _services(settings: Settings) -> Services:
    survey = load_builtin_survey()
    return Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())


class TestOnDemand:
    async def test_report_and_export_are_refused_to_anyone_not_a_manager(self, database_url: str) -> None:
        async with running_bot(database_url, manager_chat_ids=MANAGERS) as env:
            for command in ("/report", "/export 4w"):
                env.api.user_sends_text(OTTO, command)
                reply = await env.api.wait_for_message(
                    OTTO.id, lambda m: "Geschäftsleitung" in str(m.get("text"))
                )
                assert "NPS" not in str(reply["text"])
            await _settle(env)
            to_otto = [r for r in env.api.requests if r.params.get("chat_id") == OTTO.id]
            assert [r.method for r in to_otto if r.method in ("sendPhoto", "sendDocument")] == []

    async def test_report_gives_the_days_asked_for(self, database_url: str) -> None:
        week = _week_of(datetime.now(UTC))
        async with running_bot(database_url, manager_chat_ids=str(BEN.id)) as env:
            with_shop(env.engine, _answers_in(week))
            env.api.user_sends_text(BEN, f"/report {week.first_day}..{week.last_day}")
            await _settle(env)
            await env.api.wait_until(lambda: len(_summaries(env, BEN.id)) == 1)
            assert "from 7 responses" in _summaries(env, BEN.id)[0], _summaries(env, BEN.id)
            env.api.user_sends_text(BEN, "/report last year")
            reply = await env.api.wait_for_message(BEN.id, lambda m: "Unknown period" in str(m.get("text")))
            assert "2026-11-02..2026-11-15" in str(reply["text"])

    async def test_export_sends_every_answer_as_a_csv_excel_opens(self, database_url: str) -> None:
        week = _week_of(datetime.now(UTC))
        async with running_bot(database_url, manager_chat_ids=str(BEN.id)) as env:
            with_shop(env.engine, _answers_in(week))
            env.api.user_sends_text(BEN, f"/export {week.first_day}..{week.last_day}")
            await _settle(env)
            message = await env.api.wait_for_message(BEN.id, lambda m: "document" in m)
            data = env.api.document_content(message)
            assert data.startswith("\ufeff".encode())
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
            assert len(rows) == 7
            assert {row["customer_id"] for row in rows} == {"c-1"}
            assert "name" not in rows[0]
