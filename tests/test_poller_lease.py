"""One process at a time polls getUpdates: it holds a lease in the database, and another takes over.

The lease functions run on both databases, racing from two threads with two engines like two replicas.
The pollers run against the fake Bot API server; each one's requests go through its own recording
transport, so a test can tell which poller called ``getUpdates``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.polling import POLLER_LEASE, DurablePoller
from storage import inbox, leases
from storage.db import create_db_engine, unit_of_work
from storage.models import InboundUpdate, Lease, utcnow
from tests.fakes.bot_api_server import FakeBotApi, FakeUser

TOKEN = "123456:TEST-token_for-kundenpuls"
ERIKA = FakeUser(id=7001, first_name="Erika")
TTL = timedelta(seconds=30)
ROUNDS = 15


def _acquire(engine: Engine, owner: str, *, name: str = "role", ttl: timedelta = TTL) -> bool:
    with unit_of_work(engine) as session:
        return leases.acquire_or_renew(session, name=name, owner=owner, now=utcnow(), ttl=ttl)


def _holder(engine: Engine, name: str = "role") -> str | None:
    with unit_of_work(engine) as session:
        return leases.holder(session, name=name, now=utcnow())


class TestLeases:
    def test_only_one_of_two_owners_acquires(self, engine: Engine) -> None:
        """While the first owner holds the lease, a second one is refused."""
        assert _acquire(engine, "a")
        assert not _acquire(engine, "b")
        assert _holder(engine) == "a"

    def test_the_holder_renews(self, engine: Engine) -> None:
        """Acquiring again as the holder extends the lease and keeps when it was first taken."""
        with unit_of_work(engine) as session:
            now = utcnow()
            assert leases.acquire_or_renew(session, name="role", owner="a", now=now, ttl=TTL)
        later = now + timedelta(seconds=10)
        with unit_of_work(engine) as session:
            assert leases.acquire_or_renew(session, name="role", owner="a", now=later, ttl=TTL)
            assert leases.holder(session, name="role", now=now + TTL + timedelta(seconds=5)) == "a"
            row = session.get(Lease, "role")
            assert row is not None and row.acquired_at == now and row.expires_at == later + TTL

    def test_an_expired_lease_is_taken_over(self, engine: Engine) -> None:
        """Once a lease has run out unrenewed, another owner takes it."""
        now = utcnow()
        with unit_of_work(engine) as session:
            assert leases.acquire_or_renew(session, name="role", owner="a", now=now, ttl=TTL)
        after = now + TTL
        with unit_of_work(engine) as session:
            assert leases.holder(session, name="role", now=after) is None
            assert leases.acquire_or_renew(session, name="role", owner="b", now=after, ttl=TTL)
            assert leases.holder(session, name="role", now=after) == "b"
            row = session.get(Lease, "role")
            assert row is not None and row.acquired_at == after

    def test_release_lets_the_other_acquire_at_once(self, engine: Engine) -> None:
        """A released lease is free for another owner immediately, long before it would have expired."""
        assert _acquire(engine, "a")
        with unit_of_work(engine) as session:
            assert leases.release(session, name="role", owner="a")
        assert _holder(engine) is None
        assert _acquire(engine, "b")

    def test_only_the_holder_can_release(self, engine: Engine) -> None:
        """Releasing someone else's lease does nothing."""
        assert _acquire(engine, "a")
        with unit_of_work(engine) as session:
            assert not leases.release(session, name="role", owner="b")
        assert _holder(engine) == "a"

    @pytest.mark.parametrize("situation", ["free", "expired"])
    def test_racing_acquisitions_never_have_two_winners(self, engine: Engine, situation: str) -> None:
        """Two replicas trying at the same moment, for a free or an expired lease, give exactly one winner."""
        url = engine.url.render_as_string(hide_password=False)
        replicas = [create_db_engine(url) for _ in range(2)]
        barrier = threading.Barrier(2)

        def contend(replica: Engine, owner: str, name: str) -> bool:
            barrier.wait()
            return _acquire(replica, owner, name=name)

        winners: list[list[bool]] = []
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for round_ in range(ROUNDS):
                    name = f"race-{round_}"
                    if situation == "expired":
                        with unit_of_work(engine) as session:
                            past = utcnow() - TTL
                            leases.acquire_or_renew(session, name=name, owner="dead", now=past, ttl=TTL)
                    results = pool.map(contend, replicas, ["a", "b"], [name, name])
                    winners.append(list(results))
        finally:
            for replica in replicas:
                replica.dispose()
        assert all(sorted(result) == [False, True] for result in winners), winners


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP that notes which ``getUpdates`` calls this poller made and how many are in flight."""

    def __init__(self) -> None:
        self.get_updates: list[dict[str, Any]] = []
        self.in_flight = 0
        self._inner: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward the request over a real connection, recording ``getUpdates`` bodies."""
        if self._inner is None:  # the poller closes its client (and so this transport) after each turn
            self._inner = httpx.AsyncHTTPTransport()
        if request.url.path.endswith("/getUpdates"):
            self.get_updates.append(json.loads(request.content))
        self.in_flight += 1
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        """Close the connections; the next request opens new ones."""
        if self._inner is not None:
            inner, self._inner = self._inner, None
            await inner.aclose()


class Replica:
    """A poller as one process would run it, with its own engine and transport."""

    def __init__(self, api: FakeBotApi, url: str, owner: str) -> None:
        self.engine = create_db_engine(url)
        self.transport = RecordingTransport()
        self.stored = 0
        self.poller = DurablePoller(
            engine=self.engine,
            api_url=api.url,
            token=TOKEN,
            on_stored=self._count,
            poll_timeout=1,
            lease_ttl=3.0,
            renew_interval=0.3,
            standby_interval=0.1,
            owner=owner,
            transport=self.transport,
        )
        self.task: asyncio.Task[None] | None = None

    def _count(self) -> None:
        self.stored += 1

    def start(self) -> None:
        """Run the poller as a task."""
        self.task = asyncio.create_task(self.poller.run(), name=f"poller-{self.poller.owner}")

    async def stop(self) -> None:
        """Cancel the poller (a graceful stop) and wait until it has released the lease."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def close(self) -> None:
        """Stop and dispose of the engine."""
        await self.stop()
        self.engine.dispose()


@asynccontextmanager
async def replicas(api: FakeBotApi, engine: Engine, count: int) -> AsyncIterator[list[Replica]]:
    """Start ``count`` pollers on the test database, one after the other, and stop them afterwards."""
    url = engine.url.render_as_string(hide_password=False)
    started = [Replica(api, url, owner=f"replica-{n}") for n in range(count)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            await replica.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:  # noqa: ASYNC109  fails the test with a message instead of hanging
    """Wait until ``predicate()`` holds, checking often; fail the test when it never does."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110  the state lives in the database and the pollers, no event
            await asyncio.sleep(0.02)


def stored_update_ids(engine: Engine) -> list[int]:
    """Every update id in the inbox, oldest first (duplicates would show twice)."""
    with Session(engine) as session:
        return list(
            session.exec(select(InboundUpdate.update_id).order_by(col(InboundUpdate.update_id))).all()
        )


def polling(group: list[Replica]) -> list[Replica]:
    """The replicas that say they poll now."""
    return [replica for replica in group if replica.poller.is_polling]


def assert_no_conflicts(api: FakeBotApi) -> None:
    """Telegram never had to end a long poll because another one arrived (409)."""
    statuses = [record.status for record in api.requests_for("getUpdates")]
    assert 409 not in statuses, statuses


class TestPollerLease:
    async def test_only_the_lease_holder_calls_get_updates(self, engine: Engine) -> None:
        """Of two pollers on one database, one polls and the other never calls getUpdates while it lives."""
        async with FakeBotApi(token=TOKEN) as api, replicas(api, engine, 2) as group:
            await wait_until(lambda: len(polling(group)) == 1)
            (holder,) = polling(group)
            (other,) = [replica for replica in group if replica is not holder]
            sent = [api.user_sends_text(ERIKA, f"Nachricht {n}")["update_id"] for n in range(5)]
            await wait_until(lambda: stored_update_ids(engine) == sent)
            # Several renewals and long polls later, the roles are still the same.
            await wait_until(lambda: len(holder.transport.get_updates) >= len(sent) + 3)
            assert stored_update_ids(engine) == sent
            assert other.transport.get_updates == []
            assert polling(group) == [holder]
            assert _holder(engine, POLLER_LEASE) == holder.poller.owner
            assert_no_conflicts(api)
            api.assert_clean()

    async def test_first_get_updates_sends_no_offset(self, engine: Engine) -> None:
        """The first getUpdates sends no offset even when the inbox holds higher ids, so none is dropped."""
        with unit_of_work(engine) as session:
            inbox.store_updates(session, [{"update_id": 900_000_000, "message": {}}], now=utcnow())
        # Telegram's ids start low again (a new token, a quiet week): an offset past 900000000 drops them.
        async with FakeBotApi(token=TOKEN, first_update_id=1) as api, replicas(api, engine, 1) as group:
            update_id = api.user_sends_text(ERIKA, "Hallo")["update_id"]
            await wait_until(lambda: update_id in stored_update_ids(engine))
            await wait_until(lambda: len(group[0].transport.get_updates) >= 2)
            first, second = group[0].transport.get_updates[:2]
            assert "offset" not in first
            assert second["offset"] == update_id + 1
            assert api.update_ids_dropped == []
            api.assert_clean()

    async def test_a_stopped_holder_hands_over_to_the_other(self, engine: Engine) -> None:
        """Cancelling the polling process releases the lease; the other takes over and stores what follows."""
        async with FakeBotApi(token=TOKEN) as api, replicas(api, engine, 2) as group:
            await wait_until(lambda: len(polling(group)) == 1)
            (holder,) = polling(group)
            (other,) = [replica for replica in group if replica is not holder]
            before = api.user_sends_text(ERIKA, "vorher")["update_id"]
            await wait_until(lambda: stored_update_ids(engine) == [before])
            await holder.stop()
            assert not holder.poller.is_polling
            after = api.user_sends_text(ERIKA, "nachher")["update_id"]
            await wait_until(lambda: stored_update_ids(engine) == [before, after])
            assert polling(group) == [other]
            assert "offset" not in other.transport.get_updates[0]
            assert (holder.stored, other.stored) >= (1, 1)
            assert_no_conflicts(api)
            api.assert_clean()

    async def test_a_dead_holders_lease_is_taken_over_when_it_runs_out(self, engine: Engine) -> None:
        """A lease left behind by a killed process is taken over once it expires, with no release."""
        assert _acquire(engine, "killed-process", name=POLLER_LEASE, ttl=timedelta(seconds=1))
        async with FakeBotApi(token=TOKEN) as api, replicas(api, engine, 1) as group:
            update_id = api.user_sends_text(ERIKA, "Hallo")["update_id"]
            await wait_until(lambda: stored_update_ids(engine) == [update_id])
            assert _holder(engine, POLLER_LEASE) == group[0].poller.owner
            api.assert_clean()

    async def test_a_poller_that_loses_its_lease_stops_at_once(self, engine: Engine) -> None:
        """When a renewal finds the lease taken, the poller drops its long poll and waits for its turn."""
        async with FakeBotApi(token=TOKEN) as api, replicas(api, engine, 1) as group:
            (replica,) = group
            await wait_until(lambda: replica.poller.is_polling and replica.transport.in_flight == 1)
            with unit_of_work(engine) as session:  # as if this process had stalled past its lease
                leases.release(session, name=POLLER_LEASE, owner=replica.poller.owner)
            assert _acquire(engine, "usurper", name=POLLER_LEASE)
            await wait_until(lambda: not replica.poller.is_polling)
            assert replica.transport.in_flight == 0
            polls_while_standing_by = len(replica.transport.get_updates)
            update_id = api.user_sends_text(ERIKA, "Hallo")["update_id"]
            with unit_of_work(engine) as session:
                leases.release(session, name=POLLER_LEASE, owner="usurper")
            await wait_until(lambda: stored_update_ids(engine) == [update_id])
            assert replica.poller.is_polling
            assert "offset" not in replica.transport.get_updates[polls_while_standing_by]
            api.assert_clean()
