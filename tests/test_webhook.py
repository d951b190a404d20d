"""Webhook mode: Telegram's posts are stored before the 200, only Telegram's posts are taken, none is lost."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, col, select

from bot.application import FAILPOINT_VARIABLE, HOLD_UPDATES, KundenpulsBot
from bot.http_api import build_http_app, start_http_server
from bot.polling import ALLOWED_UPDATES
from bot.settings import SettingsError
from bot.webhook import (
    DEFAULT_PATH,
    MAX_UPDATE_BYTES,
    SECRET_HEADER,
    TelegramWebhook,
    webhook_endpoint,
)
from storage.db import create_db_engine
from storage.models import InboundUpdate
from tests.e2e import TOKEN, RunningBot, button, make_settings, running_bot
from tests.fakes.bot_api_server import FakeUser

HOOK_URL = "https://kundenpuls.test/hook"
HOOK_PATH = "/hook"
SECRET = "s3cret-token"
ANNA = FakeUser(id=7001, first_name="Anna", language_code="de")


def webhook_bot(database_url: str, **overrides: Any) -> Any:
    """``running_bot`` in webhook mode."""
    return running_bot(database_url, webhook_url=HOOK_URL, webhook_secret=SECRET, **overrides)


async def post(env: RunningBot, body: Any, *, secret: str | None = SECRET, **kwargs: Any) -> httpx.Response:
    """POST ``body`` (JSON, or raw bytes with ``content=``) to the webhook path as Telegram would."""
    headers = {**kwargs.pop("headers", {}), **({} if secret is None else {SECRET_HEADER: secret})}
    if "content" in kwargs:
        return await env.http.post(HOOK_PATH, headers=headers, **kwargs)
    return await env.http.post(HOOK_PATH, json=body, headers=headers, **kwargs)


def stored(engine: Engine) -> list[InboundUpdate]:
    """Every row of ``inbound_updates``."""
    with Session(engine) as session:
        return list(session.exec(select(InboundUpdate).order_by(col(InboundUpdate.update_id))).all())


class TestEndpoint:
    def test_the_path_of_the_url_is_served(self) -> None:
        """The webhook is served at the path of WEBHOOK_URL, and that URL is registered unchanged."""
        endpoint = webhook_endpoint("https://shop.example/kundenpuls/telegram")
        assert (endpoint.url, endpoint.path) == (
            "https://shop.example/kundenpuls/telegram",
            "/kundenpuls/telegram",
        )

    @pytest.mark.parametrize("url", ["https://shop.example", "https://shop.example/"])
    def test_a_url_without_a_path_gets_the_default_path(self, url: str) -> None:
        """Without a path the default one is served and registered."""
        endpoint = webhook_endpoint(url)
        assert (endpoint.url, endpoint.path) == (f"https://shop.example{DEFAULT_PATH}", DEFAULT_PATH)

    def test_the_query_string_is_kept_for_telegram(self) -> None:
        """A query string stays in the registered URL and does not change the path served."""
        endpoint = webhook_endpoint("https://shop.example:8443?tenant=7")
        assert (endpoint.url, endpoint.path) == (
            f"https://shop.example:8443{DEFAULT_PATH}?tenant=7",
            DEFAULT_PATH,
        )

    def test_a_url_with_the_token_is_refused_without_showing_it(self) -> None:
        """A path with the bot token would put the token into every access log."""
        with pytest.raises(SettingsError) as refused:
            webhook_endpoint(f"https://shop.example/{TOKEN}", token=TOKEN)
        assert "token" in str(refused.value) and TOKEN not in str(refused.value)

    @pytest.mark.parametrize("path", ["/api/purchases", "/healthz", "/hook/{name}", "/sp%20ace"])
    def test_paths_that_cannot_work_are_refused(self, path: str) -> None:
        """The purchase API's own paths and characters outside the plain set are refused with the URL."""
        with pytest.raises(SettingsError, match="WEBHOOK_URL"):
            webhook_endpoint(f"https://shop.example{path}")


class TestRegistration:
    async def test_webhook_mode_registers_the_webhook_and_never_polls(self, database_url: str) -> None:
        """setWebhook gets the URL, the secret and the poller's update kinds; no getUpdates is made."""
        async with webhook_bot(database_url) as env:
            (registration,) = env.api.requests_for("setWebhook")
            assert registration.params["url"] == HOOK_URL
            assert registration.params["secret_token"] == SECRET
            assert registration.params["allowed_updates"] == list(ALLOWED_UPDATES)
            assert "drop_pending_updates" not in registration.params
            assert env.api.webhook is not None
        assert env.api.requests_for("getUpdates") == []
        # Stopping one replica leaves the webhook to the others.
        assert env.api.requests_for("deleteWebhook") == []

    async def test_polling_mode_deletes_a_webhook_before_polling(self, database_url: str) -> None:
        """A shop back on polling is not stuck with 409s: deleteWebhook once, keeping pending updates."""
        async with running_bot(database_url) as env:
            # A long poll is answered only when updates arrive: wait for it to be asked, not answered.
            await env.api.wait_until(lambda: bool(env.api.requests_for("getUpdates")))
            (deletion,) = env.api.requests_for("deleteWebhook")
            assert deletion.seq < env.api.requests_for("getUpdates")[0].seq
            assert "drop_pending_updates" not in deletion.params
            assert env.api.requests_for("setWebhook") == []


class TestReceiving:
    async def test_an_update_is_stored_answered_and_handled(self, database_url: str) -> None:
        """A post with the right secret is answered 200 after it is stored, and the customer gets a reply."""
        async with webhook_bot(database_url) as env:
            update = env.api.user_sends_text(ANNA, "/start")
            response = await post(env, update)
            assert response.status_code == 200 and response.json() == {"ok": True}
            reply = await env.api.wait_for_message(ANNA.id)
            assert reply["text"]
            assert [row.update_id for row in stored(env.engine)] == [update["update_id"]]

    @pytest.mark.parametrize("secret", [None, "", "wrong-token", SECRET + "x", SECRET.upper()])
    async def test_a_missing_or_wrong_secret_is_refused_and_nothing_stored(
        self, database_url: str, secret: str | None
    ) -> None:
        """Without the exact secret the post gets 403 and the update never reaches the inbox."""
        async with webhook_bot(database_url) as env:
            update = env.api.user_sends_text(ANNA, "/start")
            response = await post(env, update, secret=secret)
            assert response.status_code == 403
            assert SECRET_HEADER in response.json()["error"]
            assert stored(env.engine) == []
            await env.bot.worker.drain()
            assert env.api.messages_to(ANNA.id) == []

    async def test_the_secret_is_checked_before_the_body_is_read(self, database_url: str) -> None:
        """A wrong secret gets 403 even for a body that would be refused as malformed."""
        async with webhook_bot(database_url) as env:
            response = await post(env, None, secret="wrong", content=b"not json")
            assert response.status_code == 403

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"\xff\xfe",
            b"[1, 2]",
            b'{"message": {}}',
            b'{"update_id": "17"}',
            b'{"update_id": true}',
            b'{"update_id": -1}',
            b'{"update_id": 1.5}',
            b'{"update_id": NaN}',
        ],
    )
    async def test_a_malformed_body_gets_400_and_nothing_is_stored(
        self, database_url: str, body: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Anything but a JSON object with an integer update_id is refused; the log does not show it."""
        async with webhook_bot(database_url) as env:
            response = await post(env, None, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400
            assert "error" in response.json()
            assert stored(env.engine) == []
        refusals = [r.getMessage() for r in caplog.records if "refused a post (400)" in r.getMessage()]
        assert len(refusals) == 1 and body.decode("utf-8", "replace") not in refusals[0]

    async def test_a_body_over_the_limit_gets_413_and_nothing_is_stored(self, database_url: str) -> None:
        """A chunked body (no Content-Length) over the limit is refused while it is read."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"update_id": 5, "padding": "'
            for _ in range(MAX_UPDATE_BYTES // 65536 + 1):
                yield b"x" * 65536
            yield b'"}'

        async with webhook_bot(database_url) as env:
            response = await post(env, None, content=chunks())
            assert response.status_code == 413
            assert stored(env.engine) == []

    async def test_a_repeated_update_is_stored_and_handled_once(self, database_url: str) -> None:
        """Telegram redelivers: the same update_id is answered 200 each time but handled once."""
        async with webhook_bot(database_url) as env:
            update = env.api.user_sends_text(ANNA, "/start")
            assert (await post(env, update)).status_code == 200
            await env.api.wait_for_message(ANNA.id)
            assert (await post(env, update)).status_code == 200
            await env.bot.worker.drain()
            await env.bot.sender.drain()
            assert len(env.api.messages_to(ANNA.id)) == 1
            (row,) = stored(env.engine)
            assert (row.update_id, row.status, row.attempts) == (update["update_id"], "done", 1)

    async def test_only_post_is_served(self, database_url: str) -> None:
        """GET on the webhook path is 405 with a JSON error."""
        async with webhook_bot(database_url) as env:
            response = await env.http.get(HOOK_PATH, headers={SECRET_HEADER: SECRET})
            assert response.status_code == 405 and "error" in response.json()

    async def test_polling_mode_serves_no_webhook(self, database_url: str) -> None:
        """Without WEBHOOK_URL nothing answers on a webhook path, not even with a secret."""
        async with running_bot(database_url, webhook_secret=SECRET) as env:
            response = await env.http.post(
                DEFAULT_PATH, json={"update_id": 1}, headers={SECRET_HEADER: SECRET}
            )
            assert response.status_code == 404


class TestRestart:
    async def test_a_restart_loses_no_stored_update(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An update stored and answered but not handled before a stop is handled once after the start."""
        monkeypatch.setenv(FAILPOINT_VARIABLE, HOLD_UPDATES)
        async with webhook_bot(database_url) as env:
            update = env.api.user_sends_text(ANNA, "/start")
            assert (await post(env, update)).status_code == 200
            assert [row.status for row in stored(env.engine)] == ["pending"]
        monkeypatch.delenv(FAILPOINT_VARIABLE)
        async with webhook_bot(database_url) as env:
            await env.api.wait_for_message(ANNA.id)
            # Telegram may deliver it once more after the restart; it is still handled once.
            assert (await post(env, update)).status_code == 200
            await env.bot.worker.drain()
            await env.bot.sender.drain()
            assert len(env.api.messages_to(ANNA.id)) == 1
            assert [(row.update_id, row.status) for row in stored(env.engine)] == [
                (update["update_id"], "done")
            ]


def _unreachable_database_url(database_url: str, tmp_path: Path) -> str:
    """A URL of the same kind whose database cannot be reached."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'no-such-directory' / 'k.db'}"
    return make_url(database_url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)


class TestDatabaseDown:
    async def test_an_update_that_cannot_be_stored_gets_500_and_arrives_on_retry(
        self, database_url: str, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """500 makes Telegram retry; the retry, once the database is back, stores it; logs show no body."""
        update = {"update_id": 42, "message": {"text": "Geheimnis von Anna"}}
        wakes: list[int] = []
        down = create_db_engine(_unreachable_database_url(database_url, tmp_path))
        try:
            first = await self._post_once(down, database_url, update, wakes)
        finally:
            down.dispose()
        assert first.status_code == 500 and "error" in first.json()
        assert stored(engine) == [] and wakes == []
        retry = await self._post_once(engine, database_url, update, wakes)
        assert retry.status_code == 200
        assert [row.update_id for row in stored(engine)] == [42] and wakes == [1]
        assert "Geheimnis" not in caplog.text and SECRET not in caplog.text
        assert any("could not store update 42" in r.getMessage() for r in caplog.records)

    @staticmethod
    async def _post_once(
        engine: Engine, database_url: str, update: dict[str, Any], wakes: list[int]
    ) -> httpx.Response:
        settings = make_settings(
            database_url, "http://127.0.0.1:9", webhook_url=HOOK_URL, webhook_secret=SECRET
        )
        webhook = TelegramWebhook(
            engine=engine,
            endpoint=webhook_endpoint(HOOK_URL),
            secret=SECRET,
            on_stored=lambda: wakes.append(len(wakes) + 1),
        )
        app = build_http_app(
            engine=engine,
            settings=settings,
            bot_username=lambda: None,
            is_ready=lambda: True,
            webhook=webhook,
        )
        runner, port = await start_http_server(app, host="127.0.0.1", port=0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                return await client.post(
                    HOOK_PATH, content=json.dumps(update), headers={SECRET_HEADER: SECRET}
                )
        finally:
            await runner.cleanup()


class TestPushedByTelegram:
    async def test_a_customer_goes_through_a_survey_on_pushed_webhooks(self, database_url: str) -> None:
        """Telegram (the fake) pushes /start and the button press; every post is confirmed, none polled."""
        async with webhook_bot(database_url) as env:
            env.api.deliver_webhooks_to([f"http://127.0.0.1:{env.bot.http_port}"])
            question = await env.customer_with_survey(ANNA)
            env.api.user_presses_button(ANNA, question, button(question, "10"))
            liked = await env.next_step(question)
            assert liked["message_id"] == question["message_id"]
            await env.api.wait_until(lambda: not env.api.pending_updates)
            assert env.api.webhook_deliveries and all(d.delivered for d in env.api.webhook_deliveries)
            assert [(a.question_id, a.score) for a in env.answers()] == [("nps", 10)]
            assert env.api.requests_for("getUpdates") == []

    async def test_two_replicas_behind_a_load_balancer_handle_each_update_once(
        self, database_url: str
    ) -> None:
        """Posts spread over two processes on one database are each stored and handled exactly once."""
        async with webhook_bot(database_url) as env:
            settings = make_settings(database_url, env.api.url, webhook_url=HOOK_URL, webhook_secret=SECRET)
            replica = KundenpulsBot(settings)
            await replica.start()
            try:
                targets = [f"http://127.0.0.1:{port}" for port in (env.bot.http_port, replica.http_port)]
                env.api.deliver_webhooks_to(targets)
                users = [FakeUser(id=7100 + n, first_name=f"Kunde {n}", language_code="de") for n in range(6)]
                for user in users:
                    env.api.user_sends_text(user, "/start")
                for user in users:
                    await env.api.wait_for_message(user.id)
                await env.api.wait_until(lambda: not env.api.pending_updates)
                await env.bot.worker.drain()
                await replica.worker.drain()
                await env.bot.sender.drain()
                await replica.sender.drain()
            finally:
                await replica.stop()
            assert {d.target for d in env.api.webhook_deliveries} == set(targets)
            assert all(len(env.api.messages_to(user.id)) == 1 for user in users)
            rows = stored(env.engine)
            assert len(rows) == len(users) and {row.status for row in rows} == {"done"}
            assert len(env.api.requests_for("setWebhook")) == 2
