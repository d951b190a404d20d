"""Critics faster than the staff group's pace: waiting cards are merged, each case keeps its own buttons."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from bot.settings import Settings
from handlers.case_card import case_callback_data
from storage.models import Case, Customer
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser, FloodLimits

CRITICS = [FakeUser(id=9400 + n, first_name=f"Kundin {n} <b>&", language_code="de") for n in range(12)]
MIA = FakeUser(id=9201, first_name="Mia", last_name="Service", language_code="de")
SHIPPED_SEND_RATE = Settings.model_fields["send_rate"].default


def _case_ids(env: RunningBot) -> dict[int, int]:
    """Case id by the customer's Telegram user id."""
    with Session(env.engine) as session:
        rows = session.exec(
            select(Case.id, Customer.telegram_user_id)
            .join(Customer, col(Customer.id) == Case.customer_id)
            .order_by(col(Case.id))
        ).all()
        return {int(user): int(case_id) for case_id, user in rows if case_id and user}


def _shows(message: dict[str, Any], case_id: int) -> bool:
    return re.search(rf"#{case_id}\b", str(message.get("text", ""))) is not None


def _buttons(message: dict[str, Any]) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [str(b["callback_data"]) for row in rows for b in row]


def _current(env: RunningBot, message_id: int) -> dict[str, Any]:
    return next(m for m in env.api.messages_to(STAFF_CHAT) if m["message_id"] == message_id)


def _case(env: RunningBot, case_id: int) -> Case:
    with Session(env.engine) as session:
        found = session.get(Case, case_id)
        assert found is not None
        return found


class TestMergedCards:
    async def test_critics_faster_than_the_group_pace_share_messages_each_with_its_own_buttons(
        self, database_url: str
    ) -> None:
        """12 critics at once: fewer messages than cases, every case visible, each message within
        Telegram's limits, names escaped; Take and Reply on a shared message act on their own case only."""
        async with running_bot(
            database_url, limits=FloodLimits.telegram(), send_rate=SHIPPED_SEND_RATE
        ) as env:
            questions = [await env.customer_with_survey(u, order_id=f"B-{n}") for n, u in enumerate(CRITICS)]
            for user, question in zip(CRITICS, questions, strict=True):
                env.api.user_presses_button(user, question, button(question, "2"))
            await env.api.wait_until(lambda: len(_case_ids(env)) == len(CRITICS), timeout=30)
            ids = _case_ids(env)
            await env.api.wait_until(
                lambda: all(any(_shows(m, i) for m in env.api.messages_to(STAFF_CHAT)) for i in ids.values()),
                timeout=60,
            )
            messages = env.api.messages_to(STAFF_CHAT)
            assert len(messages) < len(CRITICS)
            for case_id in ids.values():  # each case in exactly one message
                assert sum(_shows(m, case_id) for m in messages) == 1
            for message in messages:
                assert len(message["text"]) <= 4096
            for user in CRITICS:  # a customer's markup shows as typed
                assert any(user.first_name in m["text"] for m in messages)
            shared = [m for m in messages if "neue Fälle" in m["text"]]
            assert shared
            message = shared[0]
            members = [i for i in ids.values() if case_callback_data(i, "take") in _buttons(message)]
            assert len(members) >= 2 and all(_shows(message, i) for i in members)
            first, second = members[0], members[1]

            env.api.user_presses_button(MIA, message, case_callback_data(first, "take"))
            await env.api.wait_until(
                lambda: "übernommen von Mia Service" in _current(env, message["message_id"])["text"],
                timeout=30,
            )
            assert _case(env, first).assignee_id == MIA.id
            assert _case(env, second).status == "open"
            assert case_callback_data(first, "take") not in _buttons(_current(env, message["message_id"]))
            assert case_callback_data(second, "take") in _buttons(_current(env, message["message_id"]))

            outsider = next(i for i in ids.values() if i not in members)
            env.api.user_presses_button(
                MIA, message, case_callback_data(outsider, "take"), require_button=False
            )
            await env.api.wait_until(
                lambda: any(a.get("text") == "Diesen Fall gibt es nicht." for a in env.api.callback_answers)
            )
            assert _case(env, outsider).status == "open"

            env.api.user_presses_button(MIA, message, case_callback_data(second, "reply"))
            await env.api.wait_until(
                lambda: "antwortet" in _current(env, message["message_id"])["text"], timeout=30
            )
            env.api.user_writes_in_group(
                MIA, STAFF_CHAT, "Wir melden uns heute!", reply_to=_current(env, message["message_id"])
            )
            customer = next(user for user, case_id in ids.items() if case_id == second)
            await env.api.wait_for_message(customer, lambda m: "melden uns heute" in m["text"], timeout=30)
            others = [u.id for u in CRITICS if u.id != customer]
            assert not any("melden uns heute" in m["text"] for u in others for m in env.api.messages_to(u))
