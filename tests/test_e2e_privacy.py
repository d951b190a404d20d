"""Customers stay in control of their data (issue 9): /mydata, /forget and ``kundenpuls forget``, end to end.

The real bot over HTTP against the fake Bot API server, on SQLite and PostgreSQL. After an erasure every
column of every table is read back and searched for the person: their names, username, Telegram id, the
shop's customer id, their order ids and everything they or the staff wrote about them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from handlers.case_card import case_callback_data
from storage.models import Answer, Case, Customer, OutboxMessage, Purchase, TelegramUser
from storage.outbox import SCRUBBED
from tests.e2e import STAFF_CHAT, MovableClock, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser
from tests.test_cli import run_cli

ANNE = FakeUser(
    id=7_700_123_456, first_name="Annegret", last_name="Kowalski", username="annegret_k", language_code="de"
)
BEN = FakeUser(id=7_700_222_333, first_name="Benedikt", language_code="de")
EMMA = FakeUser(id=7_700_444_555, first_name="Emmeline", username="emmeline_w", language_code="en")
MALLORY = FakeUser(id=7_700_666_777, first_name="Mallory", language_code="en")
MIA = FakeUser(id=7_700_900_001, first_name="Mia", last_name="Service", language_code="de")
"""Staff."""
ANNE_ID = "shop-cust-771"
COMMENT = "Der Karton war völlig durchnässt und zerdrückt"
STAFF_REPLY = "Liebe Frau Kowalski, wir schicken sofort Ersatz."
ANNE_REPLY = "Danke, ich warte darauf"
SETTINGS: dict[str, Any] = {"survey_delay": "2d", "survey_cooldown": "1d", "max_proactive_per_week": 10}


def _text(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


def _showing(part: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for a message whose text shows ``part``."""
    return lambda message: part in _text(message)


async def _critic(env: RunningBot, user: FakeUser, *, customer_id: str, order_id: str) -> None:
    """The user opens the bot, buys, scores 2, names a reason and writes a comment: a case opens."""
    env.api.user_sends_text(user, "/start")
    await env.api.wait_for_message(user.id)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)  # due now, with SURVEY_DELAY=2d
    response = await env.report_purchase(
        order_id=order_id,
        customer_id=customer_id,
        telegram_user_id=user.id,
        name=f"{user.first_name} {user.last_name or ''}".strip(),
        amount=59.9,
        purchased_at=two_days_ago.isoformat(),
        time_zone="Europe/Vienna",
    )
    assert response.status_code == 201, response.text
    question = await env.api.wait_for_message(user.id, lambda m: "reply_markup" in m)
    env.api.user_presses_button(user, question, button(question, "2"))
    reason = await env.next_step(question)
    env.api.user_presses_button(user, reason, button(reason, "Lieferung"))
    await env.next_step(reason)
    env.api.user_sends_text(user, COMMENT)
    await env.api.wait_for_message(user.id, lambda m: "Dank" in _text(m) and "reply_markup" not in m)


async def _card(env: RunningBot, shows: str) -> dict[str, Any]:
    """The case card in the staff chat, once its text shows ``shows``."""
    await env.api.wait_until(lambda: any(shows in _text(m) for m in env.api.messages_to(STAFF_CHAT)))
    return next(m for m in env.api.messages_to(STAFF_CHAT) if shows in _text(m))


async def _staff_and_customer_talk(env: RunningBot) -> None:
    """Mia takes Anne's case and writes to her; Anne answers, and it comes into the staff chat."""
    card = await _card(env, "durchnässt")
    with Session(env.engine) as session:
        case_id = session.exec(select(Case.id)).one()
    assert case_id is not None
    env.api.user_presses_button(MIA, card, case_callback_data(case_id, "reply"))
    card = await _card(env, "antwortet")
    env.api.user_writes_in_group(MIA, STAFF_CHAT, STAFF_REPLY, reply_to=card)
    await env.api.wait_for_message(ANNE.id, lambda m: "Ersatz" in _text(m))
    env.api.user_sends_text(ANNE, ANNE_REPLY)
    await env.api.wait_for_message(STAFF_CHAT, lambda m: ANNE_REPLY in _text(m))
    await env.api.wait_for_message(ANNE.id, lambda m: "weitergegeben" in _text(m))


def _buttons(message: dict[str, Any]) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [str(key["callback_data"]) for row in rows for key in row]


async def _ask_to_forget(env: RunningBot, user: FakeUser) -> dict[str, Any]:
    """Send /forget; return the question with its two buttons."""
    env.api.user_sends_text(user, "/forget")
    return await env.api.wait_for_message(
        user.id, lambda m: any(data.startswith("forget:") for data in _buttons(m))
    )


def _values(value: object) -> Iterator[object]:
    """A stored value and, for JSON, every value inside it."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)


def scan(engine: Engine, needles: list[str], telegram_id: int) -> list[str]:
    """Every place in the database (table.column) that still holds a needle or the Telegram id."""
    found: list[str] = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)).mappings():
                for column, stored in row.items():
                    for value in _values(stored):
                        if isinstance(value, str):
                            found += [f"{table.name}.{column}: {n!r}" for n in needles if n in value]
                            if str(telegram_id) in value:
                                found.append(f"{table.name}.{column}: the Telegram id in a text")
                        elif isinstance(value, int) and not isinstance(value, bool) and value == telegram_id:
                            found.append(f"{table.name}.{column}: the Telegram id")
    return found


ANNE_NEEDLES = [
    "Annegret",
    "Kowalski",
    "annegret_k",
    ANNE_ID,
    "ANNE-1",
    "ANNE-2",
    COMMENT,
    "durchnässt",
    STAFF_REPLY,
    ANNE_REPLY,
]


class TestMyData:
    async def test_mydata_sends_a_summary_and_all_of_it_as_a_json_file(self, database_url: str) -> None:
        """/mydata answers with what is stored, readable and as JSON; neither stays in the outbox."""
        async with running_bot(database_url, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            env.api.user_sends_text(ANNE, "/mydata")
            summary = await env.api.wait_for_message(ANNE.id, lambda m: "Was wir über Sie" in _text(m))
            document = await env.api.wait_for_message(ANNE.id, lambda m: "document" in m)
            for shown in (ANNE_ID, "Annegret Kowalski", "ANNE-1", "59.90 EUR", "Bewertung 2/10", "Lieferung"):
                assert shown in summary["text"], shown
            assert "durchnässt" in summary["text"] and "Europe/Vienna" in summary["text"]
            assert document["document"]["file_name"].startswith("meine-daten-")
            assert document["document"]["file_name"].endswith(".json")
            assert "JSON" in document["caption"]

            data = json.loads(env.api.document_content(document))
            assert data["telegram_account"]["id"] == ANNE.id
            assert data["telegram_account"]["first_name"] == "Annegret"
            (customer,) = data["customers"]
            assert (customer["customer_id"], customer["name"]) == (ANNE_ID, "Annegret Kowalski")
            assert customer["time_zone"] == "Europe/Vienna"
            assert [(p["order_id"], p["amount"]) for p in customer["purchases"]] == [("ANNE-1", "59.90")]
            (survey,) = customer["surveys"]
            assert survey["score"] == 2 and survey["category"] == "critic"
            answers = {answer["question_id"]: answer for answer in survey["answers"]}
            assert answers["nps"]["score"] == 2
            assert answers["reason"]["choice_label"] == "Lieferung"
            assert any(answer["comment"] == COMMENT for answer in survey["answers"])
            (case,) = customer["cases"]
            assert case["status"] == "open" and case["kind"] == "critic"
            assert any(m["text"] == "/mydata" for m in data["messages_to_the_bot"])
            assert any(m["text"] == COMMENT for m in data["messages_to_the_bot"])

            await env.bot.sender.drain()
            with Session(env.engine) as session:
                rows = session.exec(
                    select(OutboxMessage).where(col(OutboxMessage.dedupe_key).startswith("mydata:"))
                ).all()
            assert {row.method for row in rows} == {"sendMessage", "sendDocument"}
            assert all(row.status == "sent" and row.payload == SCRUBBED for row in rows)

    async def test_someone_who_is_no_customer_is_told_so_in_their_language(self, database_url: str) -> None:
        """Without a purchase connected, /mydata says so politely, in English for an English user."""
        async with running_bot(database_url) as env:
            env.api.user_sends_text(EMMA, "/mydata")
            answer = await env.api.wait_for_message(EMMA.id)
            assert "no customer record" in answer["text"]
            assert str(EMMA.id) in answer["text"] and "Emmeline" in answer["text"]
            assert "/forget" in answer["text"]
            assert not env.api.requests_for("sendDocument")


class TestForget:
    async def test_cancel_keeps_everything(self, database_url: str) -> None:
        """/forget asks first; Cancel says nothing was erased and keeps every row."""
        async with running_bot(database_url, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            question = await _ask_to_forget(env, ANNE)
            assert "löschen" in question["text"]
            env.api.user_presses_button(ANNE, question, button(question, "Abbrechen"))
            await env.next_step(question)
            answered = next(
                m for m in env.api.messages_to(ANNE.id) if m["message_id"] == question["message_id"]
            )
            assert "nichts gelöscht" in answered["text"] and "reply_markup" not in answered
            with Session(env.engine) as session:
                customer = session.exec(select(Customer)).one()
                assert (customer.name, customer.external_id, customer.erased_at) == (
                    "Annegret Kowalski",
                    ANNE_ID,
                    None,
                )
                assert session.get(TelegramUser, ANNE.id) is not None
                assert COMMENT in [answer.text for answer in session.exec(select(Answer)).all()]
            # The search that finds nothing after an erasure finds them everywhere before it.
            places = {found.split(":")[0] for found in scan(env.engine, ANNE_NEEDLES, ANNE.id)}
            assert {
                "customers.name",
                "customers.external_id",
                "telegram_users.id",
                "answers.text",
                "purchases.order_id",
                "outbox.payload",
                "outbox.chat_id",
                "inbound_updates.payload",
                "send_chats.chat_id",
            } <= places

    async def test_yes_erases_every_trace_and_nothing_is_sent_to_them_again(self, database_url: str) -> None:
        """After Yes nothing in any table names them; their card says erased; no survey, reminder or
        check-in reaches them, while another customer in the same situation gets all three."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            await _staff_and_customer_talk(env)
            # A second purchase whose survey would be due in two days, and Ben, who is in the same spot.
            assert (
                await env.report_purchase(order_id="ANNE-2", customer_id=ANNE_ID, amount=20)
            ).status_code == 201
            env.api.user_sends_text(BEN, "/start")
            await env.api.wait_for_message(BEN.id)
            ben = await env.report_purchase(order_id="BEN-1", customer_id="ben", telegram_user_id=BEN.id)
            assert ben.status_code == 201

            question = await _ask_to_forget(env, ANNE)
            env.api.user_presses_button(ANNE, question, button(question, "Ja, meine Daten löschen"))
            done = await env.next_step(question)
            assert "Ihre Daten sind gelöscht" in done["text"] and "reply_markup" not in done
            card = await _card(env, "Daten gelöscht")
            assert "[gelöscht]" in card["text"] and "Annegret" not in card["text"]
            assert "durchnässt" not in card["text"] and "ANNE-1" not in card["text"]
            assert "2/10" in card["text"]  # the anonymous score stays
            # Nothing to take, reply to or resolve any more.
            assert not [b for row in card.get("reply_markup", {}).get("inline_keyboard", []) for b in row]
            await env.bot.sender.drain()

            assert scan(env.engine, ANNE_NEEDLES, ANNE.id) == []
            with Session(env.engine) as session:
                customer = session.exec(select(Customer).where(col(Customer.external_id) != "ben")).one()
                assert customer.external_id.startswith("erased-") and customer.erased_at is not None
                amounts = sorted(p.amount or Decimal(0) for p in session.exec(select(Purchase)).all())
                assert amounts == [Decimal(0), Decimal("20.00"), Decimal("59.90")]  # revenue still adds up
                answers = session.exec(select(Answer).order_by(col(Answer.id))).all()
                assert [(a.question_id, a.score, a.choice) for a in answers][:2] == [
                    ("nps", 2, None),
                    ("reason", None, "delivery"),
                ]
                assert all(a.text is None for a in answers)  # the comment is gone, the scores stay
                assert session.exec(select(Case)).one().status == "resolved"

            heard = len(env.api.messages_to(ANNE.id))
            # Ben's survey falls due, then its reminder, then (his survey expired) a check-in after
            # CHECKIN_AFTER of silence: each would have reached Anne too.
            for days, expected in ((3, "empfehlen"), (6, "Erinnerung"), (45, "länger nichts")):
                clock.move_to(datetime.now(UTC) + timedelta(days=days))
                await env.bot.sweep()
                await env.bot.sender.drain()
                await env.api.wait_for_message(BEN.id, _showing(expected))
            assert len(env.api.messages_to(ANNE.id)) == heard
            assert scan(env.engine, ANNE_NEEDLES, ANNE.id) == []

    async def test_forged_presses_erase_nothing_and_get_a_clear_answer(self, database_url: str) -> None:
        """Someone else's press, another question's data and garbage change nothing; a second Yes neither."""
        async with running_bot(database_url, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            question = await _ask_to_forget(env, ANNE)
            mallorys = await _ask_to_forget(env, MALLORY)
            yes = button(question, "Ja, meine Daten löschen")
            before = len(env.api.callback_answers)  # the survey's own presses were answered too
            env.api.user_presses_button(MALLORY, question, yes)  # Anne's question, Mallory's press
            env.api.user_presses_button(
                ANNE, question, button(mallorys, "Yes, erase my data"), require_button=False
            )
            for garbage in (
                "forget:1:yes",
                "forget:abc:yes",
                "forget::yes",
                f"{yes}:x",
                "forget:" + "9" * 30 + ":yes",
            ):
                env.api.user_presses_button(ANNE, question, garbage, require_button=False)
            await env.api.wait_until(lambda: len(env.api.callback_answers) >= before + 7)
            texts = [str(answer.get("text")) for answer in env.api.callback_answers[before:]]
            assert texts.count("This button is not meant for you.") == 1
            assert texts.count("Diese Schaltfläche ist nicht für Sie bestimmt.") == 1
            assert texts.count("Diese Schaltfläche ist nicht mehr gültig.") == 5
            with Session(env.engine) as session:
                assert session.exec(select(Customer)).one().erased_at is None
                assert session.get(TelegramUser, MALLORY.id) is not None

            env.api.user_presses_button(ANNE, question, yes)
            await env.next_step(question)
            env.api.user_presses_button(ANNE, question, yes, require_button=False)  # once more, afterwards
            await env.api.wait_until(lambda: len(env.api.callback_answers) >= before + 9)
            assert "nicht mehr gültig" in str(env.api.callback_answers[-1].get("text"))
            with Session(env.engine) as session:
                assert session.exec(select(Customer)).one().erased_at is not None
                assert session.get(TelegramUser, MALLORY.id) is not None  # only Anne's data went

    async def test_a_replayed_start_link_or_order_brings_nobody_back(self, database_url: str) -> None:
        """After /forget, the old deep link connects nothing and the same order reported again stores
        nobody; a new order under the shop's old customer id starts a new record."""
        async with running_bot(database_url) as env:
            response = await env.report_purchase(order_id="LINK-1", customer_id=ANNE_ID, name="Annegret")
            token = response.json()["start_link"].rsplit("=", 1)[1]
            opened = env.api.user_sends_text(ANNE, f"/start {token}")
            await env.api.wait_for_message(ANNE.id, lambda m: "LINK-1" in _text(m))
            survey = await env.api.wait_for_message(ANNE.id, lambda m: "empfehlen" in _text(m))
            question = await _ask_to_forget(env, ANNE)
            env.api.user_presses_button(ANNE, question, button(question, "Ja, meine Daten löschen"))
            await env.next_step(question)
            # The survey they were answering loses its buttons: nothing invites a tap any more.
            await env.api.wait_until(
                lambda: (
                    not any(
                        _buttons(m)
                        for m in env.api.messages_to(ANNE.id)
                        if m["message_id"] == survey["message_id"]
                    )
                )
            )

            env.api.redeliver(opened)
            env.api.user_sends_text(ANNE, f"/start {token}")
            refused = await env.api.wait_for_message(ANNE.id, lambda m: "ungültig" in _text(m))
            assert "LINK-1" not in refused["text"]
            again = await env.report_purchase(order_id="LINK-1", customer_id=ANNE_ID, name="Annegret")
            assert again.status_code == 200 and "erased" in again.json()["survey_skipped"]
            with Session(env.engine) as session:
                (customer,) = session.exec(select(Customer)).all()
                assert (customer.name, customer.telegram_user_id) == (None, None)
            new = await env.report_purchase(order_id="LINK-2", customer_id=ANNE_ID, name="Annegret")
            assert new.status_code == 201 and new.json()["customer_id"] == ANNE_ID


class TestForgetFromTheCommandLine:
    async def test_kundenpuls_forget_erases_and_the_running_bot_shows_the_card_as_erased(
        self, database_url: str, tmp_path: Any
    ) -> None:
        """``kundenpuls forget ID --yes`` erases like /forget; the staff card is edited to say so."""
        async with running_bot(database_url, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            await _staff_and_customer_talk(env)
            await env.bot.sender.drain()
            result = await asyncio.to_thread(
                run_cli,
                "forget",
                ANNE_ID,
                "--yes",
                cwd=tmp_path,
                env={"DATABASE_URL": database_url, "STAFF_CHAT_ID": str(STAFF_CHAT)},
            )
            assert result.returncode == 0, result.stderr
            assert f"Erased the data of customer {ANNE_ID}" in result.stdout
            assert "Telegram account: deleted" in result.stdout and "cases closed: 1" in result.stdout
            assert "Annegret" not in result.stdout + result.stderr
            card = await _card(env, "Daten gelöscht")
            assert "Annegret" not in card["text"]
            await env.bot.sender.drain()
            assert scan(env.engine, ANNE_NEEDLES, ANNE.id) == []


class TestDocumentsInTheOutbox:
    async def test_a_file_that_failed_once_goes_out_whole_on_its_retry_then_leaves_the_outbox(
        self, database_url: str
    ) -> None:
        """A 500 on the upload keeps the file for the retry; once it is out, the row holds nothing of it."""
        async with running_bot(database_url, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            env.api.fail_method("sendDocument", 500, "Internal Server Error", times=1)
            env.api.user_sends_text(ANNE, "/mydata")
            document = await env.api.wait_for_message(ANNE.id, lambda m: "document" in m)
            assert json.loads(env.api.document_content(document))["customers"][0]["customer_id"] == ANNE_ID
            assert [r.status for r in env.api.requests_for("sendDocument")] == [500, 200]
            await env.bot.sender.drain()
            with Session(env.engine) as session:
                row = session.exec(
                    select(OutboxMessage).where(col(OutboxMessage.method) == "sendDocument")
                ).one()
            assert (row.status, row.attempts, row.payload) == ("sent", 2, SCRUBBED)

    async def test_a_file_for_someone_who_blocked_the_bot_is_dropped_with_its_content(
        self, database_url: str
    ) -> None:
        """Refused for good (blocked): the export is cancelled, and its content does not stay either."""
        async with running_bot(database_url, **SETTINGS) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            await env.bot.sender.drain()
            env.api.fail_chat(ANNE.id, 403, "Forbidden: bot was blocked by the user")
            env.api.user_sends_text(ANNE, "/mydata")

            def exports() -> list[OutboxMessage]:
                with Session(env.engine) as session:
                    return list(
                        session.exec(
                            select(OutboxMessage).where(col(OutboxMessage.dedupe_key).startswith("mydata:"))
                        ).all()
                    )

            await env.api.wait_until(
                lambda: len(exports()) == 2 and all(r.status == "cancelled" for r in exports())
            )
            await env.bot.sender.drain()
            assert all(row.payload == SCRUBBED for row in exports())


class TestStartLinks:
    async def test_a_link_connects_for_30_days_and_an_expired_one_is_refused_politely(
        self, database_url: str
    ) -> None:
        """START_LINK_EXPIRES_AFTER (30d) counts from the purchase: 29 days old works, 31 days old says it
        expired, in the customer's language, and connects nothing."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            first = await env.report_purchase(order_id="OLD-1", customer_id="c-old-1")
            clock.advance(timedelta(days=29))
            env.api.user_sends_text(BEN, f"/start {first.json()['start_link'].rsplit('=', 1)[1]}")
            await env.api.wait_for_message(BEN.id, lambda m: "OLD-1" in _text(m))

            second = await env.report_purchase(order_id="OLD-2", customer_id="c-old-2")
            clock.advance(timedelta(days=2))  # the second link is 31 days old now
            env.api.user_sends_text(EMMA, f"/start {second.json()['start_link'].rsplit('=', 1)[1]}")
            refused = await env.api.wait_for_message(EMMA.id, lambda m: "expired" in _text(m))
            assert "OLD-2" not in refused["text"]
            with Session(env.engine) as session:
                customers = {c.external_id: c.telegram_user_id for c in session.exec(select(Customer)).all()}
                links = {p.order_id: p.link_used_at for p in session.exec(select(Purchase)).all()}
            assert customers == {"c-old-1": BEN.id, "c-old-2": None}
            assert links["OLD-1"] is not None and links["OLD-2"] is None

    async def test_a_used_link_is_refused_for_another_account_and_stays_with_the_first(
        self, database_url: str
    ) -> None:
        """A link opened from a second Telegram account is refused; the customer stays connected to the
        first; opening it again from the first is harmless."""
        async with running_bot(database_url) as env:
            response = await env.report_purchase(order_id="USED-1", customer_id="c-used")
            token = response.json()["start_link"].rsplit("=", 1)[1]
            env.api.user_sends_text(ANNE, f"/start {token}")
            await env.api.wait_for_message(ANNE.id, lambda m: "USED-1" in _text(m))
            env.api.user_sends_text(BEN, f"/start {token}")
            refused = await env.api.wait_for_message(BEN.id)
            assert "bereits mit einem anderen Telegram-Konto" in refused["text"]
            env.api.user_sends_text(ANNE, f"/start {token}")
            await env.api.wait_for_message(ANNE.id, lambda m: "USED-1" in _text(m))
            with Session(env.engine) as session:
                assert session.exec(select(Customer.telegram_user_id)).one() == ANNE.id


class TestForumTopics:
    async def test_the_topic_of_their_case_is_renamed_and_its_card_says_erased(
        self, database_url: str
    ) -> None:
        """In a forum staff chat the case's topic, named after the customer, is renamed too."""
        async with running_bot(
            database_url, before_start=lambda api: api.make_forum(STAFF_CHAT), **SETTINGS
        ) as env:
            await _critic(env, ANNE, customer_id=ANNE_ID, order_id="ANNE-1")
            (topic,) = env.api.topics(STAFF_CHAT)
            assert "Annegret" in topic["name"]
            await _card(env, "durchnässt")
            await env.bot.sender.drain()
            question = await _ask_to_forget(env, ANNE)
            env.api.user_presses_button(ANNE, question, button(question, "Ja, meine Daten löschen"))
            await _card(env, "Daten gelöscht")
            await env.api.wait_until(lambda: bool(env.api.requests_for("editForumTopic")))
            (rename,) = env.api.requests_for("editForumTopic")
            assert rename.status == 200
            assert rename.params["message_thread_id"] == topic["message_thread_id"]
            assert rename.params["name"] == "Fall #1: [gelöscht]"
            await env.bot.sender.drain()
            assert scan(env.engine, ANNE_NEEDLES, ANNE.id) == []
