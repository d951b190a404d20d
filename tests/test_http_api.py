"""The purchase ingestion API, spoken to over real HTTP against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.http_api import MAX_BODY_BYTES, build_http_app, start_http_server
from bot.settings import Settings
from storage.db import create_db_engine
from storage.models import Customer, Purchase, SurveyDelivery

KEY = "secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BOT_USERNAME = "kundenpuls_test_bot"
DELAY = timedelta(days=2)
BERLIN = ZoneInfo("Europe/Berlin")
START_LINK = re.compile(rf"^https://t\.me/{BOT_USERNAME}\?start=(?P<token>[A-Za-z0-9_-]{{16,64}})$")


def make_settings(engine: Engine, **overrides: Any) -> Settings:
    """Settings for one test, independent of a developer's .env and environment."""
    values: dict[str, Any] = {
        "telegram_bot_token": "123:abc",
        "ingest_api_key": KEY,
        "database_url": engine.url.render_as_string(hide_password=False),
        "survey_delay": DELAY,
        "timezone": BERLIN,
        # The examples are fixed dates in 2026; SURVEY_MAX_AGE has its own tests below.
        "survey_max_age": "36500d",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@dataclass
class Api:
    """A running API plus the bot state it consults, which a test can change while it runs."""

    client: httpx.AsyncClient
    username: str | None = BOT_USERNAME
    ready: bool = False
    wakeups: int = 0

    async def post(self, body: Any, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return await self.client.post("/api/purchases", json=body, headers=headers, **kwargs)


@asynccontextmanager
async def serve(
    engine: Engine, settings: Settings, *, on_recorded: Callable[[Api], None] | None = None
) -> AsyncIterator[Api]:
    """Start the app on a free port and yield a client for it; stop both afterwards."""
    api: Api | None = None

    def wake() -> None:
        assert api is not None
        api.wakeups += 1
        if on_recorded is not None:
            on_recorded(api)

    app = build_http_app(
        engine=engine,
        settings=settings,
        bot_username=lambda: api.username if api else None,
        is_ready=lambda: bool(api and api.ready),
        on_purchase_recorded=wake,
    )
    runner, port = await start_http_server(app, host="127.0.0.1", port=0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            api = Api(client=client)
            yield api
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Api]:
    """A running API with ingestion enabled and the bot's username known."""
    async with serve(engine, make_settings(engine)) as running:
        yield running


def count(engine: Engine, table: type[Any]) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def purchase(**fields: Any) -> dict[str, Any]:
    return {"order_id": "A-1001", "customer_id": "c-42", "name": "Anna Müller", **fields}


class TestRecording:
    async def test_new_order_is_201_and_repeat_is_200_with_identical_body(
        self, api: Api, engine: Engine
    ) -> None:
        """Reporting an order twice answers 201 then 200 with the same body and schedules one survey."""
        first = await api.post(purchase(amount=49.9))
        second = await api.post(purchase(amount=49.9))
        assert first.status_code == 201
        assert second.status_code == 200
        assert first.json() == second.json()
        assert set(first.json()) == {"customer_id", "order_id", "survey_due_at", "start_link"}
        assert first.json()["order_id"] == "A-1001"
        assert first.json()["customer_id"] == "c-42"
        assert count(engine, SurveyDelivery) == 1

    async def test_answers_are_json_in_utf8(self, api: Api) -> None:
        """Successes and errors alike come back as application/json; charset=utf-8."""
        ok = await api.post(purchase())
        bad = await api.post(purchase(language="fr"))
        for response in (ok, bad):
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"

    async def test_start_link_opens_the_bot_with_a_telegram_safe_token(
        self, api: Api, engine: Engine
    ) -> None:
        """start_link is https://t.me/<bot>?start=<stored token>, a token of A-Za-z0-9_- up to 64 long."""
        response = await api.post(purchase())
        match = START_LINK.match(response.json()["start_link"])
        assert match is not None, response.json()["start_link"]
        with Session(engine) as session:
            stored = session.exec(select(Purchase).where(Purchase.order_id == "A-1001")).one()
        assert match["token"] == stored.link_token

    async def test_survey_due_at_is_utc_with_offset_after_the_delay(self, api: Api) -> None:
        """survey_due_at is ISO-8601 in UTC with an explicit offset, SURVEY_DELAY after the purchase."""
        response = await api.post(purchase(purchased_at="2026-11-20T10:00:00+01:00"))
        assert response.json()["survey_due_at"] == "2026-11-22T09:00:00+00:00"

    async def test_a_purchase_older_than_survey_max_age_is_stored_without_a_survey(
        self, engine: Engine
    ) -> None:
        """The answer says why there is no survey (and no due time); the order is stored all the same."""
        async with serve(engine, make_settings(engine, survey_max_age="14d")) as running:
            old = (datetime.now(UTC) - timedelta(days=20)).isoformat()
            response = await running.post(purchase(purchased_at=old))
        assert response.status_code == 201
        body = response.json()
        assert body["survey_due_at"] is None and "SURVEY_MAX_AGE" in body["survey_skipped"]
        with Session(engine) as session:
            assert session.exec(select(SurveyDelivery)).one().status == "skipped"

    @pytest.mark.parametrize(
        ("purchased_at", "due_utc"),
        [
            pytest.param(
                "2026-07-01T10:00:00", datetime(2026, 7, 3, 8, 0, tzinfo=UTC), id="naive-summer-berlin"
            ),
            pytest.param(
                "2026-11-20T10:00:00", datetime(2026, 11, 22, 9, 0, tzinfo=UTC), id="naive-winter-berlin"
            ),
            pytest.param(
                "2026-07-01T10:00:00+00:00", datetime(2026, 7, 3, 10, 0, tzinfo=UTC), id="utc-offset"
            ),
            pytest.param("2026-07-01T10:00:00Z", datetime(2026, 7, 3, 10, 0, tzinfo=UTC), id="zulu"),
            pytest.param("2026-07-01T10:00:00-04:00", datetime(2026, 7, 3, 14, 0, tzinfo=UTC), id="new-york"),
        ],
    )
    async def test_naive_purchase_time_is_local_shop_time_and_offsets_are_kept(
        self, api: Api, engine: Engine, purchased_at: str, due_utc: datetime
    ) -> None:
        """A purchased_at without offset is read in TIMEZONE; one with an offset is taken as given."""
        response = await api.post(purchase(purchased_at=purchased_at))
        assert response.status_code == 201
        with Session(engine) as session:
            delivery = session.exec(select(SurveyDelivery)).one()
        assert delivery.due_at == due_utc
        assert datetime.fromisoformat(response.json()["survey_due_at"]) == due_utc

    async def test_wakes_the_sweep_once_for_a_new_order_and_not_for_a_repeat(self, api: Api) -> None:
        """on_purchase_recorded runs after a new purchase is stored, never for an order already known."""
        await api.post(purchase())
        assert api.wakeups == 1
        await api.post(purchase())
        assert api.wakeups == 1

    async def test_failing_wakeup_hook_still_answers_201(self, engine: Engine) -> None:
        """The purchase is committed before the hook runs, so a hook error must not become a 500 to retry."""

        def explode(_api: Api) -> None:
            raise RuntimeError("sweep is gone")

        async with serve(engine, make_settings(engine), on_recorded=explode) as api:
            response = await api.post(purchase())
        assert response.status_code == 201
        assert count(engine, SurveyDelivery) == 1

    async def test_concurrent_reports_of_one_order_schedule_exactly_one_survey(
        self, api: Api, engine: Engine
    ) -> None:
        """Twenty simultaneous POSTs of the same order_id yield one 201, nineteen 200s and one delivery."""
        responses = await asyncio.gather(*(api.post(purchase()) for _ in range(20)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200] * 19 + [201]
        assert len({response.json()["start_link"] for response in responses}) == 1
        assert count(engine, SurveyDelivery) == 1
        assert count(engine, Purchase) == 1
        assert api.wakeups == 1

    async def test_concurrent_orders_of_one_new_customer_are_all_recorded(
        self, api: Api, engine: Engine
    ) -> None:
        """Ten simultaneous new orders of one not-yet-known customer are all stored, under one customer."""
        responses = await asyncio.gather(*(api.post(purchase(order_id=f"A-{n}")) for n in range(10)))
        assert sorted(response.status_code for response in responses) == [201] * 10
        assert count(engine, SurveyDelivery) == 10
        assert count(engine, Customer) == 1

    async def test_logs_carry_no_customer_data_or_key(
        self, api: Api, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Log records name status codes and counts only: no order id, customer id, name or API key."""
        caplog.set_level(logging.DEBUG)
        await api.post(purchase(order_id="ORDER-SECRET-77", customer_id="CUST-SECRET-88"))
        await api.post(purchase(order_id="ORDER-SECRET-77", customer_id="CUST-SECRET-88"))
        await api.post(purchase(order_id="ORDER-SECRET-77", language="xx"))
        await api.post(purchase(), headers={"Authorization": "Bearer wrong-KEY-SECRET"})
        for secret in ("ORDER-SECRET-77", "CUST-SECRET-88", "Anna", KEY, "wrong-KEY-SECRET"):
            assert secret not in caplog.text


class TestStartup:
    async def test_unknown_bot_username_answers_503_with_retry_after_and_records_nothing(
        self, api: Api, engine: Engine
    ) -> None:
        """Before the bot knows its username there is no start link: nothing is stored, the shop retries."""
        api.username = None
        response = await api.post(purchase())
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {"error": "the bot is still starting; try again in a few seconds"}
        assert count(engine, Purchase) == 0
        assert api.wakeups == 0

    async def test_port_in_use_raises_and_leaves_nothing_running(self, api: Api, engine: Engine) -> None:
        """Binding a taken port fails with OSError after cleaning up, so the bot can report it and exit."""
        taken = httpx.URL(str(api.client.base_url)).port
        assert taken is not None
        app = build_http_app(
            engine=engine, settings=make_settings(engine), bot_username=lambda: None, is_ready=lambda: False
        )
        with pytest.raises(OSError, match=r"(?i)address already in use") as raised:
            await start_http_server(app, host="127.0.0.1", port=taken)
        assert raised.value.errno == errno.EADDRINUSE

    async def test_healthz_is_503_until_ready_then_200(self, api: Api) -> None:
        """/healthz reports starting (503) until the bot is ready, then ok (200)."""
        starting = await api.client.get("/healthz")
        assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
        api.ready = True
        ready = await api.client.get("/healthz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"Authorization": "Bearer not-the-key"}, id="wrong-key"),
            pytest.param({"Authorization": f"Basic {KEY}"}, id="not-bearer"),
            pytest.param({"Authorization": "Bearer"}, id="bearer-without-key"),
            pytest.param({"Authorization": f"Bearer {KEY}x"}, id="key-with-suffix"),
            pytest.param({"Authorization": "Bearer ключ"}, id="non-ascii-key"),
        ],
    )
    async def test_bad_or_missing_key_is_401_with_bearer_challenge(
        self, api: Api, engine: Engine, headers: dict[str, str]
    ) -> None:
        """Without the right Bearer key the answer is 401 with WWW-Authenticate: Bearer; nothing is stored."""
        # Bytes, so the non-ASCII case reaches the server as the UTF-8 a client would send.
        raw_headers = {name.encode(): value.encode() for name, value in headers.items()}
        response = await api.client.post("/api/purchases", json=purchase(), headers=raw_headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert isinstance(response.json()["error"], str)
        assert count(engine, Purchase) == 0

    async def test_bearer_scheme_is_case_insensitive(self, api: Api) -> None:
        """RFC 7235 schemes are case-insensitive, so "bearer <key>" is accepted."""
        response = await api.post(purchase(), headers={"Authorization": f"bearer {KEY}"})
        assert response.status_code == 201

    async def test_without_ingest_api_key_ingestion_is_503(self, engine: Engine) -> None:
        """With INGEST_API_KEY unset the endpoint is disabled and says which setting turns it on."""
        async with serve(engine, make_settings(engine, ingest_api_key=None)) as api:
            response = await api.post(purchase())
        assert response.status_code == 503
        assert response.json() == {"error": "purchase ingestion is disabled: set INGEST_API_KEY"}
        assert count(engine, Purchase) == 0


class TestBadRequests:
    async def test_body_over_64_kib_is_413(self, api: Api, engine: Engine) -> None:
        """A body larger than 64 KiB with a Content-Length is refused with 413."""
        response = await api.post(purchase(name="x" * (MAX_BODY_BYTES + 1)))
        assert response.status_code == 413
        assert "error" in response.json()
        assert count(engine, Purchase) == 0

    async def test_chunked_body_over_64_kib_is_413(self, api: Api, engine: Engine) -> None:
        """A chunked body (no Content-Length) is cut off at 64 KiB with 413 too."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"order_id": "A-1", "customer_id": "c-1", "name": "'
            for _ in range(20):
                yield b"x" * 4096
            yield b'"}'

        response = await api.client.post(
            "/api/purchases", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert count(engine, Purchase) == 0

    async def test_small_chunked_body_is_accepted(self, api: Api) -> None:
        """A chunked body under the limit is read and recorded like any other."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"order_id": "A-1", '
            yield b'"customer_id": "c-1"}'

        response = await api.client.post(
            "/api/purchases", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 201

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            pytest.param(b'{"order_id": ', "not valid JSON", id="truncated"),
            pytest.param(b"order_id=A-1", "not valid JSON", id="form-data"),
            pytest.param(b'{"amount": NaN}', "not valid JSON", id="nan"),
            pytest.param(b"\xff\xfe{}", "not valid JSON", id="not-utf8"),
            pytest.param(b"[" * 20000 + b"]" * 20000, "not valid JSON", id="deeply-nested"),
            pytest.param(b'[{"order_id": "A-1", "customer_id": "c-1"}]', "an array", id="array"),
            pytest.param(b'"A-1"', "a string", id="string"),
            pytest.param(b"null", "null", id="null"),
        ],
    )
    async def test_body_that_is_not_a_json_object_is_400_saying_why(
        self, api: Api, content: bytes, says: str
    ) -> None:
        """Malformed JSON and JSON that is not an object are 400, and the message says which."""
        response = await api.client.post(
            "/api/purchases", content=content, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert says in response.json()["error"]

    @pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
    async def test_other_content_type_is_415(self, api: Api, content_type: str | None) -> None:
        """Only application/json is accepted; anything else (or none) is 415."""
        headers = dict(AUTH)
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await api.client.post(
            "/api/purchases", content=b'{"order_id": "A-1", "customer_id": "c-1"}', headers=headers
        )
        assert response.status_code == 415
        assert "application/json" in response.json()["error"]

    async def test_json_with_charset_parameter_is_accepted(self, api: Api) -> None:
        """application/json; charset=utf-8 is still JSON."""
        response = await api.client.post(
            "/api/purchases",
            content=b'{"order_id": "A-1", "customer_id": "c-1"}',
            headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
        )
        assert response.status_code == 201

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param({"customer_id": "c-1"}, "order_id", id="missing-order-id"),
            pytest.param(purchase(coupon="XMAS"), "coupon", id="unknown-field"),
            pytest.param(purchase(language="fr"), "language", id="bad-language"),
            pytest.param(purchase(amount=-5), "amount", id="negative-amount"),
            pytest.param(purchase(telegram_user_id="abc"), "telegram_user_id", id="telegram-id-as-text"),
            pytest.param(purchase(telegram_user_id=True), "telegram_user_id", id="telegram-id-as-bool"),
            pytest.param(purchase(purchased_at="yesterday"), "purchased_at", id="bad-date"),
            pytest.param(purchase(currency="euro"), "currency", id="bad-currency"),
        ],
    )
    async def test_invalid_purchase_is_422_naming_the_field(
        self, api: Api, engine: Engine, body: dict[str, Any], field: str
    ) -> None:
        """A purchase that fails validation is 422: error is the first problem, problems name the field."""
        response = await api.post(body)
        assert response.status_code == 422
        payload = response.json()
        assert payload["error"] == payload["problems"][0]
        assert payload["problems"][0].startswith(f"{field}: ")
        assert count(engine, Purchase) == 0

    async def test_422_lists_every_problem(self, api: Api) -> None:
        """All problems come back at once, so the shop can fix them in one go."""
        response = await api.post({"order_id": "A-1", "language": "fr", "amount": -1})
        problems = response.json()["problems"]
        assert {problem.split(":")[0] for problem in problems} == {"customer_id", "language", "amount"}
        assert "customer_id: is required" in problems


class TestRouting:
    async def test_unknown_path_is_404_json(self, api: Api) -> None:
        """Unknown paths answer JSON, not aiohttp's HTML page."""
        response = await api.client.get("/api/nothing-here")
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert "/api/purchases" in response.json()["error"]

    async def test_wrong_method_is_405_json_with_allow(self, api: Api) -> None:
        """GET on the purchase endpoint is 405 with an Allow header and a JSON body."""
        response = await api.client.get("/api/purchases", headers=AUTH)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert "GET" in response.json()["error"]

    async def test_database_failure_is_a_bare_500_without_customer_data_in_logs(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unexpected error answers a bare internal error and logs the traceback without bound values."""
        unmigrated = create_db_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")
        try:
            async with serve(unmigrated, make_settings(unmigrated)) as api:
                response = await api.post(purchase(order_id="ORDER-SECRET-99"))
        finally:
            unmigrated.dispose()
        assert response.status_code == 500
        assert response.json() == {"error": "internal error"}
        assert "Traceback" in caplog.text
        assert "ORDER-SECRET-99" not in caplog.text
