"""The push outbox and its relay, on SQLite and PostgreSQL, against an in-process receiver whose
answers each test scripts. The relay's clock is a fake one: a backoff passes when a test says so."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from aiohttp import web
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from tickets import push
from tickets.db import migrate, open_engine
from tickets.models import PushEventRow
from tickets.push import Relay, backoff, enqueue, oldest_pending_age, pending

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Platform:
    """The provincial platform's endpoint, scripted: answers to give first (per key, or to any
    request), then 200. Error answers echo the request body, as some receivers do."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[int]] = {}
        self.first: list[int] = []
        self.headers: dict[str, str] = {}  # added to every answer
        self.delay = 0.0
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []  # (headers, body) of every request
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def sent(self) -> list[str]:
        """The keys of every request, in arrival order."""
        return [body["key"] for _, body in self.seen]

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/events", self._take)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append((dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        script = self.by_key.get(body["key"]) or self.first
        status = script.pop(0) if script else 200
        return web.json_response(body if status >= 300 else {"ok": True}, status=status, headers=self.headers)


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    p = Platform()
    await p.start()
    yield p
    await p.stop()


@contextlib.asynccontextmanager
async def running(*relays: Relay) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def add(engine: Engine, ticket_id: int, event: str, payload: dict[str, Any] | None = None,
        at: float = T0) -> str:
    with Session(engine) as s, s.begin():
        return enqueue(s, ticket_id=ticket_id, event=event, payload=payload or {"n": event},
                       now=datetime.fromtimestamp(at, UTC))


def rows(engine: Engine) -> dict[str, PushEventRow]:
    """Every outbox row by key."""
    with Session(engine, expire_on_commit=False) as s:
        return {r.key: r for r in s.scalars(select(PushEventRow).order_by(PushEventRow.id))}


def epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def delivered(engine: Engine, *keys: str) -> Callable[[], bool]:
    return lambda: all(rows(engine)[k].delivered is not None for k in keys)


def failed(engine: Engine, key: str, attempts: int) -> Callable[[], bool]:
    return lambda: rows(engine)[key].attempts >= attempts


# ---- the outbox ----------------------------------------------------------------------------------


def test_enqueue_writes_nothing_until_the_callers_transaction_commits(db: Engine) -> None:
    now = datetime.fromtimestamp(T0, UTC)
    with Session(db) as s:
        enqueue(s, ticket_id=1, event="registered", payload={"a": 1}, now=now)
        s.rollback()
    assert pending(db) == 0
    with Session(db) as s, s.begin():
        key = enqueue(s, ticket_id=1, event="registered", payload={"内容": "路灯不亮"}, now=now)
    row = rows(db)[key]
    assert len(key) == 32 and int(key, 16) >= 0
    assert (row.ticket_id, row.event, json.loads(row.payload), row.attempts, row.delivered, row.last_error) == (
        1, "registered", {"内容": "路灯不亮"}, 0, None, "")
    assert epoch(row.created) == epoch(row.next_attempt) == T0  # due at once


def test_enqueue_refuses_a_naive_time_and_an_event_name_too_long_for_its_column() -> None:
    with Session() as s:
        with pytest.raises(ValueError, match="naive"):
            enqueue(s, ticket_id=1, event="x", payload={}, now=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="longer than 24"):
            enqueue(s, ticket_id=1, event="x" * 25, payload={}, now=datetime.now(UTC))


def test_pending_and_the_oldest_pending_age_count_only_unacknowledged_events(db: Engine) -> None:
    assert (pending(db), oldest_pending_age(db, datetime.fromtimestamp(T0, UTC))) == (0, None)
    first = add(db, 1, "registered", at=T0)
    add(db, 2, "registered", at=T0 + 10)
    assert pending(db) == 2
    assert oldest_pending_age(db, datetime.fromtimestamp(T0 + 25, UTC)) == 25.0
    with Session(db) as s, s.begin():
        s.get_one(PushEventRow, rows(db)[first].id).delivered = datetime.fromtimestamp(T0 + 1, UTC)
    assert (pending(db), oldest_pending_age(db, datetime.fromtimestamp(T0 + 25, UTC))) == (1, 15.0)


def test_backoff_doubles_from_one_second_to_the_cap_and_jitters_within_the_upper_half() -> None:
    assert [backoff(n, 300, lambda: 1.0) for n in (1, 2, 3, 9, 10, 1000)] == [1, 2, 4, 256, 300, 300]
    assert [backoff(n, 300, lambda: 0.0) for n in (1, 2, 3, 10)] == [0.5, 1, 2, 150]


# ---- delivery ------------------------------------------------------------------------------------


async def test_an_event_is_posted_as_json_with_its_key_as_idempotency_key_and_marked_delivered(
        db: Engine, platform: Platform) -> None:
    key = add(db, 7, "dispatched", {"department": "城管", "due": "2026-12-01"})
    clock = Clock()
    async with running(Relay(db, platform.url, clock=clock)):
        await until(delivered(db, key))
    [(headers, body)] = platform.seen
    assert headers["Idempotency-Key"] == key
    assert headers["Content-Type"] == "application/json"
    assert body == {"key": key, "event": "dispatched", "ticket_id": 7,
                    "payload": {"department": "城管", "due": "2026-12-01"},
                    "created": datetime.fromtimestamp(T0, UTC).isoformat()}
    row = rows(db)[key]
    assert (row.attempts, epoch(row.delivered or row.created)) == (0, T0)
    assert pending(db) == 0


async def test_poke_sends_a_new_event_at_once_rather_than_at_the_next_poll(db: Engine, platform: Platform) -> None:
    relay = Relay(db, platform.url, clock=Clock())
    async with running(relay):
        await asyncio.sleep(0.1)  # the relay has found nothing and waits for the next poll
        key = add(db, 1, "registered")
        started = time.monotonic()
        relay.poke()
        await until(delivered(db, key))
        assert time.monotonic() - started < push.POLL / 2


async def test_a_503_is_retried_with_the_same_key_after_a_backoff_that_grows(db: Engine, platform: Platform) -> None:
    platform.first = [503, 503]
    key = add(db, 1, "registered")
    clock = Clock()
    relay = Relay(db, platform.url, clock=clock)
    async with running(relay):
        await until(failed(db, key, 1))
        row = rows(db)[key]
        assert 0.5 <= epoch(row.next_attempt) - T0 <= 1.0
        assert row.last_error == "HTTP 503 Service Unavailable"
        clock.t += 1.0
        relay.poke()
        await until(failed(db, key, 2))
        assert 1.0 <= epoch(rows(db)[key].next_attempt) - clock.t <= 2.0
        clock.t += 2.0
        relay.poke()
        await until(delivered(db, key))
    assert platform.sent() == [key, key, key]
    assert rows(db)[key].attempts == 2


async def test_a_429_waits_at_least_the_retry_after_it_names(db: Engine, platform: Platform) -> None:
    platform.first = [429]
    platform.headers = {"Retry-After": "30"}
    key = add(db, 1, "registered")
    async with running(Relay(db, platform.url, clock=Clock())):
        await until(failed(db, key, 1))
    assert 30 <= epoch(rows(db)[key].next_attempt) - T0 <= 31


async def test_a_receiver_that_is_down_is_retried_until_it_is_back(db: Engine) -> None:
    platform = Platform()
    await platform.start()
    port = platform.port
    await platform.stop()
    key = add(db, 1, "registered")
    clock = Clock()
    relay = Relay(db, f"http://127.0.0.1:{port}/events", clock=clock)
    try:
        async with running(relay):
            await until(failed(db, key, 1))
            assert rows(db)[key].last_error.startswith("ClientConnectorError: Cannot connect to host")
            await platform.start(port)
            clock.t += 1.0
            relay.poke()
            await until(delivered(db, key))
    finally:
        await platform.stop()
    assert platform.sent() == [key]


async def test_a_tickets_later_event_waits_for_its_earlier_one_while_other_tickets_pass(
        db: Engine, platform: Platform) -> None:
    first = add(db, 1, "registered")
    later = add(db, 1, "dispatched")
    other = add(db, 2, "registered")
    platform.by_key[first] = [503]
    clock = Clock()
    relay = Relay(db, platform.url, clock=clock)
    async with running(relay):
        await until(lambda: delivered(db, other)() and failed(db, first, 1)())
        relay.poke()
        await asyncio.sleep(0.3)  # a few rounds: the later event must not be sent meanwhile
        assert later not in platform.sent()
        clock.t += 1.0
        relay.poke()
        await until(delivered(db, first, later))
    ticket_1 = [k for k in platform.sent() if k in (first, later)]
    assert ticket_1 == [first, first, later]


async def test_a_409_means_the_platform_has_the_event_already_and_counts_as_delivered(
        db: Engine, platform: Platform) -> None:
    platform.first = [409]
    key = add(db, 1, "registered")
    async with running(Relay(db, platform.url, clock=Clock())):
        await until(delivered(db, key))
    assert (rows(db)[key].attempts, platform.sent()) == (0, [key])


async def test_a_400_refusal_keeps_the_event_backs_off_to_the_max_and_logs_an_error_with_a_hint(
        db: Engine, platform: Platform) -> None:
    refused = add(db, 1, "registered")
    behind = add(db, 1, "dispatched")
    platform.by_key[refused] = [400]
    clock = Clock()
    relay = Relay(db, platform.url, max_backoff=120, clock=clock)
    with capture_logs() as logs:
        async with running(relay):
            await until(failed(db, refused, 1))
            row = rows(db)[refused]
            assert (row.delivered, row.last_error) == (None, "refused: HTTP 400 Bad Request")
            assert epoch(row.next_attempt) - T0 == 120
            clock.t += 119
            relay.poke()
            await asyncio.sleep(0.3)
            assert platform.sent() == [refused]  # neither it nor the ticket's next event before the 120 s
            clock.t += 1
            relay.poke()
            await until(delivered(db, refused, behind))
    [error] = [e for e in logs if e["event"] == "push_refused"]
    assert error["log_level"] == "error"
    assert (error["key"], error["ticket_id"], error["event_name"]) == (refused, 1, "registered")
    assert "operators" in error["hint"]
    assert platform.sent() == [refused, refused, behind]


async def test_no_log_line_and_no_last_error_holds_the_payload(db: Engine, platform: Platform) -> None:
    secret = {"caller_num": "13912345678", "caller_name": "王小明", "content": "我家门口路灯不亮"}
    markers = list(secret.values())
    keys = [add(db, n, "registered", secret) for n in (1, 2, 3, 4)]
    # Error answers echo the body; one is refused, one fails, one gets a non-JSON receiver error.
    platform.by_key = {keys[0]: [400], keys[1]: [503], keys[2]: [500], keys[3]: [422]}
    down = Platform()
    await down.start()
    down_url = down.url
    await down.stop()
    with capture_logs() as logs:
        async with running(Relay(db, platform.url, clock=Clock()), Relay(db, down_url, clock=Clock())):
            await until(lambda: all(r.attempts >= 1 for r in rows(db).values()))
    text = json.dumps(logs, ensure_ascii=False, default=str) + "".join(r.last_error for r in rows(db).values())
    assert logs and all(r.last_error for r in rows(db).values())
    assert [m for m in markers if m in text] == []


async def test_the_relay_waits_out_a_database_outage_and_logs_it_once(
        db: Engine, platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    real_claim = push._claim
    failures = 3

    def flaky_claim(*args: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("SELECT ...", {}, ConnectionRefusedError("connection refused"))
        return real_claim(*args)

    monkeypatch.setattr(push, "_claim", flaky_claim)
    monkeypatch.setattr(push, "POLL", 0.05)
    key = add(db, 1, "registered")
    with capture_logs() as logs:
        async with running(Relay(db, platform.url, clock=Clock())):
            await until(delivered(db, key))
    events = [e["event"] for e in logs if e["event"].startswith("push_store")]
    assert events == ["push_store_unavailable", "push_store_back"]
    assert "database" in next(e for e in logs if e["event"] == "push_store_unavailable")["hint"]


# ---- several relays --------------------------------------------------------------------------------


async def test_two_relays_on_one_store_deliver_each_event_once_and_in_order_per_ticket(
        db: Engine, platform: Platform) -> None:
    platform.delay = 0.003  # requests overlap: both relays are mid-round at once
    keys = [add(db, ticket, f"e{n}") for n in range(5) for ticket in range(12)]
    url = db.url.render_as_string(hide_password=False)
    other = open_engine(url)  # a pool of its own, as another process would have
    first, second = Relay(db, platform.url, batch=4, clock=Clock()), Relay(other, platform.url, batch=4, clock=Clock())
    try:
        async with running(first, second):
            await until(lambda: pending(db) == 0, timeout=20)
    finally:
        other.dispose()
    assert sorted(platform.sent()) == sorted(keys)  # each sent once: none twice, none left out
    assert first.delivered > 0 and second.delivered > 0
    by_ticket: dict[int, list[str]] = {}
    for _, body in platform.seen:
        by_ticket.setdefault(body["ticket_id"], []).append(body["event"])
    assert all(events == ["e0", "e1", "e2", "e3", "e4"] for events in by_ticket.values())


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = open_engine(pg_url)
    migrate(engine)
    yield engine
    engine.dispose()


async def test_on_postgresql_a_row_another_relay_holds_is_skipped_not_waited_for(
        pg: Engine, platform: Platform) -> None:
    held = add(pg, 1, "registered")
    free = add(pg, 2, "registered")
    locked, release = threading.Event(), threading.Event()

    def other_relay_holds_the_row() -> None:
        dsn = pg.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT id FROM push_outbox WHERE key = %s FOR UPDATE", (held,))
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=other_relay_holds_the_row)
    holder.start()
    try:
        assert locked.wait(5)
        async with running(Relay(pg, platform.url, clock=Clock())):
            await until(delivered(pg, free), timeout=3)  # FOR UPDATE without SKIP LOCKED would wait here
            assert platform.sent() == [free]
            release.set()
            await until(delivered(pg, held))
    finally:
        release.set()
        holder.join()
    assert platform.sent() == [free, held]
