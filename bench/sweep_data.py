"""A year of a shop's history, written straight into the tables: the data ``bench/sweep_scale.py`` sweeps.

The rows are what a year of the shipped defaults leaves behind (SURVEY_DELAY 2 d, SURVEY_COOLDOWN 30 d,
REMINDER_AFTER 2 d, SURVEY_EXPIRES_AFTER 7 d, QUIET_HOURS 21:00-09:00, check-ins by each customer's own
rhythm), as if the sweep had run every SWEEP_INTERVAL up to ``state_at``: everything due before it was
handled (a survey asked, reminded, expired; a check-in sent), everything due after it still waits, and
what quiet hours held overnight waits for 09:00. It is written with ``executemany`` (SQLite) or ``COPY``
(PostgreSQL), because going through the bot for a million customers would take hours and measure the
wrong thing.

The rhythms come from ``surveys/silence.py`` and the quiet hours from ``surveys/contact_rules.py``, so the
due times are the ones the bot itself would have stored.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  the tables register themselves in SQLModel.metadata
from bot.settings import Settings
from surveys.silence import median_gap

Row = tuple[Any, ...]

NEW_YORK = "America/New_York"
_PAYLOAD = '{"text": "..."}'
_CHUNK = 20_000  # customers per write: the generator's memory stays small at any scale


@dataclass
class Tables:
    """Rows of one chunk of customers, per table, in the column order of :data:`COLUMNS`."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def add(self, table: str, **values: Any) -> None:
        self.rows.setdefault(table, []).append(tuple(values.get(name) for name in COLUMNS[table]))


COLUMNS: dict[str, Sequence[str]] = {
    name: [column.name for column in table.columns]
    for name, table in SQLModel.metadata.tables.items()
    if name
    in (
        "telegram_users",
        "customers",
        "purchases",
        "survey_deliveries",
        "contact_events",
        "outbox",
        "cases",
        "checkins",
    )
}
ORDER = (
    "telegram_users",
    "customers",
    "purchases",
    "survey_deliveries",
    "cases",
    "checkins",
    "contact_events",
    "outbox",
)
"""Parents before children (foreign keys)."""


@dataclass
class Counters:
    """Running primary keys, and how many rows each table got."""

    purchase: int = 0
    delivery: int = 0
    event: int = 0
    outbox: int = 0
    case: int = 0
    checkin: int = 0
    rows: dict[str, int] = field(default_factory=dict)


class Shop:
    """Generates the history of ``customers`` customers (3 purchases each on average) up to ``state_at``."""

    def __init__(self, customers: int, *, state_at: datetime, settings: Settings, seed: int = 7) -> None:
        self.customers = customers
        self.state_at = state_at
        self.policy = settings.contact_policy
        self.survey_delay = settings.survey_delay
        self.reminder_after = settings.reminder_after
        self.expires_after = settings.survey_expires_after
        self.seed = seed
        self.counters = Counters()

    # -- rules, as the bot applies them -------------------------------------------------------------

    def morning(self, moment: datetime, zone: str | None) -> datetime:
        """``moment``, or the end of the quiet hours it falls in (the customer's zone, or the shop's)."""
        quiet = self.policy.quiet_hours
        if quiet is None:
            return moment
        tz = ZoneInfo(zone) if zone else self.policy.zone
        return quiet.next_allowed(moment, tz)

    # -- generation ---------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Tables]:
        """The rows, ``_CHUNK`` customers at a time."""
        for start in range(1, self.customers + 1, _CHUNK):
            rng = random.Random(self.seed * 1_000_003 + start)
            tables = Tables()
            for customer_id in range(start, min(start + _CHUNK, self.customers + 1)):
                self._customer(tables, rng, customer_id)
            yield tables

    def _customer(self, tables: Tables, rng: random.Random, customer_id: int) -> None:
        end = self.state_at
        times = _purchase_times(rng, end)
        zone = NEW_YORK if rng.random() < 0.1 else None
        telegram_id = 10_000_000 + customer_id if rng.random() < 0.9 else None
        gap = median_gap(times)
        rhythm = self.policy.rhythm(gap)
        last_seen = times[0] - timedelta(minutes=5)
        last_survey: datetime | None = None
        for purchased_at in times:
            last_survey, answered = self._purchase(
                tables, rng, customer_id, telegram_id, zone, purchased_at, last_survey
            )
            if answered is not None:
                last_seen = max(last_seen, answered)
        activity = max(times[-1], last_seen if telegram_id is not None else times[-1])
        checkin_due, checkin_done, stopped = self._checkins(
            tables, rng, customer_id, telegram_id, zone, activity, rhythm.silent_after
        )
        if telegram_id is not None:
            tables.add(
                "telegram_users",
                id=telegram_id,
                first_name=f"Kunde {customer_id}",
                language_code="de" if rng.random() < 0.8 else "en",
                has_started=True,
                created_at=times[0] - timedelta(minutes=10),
                last_seen_at=last_seen,
            )
        tables.add(
            "customers",
            id=customer_id,
            external_id=f"C-{customer_id}",
            name=f"Kunde {customer_id}",
            telegram_user_id=telegram_id,
            created_at=times[0],
            time_zone=zone,
            last_purchase_at=times[-1],
            median_purchase_gap_s=round(gap.total_seconds()) if gap is not None else None,
            checkin_due_at=checkin_due,
            checkin_done_at=checkin_done,
            checkins_stopped_at=stopped,
        )

    def _purchase(
        self,
        tables: Tables,
        rng: random.Random,
        customer_id: int,
        telegram_id: int | None,
        zone: str | None,
        purchased_at: datetime,
        last_survey: datetime | None,
    ) -> tuple[datetime | None, datetime | None]:
        """One order and its survey; returns (the last survey's start, when the customer answered)."""
        counters = self.counters
        counters.purchase += 1
        counters.delivery += 1
        purchase_id = delivery_id = counters.purchase
        tables.add(
            "purchases",
            id=purchase_id,
            order_id=f"O-{purchase_id}",
            customer_id=customer_id,
            amount=round(rng.uniform(8, 240), 2),
            currency="EUR",
            purchased_at=purchased_at,
            source="api",
            link_token=f"L{purchase_id:012d}",
            created_at=purchased_at,
        )
        delivery: dict[str, Any] = {
            "id": delivery_id,
            "purchase_id": purchase_id,
            "customer_id": customer_id,
            "survey_id": "post_purchase",
            "ask_seq": 0,
            "created_at": purchased_at,
        }
        due = purchased_at + self.survey_delay
        answered_at: datetime | None = None
        if telegram_id is None:  # nobody to ask: it waits for the customer to open the bot, then expires
            if due > self.state_at:
                delivery.update(status="scheduled", due_at=due)
            elif due + self.expires_after > self.state_at:
                delivery.update(status="awaiting_contact", due_at=due, expires_at=due + self.expires_after)
            else:
                expires = due + self.expires_after
                delivery.update(status="expired", due_at=due, expires_at=expires, expired_at=expires)
            tables.add("survey_deliveries", **delivery)
            return last_survey, None
        if last_survey is not None and due - last_survey < self.policy.survey_cooldown:
            if due > self.state_at:
                delivery.update(status="scheduled", due_at=due)
            else:
                delivery.update(status="skipped", due_at=due)
                self._event(tables, customer_id, delivery_id, "survey", "skipped", "cooldown", due)
            tables.add("survey_deliveries", **delivery)
            return last_survey, None
        asked = self.morning(due, zone)
        if asked > self.state_at:
            delivery.update(status="scheduled", due_at=asked)  # quiet hours moved it, or not due yet
            tables.add("survey_deliveries", **delivery)
            return last_survey, None
        self._event(tables, customer_id, delivery_id, "survey", "sent", None, asked)
        self._sent(tables, f"ask:{delivery_id}:nps:1", "survey_question", telegram_id, delivery_id, asked)
        delivery.update(due_at=due, started_at=asked, current_question_id="nps", ask_seq=1, language="de")
        reminder = self.morning(asked + self.reminder_after, zone)
        expires = asked + self.expires_after
        delivery["expires_at"] = expires
        if rng.random() < 0.5:
            answered_at = asked + timedelta(minutes=rng.uniform(5, 20 * 60))
        elif rng.random() < 0.3:
            answered_at = reminder + timedelta(minutes=rng.uniform(5, 8 * 60))
        if answered_at is not None and answered_at >= expires:
            answered_at = None
        if reminder <= self.state_at and (answered_at is None or answered_at > reminder):
            delivery.update(reminded_at=reminder, ask_seq=2)
            self._event(tables, customer_id, delivery_id, "reminder", "sent", None, reminder)
            self._sent(
                tables, f"ask:{delivery_id}:nps:2", "survey_question", telegram_id, delivery_id, reminder
            )
        if answered_at is not None and answered_at <= self.state_at:
            score = rng.choice((0, 2, 4, 5, 6, 6, 7, 7, 8, 8, 9, 9, 9, 10, 10, 10))
            category = "critic" if score <= 6 else "passive" if score <= 8 else "promoter"
            delivery.update(
                status="completed",
                completed_at=answered_at,
                nps_score=score,
                nps_category=category,
                current_question_id=None,
            )
            if category == "critic":
                self._case(tables, rng, customer_id, delivery_id, answered_at)
        elif expires <= self.state_at:
            delivery.update(status="expired", expired_at=expires, current_question_id=None)
        else:
            delivery["status"] = "active"
            if delivery.get("reminded_at") is None:
                delivery["reminder_due_at"] = reminder
        tables.add("survey_deliveries", **delivery)
        seen = answered_at if answered_at is not None and answered_at <= self.state_at else None
        return asked, seen

    def _checkins(
        self,
        tables: Tables,
        rng: random.Random,
        customer_id: int,
        telegram_id: int | None,
        zone: str | None,
        activity: datetime,
        silent_after: timedelta,
    ) -> tuple[datetime | None, datetime | None, datetime | None]:
        """(checkin_due_at, checkin_done_at, checkins_stopped_at) as the sweeps up to ``state_at`` left
        them: one check-in per silence, then a look every rhythm that finds it already dealt with."""
        looked = activity + silent_after
        if telegram_id is None:
            if looked > self.state_at:
                return looked, None, None
            self._event(tables, customer_id, None, "checkin", "skipped", "unreachable", looked)
            return _next_look(looked, silent_after, self.state_at), looked, None
        sent_at = self.morning(looked, zone)
        if sent_at > self.state_at:
            return sent_at, None, None
        self.counters.checkin += 1
        checkin_id = self.counters.checkin
        answer = rng.random()
        stopped = sent_at + timedelta(hours=2) if answer < 0.05 else None
        if stopped is not None and stopped > self.state_at:
            stopped = None
        tables.add(
            "checkins",
            id=checkin_id,
            customer_id=customer_id,
            silent_since=activity,
            sent_at=sent_at,
            language="de",
            answer="not_interested" if stopped else ("all_good" if answer < 0.35 else None),
            answered_at=stopped if stopped else (sent_at + timedelta(hours=2) if answer < 0.35 else None),
        )
        self._event(tables, customer_id, None, "checkin", "sent", None, sent_at)
        self._sent(tables, f"checkin:{checkin_id}", "checkin", telegram_id, None, sent_at)
        if stopped is not None:
            return None, sent_at, stopped
        return _next_look(sent_at, silent_after, self.state_at), sent_at, None

    def _case(
        self, tables: Tables, rng: random.Random, customer_id: int, delivery_id: int, opened_at: datetime
    ) -> None:
        self.counters.case += 1
        case: dict[str, Any] = {
            "id": self.counters.case,
            "customer_id": customer_id,
            "delivery_id": delivery_id,
            "kind": "critic",
            "opened_at": opened_at,
            "card_version": 1,
            "card_stale": False,
            "awaiting_customer": False,
            "in_topic": False,
            "card_message_key": f"case:{self.counters.case}",
        }
        resolved_at = opened_at + timedelta(hours=rng.uniform(1, 72))
        if resolved_at > self.state_at:
            taken = opened_at + timedelta(minutes=30)
            if taken <= self.state_at:
                case.update(status="taken", taken_at=taken, assignee_id=42, assignee_name="Mia")
            else:
                case["status"] = "open"
            if opened_at + timedelta(hours=4) <= self.state_at and case["status"] == "open":
                case["escalated_untaken_at"] = opened_at + timedelta(hours=4)
        else:
            case.update(
                status="resolved", taken_at=opened_at + timedelta(minutes=30), resolved_at=resolved_at
            )
            case.update(assignee_id=42, assignee_name="Mia", resolved_by_id=42, resolved_by_name="Mia")
            asked = resolved_at + timedelta(days=1)
            if asked <= self.state_at:
                case["recovery_asked_at"] = asked
                if rng.random() < 0.6:
                    case.update(recovered=rng.random() < 0.8, recovery_answered_at=asked + timedelta(hours=3))
        tables.add("cases", **case)

    def _event(
        self,
        tables: Tables,
        customer_id: int,
        delivery_id: int | None,
        kind: str,
        outcome: str,
        reason: str | None,
        at: datetime,
    ) -> None:
        self.counters.event += 1
        tables.add(
            "contact_events",
            id=self.counters.event,
            customer_id=customer_id,
            delivery_id=delivery_id,
            kind=kind,
            outcome=outcome,
            reason=reason,
            at=at,
            planned_for=at,
            detail=outcome,
        )

    def _sent(
        self, tables: Tables, key: str, kind: str, chat_id: int, delivery_id: int | None, at: datetime
    ) -> None:
        self.counters.outbox += 1
        tables.add(
            "outbox",
            id=self.counters.outbox,
            dedupe_key=key,
            kind=kind,
            method="sendMessage",
            chat_id=chat_id,
            payload=_PAYLOAD,
            delivery_id=delivery_id,
            status="sent",
            attempts=1,
            next_attempt_at=at,
            sent_message_id=self.counters.outbox,
            created_at=at,
            sent_at=at,
        )


def _purchase_times(rng: random.Random, end: datetime) -> list[datetime]:
    """1-5 orders (3 on average); repeat buyers keep a rhythm of their own (weekly to quarterly)."""
    count = rng.choices((1, 2, 3, 4, 5), weights=(25, 15, 20, 15, 25))[0]
    if count == 1:
        return [end - timedelta(seconds=rng.uniform(0, 365 * 86_400))]
    gap_days = rng.choice(
        (rng.uniform(5, 14), rng.uniform(20, 45), rng.uniform(20, 45), rng.uniform(60, 100))
    )
    last = end - timedelta(seconds=rng.uniform(0, gap_days * 3 * 86_400))
    times = [last]
    for _ in range(count - 1):
        times.append(times[-1] - timedelta(days=gap_days * rng.uniform(0.6, 1.4)))
    return sorted(times)


def _next_look(after: datetime, every: timedelta, state_at: datetime) -> datetime:
    """The next no-op look at a customer whose silence was dealt with: every rhythm after ``after``."""
    steps = int((state_at - after) / every) + 1
    return after + every * steps


# -- writing ---------------------------------------------------------------------------------------


def load(engine: Engine, shop: Shop) -> dict[str, int]:
    """Write the shop's rows; return the row count per table."""
    counts = dict.fromkeys(ORDER, 0)
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if sqlite:
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA foreign_keys=OFF")  # the rows are consistent by construction
            cursor.execute("PRAGMA cache_size=-1000000")  # 1 GB: index inserts at random keys stay in memory
        for tables in shop.chunks():
            if sqlite:
                cursor.execute("BEGIN")  # the engine's connections are in autocommit mode (storage/db.py)
            for table in ORDER:
                rows = tables.rows.get(table, [])
                if not rows:
                    continue
                counts[table] += len(rows)
                if sqlite:
                    _insert_sqlite(cursor, table, rows)
                else:
                    _copy_postgres(cursor, table, rows)
            raw.commit()
        if not sqlite:
            for table in ORDER:
                if "id" in COLUMNS[table] and table != "telegram_users":
                    sequence = f"pg_get_serial_sequence('{table}', 'id')"
                    cursor.execute(f"SELECT setval({sequence}, (SELECT MAX(id) FROM {table}))")  # noqa: S608
            cursor.execute("ANALYZE")  # what autovacuum does on its own after a load like this
            raw.commit()
    finally:
        raw.close()
    return counts


def _insert_sqlite(cursor: Any, table: str, rows: list[Row]) -> None:
    columns = COLUMNS[table]
    marks = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608  our names
    cursor.executemany(statement, [_sqlite_row(row) for row in rows])


def _sqlite_row(row: Row) -> Row:
    return tuple(_sqlite_value(value) for value in row)


def _sqlite_value(value: Any) -> Any:
    """The text SQLAlchemy stores for an aware UTC timestamp on SQLite (storage/models.UtcDateTime)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def _copy_postgres(cursor: Any, table: str, rows: list[Row]) -> None:
    columns = COLUMNS[table]
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def table_sizes(engine: Engine) -> dict[str, int]:
    """Rows per table, counted by the database (a check that the load wrote what it said)."""
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()  # noqa: S608
            for table in ORDER
        }
