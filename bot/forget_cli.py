"""``kundenpuls forget CUSTOMER_ID``: erase a customer's data for a request that reached the shop by mail.

It does what ``/forget`` does in the chat (handlers/privacy.py), for the customer the shop knows by its own
customer id, together with the Telegram account connected to it and that account's other customer ids:
one person. It asks before erasing, unless ``--yes`` says the question was answered already, and prints
what it erased as counts: the output may end up in a ticket or a log, so it names nobody. A running bot
picks up what the erasure queued (the staff cards saying "erased") within seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from sqlmodel import Session

from bot.settings import Settings
from handlers.services import Services
from storage.personal_data import Erased, Person, of_customer

EXIT_OK = 0
EXIT_FAILED = 1
_YES = frozenset({"y", "yes", "j", "ja"})


def forget(
    settings: Settings, external_id: str, *, confirmed: bool, ask: Callable[[str], str] = input
) -> int:
    """Erase the customer the shop knows as ``external_id`` after asking (``confirmed``: without)."""
    from handlers.privacy import erase_person
    from storage.db import create_db_engine, unit_of_work
    from storage.migrate import upgrade_database
    from storage.models import utcnow

    engine = create_db_engine(settings.database_url)
    try:
        upgrade_database(engine)
        with Session(engine) as session:
            person = of_customer(session, external_id)
            preview = _preview(session, person) if person is not None else ""
        if person is None:
            print(
                f"kundenpuls forget: no customer with id {external_id!r} (the shop's customer_id), "
                "or their data was erased already",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"Customer {external_id}: {preview}.")
        if not confirmed and not _confirmed(ask):
            print("Nothing was erased.")
            return EXIT_FAILED
        with unit_of_work(engine) as session:
            person = of_customer(session, external_id)  # again, in the transaction that erases
            if person is None:
                print(f"kundenpuls forget: {external_id!r} was erased meanwhile", file=sys.stderr)
                return EXIT_FAILED
            erased = erase_person(session, _services(settings), person, now=utcnow())
    finally:
        engine.dispose()
    print("\n".join(report_lines(external_id, erased)))
    return EXIT_OK


def _confirmed(ask: Callable[[str], str]) -> bool:
    try:
        answer = ask("Erase everything stored about this customer? This cannot be undone. [y/N] ")
    except EOFError:  # no terminal to answer on: no
        return False
    return answer.strip().lower() in _YES


def _preview(session: Session, person: Person) -> str:
    """What is about to be erased, as counts (no names: see the module docstring)."""
    from storage.personal_data import read

    data = read(session, person)
    purchases = sum(len(record.purchases) for record in data.customers)
    surveys = sum(len(record.surveys) for record in data.customers)
    cases = sum(len(record.cases) for record in data.customers)
    telegram = "a Telegram account is connected" if data.user is not None else "no Telegram account"
    ids = f", {len(data.customers)} customer ids in all" if len(data.customers) > 1 else ""
    return f"{purchases} purchases, {surveys} surveys, {cases} cases, {telegram}{ids}"


def report_lines(external_id: str, erased: Erased) -> list[str]:
    """What an erasure did, as printed."""
    account = "deleted" if erased.telegram_account else "none was connected"
    return [
        f"Erased the data of customer {external_id}:",
        f"  customer records: {erased.customers} (name, customer id, language and time zone removed; "
        "each stays as an anonymous row erased-<number> for the figures)",
        f"  Telegram account: {account}",
        f"  purchases: {erased.purchases} (order ids replaced by a hash; amounts and dates kept)",
        f"  comments: {erased.comments} (their scores stay, anonymous)",
        f"  texts on cases (messages, notes): {erased.case_texts}; cases closed: {erased.cases_closed}; "
        f"staff cards shown again as erased: {len(erased.cases)}",
        f"  stored Telegram updates scrubbed: {erased.raw_updates}",
        f"  messages: {erased.messages_cancelled} unsent cancelled, {erased.messages_scrubbed} scrubbed",
        "Nothing will be sent to them again. A purchase the shop reports for them later starts anew.",
    ]


def _services(settings: Settings) -> Services:
    """What rendering the staff cards needs (the surveys and the texts), as the bot builds it."""
    from surveys.loader import POST_PURCHASE_SURVEY_ID, load_builtin_survey
    from surveys.texts import load_catalogue

    survey = load_builtin_survey(POST_PURCHASE_SURVEY_ID)
    return Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())
