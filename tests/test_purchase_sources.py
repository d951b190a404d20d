"""A purchase reported over HTTP and in a CSV file (in either order) gets exactly one survey."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.csv_import import import_purchases
from bot.http_api import build_http_app, start_http_server
from bot.settings import Settings
from storage.models import Purchase, SurveyDelivery


def _settings(engine: Engine) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token="1:a",
        ingest_api_key="k",
        database_url=engine.url.render_as_string(hide_password=False),
    )


async def _post(engine: Engine, settings: Settings, order_id: str) -> int:
    app = build_http_app(
        engine=engine, settings=settings, bot_username=lambda: "shop_bot", is_ready=lambda: True
    )
    runner, port = await start_http_server(app, host="127.0.0.1", port=0)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/api/purchases",
                json={"order_id": order_id, "customer_id": "c-1"},
                headers={"Authorization": "Bearer k"},
            )
            return response.status_code
    finally:
        await runner.cleanup()


def _counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (
            session.exec(select(func.count()).select_from(Purchase)).one(),
            session.exec(select(func.count()).select_from(SurveyDelivery)).one(),
        )


class TestHttpAndCsv:
    async def test_http_then_csv_is_one_survey(self, engine: Engine, tmp_path: Path) -> None:
        """The CSV import counts an order the API already stored as a duplicate."""
        settings = _settings(engine)
        assert await _post(engine, settings, "X-1") == 201
        csv_file = tmp_path / "p.csv"
        csv_file.write_text("order_id;customer_id\nX-1;c-1\nX-2;c-1\n", encoding="utf-8")
        summary = import_purchases(csv_file, engine=engine, settings=settings)
        assert (summary.imported, summary.duplicates, summary.rejected) == (1, 1, [])
        assert _counts(engine) == (2, 2)

    async def test_csv_then_http_is_one_survey(self, engine: Engine, tmp_path: Path) -> None:
        """The API answers 200 (known) for an order a CSV import stored first."""
        settings = _settings(engine)
        csv_file = tmp_path / "p.csv"
        csv_file.write_text("order_id,customer_id\nY-1,c-1\n", encoding="utf-8-sig")
        import_purchases(csv_file, engine=engine, settings=settings)
        assert await _post(engine, settings, "Y-1") == 200
        assert _counts(engine) == (1, 1)
