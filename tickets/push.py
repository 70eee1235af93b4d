"""Ticket events to the provincial 12345 platform, exactly once: an outbox and its relay.

A ticket change calls `enqueue` in its own transaction, so an event exists exactly when the
change was committed. The relay (`Relay.run`) POSTs due events with the row's key as
`Idempotency-Key`. It may send an event more than once (an answer lost, a relay killed before
it noted the answer); the platform applies a key once, so the event takes effect once.

- Claim: a round takes up to `batch` due rows, and of each ticket only its oldest undelivered
  event, so a ticket's events arrive in order while other tickets go on. The rows are leased
  by moving next_attempt past the request timeout. On PostgreSQL the SELECT is FOR UPDATE SKIP
  LOCKED, so relays in several processes take different rows; on every store the lease is a
  conditional UPDATE, so a row another relay leased first drops out of this round. A relay
  killed mid-round leaves its rows leased; they are due again when the lease runs out.
- Answers: 2xx, or 409 (the platform has that key already): delivered. 408, 429, 5xx or no
  answer: retried after 1 s doubling up to max_backoff, with jitter, or after Retry-After.
  Any other answer refuses the event: it is kept, retried every max_backoff and logged as an
  error for an operator; the ticket's later events wait behind it.
- The database: all its work runs in a thread. While it is down the relay logs that once,
  retries every second, and logs when it is back.

Neither the log nor last_error carries a payload: it holds callers' names, numbers and words.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import random
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
import structlog
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, aliased
from yarl import URL

from cti.logs import Throttle, setup
from tickets.db import open_engine
from tickets.models import PushEventRow
from tickets.store import describe

log = structlog.get_logger("hotline.push")
T = TypeVar("T")

FIRST_BACKOFF = 1.0  # seconds before the first retry; doubles per failure
POLL = 1.0  # seconds between looks at the outbox when nothing was due (poke() wakes sooner)
LEASE_MARGIN = 5.0  # a claim outlives the request timeout by this much (clock skew between hosts)
EVENT_MAX = 24  # push_outbox.event is String(24)
REFUSED_HINT = ("the platform refuses this event; it is kept and retried at this interval, and the ticket's later "
                "events wait behind it. Ask the platform's operators why this key was refused and fix the cause "
                "(the URL, credentials, or the event's data)")


def enqueue(s: Session, *, ticket_id: int, event: str, payload: dict[str, Any], now: datetime) -> str:
    """Add an event to the outbox in the caller's transaction (not committed here); its key.

    Call it after the ticket row's UPDATE: the row lock then orders the events of one ticket
    by id even when two changes race, and the relay sends them in id order."""
    if now.tzinfo is None:
        raise ValueError("enqueue: `now` is naive; pass an aware time such as datetime.now(UTC)")
    if len(event) > EVENT_MAX:
        raise ValueError(f"enqueue: event name {event!r} is longer than {EVENT_MAX} characters; shorten it")
    key = uuid.uuid4().hex
    at = now.astimezone(UTC)  # SQLite keeps no zone: every stored time is UTC
    s.add(PushEventRow(key=key, ticket_id=ticket_id, event=event, payload=json.dumps(payload, ensure_ascii=False),
                       created=at, attempts=0, next_attempt=at, delivered=None, last_error=""))
    return key


def pending(engine: Engine) -> int:
    """Events not yet acknowledged by the platform."""
    p = PushEventRow
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(p).where(p.delivered.is_(None))).scalar_one())


def oldest_pending_age(engine: Engine, now: datetime) -> float | None:
    """Seconds since the oldest unacknowledged event was written; None when all are delivered."""
    p = PushEventRow
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(p.created)).where(p.delivered.is_(None))).scalar_one()
    return None if oldest is None else (now - _utc(oldest)).total_seconds()


def backoff(attempts: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `attempts` failures: 1 s doubling, at most `cap`, and anywhere from
    half of that to all of it, so that events that failed together do not return together."""
    full = min(cap, FIRST_BACKOFF * 2.0 ** min(max(attempts - 1, 0), 30))
    return full / 2 + rand() * full / 2


class _Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


def _verdict(status: int) -> _Verdict:
    if 200 <= status < 300 or status == 409:  # 409: a receiver that honours the key has it already
        return _Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return _Verdict.RETRY
    return _Verdict.REFUSED  # other 4xx, and 1xx/3xx: redirects are not followed with a POST


@dataclass(frozen=True)
class _Claimed:
    """A leased row, read in the claim's transaction."""

    id: int
    key: str
    ticket_id: int
    event: str
    payload: str
    created: datetime
    attempts: int


@dataclass(frozen=True)
class _Result:
    id: int
    delivered: bool
    error: str = ""
    retry_at: datetime | None = None


class Relay:
    """Delivers the outbox to `url`. Run several (processes, hosts) against one PostgreSQL to
    scale out; on SQLite run one.

    Counters (plain ints, only ever increasing; export them as Prometheus counters):
    `delivered`, `failed` (attempts to retry), `refused` (attempts the platform refused)."""

    def __init__(self, engine: Engine, url: str, *, timeout: float = 10, max_backoff: float = 300,
                 batch: int = 50, clock: Callable[[], float] = time.time) -> None:
        if timeout <= 0 or max_backoff <= 0 or batch < 1:
            raise ValueError("Relay: timeout and max_backoff must be above 0 and batch at least 1")
        self.engine = engine
        self.url = url
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.batch = batch
        self.clock = clock
        self.delivered = 0
        self.failed = 0
        self.refused = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store_down = False
        self._throttle = Throttle()
        self._where = str(URL(url).with_user(None).with_query(None))  # no credentials in the log

    def poke(self) -> None:
        """New events were committed: look now rather than at the next poll. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the round in flight is finished first (at most `timeout`)."""
        self._loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
            while not stop.is_set():
                self._wake.clear()
                now = self._now()
                lease_end = now + timedelta(seconds=self.timeout + LEASE_MARGIN)
                rows, next_due = await self._in_store(_claim, self.engine, now, lease_end, self.batch) or ([], None)
                if not rows:
                    await self._pause(stop, next_due)
                    continue
                results = await asyncio.gather(*(self._send(http, row) for row in rows))
                # Not noted (the store went down): the rows come due when their lease ends and
                # are sent again; the platform answers 409 or 2xx for a key it has.
                await self._in_store(_settle, self.engine, results, self._now())

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _pause(self, stop: asyncio.Event, next_due: datetime | None) -> None:
        """Until the next retry is due, a poke, `stop`, or at most POLL. A retry that is due but
        was not claimed is held by another relay: look again at the poll."""
        until_due = POLL if next_due is None else (next_due - self._now()).total_seconds()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=until_due if 0 < until_due < POLL else POLL,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _in_store(self, fn: Callable[..., T], *args: Any) -> T | None:
        """`fn(*args)` in a thread; None if the database failed it (logged once per outage)."""
        try:
            result = await asyncio.to_thread(fn, *args)
        except Exception as exc:
            if not self._store_down:
                self._store_down = True
                log.warning("push_store_unavailable", error=describe(exc),
                            hint="ticket events wait in push_outbox and are retried every second; check "
                                 "that the database is up and accepts writes")
            return None
        if self._store_down:
            self._store_down = False
            log.info("push_store_back")
        return result

    async def _send(self, http: aiohttp.ClientSession, row: _Claimed) -> _Result:
        try:
            body = json.dumps({"key": row.key, "event": row.event, "ticket_id": row.ticket_id,
                               "payload": json.loads(row.payload), "created": _utc(row.created).isoformat()},
                              ensure_ascii=False).encode()
        except ValueError:
            return self._refuse(row, "the stored payload is not JSON", hint=(
                "this row was written by something other than tickets.push.enqueue; correct its payload "
                "column to the JSON object the event should carry (it is retried at this interval)"))
        headers = {"Idempotency-Key": row.key, "Content-Type": "application/json"}
        try:
            async with http.post(self.url, data=body, headers=headers, allow_redirects=False) as resp:
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        except TimeoutError:
            return self._retry(row, f"no answer within {self.timeout:g} s", None)
        except Exception as exc:  # whatever the transport raised: the event is kept and retried
            return self._retry(row, f"{type(exc).__name__}: {exc}"[:300], None)
        # Neither the body nor the receiver's reason phrase: a receiver may echo the payload there.
        answer = f"HTTP {status} {_phrase(status)}".strip()
        verdict = _verdict(status)
        if verdict is _Verdict.DELIVERED:
            self.delivered += 1
            log.debug("push_delivered", key=row.key, ticket_id=row.ticket_id, event_name=row.event, status=status)
            return _Result(row.id, delivered=True)
        if verdict is _Verdict.RETRY:
            return self._retry(row, answer, _seconds(retry_after))
        return self._refuse(row, answer)

    def _retry(self, row: _Claimed, error: str, at_least: float | None) -> _Result:
        self.failed += 1
        attempts = row.attempts + 1
        delay = max(backoff(attempts, self.max_backoff), min(at_least or 0.0, self.max_backoff))
        left_out = self._throttle.allow("push_delivery_failed", self.clock())
        if left_out is not None:
            log.warning("push_delivery_failed", key=row.key, ticket_id=row.ticket_id, event_name=row.event,
                        attempts=attempts, error=error, retry_in=round(delay, 3), url=self._where,
                        left_out=left_out, hint="the event is kept and retried; if this goes on, check that "
                                                "the platform at this URL is up and reachable")
        return _Result(row.id, delivered=False, error=error, retry_at=self._now() + timedelta(seconds=delay))

    def _refuse(self, row: _Claimed, error: str, hint: str = REFUSED_HINT) -> _Result:
        self.refused += 1
        log.error("push_refused", key=row.key, ticket_id=row.ticket_id, event_name=row.event,
                  attempts=row.attempts + 1, error=error, retry_in=self.max_backoff, url=self._where, hint=hint)
        retry_at = self._now() + timedelta(seconds=self.max_backoff)
        return _Result(row.id, delivered=False, error=f"refused: {error}", retry_at=retry_at)


def _claim(engine: Engine, now: datetime, lease_end: datetime, limit: int) -> tuple[list[_Claimed], datetime | None]:
    """Lease up to `limit` due rows, each the oldest undelivered event of its ticket, by id. With
    none due: when the next one will be (None: nothing waits)."""
    p, q = PushEventRow, aliased(PushEventRow)
    earlier = select(q.id).where(q.ticket_id == p.ticket_id, q.delivered.is_(None), q.id < p.id).exists()
    heads = (p.delivered.is_(None), ~earlier)
    due = (
        select(p.id, p.key, p.ticket_id, p.event, p.payload, p.created, p.attempts)
        .where(*heads, p.next_attempt <= now)
        .order_by(p.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=p)  # PostgreSQL; SQLite renders nothing here
    )
    while True:  # until something is leased or nothing is due
        with engine.begin() as conn:
            rows = conn.execute(due).all()
            if not rows:
                next_due = conn.execute(select(func.min(p.next_attempt)).where(*heads)).scalar_one()
                return [], None if next_due is None else _utc(next_due)
            # The lease, only where nobody leased the row since we read it (SQLite, without row
            # locks). If another relay got every one first, the next look finds the rows after them.
            lease = (
                update(p)
                .where(p.id.in_([r.id for r in rows]), p.delivered.is_(None), p.next_attempt <= now)
                .values(next_attempt=lease_end)
                .returning(p.id)
            )
            taken = set(conn.execute(lease).scalars())
        if taken:
            return [_Claimed(*r) for r in rows if r.id in taken], None  # the columns in _Claimed's order


def _settle(engine: Engine, results: Sequence[_Result], now: datetime) -> None:
    p = PushEventRow
    with engine.begin() as conn:
        for r in results:
            row = update(p).where(p.id == r.id, p.delivered.is_(None))
            if r.delivered:
                conn.execute(row.values(delivered=now))
            else:
                conn.execute(row.values(attempts=p.attempts + 1, next_attempt=r.retry_at, last_error=r.error))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives times back naive


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (its HTTP-date form is ignored: the backoff applies)."""
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tickets.push",
        description="Relay the ticket push outbox to the provincial 12345 platform until SIGTERM or SIGINT. "
                    "Several may run against one PostgreSQL; run one on SQLite.")
    parser.add_argument("--url", required=True, help="the platform's endpoint that takes the events (POST)")
    parser.add_argument("--db-url", required=True, help="the store, e.g. sqlite:////var/lib/hotline/hotline.db")
    parser.add_argument("--timeout", type=float, default=10, help="seconds to wait for an answer (default 10)")
    parser.add_argument("--max-backoff", type=float, default=300, help="longest wait between retries (default 300)")
    parser.add_argument("--batch", type=int, default=50, help="events in flight at once (default 50)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    setup(args.log_level)
    engine = open_engine(args.db_url)
    relay = Relay(engine, args.url, timeout=args.timeout, max_backoff=args.max_backoff, batch=args.batch)
    try:
        asyncio.run(_serve(relay))
    finally:
        engine.dispose()


async def _serve(relay: Relay) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("push_relay_started", url=relay._where, batch=relay.batch)
    await relay.run(stop)
    log.info("push_relay_stopped", delivered=relay.delivered, failed=relay.failed, refused=relay.refused)


if __name__ == "__main__":
    main()
