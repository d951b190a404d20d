"""What the handlers get of a stored update: everything Telegram sent, less the pressed keyboard."""

from __future__ import annotations

import copy
from typing import Any

from telegram import Bot, Update

from bot.update_worker import without_pressed_keyboard

KEYBOARD = {
    "inline_keyboard": [[{"text": str(score), "callback_data": f"a:7:nps:{score}"} for score in range(11)]]
}
PRESS: dict[str, Any] = {
    "update_id": 41,
    "callback_query": {
        "id": "q-1",
        "from": {"id": 5, "is_bot": False, "first_name": "Anna", "language_code": "de"},
        "chat_instance": "c-1",
        "data": "a:7:nps:9",
        "message": {
            "message_id": 12,
            "date": 1_764_000_000,
            "chat": {"id": 5, "type": "private", "first_name": "Anna"},
            "text": "Wie wahrscheinlich ist es …?",
            "reply_markup": KEYBOARD,
        },
    },
}


def test_a_press_loses_only_the_keyboard_it_was_pressed_under() -> None:
    original = copy.deepcopy(PRESS)
    light = without_pressed_keyboard(PRESS)

    assert "reply_markup" not in light["callback_query"]["message"]
    expected = copy.deepcopy(PRESS)
    del expected["callback_query"]["message"]["reply_markup"]
    assert light == expected
    assert original == PRESS  # the stored payload is not touched

    update = Update.de_json(light, Bot("1:test"))
    assert update.callback_query is not None
    assert update.callback_query.data == "a:7:nps:9"
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == 12


def test_updates_without_a_pressed_keyboard_are_handed_over_as_they_are() -> None:
    message = {"update_id": 42, "message": {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}}}
    inline_press = {"update_id": 43, "callback_query": {"id": "q", "from": {}, "chat_instance": "c"}}
    odd = {"update_id": 44, "callback_query": "not an object"}
    for payload in (message, inline_press, odd):
        assert without_pressed_keyboard(payload) is payload
