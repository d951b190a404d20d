"""Check-ins with customers who went quiet, end to end: by their own rhythm, once per silence, answered
with one tap; a question becomes a staff case and "not interested" ends check-ins.

The real bot over HTTP against the fake Bot API server, on SQLite and PostgreSQL; the bot's clock is
moved by the test (``MovableClock``) instead of sleeping. Purchases are reported at the real time, so a
moved clock puts them in the past.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from handlers.checkins import checkin_callback
from storage.models import Case, CaseEvent, Checkin, CheckinAnswer, Customer
from tests.e2e import STAFF_CHAT, MovableClock, RunningBot, button, local_time, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=8301, first_name="Anna", language_code="de")
ERIC = FakeUser(id=8302, first_name="Eric", language_code="en")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
CHECKIN_DE = "länger nichts von Ihnen gehört"
CHECKIN_EN = "haven't heard from you"


def _checkins_sent(env: RunningBot, user: FakeUser) -> list[dict[str, Any]]:
    """The check-in messages in the user's chat, as they are now."""
    return [
        m
        for m in env.api.messages_to(user.id)
        if CHECKIN_DE in str(m.get("text")) or CHECKIN_EN in str(m.get("text"))
    ]


async def _settle(env: RunningBot) -> None:
    await env.bot.worker.drain()
    await env.bot.sweep()
    await env.bot.sender.drain()


async def _promoter(env: RunningBot, user: FakeUser, order_id: str = "C-1") -> None:
    """The user buys, answers the survey to the end, and then says nothing more."""
    question = await env.customer_with_survey(user, order_id=order_id)
    env.api.user_presses_button(user, question, button(question, "10"))
    follow_up = await env.next_step(question)
    env.api.user_presses_button(
        user, follow_up, follow_up["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    )
    await env.next_step(follow_up)
    await _settle(env)


def _customer(env: RunningBot, user: FakeUser) -> Customer:
    with Session(env.engine) as session:
        return session.exec(select(Customer).where(Customer.external_id == f"cust-{user.id}")).one()


def _checkins(env: RunningBot) -> list[Checkin]:
    with Session(env.engine) as session:
        return list(session.exec(select(Checkin).order_by(col(Checkin.id))).all())


async def _quiet_until_checkin(env: RunningBot, clock: MovableClock, user: FakeUser) -> dict[str, Any]:
    """A one-time buyer says nothing for CHECKIN_AFTER (30 days): the check-in arrives; return it."""
    clock.advance(timedelta(days=30, minutes=5))
    await _settle(env)
    return await env.api.wait_for_message(
        user.id, lambda m: CHECKIN_DE in str(m.get("text")) or CHECKIN_EN in str(m.get("text"))
    )


class TestSilence:
    async def test_a_one_time_buyer_is_checked_in_with_after_checkin_after_once(
        self, database_url: str
    ) -> None:
        """Not after 29 days of silence; after 30 the check-in comes, with its three quick answers, and
        no second one follows while the customer stays silent."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            clock.advance(timedelta(days=29))
            await _settle(env)
            assert _checkins_sent(env, ANNA) == []
            message = await _quiet_until_checkin(env, clock, ANNA)
            labels = [row[0]["text"] for row in message["reply_markup"]["inline_keyboard"]]
            assert labels == ["Alles gut", "Ich habe eine Frage", "Kein Interesse mehr"]
            for _ in range(4):
                clock.advance(timedelta(days=20))
                await _settle(env)
            assert len(_checkins_sent(env, ANNA)) == 1
            assert [kind for kind, outcome, _ in env.contact_log() if outcome == "sent"] == [
                "survey",
                "checkin",
            ]

    async def test_a_repeat_buyer_is_silent_after_their_own_rhythm(self, database_url: str) -> None:
        """Orders 10 days apart: silent after 10 d × 1.5 = 15 days without an order, not after 30."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            now = datetime.now(UTC)
            # Newest first: reported oldest first, the first order alone (a one-time buyer, 40 days
            # ago) would already be silent when a sweep runs between two reports.
            for index, days_ago in enumerate((10, 20, 30, 40)):
                response = await env.report_purchase(
                    order_id=f"R-{index}",
                    customer_id=f"cust-{ANNA.id}",
                    telegram_user_id=ANNA.id,
                    purchased_at=(now - timedelta(days=days_ago)).isoformat(),
                )
                assert response.status_code == 201, response.text
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            await _settle(env)
            assert _customer(env, ANNA).median_purchase_gap_s == 10 * 86400
            # The /start counts as a word: silent 15 days after it (the last order is older).
            clock.advance(timedelta(days=14))
            await _settle(env)
            assert _checkins_sent(env, ANNA) == [], (env.contact_log(), _customer(env, ANNA))
            clock.advance(timedelta(days=1, minutes=20))
            await _settle(env)
            await env.api.wait_until(lambda: len(_checkins_sent(env, ANNA)) == 1)

    async def test_writing_to_the_bot_ends_a_silence(self, database_url: str) -> None:
        """A message on day 20 moves the check-in to 30 days after it, not after the purchase."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            clock.advance(timedelta(days=20))
            env.api.user_sends_text(ANNA, "/help")
            await env.api.wait_for_message(ANNA.id, lambda m: "/pause" in str(m.get("text")))
            clock.advance(timedelta(days=15))
            await _settle(env)
            assert _checkins_sent(env, ANNA) == []
            clock.advance(timedelta(days=15, minutes=20))
            await _settle(env)
            await env.api.wait_until(lambda: len(_checkins_sent(env, ANNA)) == 1)

    async def test_after_buying_again_and_going_quiet_again_the_next_checkin_comes(
        self, database_url: str
    ) -> None:
        """One check-in per silence: a new order starts a new one, which gets its own check-in."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            message = await _quiet_until_checkin(env, clock, ANNA)
            env.api.user_presses_button(ANNA, message, button(message, "Alles gut"))
            await env.api.wait_until(
                lambda: "✅ Alles gut" in str(env.api.messages_to(ANNA.id)[-1].get("text"))
            )
            clock.advance(timedelta(days=40))
            await _settle(env)
            assert len(_checkins_sent(env, ANNA)) == 1  # pressing "All good" is not a new word
            response = await env.report_purchase(
                order_id="C-2",
                customer_id=f"cust-{ANNA.id}",
                telegram_user_id=ANNA.id,
                purchased_at=clock.now.isoformat(),
            )
            assert response.status_code == 201
            await _settle(env)
            clock.advance(timedelta(days=80))  # the two orders are 70 days apart: silent after 105 days
            await _settle(env)
            assert len(_checkins_sent(env, ANNA)) == 1
            clock.advance(timedelta(days=30))
            await _settle(env)
            await env.api.wait_until(lambda: len(_checkins_sent(env, ANNA)) == 2)


class TestAnswers:
    async def test_a_question_becomes_a_staff_case_with_the_customers_message_in_it(
        self, database_url: str
    ) -> None:
        """ "I have a question": the check-in shows the answer and asks for the question; staff get a
        card with Take/Reply/Resolve; what the customer writes next goes into the case and the staff
        chat; staff's reply reaches the customer."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            message = await _quiet_until_checkin(env, clock, ANNA)
            env.api.user_presses_button(ANNA, message, button(message, "Ich habe eine Frage"))
            await env.api.wait_until(
                lambda: "Schreiben Sie Ihre Frage" in str(env.api.messages_to(ANNA.id)[-1].get("text"))
            )
            assert "reply_markup" not in env.api.messages_to(ANNA.id)[-1]
            await env.api.wait_until(lambda: len(env.api.messages_to(STAFF_CHAT)) >= 1)
            card = env.api.messages_to(STAFF_CHAT)[0]
            assert "Frage" in card["text"] and "Anna" in card["text"]
            with Session(env.engine) as session:
                case = session.exec(select(Case)).one()
                assert (case.kind, case.status, case.delivery_id) == ("question", "open", None)
            actions = [b["callback_data"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
            assert actions == [f"case:{case.id}:take", f"case:{case.id}:reply", f"case:{case.id}:resolve"]
            env.api.user_sends_text(ANNA, "Gibt es den Mantel auch in Blau?")
            await env.api.wait_until(
                lambda: any("Mantel auch in Blau" in text for text in env.api.sent_texts(STAFF_CHAT))
            )
            with Session(env.engine) as session:
                events = session.exec(select(CaseEvent.action).order_by(col(CaseEvent.id))).all()
                assert "customer_replied" in events
                (checkin,) = session.exec(select(Checkin)).all()
                assert (checkin.answer, checkin.case_id) == ("question", case.id)

    async def test_not_interested_stops_further_checkins(self, database_url: str) -> None:
        """ "Not interested": no check-in ever again, even after the customer writes and buys again and
        goes quiet for much longer; surveys after a purchase still come."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            message = await _quiet_until_checkin(env, clock, ANNA)
            env.api.user_presses_button(ANNA, message, button(message, "Kein Interesse mehr"))
            await env.api.wait_until(
                lambda: "wir fragen nicht mehr nach" in str(env.api.messages_to(ANNA.id)[-1].get("text"))
            )
            assert _customer(env, ANNA).checkins_stopped_at is not None
            env.api.user_sends_text(ANNA, "/help")
            await env.api.wait_for_message(ANNA.id, lambda m: "/pause" in str(m.get("text")))
            response = await env.report_purchase(
                order_id="C-2",
                customer_id=f"cust-{ANNA.id}",
                telegram_user_id=ANNA.id,
                purchased_at=clock.now.isoformat(),
            )
            assert response.status_code == 201
            await _settle(env)
            await env.api.wait_until(
                lambda: any("weiterempfehlen" in t for t in env.api.sent_texts(ANNA.id)[-2:])
            )
            for _ in range(6):
                clock.advance(timedelta(days=30))
                await _settle(env)
            assert len(_checkins_sent(env, ANNA)) == 1

    async def test_presses_that_are_not_the_customers_or_come_twice_change_nothing(
        self, database_url: str
    ) -> None:
        """A second press is thanked and records nothing new; another user's press and forged data are
        refused."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            message = await _quiet_until_checkin(env, clock, ANNA)
            (checkin,) = _checkins(env)
            assert checkin.id is not None
            base = len(env.api.callback_answers)  # the survey's presses
            env.api.user_presses_button(ANNA, message, button(message, "Alles gut"))
            await env.api.wait_until(lambda: len(env.api.callback_answers) == base + 1)
            env.api.user_presses_button(
                ANNA,
                message,
                checkin_callback(checkin.id, CheckinAnswer.NOT_INTERESTED),
                require_button=False,
            )
            await env.api.wait_until(lambda: len(env.api.callback_answers) == base + 2)
            assert "schon geantwortet" in str(env.api.callback_answers[-1].get("text"))
            env.api.user_presses_button(
                ERIC, message, checkin_callback(checkin.id, CheckinAnswer.QUESTION), require_button=False
            )
            env.api.user_presses_button(ANNA, message, "ci:99999999:question", require_button=False)
            env.api.user_presses_button(ANNA, message, f"ci:{checkin.id}:everything", require_button=False)
            await env.api.wait_until(lambda: len(env.api.callback_answers) == base + 5)
            refusals = [str(answer.get("text")) for answer in env.api.callback_answers[base + 2 :]]
            assert sorted(refusals) == sorted(
                ["This button is not meant for you."] + ["Diese Schaltfläche ist nicht mehr gültig."] * 2
            ), refusals
            assert (_checkins(env)[0].answer, _customer(env, ANNA).checkins_stopped_at) == ("all_good", None)
            with Session(env.engine) as session:
                assert session.exec(select(Case)).all() == []


class TestRespect:
    async def test_a_checkin_due_at_night_waits_for_the_morning(self, database_url: str) -> None:
        """QUIET_HOURS 21:00-09:00: silent at 23:00 in Berlin, the check-in is postponed with that reason
        and goes out at 09:00."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="21:00-09:00") as env:
            clock.move_to(local_time(clock.now + timedelta(days=1), BERLIN, 12))
            await _promoter(env, ANNA)
            night = local_time(clock.now + timedelta(days=30), BERLIN, 23)
            clock.move_to(night)
            await _settle(env)
            assert _checkins_sent(env, ANNA) == []
            assert env.contact_log()[-1] == ("checkin", "postponed", "quiet_hours")
            clock.move_to(local_time(night + timedelta(hours=9), BERLIN, 8, 59))
            await _settle(env)
            assert _checkins_sent(env, ANNA) == []
            clock.move_to(local_time(night + timedelta(hours=9), BERLIN, 9, 0))
            await _settle(env)
            await env.api.wait_until(lambda: len(_checkins_sent(env, ANNA)) == 1)

    async def test_a_customer_in_another_zone_keeps_their_own_night(self, database_url: str) -> None:
        """Eric lives in New York (the shop says so): 14:00 in Berlin is 08:00 for him, so his check-in
        waits until 09:00 New York time, 15:00 in Berlin; it is in English, his Telegram language."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="21:00-09:00") as env:
            clock.move_to(local_time(clock.now + timedelta(days=1), NEW_YORK, 12))
            env.api.user_sends_text(ERIC, "/start")
            await env.api.wait_for_message(ERIC.id)
            response = await env.report_purchase(
                order_id="E-1",
                customer_id=f"cust-{ERIC.id}",
                telegram_user_id=ERIC.id,
                time_zone="America/New_York",
            )
            assert response.status_code == 201, response.text
            await env.api.wait_for_message(ERIC.id, lambda m: "reply_markup" in m)
            await _settle(env)
            assert _customer(env, ERIC).time_zone == "America/New_York"
            morning = local_time(clock.now + timedelta(days=31), NEW_YORK, 8)
            clock.move_to(morning)
            await _settle(env)
            assert _checkins_sent(env, ERIC) == []
            assert env.contact_log()[-1] == ("checkin", "postponed", "quiet_hours")
            clock.move_to(local_time(morning, NEW_YORK, 9, 0))
            await _settle(env)
            await env.api.wait_until(lambda: len(_checkins_sent(env, ERIC)) == 1)
            assert CHECKIN_EN in str(_checkins_sent(env, ERIC)[0]["text"])

    async def test_a_paused_customer_is_checked_in_with_when_the_pause_ends(self, database_url: str) -> None:
        """/pause 60d before going silent: the check-in is skipped as "paused" and comes after the end."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            env.api.user_sends_text(ANNA, "/pause 60d")
            await env.api.wait_for_message(ANNA.id, lambda m: "bis zum" in str(m.get("text")))
            clock.advance(timedelta(days=31))
            await _settle(env)
            assert _checkins_sent(env, ANNA) == []
            assert env.contact_log()[-1] == ("checkin", "skipped", "paused")
            clock.advance(timedelta(days=30))
            await _settle(env)
            await env.api.wait_until(lambda: len(_checkins_sent(env, ANNA)) == 1)

    async def test_no_checkin_after_stop(self, database_url: str) -> None:
        """/stop: the silence is skipped as "stopped", once, and nothing is sent."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await _promoter(env, ANNA)
            env.api.user_sends_text(ANNA, "/stop")
            await env.api.wait_for_message(ANNA.id, lambda m: "keine Umfragen" in str(m.get("text")))
            for _ in range(4):
                clock.advance(timedelta(days=31))
                await _settle(env)
            assert _checkins_sent(env, ANNA) == []
            assert [e for e in env.contact_log() if e[0] == "checkin"] == [("checkin", "skipped", "stopped")]
