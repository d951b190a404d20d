"""How the update worker splits a batch into groups that share a transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telegram import Update

from bot.update_worker import _GROUP, _groups
from storage.models import InboundUpdate


def _press(update_id: int, user_id: int) -> tuple[InboundUpdate, Update]:
    payload: dict[str, Any] = {
        "update_id": update_id,
        "callback_query": {
            "id": str(update_id),
            "from": {"id": user_id, "is_bot": False, "first_name": "Kunde"},
            "chat_instance": "1",
            "data": "a:1:nps:5",
        },
    }
    now = datetime(2026, 12, 1, tzinfo=UTC)
    row = InboundUpdate(update_id=update_id, payload=payload, next_attempt_at=now, received_at=now)
    return row, Update.de_json(payload, None)


def _ids(groups: list[list[tuple[InboundUpdate, Update]]]) -> list[list[int]]:
    return [[row.update_id for row, _ in group] for group in groups]


def test_a_persons_second_update_starts_a_new_group_and_the_order_is_kept() -> None:
    batch = [_press(1, 10), _press(2, 20), _press(3, 10), _press(4, 30), _press(5, 20)]
    assert _ids(list(_groups(batch))) == [[1, 2], [3, 4, 5]]


def test_groups_hold_at_most_the_group_size() -> None:
    batch = [_press(i, 1000 + i) for i in range(2 * _GROUP + 1)]
    assert [len(group) for group in _groups(batch)] == [_GROUP, _GROUP, 1]


def test_updates_without_a_person_share_a_group() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [
        (
            InboundUpdate(update_id=i, payload={"update_id": i}, next_attempt_at=now, received_at=now),
            Update.de_json({"update_id": i}, None),
        )
        for i in (1, 2)
    ]
    assert _ids(list(_groups(rows))) == [[1, 2]]
