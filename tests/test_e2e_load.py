"""Telegram's real limits, under a real shop's load: with the shipped defaults nothing waits on anything else.

The fake Bot API server enforces Telegram's flood limits here (1/s per private chat with a burst of 4,
20/min per group, 30/s overall) and answers 429 like Telegram. The bot runs with its shipped SEND_RATE.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from sqlmodel import Session, func, select

from bot.settings import Settings
from storage.models import Answer, Case, OutboxMessage, SurveyDelivery
from storage.outbox import KIND_CASE_EDIT
from tests.e2e import STAFF_CHAT, RunningBot, running_bot
from tests.fakes.bot_api_server import FakeUser, FloodLimits, RecordedRequest

SHIPPED_SEND_RATE = Settings.model_fields["send_rate"].default
CUSTOMERS = 300
CRITICS = 200
WAIT = 240.0  # a generous deadline that fails with a summary; the run itself takes well under it


def _customers() -> list[tuple[FakeUser, int]]:
    """300 customers: the first 200 critics (0-6), then passives (7-8) and promoters (9-10)."""
    plan = []
    for n in range(CUSTOMERS):
        user = FakeUser(id=700_000 + n, first_name=f"Kunde {n}", language_code="de" if n % 2 else "en")
        if n < CRITICS:
            score = n % 7
        elif n % 2:
            score = 7 + n % 2
        else:
            score = 9 + n % 2
        plan.append((user, score))
    return plan


def _survey_message(env: RunningBot, chat_id: int) -> dict[str, Any] | None:
    """The customer's survey message as it is now (steps are edited into it)."""
    for message in env.api.messages_to(chat_id):
        if message.get("reply_markup") or "✅" in message.get("text", ""):
            return message
    return None


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [key for row in message.get("reply_markup", {}).get("inline_keyboard", []) for key in row]


def _most_in_a_minute(requests: list[RecordedRequest]) -> int:
    times = sorted(r.time for r in requests)
    return max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)


@pytest.mark.e2e
class TestCriticBurst:
    async def test_300_customers_answer_at_once_and_staff_alerts_never_hold_up_a_survey(
        self, database_url: str
    ) -> None:
        """200 critics and 100 others answer together: every survey completes at the bot's pace, the staff
        group gets its alerts at 20 a minute meanwhile, and there is not one 429 and nothing doubled."""
        plan = _customers()
        async with running_bot(
            database_url, limits=FloodLimits.telegram(), send_rate=SHIPPED_SEND_RATE
        ) as env:
            for n, (user, _score) in enumerate(plan):
                response = await env.report_purchase(
                    order_id=f"L-{n}", customer_id=f"c-{n}", telegram_user_id=user.id, name=user.first_name
                )
                assert response.status_code == 201, response.text
            await env.bot.sweep()
            await env.api.wait_until(
                lambda: all(_survey_message(env, u.id) is not None for u, _ in plan), timeout=WAIT
            )
            questions = {u.id: _survey_message(env, u.id) for u, _ in plan}

            # Everyone presses a score at once.
            for user, score in plan:
                message = questions[user.id]
                assert message is not None
                choice = next(k for k in _buttons(message) if k["text"] == str(score))
                env.api.user_presses_button(user, message, choice["callback_data"])
            pressed_under = {u.id: str(questions[u.id]["text"]) for u, _ in plan}  # type: ignore[index]

            # Then each answers whatever comes next (the first offered option, or Skip) until thanked.
            def advance() -> bool:
                done = True
                for user, _score in plan:
                    message = _survey_message(env, user.id)
                    assert message is not None
                    keys = _buttons(message)
                    if not keys:
                        continue  # thanked: the survey message no longer asks anything
                    done = False
                    if message["text"] != pressed_under[user.id]:
                        env.api.user_presses_button(user, message, keys[0]["callback_data"])
                        pressed_under[user.id] = message["text"]
                return done

            await env.api.wait_until(advance, timeout=WAIT)
            with Session(env.engine) as session:
                case_ids = [int(i) for i in session.exec(select(Case.id)).all() if i is not None]
            await env.api.wait_until(lambda: not _unseen(env, case_ids), timeout=WAIT)
            seen_at = _first_seen(env, case_ids)
            steps_done_at = max(r.time for r in env.api.requests if r.params.get("chat_id") != STAFF_CHAT)
            staff_by_then = [
                r
                for r in env.api.requests_for("sendMessage")
                if r.params.get("chat_id") == STAFF_CHAT and r.status == 200 and r.time <= steps_done_at
            ]

            with Session(env.engine) as session:
                statuses = Counter(session.exec(select(SurveyDelivery.status)).all())
                answers = session.exec(select(func.count()).select_from(Answer)).one()
                staff_rows = session.exec(
                    select(
                        OutboxMessage.id, OutboxMessage.dedupe_key, OutboxMessage.kind, OutboxMessage.status
                    ).where(OutboxMessage.chat_id == STAFF_CHAT)
                ).all()

        assert statuses == {"completed": CUSTOMERS}
        # NPS for all; reason and comment for critics; one follow-up for the others.
        assert answers == CUSTOMERS + 2 * CRITICS + (CUSTOMERS - CRITICS)
        assert env.api.throttled == []
        assert [r for r in env.api.requests if r.status == 429] == []
        # Alerts went out at the group's pace and never first: most were still queued when the last
        # customer was thanked, and none was lost or failed (an edit replaced by a newer one is not lost).
        assert _most_in_a_minute(staff_by_then) <= 20
        assert len(staff_by_then) < CRITICS / 2
        assert {status for _, _, _, status in staff_rows} <= {"pending", "sent", "cancelled"}
        assert _superseded_edits_only(staff_rows)
        # Every critic's case was in the staff chat within two minutes of the group's pace (20 calls a
        # minute, so at most 40 staff-chat calls up to the last case's first showing): cards were merged.
        assert len(case_ids) == CRITICS
        last_seen = max(seen_at.values())
        staff_calls = [
            r
            for r in env.api.requests
            if r.params.get("chat_id") == STAFF_CHAT and r.status == 200 and r.time <= last_seen
        ]
        assert len(staff_calls) <= 40
        assert len(
            [r for r in env.api.requests_for("sendMessage") if r.params.get("chat_id") == STAFF_CHAT]
        ) < (CRITICS / 4)
        delivered = [m["text"] for m in env.api.messages_to(STAFF_CHAT)]
        assert len(delivered) == len(set(delivered))
        # Each customer's survey message was edited in place once per step, never twice for the same step.
        edits = Counter(
            (r.params.get("chat_id"), r.params.get("text"))
            for r in env.api.requests_for("editMessageText")
            if r.status == 200
        )
        assert max(edits.values()) == 1
        assert not list(itertools.islice(env.api.violations, 1))


def _superseded_edits_only(rows: Sequence[tuple[int | None, str, str, str]]) -> bool:
    """Whether every cancelled staff row is an edit of a card that a later edit of it replaced.

    A card that changed twice before its first edit went out needs only the newest edit: the older one is
    cancelled, not lost. A cancelled card, alert, or a card's last edit would be a case staff never see.
    """
    last_edit: dict[str, tuple[int, str]] = {}
    for row_id, key, kind, status in rows:
        if kind == KIND_CASE_EDIT and row_id is not None:
            card = key.split(":edit:")[0]
            if card not in last_edit or last_edit[card][0] < row_id:
                last_edit[card] = (row_id, status)
    for row_id, key, kind, status in rows:
        if status != "cancelled":
            continue
        if kind != KIND_CASE_EDIT:
            return False
        newest_id, newest_status = last_edit[key.split(":edit:")[0]]
        if newest_id == row_id or newest_status == "cancelled":
            return False
    return True


def _first_seen(env: RunningBot, case_ids: list[int]) -> dict[int, float]:
    """When each case first showed in the staff chat (a card or a shared message, sent or edited)."""
    seen: dict[int, float] = {}
    for request in env.api.requests:
        if request.params.get("chat_id") != STAFF_CHAT or request.status != 200:
            continue
        text = str(request.params.get("text", ""))
        for case_id in re.findall(r"#(\d+)\b", text):
            seen.setdefault(int(case_id), request.time)
    return {case_id: seen[case_id] for case_id in case_ids if case_id in seen}


def _unseen(env: RunningBot, case_ids: list[int]) -> list[int]:
    seen = _first_seen(env, case_ids)
    return [case_id for case_id in case_ids if case_id not in seen]


class TestPurchaseBurst:
    async def test_requests_made_while_a_sweep_runs_are_covered_by_one_more_sweep(
        self, database_url: str
    ) -> None:
        """Every purchase asks for a sweep; those asked for while one runs wait as one sweep, not one each
        (500 purchases once queued 500 sweeps that took the database lock from the customers' answers)."""
        async with running_bot(database_url, sweep_interval="1h") as env:
            before = env.bot.sweeps_run
            async with env.bot._sweep_lock:  # a sweep is running
                for _ in range(20):
                    env.bot.request_sweep()
                    await asyncio.sleep(0.02)  # the requested sweep's job starts and waits for the lock
            await env.api.wait_until(lambda: env.bot.sweeps_run > before, timeout=10)
            await asyncio.sleep(0.3)
            assert env.bot.sweeps_run - before == 1
            env.bot.request_sweep()  # a request after it ran gets a sweep of its own
            await env.api.wait_until(lambda: env.bot.sweeps_run > before + 1, timeout=10)
