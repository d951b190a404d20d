"""Claiming the outbox: every limit holds, no chat holds up another, in-flight changes are respected."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage import outbox
from storage.db import create_db_engine, unit_of_work
from storage.models import OutboxMessage, OutboxStatus, utcnow
from storage.outbox import OutboundCall, SendOutcome
from storage.pacing import Pace, bot_pace

GROUP = -100777
LEASE = timedelta(seconds=30)
HORIZON = timedelta(milliseconds=250)
FAST = bot_pace(1000)


def _queue(engine: Engine, chat_id: int, count: int, *, prefix: str = "m", kind: str = "reply") -> list[int]:
    with unit_of_work(engine) as session:
        for n in range(count):
            outbox.enqueue(
                session,
                OutboundCall(
                    dedupe_key=f"{prefix}:{chat_id}:{n}",
                    kind=kind,
                    method="sendMessage",
                    chat_id=chat_id,
                    payload={"text": f"{n}", "reply_markup": {"inline_keyboard": []}},
                ),
                now=utcnow() - timedelta(seconds=1),
            )
        session.flush()
        rows = session.exec(
            select(OutboxMessage.id).where(OutboxMessage.dedupe_key.startswith(f"{prefix}:{chat_id}:"))  # type: ignore[union-attr]
        ).all()
        return sorted(int(i) for i in rows if i is not None)


def _claim(
    engine: Engine, *, owner: str = "a", now: datetime | None = None, bot: Pace = FAST
) -> outbox.Claim:
    with unit_of_work(engine) as session:
        return outbox.claim_due(
            session, owner=owner, now=now or utcnow(), lease=LEASE, horizon=HORIZON, bot=bot
        )


def _sent(engine: Engine, claim: outbox.Claim, owner: str = "a") -> None:
    with unit_of_work(engine) as session:
        outbox.record_outcomes(
            session,
            [
                SendOutcome(
                    row_id=int(c.row.id or 0),
                    chat_id=int(c.row.chat_id or 0),
                    status=OutboxStatus.SENT,
                    message_id=7,
                )
                for c in claim.calls
            ],
            owner=owner,
            now=utcnow(),
        )


def _status(engine: Engine, row_id: int) -> OutboxMessage:
    with Session(engine) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        return row


class TestOrderAndPace:
    def test_a_chat_gets_at_most_its_burst_and_in_queue_order(self, engine: Engine) -> None:
        """Five rows for one private chat: the first three go now, in order; the rest wait for the pace."""
        ids = _queue(engine, 42, 5)
        claim = _claim(engine)
        assert [c.row.id for c in claim.calls] == ids[:3]
        _sent(engine, claim)
        paced = _claim(engine)
        assert paced.calls == []
        assert paced.retry_at is not None and paced.retry_at > utcnow()  # when the chat's pace allows

    def test_a_chat_busy_in_flight_offers_nothing_to_a_second_sender(self, engine: Engine) -> None:
        """While one sender holds a chat's rows, another sender gets none of that chat's later rows."""
        _queue(engine, 42, 2)
        first = _claim(engine, owner="a")
        assert len(first.calls) == 2
        _queue(engine, 42, 1, prefix="later")
        assert _claim(engine, owner="b").calls == []

    def test_a_row_waiting_for_its_retry_holds_back_its_chat_only(self, engine: Engine) -> None:
        """A chat whose oldest row backs off sends nothing after it; other chats are served."""
        ids = _queue(engine, 42, 2)
        other = _queue(engine, 43, 1)
        claim = _claim(engine)
        with unit_of_work(engine) as session:
            outbox.record_outcomes(
                session,
                [
                    SendOutcome(
                        row_id=ids[0],
                        chat_id=42,
                        status=OutboxStatus.PENDING,
                        next_attempt_at=utcnow() + timedelta(minutes=5),
                        error="502",
                    ),
                    SendOutcome(row_id=ids[1], chat_id=42, status=OutboxStatus.PENDING, count_attempt=False),
                    SendOutcome(row_id=other[0], chat_id=43, status=OutboxStatus.SENT, message_id=1),
                ],
                owner="a",
                now=utcnow(),
            )
        assert len(claim.calls) == 3
        more = _queue(engine, 43, 1, prefix="more")
        claimed = [c.row.id for c in _claim(engine).calls]
        assert claimed == more  # chat 43 goes on; chat 42's second row does not overtake its first

    def test_a_group_at_its_limit_never_delays_private_chats(self, engine: Engine) -> None:
        """A staff group with a long queue gets its burst; every customer behind it is still claimed."""
        _queue(engine, GROUP, 40, prefix="alert")
        customers = [_queue(engine, 1000 + n, 1)[0] for n in range(30)]
        claim = _claim(engine)
        group_calls = [c for c in claim.calls if c.row.chat_id == GROUP]
        assert len(group_calls) == 3
        assert {c.row.id for c in claim.calls} >= set(customers)
        _sent(engine, claim)
        later = _queue(engine, 2000, 1, prefix="late")
        assert [c.row.id for c in _claim(engine).calls] == later  # the group waits for its pace


class TestBotBudget:
    def test_the_bot_rate_spaces_calls_across_chats(self, engine: Engine) -> None:
        """At 10 messages a second, a claim plans two at once (the burst) and then one per 0.1 s."""
        for n in range(20):
            _queue(engine, 500 + n, 1)
        now = utcnow()
        claim = _claim(engine, now=now, bot=bot_pace(10))
        offsets = [round((c.send_at - now).total_seconds(), 3) for c in claim.calls]
        assert offsets == [0.0, 0.0, 0.1, 0.2]
        assert claim.retry_at is not None

    def test_senders_on_two_engines_share_one_budget(self, engine: Engine) -> None:
        """Two processes claiming at once together plan no more than one bot's rate allows."""
        for n in range(60):
            _queue(engine, 600 + n, 1)
        url = engine.url.render_as_string(hide_password=False)
        replicas = [create_db_engine(url) for _ in range(2)]
        pace = bot_pace(20)
        now = utcnow()
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                claims = list(
                    pool.map(
                        lambda args: _claim(args[0], owner=args[1], now=now, bot=pace),
                        [(replicas[0], "a"), (replicas[1], "b")],
                    )
                )
        finally:
            for replica in replicas:
                replica.dispose()
        moments = sorted(c.send_at for claim in claims for c in claim.calls)
        ids = [c.row.id for claim in claims for c in claim.calls]
        assert len(ids) == len(set(ids))
        # burst 4, then one per 50 ms within the 250 ms horizon: 4 + 5 at most, however they interleave
        assert 1 <= len(moments) <= 9
        assert all(b - a >= timedelta(milliseconds=49) for a, b in itertools.pairwise(moments[3:]))

    def test_a_429_pauses_every_claim_until_it_ends(self, engine: Engine) -> None:
        """After a 429 nothing is claimed by anyone until ``retry_after`` has passed, and it is counted."""
        _queue(engine, 42, 1)
        now = utcnow()
        with unit_of_work(engine) as session:
            outbox.pause_bot(session, until=now + timedelta(seconds=5), now=now)
        paused = _claim(engine, now=now + timedelta(seconds=1))
        assert paused.calls == [] and paused.paused_until == now + timedelta(seconds=5)
        assert len(_claim(engine, now=now + timedelta(seconds=6)).calls) == 1
        with Session(engine) as session:
            budget = outbox.bot_budget(session)
            assert budget is not None and budget.throttled_total == 1


class TestOutcomes:
    def test_a_row_cancelled_in_flight_stays_cancelled_when_its_send_fails(self, engine: Engine) -> None:
        """/stop cancels a question while it is being sent; the failed send does not bring it back."""
        (row_id,) = _queue(engine, 42, 1, kind="survey_question")
        claim = _claim(engine)
        assert [c.row.id for c in claim.calls] == [row_id]
        with unit_of_work(engine) as session:
            outbox.cancel_chat(session, 42, kinds=("survey_question",))
        with unit_of_work(engine) as session:
            outbox.record_outcomes(
                session,
                [
                    SendOutcome(
                        row_id=row_id,
                        chat_id=42,
                        status=OutboxStatus.PENDING,
                        next_attempt_at=utcnow(),
                        error="502",
                    )
                ],
                owner="a",
                now=utcnow(),
            )
        assert _status(engine, row_id).status == OutboxStatus.CANCELLED.value
        assert _claim(engine).calls == []

    def test_a_cancelled_row_that_went_out_anyway_loses_its_buttons(self, engine: Engine) -> None:
        """A question cancelled while its call succeeded is recorded as sent and its keyboard removed."""
        (row_id,) = _queue(engine, 42, 1, kind="survey_question")
        claim = _claim(engine)
        with unit_of_work(engine) as session:
            outbox.cancel_chat(session, 42, kinds=("survey_question",))
        _sent(engine, claim)
        row = _status(engine, row_id)
        assert (row.status, row.sent_message_id) == (OutboxStatus.CANCELLED.value, 7)
        (disarm,) = [c.row for c in _claim(engine).calls]
        assert (disarm.method, disarm.payload) == ("editMessageReplyMarkup", {"message_id": 7})

    def test_a_migrated_group_takes_its_queue_along(self, engine: Engine) -> None:
        """When a group becomes a supergroup, every unsent row follows the new chat id."""
        ids = _queue(engine, GROUP, 3)
        with unit_of_work(engine) as session:
            moved = outbox.follow_migration(session, GROUP, -100888, now=utcnow())
            assert outbox.migrations(session) == {GROUP: -100888}
        assert moved == 3
        assert {_status(engine, i).chat_id for i in ids} == {-100888}

    def test_an_unreachable_chat_is_remembered_until_a_send_succeeds(self, engine: Engine) -> None:
        """A refusing staff chat is marked unreachable; the next successful send clears it."""
        (row_id,) = _queue(engine, GROUP, 1, kind="staff_alert")
        _claim(engine)
        with unit_of_work(engine) as session:
            outbox.record_outcomes(
                session,
                [
                    SendOutcome(
                        row_id=row_id,
                        chat_id=GROUP,
                        status=OutboxStatus.PENDING,
                        next_attempt_at=utcnow(),
                        error="Forbidden: bot was kicked",
                        chat_unreachable=True,
                    )
                ],
                owner="a",
                now=utcnow(),
            )
        with Session(engine) as session:
            state = outbox.chat_state(session, GROUP)
            assert state is not None and state.unreachable_since is not None
            assert outbox.queued_for(session, GROUP) == 1
        assert _status(engine, row_id).status == OutboxStatus.PENDING.value
        claim = _claim(engine, now=utcnow() + timedelta(seconds=5))
        assert [c.chat_unreachable for c in claim.calls] == [True]
        with unit_of_work(engine) as session:
            outbox.record_outcomes(
                session,
                [
                    SendOutcome(
                        row_id=row_id,
                        chat_id=GROUP,
                        status=OutboxStatus.SENT,
                        message_id=9,
                        chat_reached=True,
                    )
                ],
                owner="a",
                now=utcnow(),
            )
        with Session(engine) as session:
            state = outbox.chat_state(session, GROUP)
            assert state is not None and state.unreachable_since is None
