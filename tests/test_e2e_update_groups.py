"""Updates that arrive together share a transaction, and one failing update never costs the others."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Customer, DeliveryStatus, InboundUpdate, SurveyDelivery, UpdateStatus
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=7101, first_name="Anna", language_code="de")
BEN = FakeUser(id=7102, first_name="Ben", language_code="de")
CLARA = FakeUser(id=7103, first_name="Clara", language_code="en")


def _updates(env: RunningBot, update_ids: list[int]) -> list[InboundUpdate]:
    with Session(env.engine) as session:
        rows = session.exec(
            select(InboundUpdate)
            .where(col(InboundUpdate.update_id).in_(update_ids))
            .order_by(col(InboundUpdate.update_id))
        ).all()
        return list(rows)


class TestUpdateGroups:
    async def test_answers_polled_together_are_committed_together_each_once(self, database_url: str) -> None:
        """Presses that arrive in one getUpdates batch are handled in one transaction, each exactly once."""
        async with running_bot(database_url) as env:
            questions = {
                user.id: await env.customer_with_survey(user, order_id=f"G-{user.id}")
                for user in (ANNA, BEN, CLARA)
            }
            # No await between the presses: the bot's long poll returns all three in one batch.
            presses = [
                env.api.user_presses_button(ANNA, questions[ANNA.id], button(questions[ANNA.id], "3")),
                env.api.user_presses_button(BEN, questions[BEN.id], button(questions[BEN.id], "8")),
                env.api.user_presses_button(CLARA, questions[CLARA.id], button(questions[CLARA.id], "10")),
            ]
            for user in (ANNA, BEN, CLARA):
                await env.next_step(questions[user.id])
            await env.api.wait_until(lambda: len(env.api.callback_answers) == 3)

            assert sorted((a.question_id, a.score) for a in env.answers()) == [
                ("nps", 3),
                ("nps", 8),
                ("nps", 10),
            ]
            rows = _updates(env, [int(press["update_id"]) for press in presses])
            assert [row.status for row in rows] == [UpdateStatus.DONE.value] * 3
            # One "done" stamp: the three were marked in the same transaction.
            assert len({row.processed_at for row in rows}) == 1

    async def test_a_failing_update_is_retried_alone_while_the_rest_of_its_group_goes_through(
        self, database_url: str
    ) -> None:
        """The group is rolled back and handled one by one: the others commit once, the bad one waits."""
        async with running_bot(database_url, expect_errors=True) as env:
            env.bot.worker.retry_base = timedelta(hours=1)  # keep the failed update waiting for the asserts
            questions = {
                user.id: await env.customer_with_survey(user, order_id=f"F-{user.id}")
                for user in (ANNA, BEN, CLARA)
            }
            env.api.user_presses_button(ANNA, questions[ANNA.id], button(questions[ANNA.id], "2"))
            await env.next_step(questions[ANNA.id])
            with Session(env.engine) as session:
                # Anna's survey definition was removed while her survey is open: her next update fails.
                annas = select(Customer.id).where(Customer.telegram_user_id == ANNA.id)
                session.execute(
                    sa.update(SurveyDelivery)
                    .where(col(SurveyDelivery.customer_id).in_(annas))
                    .values(survey_id="retired")
                )
                session.commit()
            presses = [
                env.api.user_presses_button(BEN, questions[BEN.id], button(questions[BEN.id], "9")),
                env.api.user_sends_text(ANNA, "Zu teuer"),
                env.api.user_presses_button(CLARA, questions[CLARA.id], button(questions[CLARA.id], "7")),
            ]
            await env.next_step(questions[BEN.id])
            await env.next_step(questions[CLARA.id])

            ben, anna, clara = _updates(env, [int(press["update_id"]) for press in presses])
            assert (ben.status, clara.status) == (UpdateStatus.DONE.value, UpdateStatus.DONE.value)
            assert anna.status == UpdateStatus.PENDING.value
            assert anna.attempts == 1
            assert sorted((a.question_id, a.score) for a in env.answers()) == [
                ("nps", 2),
                ("nps", 7),
                ("nps", 9),
            ]

    async def test_a_double_tap_in_one_batch_is_recorded_once_and_the_second_press_is_told_so(
        self, database_url: str
    ) -> None:
        """A person's second update waits for the next group, which sees what the first one stored."""
        async with running_bot(database_url) as env:
            questions = {
                user.id: await env.customer_with_survey(user, order_id=f"D-{user.id}") for user in (ANNA, BEN)
            }
            anna, ben = questions[ANNA.id], questions[BEN.id]
            # No await between them: one getUpdates batch with Anna's press twice and Ben's between.
            env.api.user_presses_button(ANNA, anna, button(anna, "2"))
            env.api.user_presses_button(BEN, ben, button(ben, "9"))
            env.api.user_presses_button(ANNA, anna, button(anna, "2"))
            await env.api.wait_until(lambda: len(env.api.callback_answers) == 3)
            await env.next_step(anna)
            await env.next_step(ben)
            await env.api.wait_for_message(STAFF_CHAT)

            assert sorted((a.question_id, a.score) for a in env.answers()) == [("nps", 2), ("nps", 9)]
            texts = sorted(str(answer.get("text")) for answer in env.api.callback_answers)
            assert texts == ["Danke!", "Danke!", "Diese Frage haben Sie bereits beantwortet."]
            assert len(env.api.messages_to(STAFF_CHAT)) == 1
            # Each chat shows its survey in one message, edited once into the next question.
            assert len([r for r in env.api.requests_for("editMessageText") if r.status == 200]) == 2

    async def test_a_stop_and_other_peoples_answers_in_one_batch_each_take_effect(
        self, database_url: str
    ) -> None:
        """/stop cancels Anna's open question while Ben's and Clara's answers in the same group go on."""
        async with running_bot(database_url) as env:
            questions = {
                user.id: await env.customer_with_survey(user, order_id=f"S-{user.id}")
                for user in (ANNA, BEN, CLARA)
            }
            env.api.user_presses_button(BEN, questions[BEN.id], button(questions[BEN.id], "3"))
            env.api.user_sends_text(ANNA, "/stop")
            env.api.user_presses_button(CLARA, questions[CLARA.id], button(questions[CLARA.id], "10"))
            await env.next_step(questions[BEN.id])
            await env.next_step(questions[CLARA.id])
            await env.api.wait_until(lambda: any("keine Umfragen" in t for t in env.api.sent_texts(ANNA.id)))

            assert sorted((a.question_id, a.score) for a in env.answers()) == [("nps", 3), ("nps", 10)]
            with Session(env.engine) as session:
                annas = session.exec(
                    select(SurveyDelivery)
                    .join(Customer, col(Customer.id) == SurveyDelivery.customer_id)
                    .where(Customer.telegram_user_id == ANNA.id)
                ).one()
            assert annas.status == DeliveryStatus.STOPPED.value
