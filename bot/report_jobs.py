"""The managers' reports: the weekly summary on WEEKLY_SUMMARY_CRON, and what /report and /export asked for.

The first sweep that sees MANAGER_CHAT_IDS notes the latest occurrence as the baseline: summaries are owed
from the next one on, so a new installation does not open with last week's summary marked late.

Run by the sweep. ``ask_weekly_summaries`` asks, once per manager chat and occurrence, for the summary of
the week before the latest occurrence: an occurrence the bot was down for is asked for on the first sweep
after the start, and marked late. ``deliver_reports`` builds each request outside any write transaction
(a read snapshot, storage/db.py), then queues its messages and marks it done in one short transaction.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from sqlalchemy.engine import Engine

from bot.reports import TREND_WEEKS
from bot.weekly_schedule import WeeklySchedule
from handlers.manager import manager_language
from handlers.services import Services
from storage import outbox, report_queries, report_requests
from storage.answer_export import answers_between
from storage.db import read_snapshot, unit_of_work
from storage.models import ReportRequest, ReportRequestStatus
from surveys.answer_csv import write_csv
from surveys.languages import Language
from surveys.report_chart import nps_chart
from surveys.report_figures import ReportFigures
from surveys.report_period import ReportPeriod, last_complete_week, weeks_back
from surveys.summary_text import chart_labels, summary_text

log = logging.getLogger(__name__)

LATE_AFTER = datetime.timedelta(minutes=10)
"""An occurrence asked for this long after its moment was missed (the bot was down): marked late."""


def ask_weekly_summaries(engine: Engine, services: Services, *, now: datetime.datetime) -> int:
    """Ask for the summary of the latest occurrence in every manager chat that has not had it; return how
    many were asked for now."""
    settings = services.settings
    if not settings.manager_chat_ids:
        return 0
    occurrence = WeeklySchedule(settings.weekly_summary_cron, settings.timezone).latest(now)
    if occurrence is None:
        return 0
    with read_snapshot(engine) as session:
        start = report_requests.baseline(session)
    if start is None:
        with unit_of_work(engine) as session:
            report_requests.ask(
                session,
                key=report_requests.BASELINE_KEY,
                chat_id=0,
                kind=report_requests.KIND_BASELINE,
                start=occurrence,
                end=occurrence,
                language=settings.default_language,
                now=now,
                due_for=occurrence,
                status=ReportRequestStatus.DONE,
            )
        return 0
    if occurrence <= start:
        return 0  # this installation began after that occurrence: nothing is owed for it
    week = last_complete_week(occurrence, settings.timezone)
    keys = {
        chat_id: f"weekly:{occurrence:%Y-%m-%dT%H:%MZ}:{chat_id}" for chat_id in settings.manager_chat_ids
    }
    with read_snapshot(engine) as session:  # every sweep asks; only a new occurrence needs a write
        missing = [
            chat_id
            for chat_id, key in keys.items()
            if key not in report_requests.known(session, keys.values())
        ]
    if not missing:
        return 0
    asked = 0
    with unit_of_work(engine) as session:
        for chat_id in missing:
            asked += report_requests.ask(
                session,
                key=keys[chat_id],
                chat_id=chat_id,
                kind=report_requests.KIND_SUMMARY,
                start=week.start,
                end=week.end,
                language=manager_language(session, services, chat_id),
                now=now,
                due_for=occurrence,
                late=now - occurrence > LATE_AFTER,
            )
    if asked:
        log.info("weekly summary of %s asked for in %d manager chats", week.label, asked)
    return asked


def deliver_reports(engine: Engine, services: Services, *, now: datetime.datetime) -> int:
    """Build and queue every pending report; return how many were queued."""
    with read_snapshot(engine) as session:  # most sweeps find nothing to do: no write transaction then
        if not report_requests.any_due(session, now=now):
            return 0
    owner = uuid.uuid4().hex[:16]
    delivered = 0
    while True:
        with unit_of_work(engine) as session:
            request = report_requests.claim(session, owner=owner, now=now)
            if request is None:
                return delivered
            session.flush()  # the lease is written with this transaction; the row is read on afterwards
            session.expunge(request)
        try:
            calls = _build(engine, services, request, now=now)
        except Exception as error:  # a bug in one report must not stop the others, nor the sweep
            log.exception("report request %s could not be built", request.id)
            with unit_of_work(engine) as session:
                report_requests.give_up_or_retry(
                    session, int(request.id or 0), repr(error), owner=owner, now=now
                )
            continue
        with unit_of_work(engine) as session:
            if report_requests.finish(session, int(request.id or 0), owner=owner, now=now):
                for call in calls:
                    outbox.enqueue(session, call, now=now)
                delivered += 1


def _period(request: ReportRequest, services: Services) -> ReportPeriod:
    return ReportPeriod(start=request.period_start, end=request.period_end, zone=services.settings.timezone)


def _build(
    engine: Engine, services: Services, request: ReportRequest, *, now: datetime.datetime
) -> list[outbox.OutboundCall]:
    """The messages of one request, read from one consistent snapshot."""
    period = _period(request, services)
    lang = services.language(request.language)
    key = f"report:{request.key}"
    chat_id = int(request.chat_id)
    settings = services.settings
    with read_snapshot(engine) as session:
        if request.kind == report_requests.KIND_EXPORT:
            rows = answers_between(
                session, period.start, period.end, personal_data=settings.export_personal_data
            )
            data = write_csv(rows, settings.timezone, personal_data=settings.export_personal_data)
            caption = services.text(lang, "export_caption", period=period.label)
            name = f"kundenpuls-answers-{period.first_day}-{period.last_day}.csv"
            payload = outbox.document_payload(filename=name, content=data, caption=caption)
            return [outbox.OutboundCall(f"{key}:csv", outbox.KIND_REPORT, "sendDocument", chat_id, payload)]
        trend = weeks_back(min(now, period.end), settings.timezone, TREND_WEEKS)
        figures = report_queries.report(
            session, period, now=now, policy=settings.contact_policy, trend_weeks=trend
        )
    return _summary_calls(
        services, figures, lang, key=key, chat_id=chat_id, late_for=request.due_for if request.late else None
    )


def _summary_calls(
    services: Services,
    figures: ReportFigures,
    lang: Language,
    *,
    key: str,
    chat_id: int,
    late_for: datetime.datetime | None,
) -> list[outbox.OutboundCall]:
    """The summary's text and, with responses, its chart."""
    text = summary_text(figures, services.catalogue, lang, services.surveys, late_for=late_for)
    calls = [
        outbox.OutboundCall(
            f"{key}:text",
            outbox.KIND_REPORT,
            "sendMessage",
            chat_id,
            {"text": str(text), "parse_mode": "HTML"},
        )
    ]
    if figures.has_responses and figures.trend:
        png = nps_chart(figures.trend, chart_labels(services.catalogue, lang))
        payload = outbox.photo_payload(filename="nps.png", content=png)
        calls.append(outbox.OutboundCall(f"{key}:chart", outbox.KIND_REPORT, "sendPhoto", chat_id, payload))
    return calls
