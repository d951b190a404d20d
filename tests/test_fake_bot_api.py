"""Tests of the fake Bot API server and the spec validator, driven by python-telegram-bot's real ``Bot``.

If the fake drifts from Telegram, every end-to-end test built on it proves less; these tests pin the
behaviour other tests rely on.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import Bot, BotCommand, BotCommandScopeChat, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fakes import FakeBotApi, FakeBotApiThread, FakeUser
from tests.fakes.bot_api_spec import (
    SPEC_AVAILABLE,
    SPEC_ENV_VAR,
    BotApiSpec,
    find_spec_path,
    load_spec,
    parse_formatted_text,
    validate_request,
)

requires_spec = pytest.mark.skipif(not SPEC_AVAILABLE, reason="../shared/telegram-bot-api/api.json not found")

ERIKA = FakeUser(42, "Erika", "Mustermann", "erika_m", "de")
JOHN = FakeUser(43, "John", language_code="en")


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d.upper(), callback_data=d) for d in data]])


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url) as client:
        yield client


@pytest.fixture
def spec() -> BotApiSpec:
    loaded = load_spec()
    if loaded is None:
        pytest.skip("../shared/telegram-bot-api/api.json not found")
    return loaded


# ------------------------------------------------------------------------------------------- the spec


@requires_spec
def test_spec_is_found_beside_the_repository() -> None:
    """The default spec location resolves to the shared api.json outside the project."""
    path = find_spec_path()
    assert path is not None
    assert path.parts[-3:] == ("shared", "telegram-bot-api", "api.json")


def test_env_var_overrides_spec_location_and_missing_file_disables_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TELEGRAM_API_SPEC wins, and a missing file yields no spec instead of an error."""
    monkeypatch.setenv(SPEC_ENV_VAR, str(tmp_path / "missing.json"))
    assert find_spec_path() is None
    assert load_spec() is None
    assert validate_request("sendFax", {}) == []
    copy = tmp_path / "api.json"
    copy.write_text(json.dumps({"version": "test", "methods": {"getMe": {"fields": []}}, "types": {}}))
    monkeypatch.setenv(SPEC_ENV_VAR, str(copy))
    assert find_spec_path() == copy
    assert validate_request("getMe", {}) == []
    assert validate_request("sendMessage", {}) == ["sendMessage: unknown method 'sendMessage'"]


def test_unknown_method_is_a_violation(spec: BotApiSpec) -> None:
    """A method the Bot API does not have is reported by name."""
    assert spec.validate("sendFax", {"chat_id": 1}) == ["sendFax: unknown method 'sendFax'"]


def test_missing_required_and_unknown_parameters_are_violations(spec: BotApiSpec) -> None:
    """Required parameters must be there and typos in parameter names are caught."""
    problems = spec.validate("sendMessage", {"chat_id": 1, "txt": "Hallo"})
    assert problems == [
        "sendMessage: missing required parameter 'text'",
        "sendMessage: unknown parameter 'txt'",
    ]


def test_text_length_is_counted_after_html_parsing(spec: BotApiSpec) -> None:
    """Tags do not count and an HTML entity counts as one character, up to 4096."""
    fits = "<b>" + "x" * 4095 + "</b>&amp;"
    assert spec.validate("sendMessage", {"chat_id": 1, "text": fits, "parse_mode": "HTML"}) == []
    too_long = "<i>" + "x" * 4096 + "</i>&lt;"
    (problem,) = spec.validate("sendMessage", {"chat_id": 1, "text": too_long, "parse_mode": "HTML"})
    assert "4097 characters" in problem
    assert spec.validate("sendMessage", {"chat_id": 1, "text": "x" * 4097}) != []


def test_empty_text_is_rejected(spec: BotApiSpec) -> None:
    """Text that is empty after parsing (only tags or whitespace) is refused like Telegram does."""
    assert spec.validate("sendMessage", {"chat_id": 1, "text": "<b></b> ", "parse_mode": "HTML"}) != []


def test_caption_is_limited_to_1024_characters(spec: BotApiSpec) -> None:
    """Captions may be empty but not longer than 1024 characters."""
    assert spec.validate("sendPhoto", {"chat_id": 1, "photo": "file-id", "caption": ""}) == []
    assert spec.validate("sendPhoto", {"chat_id": 1, "photo": "file-id", "caption": "x" * 1024}) == []
    assert spec.validate("sendPhoto", {"chat_id": 1, "photo": "file-id", "caption": "x" * 1025}) != []


def test_callback_data_is_limited_to_64_utf8_bytes(spec: BotApiSpec) -> None:
    """callback_data is measured in UTF-8 bytes, so 33 umlauts (66 bytes) are too many."""

    def markup(data: str) -> dict[str, object]:
        return {
            "inline_keyboard": [
                [{"text": "ok", "callback_data": "a"}],
                [{"text": "x", "callback_data": data}],
            ]
        }

    assert spec.validate("sendMessage", {"chat_id": 1, "text": "t", "reply_markup": markup("ä" * 32)}) == []
    (problem,) = spec.validate("sendMessage", {"chat_id": 1, "text": "t", "reply_markup": markup("ä" * 33)})
    assert "inline_keyboard[1][0].callback_data" in problem
    assert "66 bytes" in problem
    assert spec.validate("sendMessage", {"chat_id": 1, "text": "t", "reply_markup": markup("")}) != []


def test_callback_answer_text_is_limited_to_200_characters(spec: BotApiSpec) -> None:
    """answerCallbackQuery text may have at most 200 characters."""
    assert spec.validate("answerCallbackQuery", {"callback_query_id": "1", "text": "x" * 200}) == []
    assert spec.validate("answerCallbackQuery", {"callback_query_id": "1", "text": "x" * 201}) != []


def test_parameter_types_are_checked(spec: BotApiSpec) -> None:
    """Integer, Boolean and object parameters must have the JSON type the spec names."""
    problems = spec.validate(
        "sendMessage",
        {"chat_id": True, "text": "t", "disable_notification": "yes", "reply_markup": [1]},
    )
    assert len(problems) == 3
    assert spec.validate("getUpdates", {"timeout": 1.5}) == [
        "getUpdates: 'timeout' has type Float, expected Integer"
    ]


def test_objects_are_checked_against_their_type(spec: BotApiSpec) -> None:
    """Nested objects need their required fields and subtypes are told apart by their type field."""
    scope_without_chat = {"commands": [{"command": "start", "description": "Los"}], "scope": {"type": "chat"}}
    assert "lacks required field 'chat_id'" in spec.validate("setMyCommands", scope_without_chat)[0]
    bad_command = {"commands": [{"command": "Start!", "description": "Los"}]}
    assert "BOT_COMMAND_INVALID" in spec.validate("setMyCommands", bad_command)[0]


def test_unescaped_markdown_v2_character_is_reported(spec: BotApiSpec) -> None:
    """An unescaped '.' in MarkdownV2 is refused with Telegram's wording."""
    (problem,) = spec.validate("sendMessage", {"chat_id": 1, "text": "Danke.", "parse_mode": "MarkdownV2"})
    assert "Character '.' is reserved" in problem
    assert (
        spec.validate("sendMessage", {"chat_id": 1, "text": "*Danke\\.*", "parse_mode": "MarkdownV2"}) == []
    )


def test_html_parsing_yields_entities_in_utf16_units() -> None:
    """Entity offsets count UTF-16 code units, so an emoji before bold text shifts it by two."""
    parsed = parse_formatted_text('🙂 <b>gut</b> &amp; <a href="https://example.org">mehr</a>', "HTML")
    assert parsed.text == "🙂 gut & mehr"
    assert parsed.entities == [
        {"type": "bold", "offset": 3, "length": 3},
        {"type": "text_link", "url": "https://example.org", "offset": 9, "length": 4},
    ]
    assert parse_formatted_text("<div>x</div>", "HTML").errors == [
        'Unsupported start tag "div" at byte offset 0'
    ]


def test_decoding_follows_spec_types(spec: BotApiSpec) -> None:
    """A String parameter keeps "123" as text while chat_id and JSON parameters are decoded."""
    decoded = spec.decode_params(
        "sendMessage",
        {
            "chat_id": "123",
            "text": "123",
            "reply_markup": '{"inline_keyboard": []}',
            "protect_content": "true",
        },
    )
    assert decoded == {
        "chat_id": 123,
        "text": "123",
        "reply_markup": {"inline_keyboard": []},
        "protect_content": True,
    }
    assert spec.decode_params("sendMessage", {"chat_id": "@kanal"})["chat_id"] == "@kanal"


# ----------------------------------------------------------------------------------- basic methods


async def test_get_me_returns_the_bot_identity(api: FakeBotApi, bot: Bot) -> None:
    """PTB can parse getMe and sees the configured bot user."""
    me = await bot.get_me()
    assert me.is_bot
    assert me.username == "kundenpuls_test_bot"
    assert me.id == 123456789
    assert me.can_join_groups is True
    assert [r.method for r in api.requests] == ["getMe", "getMe"]  # initialize() + our call


async def test_wrong_token_is_refused_with_401(api: FakeBotApi) -> None:
    """Only the configured token is accepted, so a bot using the wrong one fails to start."""
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=api.base_url):
            pass
    assert [(r.method, r.status) for r in api.requests] == [("getMe", 401)]


async def test_send_message_returns_and_stores_a_full_message(api: FakeBotApi, bot: Bot) -> None:
    """sendMessage answers a real Message: ids count per chat, dates in seconds, inline keyboard echoed."""
    before = int(time.time())
    first = await bot.send_message(
        ERIKA.id, "<b>Wie war Ihr Einkauf?</b>", parse_mode="HTML", reply_markup=keyboard("gut")
    )
    second = await bot.send_message(ERIKA.id, "Zweite")
    group = await bot.send_message(-100123, "Gruppe")
    assert (first.message_id, second.message_id, group.message_id) == (1, 2, 1)
    assert first.text == "Wie war Ihr Einkauf?"
    assert first.entities[0].type == "bold"
    assert first.from_user is not None and first.from_user.is_bot
    assert first.chat.type == "private" and group.chat.type == "supergroup"
    assert before <= first.date.timestamp() <= time.time() + 1
    assert first.reply_markup == keyboard("gut")
    assert api.sent_texts(ERIKA.id) == ["Wie war Ihr Einkauf?", "Zweite"]
    assert api.messages_to(ERIKA.id)[0]["reply_markup"] == {
        "inline_keyboard": [[{"text": "GUT", "callback_data": "gut"}]]
    }
    assert api.requests_for("SENDMESSAGE")[0].params["parse_mode"] == "HTML"


async def test_method_names_are_case_insensitive(api: FakeBotApi, bot: Bot) -> None:
    """Telegram accepts any capitalisation of a method name, and so does the fake."""
    result = await bot.do_api_request("sendmessage", api_kwargs={"chat_id": 7, "text": "klein"})
    assert result["text"] == "klein"
    assert api.requests_for("sendMessage")[0].method == "sendMessage"


async def test_unknown_parameter_is_rejected_and_recorded(api: FakeBotApi, bot: Bot) -> None:
    """A parameter the spec does not know is answered with 400 and lands in violations."""
    if not api.spec_available:
        pytest.skip("spec not available")
    with pytest.raises(BadRequest, match=r"(?i)unknown parameter 'colour'"):
        await bot.do_api_request("sendmessage", api_kwargs={"chat_id": 7, "text": "x", "colour": "red"})
    assert api.violations == ["sendMessage: unknown parameter 'colour'"]
    assert api.sent_texts(7) == []


@requires_spec
async def test_unknown_method_answers_404_like_telegram(api: FakeBotApi, bot: Bot) -> None:
    """An unknown method gets Telegram's 404 (PTB: EndPointNotFound) and is recorded as a violation."""
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendFax", api_kwargs={"chat_id": 1})
    assert api.violations == ["sendFax: unknown method 'sendFax'"]


@requires_spec
async def test_65_byte_callback_data_is_rejected(api: FakeBotApi, bot: Bot) -> None:
    """PTB sends a 65-byte callback_data unchecked; the fake refuses it like Telegram."""
    with pytest.raises(BadRequest, match="65 bytes"):
        await bot.send_message(1, "Bewertung", reply_markup=keyboard("x" * 65))
    assert len(api.violations) == 1
    assert api.requests_for("sendMessage")[0].status == 400


async def test_methods_without_dedicated_handler_answer_true(api: FakeBotApi, bot: Bot) -> None:
    """Chat actions, close and other spec methods succeed with result true."""
    assert await bot.send_chat_action(ERIKA.id, "typing") is True
    assert await bot.set_my_description("Kundenpuls") is True
    assert [r.method for r in api.requests[1:]] == ["sendChatAction", "setMyDescription"]


async def test_ptb_uploads_and_media_messages_are_stored(api: FakeBotApi, bot: Bot) -> None:
    """PTB's multipart upload is read and media methods answer real Messages that PTB parses."""
    document = await bot.send_document(
        ERIKA.id, b"%PDF-1.4", filename="rechnung.pdf", caption="<i>Rechnung</i>", parse_mode="HTML"
    )
    photo = await bot.send_photo(ERIKA.id, "AgACAgIAAxkBAAIBfake", caption="Foto")
    copied = await bot.copy_message(JOHN.id, ERIKA.id, photo.message_id)
    assert document.caption == "Rechnung"
    assert document.caption_entities[0].type == "italic"
    assert (document.message_id, photo.message_id, copied.message_id) == (1, 2, 1)
    upload = api.requests_for("sendDocument")[0].params["document"]
    assert getattr(upload, "filename", None) == "rechnung.pdf"
    assert getattr(upload, "size", None) == 8
    assert [m.get("caption") for m in api.messages_to(ERIKA.id)] == ["Rechnung", "Foto"]
    assert api.violations == []


async def test_strict_mode_refuses_to_message_users_first() -> None:
    """With strict_private_chats a bot cannot write to a user who never contacted it, like on Telegram."""
    async with (
        FakeBotApi(strict_private_chats=True) as server,
        Bot(server.token, base_url=server.base_url) as client,
    ):
        with pytest.raises(Forbidden, match="can't initiate conversation"):
            await client.send_message(ERIKA.id, "Umfrage")
        server.user_sends_text(ERIKA, "/start")
        await client.send_message(ERIKA.id, "Umfrage")
        assert server.sent_texts(ERIKA.id) == ["Umfrage"]


async def test_json_and_multipart_bodies_are_accepted(api: FakeBotApi) -> None:
    """Besides PTB's form encoding the fake reads JSON bodies and multipart uploads."""
    async with httpx.AsyncClient(base_url=f"{api.base_url}{api.token}") as client:
        response = await client.post(
            "/sendMessage", json={"chat_id": 5, "text": "json", "disable_notification": True}
        )
        assert response.json()["result"]["text"] == "json"
        upload = await client.post(
            "/sendDocument",
            data={"chat_id": "5", "caption": "Rechnung"},
            files={"document": ("r.pdf", b"%PDF")},
        )
        assert upload.json()["result"]["caption"] == "Rechnung"
        query = await client.get("/getMe")
        assert query.json()["result"]["is_bot"] is True
    document = api.requests_for("sendDocument")[0].params["document"]
    assert getattr(document, "filename", None) == "r.pdf"
    assert api.violations == []


async def test_unknown_paths_answer_404(api: FakeBotApi) -> None:
    """Paths outside /bot<token>/<method> get Telegram's JSON 404."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api.url}/file/bot{api.token}/x.jpg")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


# ------------------------------------------------------------------------------------------- editing


async def test_edit_message_text_updates_the_stored_message(api: FakeBotApi, bot: Bot) -> None:
    """An edit changes the stored text and, without reply_markup, removes the keyboard like Telegram."""
    sent = await bot.send_message(ERIKA.id, "Frage", reply_markup=keyboard("ja", "nein"))
    edited = await bot.edit_message_text("Danke!", chat_id=ERIKA.id, message_id=sent.message_id)
    assert isinstance(edited, type(sent))
    assert edited.edit_date is not None
    (stored,) = api.messages_to(ERIKA.id)
    assert stored["text"] == "Danke!"
    assert "reply_markup" not in stored


async def test_edit_without_change_is_refused(api: FakeBotApi, bot: Bot) -> None:
    """Editing to the same text and keyboard fails with 'message is not modified'."""
    sent = await bot.send_message(ERIKA.id, "Frage", reply_markup=keyboard("ja"))
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "Frage", chat_id=ERIKA.id, message_id=sent.message_id, reply_markup=keyboard("ja")
        )
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=ERIKA.id, message_id=sent.message_id, reply_markup=keyboard("ja")
        )


async def test_edit_of_unknown_message_is_refused(api: FakeBotApi, bot: Bot) -> None:
    """Editing a message the bot never sent fails with 'message to edit not found'."""
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ERIKA.id, message_id=99)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_reply_markup(chat_id=ERIKA.id, message_id=99)


async def test_edit_reply_markup_replaces_or_removes_the_keyboard(api: FakeBotApi, bot: Bot) -> None:
    """editMessageReplyMarkup swaps the keyboard and removes it when none is given."""
    sent = await bot.send_message(ERIKA.id, "Frage", reply_markup=keyboard("a"))
    await bot.edit_message_reply_markup(
        chat_id=ERIKA.id, message_id=sent.message_id, reply_markup=keyboard("b")
    )
    assert api.messages_to(ERIKA.id)[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "b"
    await bot.edit_message_reply_markup(chat_id=ERIKA.id, message_id=sent.message_id)
    assert "reply_markup" not in api.messages_to(ERIKA.id)[0]


async def test_deleted_messages_disappear_from_the_chat(api: FakeBotApi, bot: Bot) -> None:
    """deleteMessage removes the message; deleting it again fails like on Telegram."""
    sent = await bot.send_message(ERIKA.id, "weg damit")
    assert await bot.delete_message(ERIKA.id, sent.message_id) is True
    assert api.messages_to(ERIKA.id) == []
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ERIKA.id, sent.message_id)


# --------------------------------------------------------------------------------- commands, webhook


async def test_commands_are_stored_per_scope_and_language(api: FakeBotApi, bot: Bot) -> None:
    """setMyCommands/getMyCommands/deleteMyCommands keep one list per scope and language."""
    await bot.set_my_commands([BotCommand("start", "Umfrage starten")], language_code="de")
    await bot.set_my_commands([BotCommand("start", "Start survey")])
    await bot.set_my_commands([BotCommand("stats", "Zahlen")], scope=BotCommandScopeChat(ERIKA.id))
    assert [c.description for c in await bot.get_my_commands(language_code="de")] == ["Umfrage starten"]
    assert [c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(ERIKA.id))] == ["stats"]
    assert api.commands_for(language_code="") == [{"command": "start", "description": "Start survey"}]
    assert api.commands_for({"type": "chat", "chat_id": ERIKA.id}) == [
        {"command": "stats", "description": "Zahlen"}
    ]
    await bot.delete_my_commands(language_code="de")
    assert await bot.get_my_commands(language_code="de") == ()
    assert ("default", "") in api.commands


async def test_webhook_blocks_polling_until_deleted(api: FakeBotApi, bot: Bot) -> None:
    """With a webhook set, getUpdates is a 409 conflict; deleteWebhook can drop pending updates."""
    api.user_sends_text(ERIKA, "hallo")
    assert await bot.set_webhook("https://kundenpuls.example/hook", secret_token="geheim")
    assert (await bot.get_webhook_info()).url == "https://kundenpuls.example/hook"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    await bot.delete_webhook(drop_pending_updates=True)
    assert api.pending_updates == []
    assert api.update_ids_dropped == [1]
    assert (await bot.get_webhook_info()).url == ""


async def test_webhook_url_must_be_https(api: FakeBotApi, bot: Bot) -> None:
    """Telegram only accepts HTTPS webhooks."""
    with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
        await bot.set_webhook("http://kundenpuls.example/hook")


# ------------------------------------------------------------------------------------------ updates


async def test_user_text_becomes_a_real_message_update(api: FakeBotApi, bot: Bot) -> None:
    """A simulated text is a Message update PTB parses, with a bot_command entity only over the command."""
    raw = api.user_sends_text(ERIKA, "/start kauf_123")
    assert raw["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    (update,) = await bot.get_updates()
    assert update.update_id == raw["update_id"]
    assert update.message is not None and update.message.text == "/start kauf_123"
    assert update.message.from_user is not None and update.message.from_user.language_code == "de"
    assert update.message.chat.id == ERIKA.id
    no_language = api.user_sends_text(FakeUser(7, "Ali", language_code=None), "hallo")
    assert "language_code" not in no_language["message"]["from"]
    assert "entities" not in no_language["message"]


async def test_get_updates_honours_offset_and_limit(api: FakeBotApi, bot: Bot) -> None:
    """Updates stay until a later offset confirms them; limit caps one answer."""
    ids = [api.user_sends_text(JOHN, f"m{i}")["update_id"] for i in range(3)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates()] == ids  # nothing confirmed yet
    assert [u.update_id for u in await bot.get_updates(offset=ids[1] + 1)] == ids[2:]
    assert api.update_ids_confirmed == ids[:2]
    assert [u["update_id"] for u in api.pending_updates] == ids[2:]


async def test_long_poll_returns_as_soon_as_an_update_arrives(api: FakeBotApi, bot: Bot) -> None:
    """A waiting getUpdates with timeout answers when an update is queued, not when the timeout ends."""
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await api.wait_until(lambda: any(r.status is None for r in api.requests_for("getUpdates")))
    started = time.monotonic()
    api.user_sends_text(ERIKA, "hallo")
    (update,) = await asyncio.wait_for(poll, 5)
    assert update.message is not None and update.message.text == "hallo"
    assert time.monotonic() - started < 2


async def test_long_poll_times_out_empty(api: FakeBotApi, bot: Bot) -> None:
    """Without updates getUpdates waits for its timeout and answers an empty list."""
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3


async def test_second_poller_ends_the_first_with_conflict(api: FakeBotApi, bot: Bot) -> None:
    """Two concurrent getUpdates (two bot instances) end the older one with 409 like Telegram."""
    first = asyncio.create_task(bot.get_updates(timeout=20))
    await api.wait_until(lambda: len(api.requests_for("getUpdates")) == 1)
    async with Bot(api.token, base_url=api.base_url) as other:
        second = asyncio.create_task(other.get_updates(timeout=20))
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await asyncio.wait_for(first, 5)
        api.user_sends_text(ERIKA, "hallo")
        assert len(await asyncio.wait_for(second, 5)) == 1


async def test_redelivered_update_arrives_again_with_the_same_id(api: FakeBotApi, bot: Bot) -> None:
    """redeliver() hands out an already confirmed update again, to test duplicate handling."""
    raw = api.user_sends_text(ERIKA, "einmal")
    (update,) = await bot.get_updates()
    assert await bot.get_updates(offset=update.update_id + 1) == ()
    api.redeliver(raw)
    (again,) = await bot.get_updates(offset=update.update_id + 1)
    assert again.update_id == update.update_id
    assert await bot.get_updates(offset=update.update_id + 1) == ()


async def test_hand_made_updates_are_delivered_verbatim(api: FakeBotApi, bot: Bot) -> None:
    """enqueue_update passes malformed or unusual updates through and numbers them."""
    raw = api.enqueue_update({"message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}})
    (update,) = await bot.get_updates()
    assert update.update_id == raw["update_id"] == 1
    assert update.message is not None and update.message.text is None


async def test_opt_in_update_kinds_are_not_queued_by_default(api: FakeBotApi) -> None:
    """chat_member updates only exist for bots that asked for them, as on Telegram."""
    api.enqueue_update({"chat_member": {}})
    assert api.pending_updates == []
    assert api.update_ids_filtered == [1]


async def test_button_press_carries_the_current_message(api: FakeBotApi, bot: Bot) -> None:
    """A callback query contains the stored message and data; its id can be answered exactly once."""
    sent = await bot.send_message(ERIKA.id, "Wie zufrieden?", reply_markup=keyboard("5", "1"))
    raw = api.user_presses_button(ERIKA, api.messages_to(ERIKA.id)[0], "5")
    (update,) = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "5"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.id == raw["callback_query"]["id"]
    assert await query.answer("Danke!")
    assert api.callback_answers == [{"callback_query_id": query.id, "text": "Danke!"}]
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer()


async def test_pressing_a_button_that_is_not_shown_is_an_error(api: FakeBotApi, bot: Bot) -> None:
    """Users can only press visible buttons, unless the test forges the data on purpose."""
    await bot.send_message(ERIKA.id, "Frage", reply_markup=keyboard("ja"))
    message = api.messages_to(ERIKA.id)[0]
    with pytest.raises(AssertionError, match="no button with callback_data 'vielleicht'"):
        api.user_presses_button(ERIKA, message, "vielleicht")
    forged = api.user_presses_button(ERIKA, message, "vielleicht", require_button=False)
    assert forged["callback_query"]["data"] == "vielleicht"


async def test_thousands_of_updates_are_served_in_order(api: FakeBotApi, bot: Bot) -> None:
    """A benchmark-sized queue drains in batches of 100 without losing or reordering updates."""
    for i in range(2_000):
        api.user_sends_text(JOHN, f"n{i}")
    seen: list[int] = []
    offset = 0
    while batch := await bot.get_updates(offset=offset):
        assert len(batch) <= 100
        seen.extend(u.update_id for u in batch)
        offset = batch[-1].update_id + 1
    assert seen == list(range(1, 2_001))
    assert len(api.update_ids_confirmed) == 2_000


# -------------------------------------------------------------------------------- failure injection


async def test_blocked_user_gives_forbidden_until_cleared(api: FakeBotApi, bot: Bot) -> None:
    """fail_chat makes sends to one chat fail with 403 while other chats work."""
    api.fail_chat(ERIKA.id, 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(ERIKA.id, "Hallo?")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(ERIKA.id, "typing")
    await bot.send_message(JOHN.id, "works")
    api.clear_failures(ERIKA.id)
    await bot.send_message(ERIKA.id, "wieder da")
    assert api.sent_texts(ERIKA.id) == ["wieder da"]


async def test_rate_limit_carries_retry_after_for_a_limited_number_of_calls(
    api: FakeBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 with parameters.retry_after becomes RetryAfter; times=1 fails only the next call."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # otherwise PTB 22 warns when retry_after is read
    api.fail_chat(ERIKA.id, 429, "Too Many Requests: retry after 1", retry_after=1, times=1)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ERIKA.id, "eins")
    assert caught.value.retry_after == dtm.timedelta(seconds=1)
    await bot.send_message(ERIKA.id, "zwei")
    assert [r.status for r in api.requests_for("sendMessage")] == [429, 200]


async def test_fail_method_fails_only_the_next_call(api: FakeBotApi, bot: Bot) -> None:
    """fail_method injects an error into the next call of one method."""
    api.fail_method("answerCallbackQuery", 400, "Bad Request: query is too old")
    sent = await bot.send_message(ERIKA.id, "q", reply_markup=keyboard("a"))
    api.user_presses_button(ERIKA, sent.to_dict(), "a")
    (update,) = await bot.get_updates()
    assert update.callback_query is not None
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await update.callback_query.answer()
    assert await update.callback_query.answer()


async def test_outage_answers_502_to_everything(api: FakeBotApi, bot: Bot) -> None:
    """set_unavailable answers nginx's 502 (PTB: NetworkError) and still records the attempts."""
    api.set_unavailable(True)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(ERIKA.id, "Hallo")
    api.set_unavailable(False)
    await bot.send_message(ERIKA.id, "Hallo")
    assert [r.status for r in api.requests_for("sendMessage")] == [502, 200]
    assert api.sent_texts(ERIKA.id) == ["Hallo"]


# ------------------------------------------------------------------------------------------- waiting


async def test_wait_for_message_returns_replies_sent_before_waiting(api: FakeBotApi, bot: Bot) -> None:
    """Each sent message is returned once, oldest first, even if it was sent before the wait began."""
    await bot.send_message(ERIKA.id, "eins")
    await bot.send_message(ERIKA.id, "zwei")
    await bot.send_message(ERIKA.id, "drei")
    assert (await api.wait_for_message(ERIKA.id, lambda m: m["text"] == "zwei"))["text"] == "zwei"
    assert (await api.wait_for_message(ERIKA.id))["text"] == "eins"
    assert (await api.wait_for_message(ERIKA.id))["text"] == "drei"


async def test_wait_for_request_returns_answered_requests(api: FakeBotApi, bot: Bot) -> None:
    """wait_for_request finds a request after the server answered it."""
    task = asyncio.create_task(bot.send_chat_action(ERIKA.id, "typing"))
    record = await api.wait_for_request("sendchataction")
    assert record.params == {"chat_id": ERIKA.id, "action": "typing"}
    assert record.status == 200
    await task


async def test_waiting_in_vain_fails_with_a_summary(api: FakeBotApi, bot: Bot) -> None:
    """A timeout raises AssertionError that says what the bot did send."""
    await bot.send_message(ERIKA.id, "falsche Antwort")
    with pytest.raises(AssertionError, match="falsche Antwort") as caught:
        await api.wait_for_message(ERIKA.id, lambda m: m["text"] == "richtig", timeout=0.2)
    assert "sendMessage->200" in str(caught.value)
    with pytest.raises(AssertionError, match="timed out"):
        await api.wait_until(lambda: False, timeout=0.1)


async def test_stop_releases_a_parked_long_poll() -> None:
    """Stopping the server does not wait for a bot's long poll to time out."""
    server = FakeBotApi()
    await server.start()
    async with Bot(server.token, base_url=server.base_url) as client:
        poll = asyncio.create_task(client.get_updates(timeout=30))
        await server.wait_until(lambda: any(r.status is None for r in server.requests_for("getUpdates")))
        started = time.monotonic()
        await server.stop()
        assert await asyncio.wait_for(poll, 5) == ()
        assert time.monotonic() - started < 3


# ---------------------------------------------------------------------------------- without the spec


async def test_server_works_without_validation() -> None:
    """With validation off (as when api.json is missing) requests are decoded and answered anyway."""
    async with FakeBotApi(validate=False) as server, Bot(server.token, base_url=server.base_url) as client:
        assert not server.spec_available
        result = await client.do_api_request(
            "sendmessage", api_kwargs={"chat_id": 3, "text": "42", "extra": 1}
        )
        assert result["text"] == "42"
        assert server.sent_texts(3) == ["42"]
        assert server.violations == []


# ------------------------------------------------------------------------------- a real Application


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    payload = " ".join(context.args or [])
    await update.message.reply_text(f"Hallo! Bestellung {payload}", reply_markup=keyboard("gut", "schlecht"))


async def _rated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("Danke")
    await query.edit_message_text(f"Bewertung: {query.data}")


async def test_polling_application_completes_a_conversation(api: FakeBotApi) -> None:
    """A real PTB Application polls the fake, answers /start, handles a button press and confirms updates."""
    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder().token(api.token).base_url(api.base_url).build()
    )
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(CallbackQueryHandler(_rated))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=10, poll_interval=0)
        api.user_sends_text(ERIKA, "/start A-17")
        question = await api.wait_for_message(ERIKA.id)
        assert question["text"] == "Hallo! Bestellung A-17"
        api.user_presses_button(ERIKA, question, "schlecht")
        await api.wait_for_request("editMessageText")
        await app.updater.stop()
        await app.stop()
    assert api.sent_texts(ERIKA.id) == ["Bewertung: schlecht"]
    assert api.callback_answers[0]["text"] == "Danke"
    assert api.update_ids_confirmed == [1, 2]
    assert api.pending_updates == []
    api.assert_clean()


def test_thread_runner_serves_a_bot_on_another_loop() -> None:
    """FakeBotApiThread serves bots on other loops; call() and run() reach its state safely."""

    async def talk(server_url: str, token: str) -> str | None:
        async with Bot(token, base_url=f"{server_url}/bot") as client:
            (update,) = await client.get_updates(timeout=5)
            assert update.message is not None
            await client.send_message(update.message.chat.id, f"Echo: {update.message.text}")
            return (await client.get_me()).username

    with FakeBotApiThread() as runner:
        server = runner.server
        runner.call(server.user_sends_text, ERIKA, "hallo")
        assert asyncio.run(talk(runner.url, server.token)) == "kundenpuls_test_bot"
        reply = runner.run(server.wait_for_message(ERIKA.id), timeout=5)
        assert reply["text"] == "Echo: hallo"
        assert runner.call(server.sent_texts, ERIKA.id) == ["Echo: hallo"]
    with pytest.raises(RuntimeError, match="not started"):
        runner.call(len, [])
