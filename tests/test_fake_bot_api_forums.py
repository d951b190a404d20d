"""Tests of the fake Bot API server's forums (supergroups with topics) and getChat.

Staff chats are often forums, and topics are where Telegram surprises bots most: every message in a topic
"replies" to the topic's creation service message, ``message_thread_id`` must name an existing topic, and
``createForumTopic`` needs a right the bot may lack. Bot code handling this is only as well tested as the
fake is faithful, so each behaviour is pinned here over real HTTP, with spec validation on, both as raw
JSON (what Telegram sends) and through python-telegram-bot's real ``Bot`` (what the bot sees).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram import Bot, ChatFullInfo, ForumTopic, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated

from tests.fakes import SPEC_AVAILABLE, BucketLimit, FakeBotApi, FakeUser, FloodLimits

requires_spec = pytest.mark.skipif(not SPEC_AVAILABLE, reason="../shared/telegram-bot-api/api.json not found")

ERIKA = FakeUser(42, "Erika", "Mustermann", "erika_m", "de")
MIA = FakeUser(51, "Mia", language_code="de")
FORUM = -100_200_300
PLAIN = -100_400_500
OLD_GROUP = -123
DEFAULT_COLOR = 7322096
RED = 16478047


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
async def http(api: FakeBotApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{api.base_url}{api.token}") as client:
        yield client


async def call(http: httpx.AsyncClient, method: str, **params: Any) -> httpx.Response:
    """One Bot API call as JSON, so tests see exactly the fields Telegram would send."""
    return await http.post(f"/{method}", json=params)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["ok"] is False
    return response.status_code, str(body["description"])


async def create_topic(http: httpx.AsyncClient, name: str = "Reklamationen", **params: Any) -> dict[str, Any]:
    response = await call(http, "createForumTopic", chat_id=FORUM, name=name, **params)
    assert response.status_code == 200, response.text
    topic: dict[str, Any] = response.json()["result"]
    return topic


# ------------------------------------------------------------------------------------------- forums


async def test_a_forum_shows_is_forum_in_every_chat_object(
    api: FakeBotApi, bot: Bot, http: httpx.AsyncClient
) -> None:
    """Bot messages, user messages and callback query messages all say the supergroup is a forum."""
    before = await bot.send_message(FORUM, "vor den Themen", reply_markup=keyboard("ok"))
    assert before.chat.is_forum is None
    api.make_forum(FORUM)
    sent = (await call(http, "sendMessage", chat_id=FORUM, text="Hallo")).json()["result"]
    assert sent["chat"] == {"id": FORUM, "type": "supergroup", "title": f"Group {FORUM}", "is_forum": True}
    written = api.user_writes_in_group(MIA, FORUM, "Moin", title="Laden-Team")
    assert written["message"]["chat"] == {
        "id": FORUM,
        "type": "supergroup",
        "title": "Laden-Team",
        "is_forum": True,
    }
    pressed = api.user_presses_button(MIA, before.to_dict(), "ok")
    assert pressed["callback_query"]["message"]["chat"]["is_forum"] is True
    updates = await bot.get_updates()
    assert [u.effective_chat.is_forum for u in updates if u.effective_chat] == [True, True]
    api.assert_clean()


def test_only_supergroups_can_become_forums() -> None:
    """Telegram has topics only in supergroups; a test that makes a private chat a forum is wrong."""
    server = FakeBotApi(validate=False)
    with pytest.raises(ValueError, match="supergroups"):
        server.make_forum(-123)
    with pytest.raises(ValueError, match="supergroups"):
        server.make_forum(ERIKA.id)


async def test_creating_a_topic_returns_it_and_posts_the_service_message(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """The ForumTopic's thread id is the id of the bot's "topic created" message, never 1 (General)."""
    api.make_forum(FORUM)
    first = await create_topic(http)
    second = await create_topic(http, "Lob", icon_color=RED, icon_custom_emoji_id="5312536423851630001")
    assert first == {"message_thread_id": 2, "name": "Reklamationen", "icon_color": DEFAULT_COLOR}
    assert second == {
        "message_thread_id": 3,
        "name": "Lob",
        "icon_color": RED,
        "icon_custom_emoji_id": "5312536423851630001",
    }
    assert api.topics(FORUM) == [first, second]
    assert api.topics(PLAIN) == []
    # The service message is in the chat: the next message gets the next id, and replies show it.
    reply = (
        await call(http, "sendMessage", chat_id=FORUM, text="Neu", reply_parameters={"message_id": 2})
    ).json()["result"]
    assert reply["message_id"] == 4
    service = reply["reply_to_message"]
    assert service["message_id"] == service["message_thread_id"] == 2
    assert service["is_topic_message"] is True
    assert service["forum_topic_created"] == {"name": "Reklamationen", "icon_color": DEFAULT_COLOR}
    assert service["from"]["id"] == api.bot_user["id"]
    # It is Telegram's bookkeeping, not something the bot said.
    assert api.sent_texts(FORUM) == ["Neu"]
    api.assert_clean()


async def test_creating_a_topic_outside_a_forum_is_refused(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    """Private chats and supergroups without topics answer Telegram's "the chat is not a forum"."""
    api.user_sends_text(ERIKA, "/start")
    for chat_id in (PLAIN, ERIKA.id):
        response = await call(http, "createForumTopic", chat_id=chat_id, name="Reklamationen")
        assert error_of(response) == (400, "Bad Request: the chat is not a forum")
    assert api.topics(PLAIN) == []
    api.assert_clean()


async def test_creating_a_topic_without_the_right_is_refused(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """Without can_manage_topics the bot gets Telegram's 400, until an admin grants the right."""
    api.make_forum(FORUM, can_manage_topics=False)
    response = await call(http, "createForumTopic", chat_id=FORUM, name="Reklamationen")
    assert error_of(response) == (400, "Bad Request: not enough rights to create a topic")
    assert api.topics(FORUM) == []
    api.make_forum(FORUM, can_manage_topics=True)
    assert (await create_topic(http))["message_thread_id"] == 2  # the refusal used no message id
    api.assert_clean()


@requires_spec
async def test_a_topic_name_needs_1_to_128_characters(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    """The spec's "1-128 characters" is enforced, and a refused name creates nothing."""
    api.make_forum(FORUM)
    for name in ("", "x" * 129):
        response = await call(http, "createForumTopic", chat_id=FORUM, name=name)
        assert response.status_code == 400
    assert len(api.violations) == 2
    assert (await create_topic(http, "x" * 128))["name"] == "x" * 128
    assert len(api.topics(FORUM)) == 1


async def test_topic_creation_counts_against_the_groups_flood_bucket() -> None:
    """A new topic posts a message into the group, so it takes a token from the group's bucket."""
    limits = FloodLimits(group=BucketLimit(rate=1 / 60, burst=2))
    async with (
        FakeBotApi(limits=limits, clock=lambda: 1_000.0) as server,
        httpx.AsyncClient(base_url=f"{server.base_url}{server.token}") as http,
    ):
        server.make_forum(FORUM)
        assert (await call(http, "sendMessage", chat_id=FORUM, text="eins")).status_code == 200
        assert (await call(http, "createForumTopic", chat_id=FORUM, name="zwei")).status_code == 200
        refused = await call(http, "createForumTopic", chat_id=FORUM, name="drei")
        assert error_of(refused) == (429, "Too Many Requests: retry after 60")
        assert refused.json()["parameters"] == {"retry_after": 60}
        assert [(t.method, t.bucket, t.chat_id) for t in server.throttled] == [
            ("createForumTopic", "group", FORUM)
        ]
        assert [t["name"] for t in server.topics(FORUM)] == ["zwei"]
        server.assert_clean()


async def test_topic_creation_fails_with_the_chat_when_fail_chat_says_so(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """fail_chat() covers createForumTopic like sends: a kicked bot can create no topics either."""
    api.make_forum(FORUM)
    api.fail_chat(FORUM, 403, "Forbidden: bot was kicked from the supergroup chat", times=1)
    response = await call(http, "createForumTopic", chat_id=FORUM, name="Reklamationen")
    assert error_of(response) == (403, "Forbidden: bot was kicked from the supergroup chat")
    assert api.topics(FORUM) == []
    await create_topic(http)
    api.assert_clean()


# ------------------------------------------------------------------------------------ topic messages


async def test_a_message_sent_into_a_topic_carries_its_thread(
    api: FakeBotApi, bot: Bot, http: httpx.AsyncClient
) -> None:
    """Like Telegram: thread id, is_topic_message, and the topic's creation message as reply_to_message."""
    api.make_forum(FORUM)
    topic = await create_topic(http)
    thread_id = topic["message_thread_id"]
    raw = (await call(http, "sendMessage", chat_id=FORUM, message_thread_id=thread_id, text="Fall 1")).json()
    message = raw["result"]
    assert message["message_thread_id"] == thread_id
    assert message["is_topic_message"] is True
    assert message["reply_to_message"]["message_id"] == thread_id
    assert message["reply_to_message"]["forum_topic_created"]["name"] == "Reklamationen"
    parsed = await bot.send_message(FORUM, "Fall 2", message_thread_id=thread_id)
    assert parsed.message_thread_id == thread_id and parsed.is_topic_message is True
    assert parsed.reply_to_message is not None
    assert parsed.reply_to_message.forum_topic_created is not None
    assert parsed.reply_to_message.forum_topic_created.icon_color == DEFAULT_COLOR
    assert [m["text"] for m in api.messages_in_topic(FORUM, thread_id)] == ["Fall 1", "Fall 2"]
    api.assert_clean()


async def test_a_reply_in_a_topic_replies_to_the_chosen_message_and_stays_in_its_topic(
    api: FakeBotApi, bot: Bot, http: httpx.AsyncClient
) -> None:
    """An explicit reply keeps its target; a reply without message_thread_id lands in the target's topic."""
    api.make_forum(FORUM)
    thread_id = (await create_topic(http))["message_thread_id"]
    written = api.user_writes_in_group(MIA, FORUM, "Kunde ruft an", thread_id=thread_id)
    user_message_id = written["message"]["message_id"]
    explicit = await bot.send_message(
        FORUM, "Übernehme ich", message_thread_id=thread_id, reply_to_message_id=user_message_id
    )
    implicit = await bot.send_message(FORUM, "Erledigt", reply_to_message_id=user_message_id)
    for sent in (explicit, implicit):
        assert sent.message_thread_id == thread_id and sent.is_topic_message is True
        assert sent.reply_to_message is not None
        assert sent.reply_to_message.message_id == user_message_id
        assert sent.reply_to_message.text == "Kunde ruft an"
    assert [m["text"] for m in api.messages_in_topic(FORUM, thread_id)] == ["Übernehme ich", "Erledigt"]
    api.assert_clean()


async def test_an_unknown_thread_is_refused_in_forums_and_other_chats(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """A made-up topic, the General topic's 1, a plain supergroup and a private chat: "thread not found"."""
    api.make_forum(FORUM)
    await create_topic(http)
    for chat_id, thread_id in ((FORUM, 999), (FORUM, 1), (PLAIN, 2), (ERIKA.id, 2)):
        response = await call(http, "sendMessage", chat_id=chat_id, message_thread_id=thread_id, text="?")
        assert error_of(response) == (400, "Bad Request: message thread not found")
    assert api.sent_texts(FORUM) == api.sent_texts(PLAIN) == api.sent_texts(ERIKA.id) == []
    api.assert_clean()


async def test_messages_without_a_thread_go_to_the_general_topic(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """In a forum a message without message_thread_id is in General: no thread fields, no reply."""
    api.make_forum(FORUM)
    thread_id = (await create_topic(http))["message_thread_id"]
    message = (await call(http, "sendMessage", chat_id=FORUM, text="An alle")).json()["result"]
    assert not {"message_thread_id", "is_topic_message", "reply_to_message"} & message.keys()
    written = api.user_writes_in_group(MIA, FORUM, "Danke")["message"]
    assert not {"message_thread_id", "is_topic_message", "reply_to_message"} & written.keys()
    assert api.messages_in_topic(FORUM, thread_id) == []
    assert api.sent_texts(FORUM) == ["An alle"]
    api.assert_clean()


async def test_a_user_message_in_a_topic_replies_to_the_topic_creation(
    api: FakeBotApi, bot: Bot, http: httpx.AsyncClient
) -> None:
    """What Telegram really sends: a topic message that replies to nothing "replies" to the topic's start.

    A real reply keeps its target instead, and replying to a topic message puts the reply in that topic.
    """
    api.make_forum(FORUM)
    thread_id = (await create_topic(http))["message_thread_id"]
    card = await bot.send_message(FORUM, "Fall 7: Paket fehlt", message_thread_id=thread_id)
    plain = api.user_writes_in_group(MIA, FORUM, "Ich schaue nach", thread_id=thread_id)["message"]
    assert plain["message_thread_id"] == thread_id and plain["is_topic_message"] is True
    assert plain["reply_to_message"]["message_id"] == thread_id
    assert plain["reply_to_message"]["forum_topic_created"]["name"] == "Reklamationen"
    answer = api.user_writes_in_group(MIA, FORUM, "Ist unterwegs", reply_to=card.to_dict())["message"]
    assert answer["message_thread_id"] == thread_id and answer["is_topic_message"] is True
    assert answer["reply_to_message"]["message_id"] == card.message_id
    assert "reply_to_message" not in answer["reply_to_message"]  # Telegram never nests a second level
    first, second = await bot.get_updates()
    assert first.message is not None and second.message is not None
    assert first.message.is_topic_message is True
    assert first.message.reply_to_message is not None
    assert first.message.reply_to_message.forum_topic_created is not None
    assert second.message.reply_to_message is not None
    assert second.message.reply_to_message.text == "Fall 7: Paket fehlt"
    with pytest.raises(ValueError, match="no topic 999"):
        api.user_writes_in_group(MIA, FORUM, "?", thread_id=999)
    with pytest.raises(ValueError, match="no topic"):
        api.user_writes_in_group(MIA, PLAIN, "?", thread_id=thread_id)
    api.assert_clean()


async def test_edits_of_a_topic_message_keep_its_thread(
    api: FakeBotApi, bot: Bot, http: httpx.AsyncClient
) -> None:
    """editMessageText and editMessageReplyMarkup change content, not where the message is."""
    api.make_forum(FORUM)
    thread_id = (await create_topic(http))["message_thread_id"]
    sent = await bot.send_message(FORUM, "Fall 7", message_thread_id=thread_id, reply_markup=keyboard("ok"))
    text_edit = await call(
        http, "editMessageText", chat_id=FORUM, message_id=sent.message_id, text="Fall 7: erledigt"
    )
    markup_edit = await call(
        http,
        "editMessageReplyMarkup",
        chat_id=FORUM,
        message_id=sent.message_id,
        reply_markup=keyboard("neu").to_dict(),
    )
    for edited in (text_edit.json()["result"], markup_edit.json()["result"]):
        assert edited["message_thread_id"] == thread_id and edited["is_topic_message"] is True
        assert edited["reply_to_message"]["message_id"] == thread_id
    (stored,) = api.messages_in_topic(FORUM, thread_id)
    assert stored["text"] == "Fall 7: erledigt"
    assert stored["reply_markup"] == {"inline_keyboard": [[{"text": "NEU", "callback_data": "neu"}]]}
    service_edit = await call(http, "editMessageText", chat_id=FORUM, message_id=thread_id, text="x")
    assert error_of(service_edit) == (400, "Bad Request: message can't be edited")
    api.assert_clean()


# ------------------------------------------------------------------------------------------- getChat


async def test_get_chat_describes_users_groups_and_forums(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    """ChatFullInfo with the fields Telegram always sends; is_forum only for forums."""
    api.user_sends_text(ERIKA, "/start")
    api.make_forum(FORUM)
    api.user_writes_in_group(MIA, PLAIN, "Moin", title="Laden-Team")
    user = (await call(http, "getChat", chat_id=ERIKA.id)).json()["result"]
    assert user == {
        "id": ERIKA.id,
        "type": "private",
        "first_name": "Erika",
        "last_name": "Mustermann",
        "username": "erika_m",
        "accent_color_id": ERIKA.id % 7,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    }
    forum = (await call(http, "getChat", chat_id=FORUM)).json()["result"]
    assert (forum["type"], forum["is_forum"]) == ("supergroup", True)
    assert forum["accepted_gift_types"]["unlimited_gifts"] is False
    plain = (await call(http, "getChat", chat_id=PLAIN)).json()["result"]
    assert (plain["type"], plain["title"]) == ("supergroup", "Laden-Team")
    assert "is_forum" not in plain
    api.assert_clean()


async def test_get_chat_of_an_unknown_chat_is_not_found(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    """A user who never wrote to the bot, or a username, is "chat not found" like on Telegram; groups are
    all taken for ones the bot is in, as for sendMessage (fail_chat makes one that does not exist)."""
    for chat_id in (ERIKA.id, "@kundenpuls_kanal"):
        response = await call(http, "getChat", chat_id=chat_id)
        assert error_of(response) == (400, "Bad Request: chat not found")
    assert (await call(http, "getChat", chat_id=PLAIN)).status_code == 200
    api.fail_chat(PLAIN, 400, "Bad Request: chat not found")
    assert error_of(await call(http, "getChat", chat_id=PLAIN)) == (400, "Bad Request: chat not found")
    api.assert_clean()


async def test_get_chat_fails_while_fail_chat_fails_the_chat(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """fail_chat() answers getChat too (counted in ``times``), but getChat is no message call."""
    api.make_forum(FORUM)
    api.fail_chat(FORUM, 403, "Forbidden: bot was kicked from the supergroup chat", times=1)
    refused = await call(http, "getChat", chat_id=FORUM)
    assert error_of(refused) == (403, "Forbidden: bot was kicked from the supergroup chat")
    assert (await call(http, "getChat", chat_id=FORUM)).status_code == 200
    api.throttle_everything(60, retry_after=5)
    assert (await call(http, "getChat", chat_id=FORUM)).status_code == 200
    api.assert_clean()


async def test_get_chat_of_a_migrated_group_answers_the_migrate_error(
    api: FakeBotApi, http: httpx.AsyncClient
) -> None:
    """The old group id answers 400 with migrate_to_chat_id; the new supergroup is known."""
    api.migrate_chat(OLD_GROUP, PLAIN)
    old = await call(http, "getChat", chat_id=OLD_GROUP)
    assert error_of(old) == (400, "Bad Request: group chat was upgraded to a supergroup chat")
    assert old.json()["parameters"] == {"migrate_to_chat_id": PLAIN}
    new = (await call(http, "getChat", chat_id=PLAIN)).json()["result"]
    assert (new["id"], new["type"]) == (PLAIN, "supergroup")
    assert "is_forum" not in new
    api.assert_clean()


# --------------------------------------------------------------------------------------- migrations


async def test_a_group_migrated_to_a_forum_has_topics_and_its_old_messages_stay_uneditable(
    api: FakeBotApi, bot: Bot, http: httpx.AsyncClient
) -> None:
    """forum=True makes the new supergroup a forum; the old group still answers the migrate error."""
    status = await bot.send_message(OLD_GROUP, "Offene Fälle: 3")
    assert status.chat.type == "group"
    api.migrate_chat(OLD_GROUP, FORUM, forum=True)
    with pytest.raises(ChatMigrated) as caught:
        await bot.edit_message_text("Offene Fälle: 2", chat_id=OLD_GROUP, message_id=status.message_id)
    assert caught.value.new_chat_id == FORUM
    assert api.sent_texts(OLD_GROUP) == ["Offene Fälle: 3"]
    info = await bot.get_chat(FORUM)
    assert info.is_forum is True
    topic = await bot.create_forum_topic(FORUM, "Reklamationen")
    sent = await bot.send_message(FORUM, "Offene Fälle: 2", message_thread_id=topic.message_thread_id)
    assert sent.chat.is_forum is True and sent.is_topic_message is True
    with pytest.raises(BadRequest, match=r"(?i)the chat is not a forum"):
        await bot.create_forum_topic(PLAIN, "Reklamationen")
    api.assert_clean()


# ----------------------------------------------------------------------------- python-telegram-bot


async def test_ptb_parses_get_chat_and_create_forum_topic(api: FakeBotApi, bot: Bot) -> None:
    """PTB 22 builds ChatFullInfo and ForumTopic from the fake's answers, so bots can rely on them."""
    api.user_sends_text(ERIKA, "/start")
    api.make_forum(FORUM)
    user = await bot.get_chat(ERIKA.id)
    assert isinstance(user, ChatFullInfo)
    assert (user.type, user.first_name, user.username) == ("private", "Erika", "erika_m")
    assert user.max_reaction_count == 11
    assert user.accepted_gift_types.unique_gifts is True
    forum = await bot.get_chat(FORUM)
    assert (forum.type, forum.is_forum) == ("supergroup", True)
    topic = await bot.create_forum_topic(FORUM, "Reklamationen", icon_color=RED)
    assert isinstance(topic, ForumTopic)
    assert (topic.message_thread_id, topic.name, topic.icon_color) == (2, "Reklamationen", RED)
    assert api.topics(FORUM) == [topic.to_dict()]
    api.assert_clean()
