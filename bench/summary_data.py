"""Two years of a shop, written straight into the tables: the data ``bench/summary_scale.py`` reports on.

200,000 customers and 1,000,000 answers by default. The shop imported two years of orders when it started
the bot 60 weeks ago; every order since then has its survey, as the bot leaves them under the shipped
defaults (asked SURVEY_DELAY after the purchase and moved out of QUIET_HOURS, skipped within
SURVEY_COOLDOWN, reminded after REMINDER_AFTER, expired after SURVEY_EXPIRES_AFTER): the NPS answer and
the follow-ups of its category (critics a reason and a comment, passives a text, promoters what they
liked), the outbox rows of every question, the contact decisions, and a case for every critic (and for a
clearly negative passive comment), most of them resolved and some asked whether the problem was solved.

The rows are generated in the order the bot would have written them (purchases by time), so ids grow
with time and a week's answers sit together in the table, as in a real database. The customers' own
rhythms (weekly to quarterly buyers, one-time buyers, churn) give last_purchase_at and
median_purchase_gap_s as surveys/silence.py computes them.

Written with ``executemany`` on SQLite and ``COPY`` on PostgreSQL (then ``ANALYZE``, as autovacuum does),
both in big batches; one generation can fill several databases at once.
"""

from __future__ import annotations

import math
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

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
"""Monday 7 December 2026, 09:00 in Berlin: the summary of the week 30 November - 6 December goes out."""
DATA_VERSION = 1
"""Raise it whenever the generated rows change: cached databases are keyed by it."""
SEED = 11
HISTORY = timedelta(days=730)
"""The orders the shop imported reach back this far."""
BOT_WEEKS = 60
BOT_SINCE = NOW - timedelta(weeks=BOT_WEEKS)
"""Surveys exist for orders since then."""
STAFF_CHAT = -100900800
NEW_YORK = "America/New_York"
_BATCH = 50_000
"""Purchases per write: one transaction (SQLite) or one COPY per table (PostgreSQL) each."""
_SAMPLE = 20_000
"""About this many customers are simulated first to find the response rate that gives the answers asked."""
_WEEK = timedelta(weeks=1)
_PAYLOAD = '{"text": "..."}'

TABLES = (
    "telegram_users",
    "customers",
    "purchases",
    "survey_deliveries",
    "answers",
    "cases",
    "contact_events",
    "outbox",
)
"""Parents before children (foreign keys)."""
COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(column.name for column in SQLModel.metadata.tables[name].columns) for name in TABLES
}

_REASONS = ("price", "quality", "service", "delivery", "competitor", "not_needed", "other")
_REASON_WEIGHTS = (20, 24, 15, 22, 7, 5, 7)
_LIKED = ("product", "service", "delivery", "price", "other")
_LIKED_WEIGHTS = (40, 25, 20, 10, 5)
_CRITIC_COMMENTS = (
    ("Die Ware kam beschädigt an und niemand hat sich gemeldet.", -0.8, "de"),
    ("Viel zu teuer für diese Qualität.", -0.6, "de"),
    ("Lieferung hat zwei Wochen gedauert, das geht gar nicht.", -0.7, "de"),
    ("Der Kundenservice war unfreundlich.", -0.65, "de"),
    ("Paket kam nie an.", -0.5, "de"),
    ("Ganz okay, aber die Größe passt nicht.", -0.1, "de"),
    ("Naja.", None, "de"),
    ("Arrived broken, and nobody answered my email.", -0.8, "en"),
    ("Way too expensive for what you get.", -0.55, "en"),
    ("The wait was really long.", -0.45, "en"),
)
_PASSIVE_COMMENTS = (
    ("Schnellere Lieferung wäre schön.", 0.1, "de"),
    ("Etwas günstiger, dann gern eine 10.", 0.2, "de"),
    ("Die Verpackung war leider kaputt.", -0.4, "de"),
    ("Mehr Auswahl in meiner Größe.", 0.0, "de"),
    ("Cheaper shipping, please.", 0.0, "en"),
    ("The box was crushed, product fine.", -0.35, "en"),
)


@dataclass(frozen=True, slots=True)
class ShopSize:
    """How big a shop to write; its key names the cached databases."""

    customers: int
    answers: int
    seed: int = SEED

    @property
    def key(self) -> str:
        """``c200000_a1000000_s11_v1``: the size, seed and data version, as part of a file or schema name."""
        return f"c{self.customers}_a{self.answers}_s{self.seed}_v{DATA_VERSION}"


@dataclass
class Rows:
    """One batch of rows per table, in the column order of :data:`COLUMNS`."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def add(self, table: str, **values: Any) -> None:
        self.rows.setdefault(table, []).append(tuple(values.get(name) for name in COLUMNS[table]))

    def count(self, table: str) -> int:
        return len(self.rows.get(table, ()))


@dataclass(slots=True)
class _Customer:
    """One customer's plan (their orders) and what the bot knows about them while their surveys run."""

    id: int
    purchases: list[datetime]
    telegram_id: int | None
    zone: str | None
    blocked_at: datetime | None
    stopped_at: datetime | None
    last_survey: datetime | None = None
    last_seen: datetime | None = None


@dataclass
class _Counters:
    """Running primary keys."""

    purchase: int = 0
    delivery: int = 0
    answer: int = 0
    case: int = 0
    event: int = 0
    outbox: int = 0


class Shop:
    """Generates the shop's rows up to :data:`NOW`, in batches of :data:`_BATCH` purchases."""

    def __init__(self, size: ShopSize, settings: Settings) -> None:
        self.size = size
        self.policy = settings.contact_policy
        self.survey_delay = settings.survey_delay
        self.reminder_after = settings.reminder_after
        self.expires_after = settings.survey_expires_after
        self.threshold = settings.negative_comment_threshold
        self.customers = _plan(size)
        self.counters = _Counters()
        self.response = 1.0  # the sample runs with the plain rates
        self.response = self._calibrate()
        self.last_seen: dict[int, datetime] = {}
        """Telegram users seen after their row was written (they answered): written at the end."""

    def _calibrate(self) -> float:
        """The factor on the response rates that gives about ``size.answers`` answers: a sample of the
        customers is run once without writing, and answers grow linearly with customers."""
        sample = self.customers[:: max(1, len(self.customers) // _SAMPLE)]
        answers = sum(batch.count("answers") for batch in self._run(sample, sample=True))
        if answers == 0:
            return 1.0
        wanted = self.size.answers / (len(self.customers) / len(sample))
        return min(wanted / answers, 0.97 / (_QUICK + _LATE))

    def batches(self) -> Iterator[Rows]:
        """Every row, parents first: the customers and their Telegram users, then purchases in time order
        with everything that followed each of them."""
        first = Rows()
        for customer in self.customers:
            self._customer(first, customer)
        yield first
        yield from self._run(self.customers, sample=False)

    def _run(self, customers: Sequence[_Customer], *, sample: bool) -> Iterator[Rows]:
        rng = random.Random(self.size.seed * 7919 + (1 if sample else 0))
        self.counters = _Counters()
        for customer in customers:
            customer.last_survey = None
            customer.last_seen = None
        order = sorted((moment, index) for index, c in enumerate(customers) for moment in c.purchases)
        rows = Rows()
        for done, (moment, index) in enumerate(order, start=1):
            self._purchase(rows, rng, customers[index], moment)
            if done % _BATCH == 0:
                yield rows
                rows = Rows()
        yield rows
        if not sample:
            self.last_seen = {
                c.telegram_id: c.last_seen
                for c in customers
                if c.telegram_id is not None and c.last_seen is not None
            }

    # -- rules, as the bot applies them -------------------------------------------------------------

    def morning(self, moment: datetime, zone: str | None) -> datetime:
        """``moment``, or the end of the quiet hours it falls in (the customer's zone, or the shop's)."""
        quiet = self.policy.quiet_hours
        if quiet is None:
            return moment
        return quiet.next_allowed(moment, ZoneInfo(zone) if zone else self.policy.zone)

    # -- rows ---------------------------------------------------------------------------------------

    def _customer(self, rows: Rows, customer: _Customer) -> None:
        times = customer.purchases
        gap = median_gap(times)
        if customer.telegram_id is not None:
            joined = max(times[0], BOT_SINCE) - timedelta(minutes=10)
            rows.add(
                "telegram_users",
                id=customer.telegram_id,
                first_name=f"Kunde {customer.id}",
                language_code="de" if customer.id % 5 else "en",
                has_started=True,
                opted_out_at=customer.stopped_at,
                blocked_at=customer.blocked_at,
                created_at=joined,
                last_seen_at=joined,
            )
        rows.add(
            "customers",
            id=customer.id,
            external_id=f"C-{customer.id}",
            name=f"Kunde {customer.id}",
            telegram_user_id=customer.telegram_id,
            created_at=times[0],
            time_zone=customer.zone,
            last_purchase_at=times[-1],
            median_purchase_gap_s=round(gap.total_seconds()) if gap is not None else None,
        )

    def _purchase(self, rows: Rows, rng: random.Random, customer: _Customer, purchased_at: datetime) -> None:
        counters = self.counters
        counters.purchase += 1
        purchase_id = counters.purchase
        imported = purchased_at < BOT_SINCE
        rows.add(
            "purchases",
            id=purchase_id,
            order_id=f"O-{purchase_id}",
            customer_id=customer.id,
            amount=round(rng.lognormvariate(3.6, 0.7), 2),
            currency="EUR",
            purchased_at=purchased_at,
            source="csv" if imported else "api",
            link_token=f"L{purchase_id:012d}",
            created_at=BOT_SINCE if imported else purchased_at,
        )
        if not imported:
            self._survey(rows, rng, customer, purchase_id, purchased_at)

    def _survey(
        self, rows: Rows, rng: random.Random, customer: _Customer, purchase_id: int, purchased_at: datetime
    ) -> None:
        """The purchase's survey and everything that followed it up to NOW."""
        counters = self.counters
        counters.delivery += 1
        delivery_id = counters.delivery
        delivery: dict[str, Any] = {
            "id": delivery_id,
            "purchase_id": purchase_id,
            "customer_id": customer.id,
            "survey_id": "post_purchase",
            "ask_seq": 0,
            "created_at": purchased_at,
        }
        due = purchased_at + self.survey_delay
        if due > NOW:
            rows.add("survey_deliveries", **delivery, status="scheduled", due_at=due)
            return
        if customer.telegram_id is None:  # nobody to ask: it waits for the customer to open the bot
            expires = due + self.expires_after
            if expires > NOW:
                delivery.update(status="awaiting_contact", expires_at=expires)
            else:
                delivery.update(status="expired", expires_at=expires, expired_at=expires)
            rows.add("survey_deliveries", **delivery, due_at=due)
            return
        reason = self._skip_reason(rng, customer, due)
        if reason is not None:
            self._event(rows, customer.id, delivery_id, "survey", "skipped", reason, due)
            rows.add("survey_deliveries", **delivery, status="skipped", due_at=due)
            return
        asked = self.morning(due, customer.zone)
        if asked > NOW:  # quiet hours moved it past the summary
            rows.add("survey_deliveries", **delivery, status="scheduled", due_at=asked)
            return
        customer.last_survey = asked
        expires = asked + self.expires_after
        language = "de" if customer.id % 5 else "en"
        delivery.update(due_at=due, started_at=asked, language=language, expires_at=expires)
        self._event(rows, customer.id, delivery_id, "survey", "sent", None, asked)
        chat = customer.telegram_id
        if customer.blocked_at is not None and customer.blocked_at <= asked:  # held: 403 blocked
            self._outbox(rows, f"ask:{delivery_id}:nps:1", "sendMessage", chat, delivery_id, asked, None)
            status = "expired" if expires <= NOW else "active"
            rows.add(
                "survey_deliveries",
                **{**delivery, "ask_seq": 1},
                status=status,
                current_question_id=None if status == "expired" else "nps",
                expired_at=expires if status == "expired" else None,
            )
            return
        seq = 1
        self._outbox(rows, f"ask:{delivery_id}:nps:{seq}", "sendMessage", chat, delivery_id, asked, asked)
        reminder = self.morning(asked + self.reminder_after, customer.zone)
        answered = self._answer_time(rng, asked, reminder, expires)
        if reminder <= NOW and (answered is None or answered > reminder):
            seq += 1
            delivery.update(reminded_at=reminder)
            self._event(rows, customer.id, delivery_id, "reminder", "sent", None, reminder)
            self._outbox(
                rows, f"ask:{delivery_id}:nps:{seq}", "sendMessage", chat, delivery_id, reminder, reminder
            )
        if answered is None or answered + timedelta(minutes=10) > NOW:
            status = "expired" if expires <= NOW else "active"
            rows.add(
                "survey_deliveries",
                **{**delivery, "ask_seq": seq},
                status=status,
                current_question_id=None if status == "expired" else "nps",
                expired_at=expires if status == "expired" else None,
            )
            return
        seq, last, open_question, category, score = self._answers(
            rows, rng, customer, delivery_id, answered, seq
        )
        customer.last_seen = last
        status = "completed" if open_question is None else ("expired" if expires <= NOW else "active")
        rows.add(
            "survey_deliveries",
            **{**delivery, "ask_seq": seq},
            status=status,
            nps_score=score,
            nps_category=category,
            completed_at=last if status == "completed" else None,
            current_question_id=open_question if status == "active" else None,
            expired_at=expires if status == "expired" else None,
        )

    def _skip_reason(self, rng: random.Random, customer: _Customer, due: datetime) -> str | None:
        """Why the contact rules did not send this survey, or None: it goes out."""
        if customer.stopped_at is not None and customer.stopped_at <= due:
            return "stopped"
        if customer.last_survey is not None and due - customer.last_survey < self.policy.survey_cooldown:
            return "cooldown"
        draw = rng.random()
        if draw < 0.01:
            return "weekly_cap"  # check-ins and reminders took this week's two unprompted messages
        if draw < 0.015:
            return "paused"
        return None

    def _answer_time(
        self, rng: random.Random, asked: datetime, reminder: datetime, expires: datetime
    ) -> datetime | None:
        """When the customer pressed a score, if they did before the survey expired."""
        draw = rng.random()
        if draw < _QUICK * self.response:
            answered = asked + timedelta(minutes=rng.uniform(2, 20 * 60))
        elif draw < (_QUICK + _LATE) * self.response:
            answered = reminder + timedelta(minutes=rng.uniform(2, 8 * 60))
        else:
            return None
        return answered if answered < expires else None

    def _answers(
        self,
        rows: Rows,
        rng: random.Random,
        customer: _Customer,
        delivery_id: int,
        at: datetime,
        seq: int,
    ) -> tuple[int, datetime, str | None, str, int]:
        """The NPS answer and the follow-ups of its category; returns how many questions were asked, the
        last answer's time, the question the customer stopped at (None: they finished), the category and
        the score."""
        category = _category(rng, at)
        score = rng.choice(_SCORES[category])
        self._answer(rows, delivery_id, "nps", "nps", at, score=score, nps_category=category)
        chat = customer.telegram_id
        if category == "critic":
            self._case(rows, rng, customer, delivery_id, "critic", at)
            follow_ups: tuple[str, ...] = ("reason", "comment")
        else:
            follow_ups = ("improve",) if category == "passive" else ("liked",)
        moment = last = at
        for question in follow_ups:
            seq += 1
            moment += timedelta(seconds=rng.uniform(1, 3))
            key = f"ask:{delivery_id}:{question}:{seq}"
            self._outbox(rows, key, "editMessageText", chat, delivery_id, moment, moment)
            draw = rng.random()
            if draw < 0.06:  # stopped answering: the survey stays open until it expires
                return seq, last, question, category, score
            moment += timedelta(seconds=rng.uniform(5, 240))
            if question == "reason":
                choice = rng.choices(_REASONS, weights=_reason_weights(at))[0]
                self._answer(rows, delivery_id, question, "choice", moment, choice=choice)
            elif question == "liked":
                choice = rng.choices(_LIKED, weights=_LIKED_WEIGHTS)[0]
                self._answer(rows, delivery_id, question, "choice", moment, choice=choice)
            elif draw < (0.6 if question == "comment" else 0.45):
                texts = _CRITIC_COMMENTS if question == "comment" else _PASSIVE_COMMENTS
                text, polarity, language = rng.choice(texts)
                if polarity is not None:
                    polarity = max(-1.0, min(1.0, polarity + rng.uniform(-0.15, 0.15)))
                self._answer(
                    rows,
                    delivery_id,
                    question,
                    "text",
                    moment,
                    text=text,
                    polarity=polarity,
                    sentiment=_sentiment(polarity),
                    text_language=language,
                )
                if category == "passive" and polarity is not None and polarity <= self.threshold:
                    self._case(rows, rng, customer, delivery_id, "negative_comment", moment)
            else:
                self._answer(rows, delivery_id, question, "text", moment, skipped=True)
            last = moment
        self._outbox(rows, f"thanks:{delivery_id}", "editMessageText", chat, delivery_id, moment, moment)
        return seq, last, None, category, score

    def _answer(
        self,
        rows: Rows,
        delivery_id: int,
        question_id: str,
        question_type: str,
        at: datetime,
        **values: Any,
    ) -> None:
        self.counters.answer += 1
        rows.add(
            "answers",
            id=self.counters.answer,
            delivery_id=delivery_id,
            question_id=question_id,
            question_type=question_type,
            skipped=values.pop("skipped", False),
            created_at=at,
            **values,
        )

    def _case(
        self,
        rows: Rows,
        rng: random.Random,
        customer: _Customer,
        delivery_id: int,
        kind: str,
        opened_at: datetime,
    ) -> None:
        """A case for staff: most resolved within hours to days, a few forgotten, the recovery question
        asked a day after Resolve and answered by most."""
        self.counters.case += 1
        case_id = self.counters.case
        case: dict[str, Any] = {
            "id": case_id,
            "customer_id": customer.id,
            "delivery_id": delivery_id,
            "kind": kind,
            "opened_at": opened_at,
            "card_version": 2,
            "card_stale": False,
            "awaiting_customer": False,
            "in_topic": False,
        }
        forgotten = rng.random() < 0.03
        resolved_at = opened_at + timedelta(hours=rng.lognormvariate(2.3, 1.0))
        if forgotten or resolved_at > NOW:
            taken = opened_at + timedelta(minutes=rng.uniform(5, 120))
            if taken <= NOW and rng.random() < 0.7:
                case.update(status="taken", taken_at=taken, assignee_id=42, assignee_name="Mia")
            else:
                case["status"] = "open"
            if opened_at + timedelta(hours=4) <= NOW and case["status"] == "open":
                case["escalated_untaken_at"] = opened_at + timedelta(hours=4)
        else:
            taken = opened_at + (resolved_at - opened_at) * rng.uniform(0.05, 0.5)
            case.update(
                status="resolved", taken_at=taken, resolved_at=resolved_at, resolution_note="Erledigt"
            )
            case.update(assignee_id=42, assignee_name="Mia", resolved_by_id=42, resolved_by_name="Mia")
            asked = resolved_at + timedelta(days=1)
            if asked <= NOW:
                case["recovery_asked_at"] = asked
                answered = asked + timedelta(hours=rng.uniform(0.5, 30))
                if rng.random() < 0.6 and answered <= NOW:
                    case.update(recovered=rng.random() < 0.75, recovery_answered_at=answered)
        rows.add("cases", **case)
        key = f"case:{case_id}"
        self._outbox(rows, key, "sendMessage", STAFF_CHAT, None, opened_at, opened_at, kind="case_card")

    def _event(
        self,
        rows: Rows,
        customer_id: int,
        delivery_id: int | None,
        kind: str,
        outcome: str,
        reason: str | None,
        at: datetime,
    ) -> None:
        self.counters.event += 1
        rows.add(
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
            outbox_key=f"ask:{delivery_id}:nps:1" if outcome == "sent" and kind == "survey" else None,
        )

    def _outbox(
        self,
        rows: Rows,
        key: str,
        method: str,
        chat_id: int | None,
        delivery_id: int | None,
        at: datetime,
        sent_at: datetime | None,
        *,
        kind: str | None = None,
    ) -> None:
        self.counters.outbox += 1
        if kind is None:
            kind = "survey_thanks" if key.startswith("thanks:") else "survey_question"
        rows.add(
            "outbox",
            id=self.counters.outbox,
            dedupe_key=key,
            kind=kind,
            method=method,
            chat_id=chat_id,
            payload=_PAYLOAD,
            delivery_id=delivery_id,
            status="sent" if sent_at is not None else "blocked",
            attempts=1,
            next_attempt_at=at,
            last_error=None if sent_at is not None else "Forbidden: bot was blocked by the user",
            sent_message_id=self.counters.outbox if sent_at is not None else None,
            created_at=at,
            sent_at=sent_at + timedelta(seconds=0.4) if sent_at is not None else None,
        )


_QUICK = 0.42
"""Share of customers who answer before the reminder (times the calibrated factor)."""
_LATE = 0.22
"""Share who answer after the reminder."""
_SCORES = {
    "critic": (0, 1, 2, 3, 3, 4, 5, 5, 6, 6, 6),
    "passive": (7, 7, 8, 8, 8),
    "promoter": (9, 9, 10),
}


def _category(rng: random.Random, at: datetime) -> str:
    """NPS category of an answer given at ``at``: about a fifth critics, with a slow drift over the year
    and a bad fortnight (a carrier's strike) three weeks before the summary, so the trend has a shape."""
    weeks_ago = (NOW - at) / _WEEK
    critics = 0.19 + 0.04 * math.sin(weeks_ago / 8)
    if 2 <= weeks_ago < 4:
        critics += 0.10
    draw = rng.random()
    if draw < critics:
        return "critic"
    return "passive" if draw < critics + 0.30 else "promoter"


def _reason_weights(at: datetime) -> tuple[int, ...]:
    """Critics name delivery far more often in the bad fortnight."""
    if 2 <= (NOW - at) / _WEEK < 4:
        return (12, 15, 10, 55, 3, 2, 3)
    return _REASON_WEIGHTS


def _sentiment(polarity: float | None) -> str | None:
    if polarity is None:
        return None
    return "negative" if polarity <= -0.1 else "positive" if polarity >= 0.1 else "neutral"


def _plan(size: ShopSize) -> list[_Customer]:
    """Every customer's orders over the two years, ids in the order they first bought."""
    rng = random.Random(size.seed)
    plans: list[tuple[list[datetime], str | None, float, float, float]] = []
    for _ in range(size.customers):
        first = NOW - HISTORY * rng.random()
        plans.append((_purchase_times(rng, first), None if rng.random() >= 0.1 else NEW_YORK, *_draws(rng)))
    plans.sort(key=lambda plan: plan[0][0])
    customers = []
    for number, (times, zone, telegram, blocked, stopped) in enumerate(plans, start=1):
        has_telegram = telegram < 0.9
        bot_span = (NOW - BOT_SINCE).total_seconds()
        customers.append(
            _Customer(
                id=number,
                purchases=times,
                telegram_id=10_000_000 + number if has_telegram else None,
                zone=zone,
                blocked_at=BOT_SINCE + timedelta(seconds=bot_span * blocked / 0.03)
                if has_telegram and blocked < 0.03
                else None,
                stopped_at=BOT_SINCE + timedelta(seconds=bot_span * stopped / 0.02)
                if has_telegram and stopped < 0.02
                else None,
            )
        )
    return customers


def _draws(rng: random.Random) -> tuple[float, float, float]:
    """Whether a customer has a Telegram user, blocked the bot, said /stop (uniform draws)."""
    return rng.random(), rng.random(), rng.random()


def _purchase_times(rng: random.Random, first: datetime) -> list[datetime]:
    """A fifth buy once; the others keep a rhythm of their own (weekly to quarterly), jittered, until they
    stop coming (a 2.5 % chance after every order) or NOW."""
    kind = rng.choices(("once", "occasional", "regular", "frequent"), weights=(20, 25, 33, 22))[0]
    times = [first]
    if kind == "once":
        return times
    gap_days = {"occasional": (60, 120), "regular": (20, 45), "frequent": (6, 14)}[kind]
    gap = timedelta(days=rng.uniform(*gap_days))
    while rng.random() >= 0.025:
        following = times[-1] + gap * rng.uniform(0.6, 1.4)
        if following >= NOW:
            break
        times.append(following)
    return times


# -- writing ---------------------------------------------------------------------------------------


class _Writer:
    """Bulk writes into one database over a raw DBAPI connection."""

    def __init__(self, engine: Engine) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        self.raw = engine.raw_connection()
        self.cursor = self.raw.cursor()
        if self.sqlite:
            self.cursor.execute("PRAGMA synchronous=OFF")
            self.cursor.execute("PRAGMA foreign_keys=OFF")  # the rows are consistent by construction
            self.cursor.execute("PRAGMA cache_size=-1000000")  # 1 GB: index inserts stay in memory

    def write(self, rows: Rows) -> None:
        if self.sqlite:
            self.cursor.execute("BEGIN")  # the engine's connections are in autocommit mode (storage/db.py)
        for table in TABLES:
            batch = rows.rows.get(table)
            if not batch:
                continue
            columns = COLUMNS[table]
            if self.sqlite:
                marks = ", ".join("?" for _ in columns)
                statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608  our names
                self.cursor.executemany(statement, [tuple(map(_sqlite_value, row)) for row in batch])
            else:
                with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
        self.raw.commit()

    def last_seen(self, seen: dict[int, datetime]) -> None:
        """Move the Telegram users' last_seen_at to their last answer (known only once it is generated)."""
        pairs = list(seen.items())
        if self.sqlite:
            self.cursor.execute("BEGIN")
            self.cursor.executemany(
                "UPDATE telegram_users SET last_seen_at = ? WHERE id = ?",
                [(_sqlite_value(at), user) for user, at in pairs],
            )
        else:
            self.cursor.execute("CREATE TEMP TABLE seen (id bigint PRIMARY KEY, at timestamptz)")
            with self.cursor.copy("COPY seen (id, at) FROM STDIN") as copy:
                for user, at in pairs:
                    copy.write_row((user, at))
            self.cursor.execute(
                "UPDATE telegram_users SET last_seen_at = seen.at FROM seen WHERE telegram_users.id = seen.id"
            )
            self.cursor.execute("DROP TABLE seen")
        self.raw.commit()

    def finish(self) -> None:
        if not self.sqlite:
            for table in TABLES:
                if table != "telegram_users":
                    sequence = f"pg_get_serial_sequence('{table}', 'id')"
                    self.cursor.execute(f"SELECT setval({sequence}, (SELECT MAX(id) FROM {table}))")  # noqa: S608
            self.raw.commit()
            # What autovacuum does on its own after a load like this (outside a transaction: VACUUM).
            self.raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            self.cursor.execute("VACUUM ANALYZE")
        self.raw.close()


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy stores on SQLite: UtcDateTime as text, booleans as integers."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def load(engines: Sequence[Engine], size: ShopSize, settings: Settings) -> dict[str, int]:
    """Generate the shop once and write it into every engine's (migrated, empty) database; return the
    row count per table."""
    shop = Shop(size, settings)
    writers = [_Writer(engine) for engine in engines]
    counts = dict.fromkeys(TABLES, 0)
    try:
        for rows in shop.batches():
            for table in TABLES:
                counts[table] += rows.count(table)
            for writer in writers:
                writer.write(rows)
        for writer in writers:
            writer.last_seen(shop.last_seen)
    finally:
        for writer in writers:
            writer.finish()
    return counts


def table_sizes(engine: Engine) -> dict[str, int]:
    """Rows per table, counted by the database."""
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()  # noqa: S608
            for table in TABLES
        }
