"""Callbacks (回拨, virtual hold): a citizen facing a long wait leaves a number and keeps their
place in line; when their turn comes a free agent is rung first, then the citizen.

This is the shell's half; the core's half is acd/callbacks.py, the dialplan's is
[hotline-callback] in asterisk-conf/extensions.conf.in.

- `Callbacks.book` (the IVR's hook): checks the request, stores it durably (table
  callback_requests) and only then answers True. The request id is "cb-" + the booking
  call's Linkedid and the insert is ON CONFLICT DO NOTHING, so booking the same call twice,
  even at the same moment, is one request (FreePBX #525's duplicate callbacks). The booking
  call's record (outcome callback: offered, not answered) is written once, with it.
- `Callbacks.run` (a task the engine starts): once the engine routes, it settles the
  attempts a stopped engine left open, then feeds every due request to the core
  (`CallbackQueued`) with the citizen's original arrival, so the place in line survives a
  restart (twilio-labs #9), and never feeds one the core holds already. It also stores the
  attempts' starts and ends, in order, retrying while the database is away.
- The dispatcher asks `originate` for a callback ring's AMI Originate, and hands over the
  core's `CallbackAttempt` and `CallbackOutcome`.

A request's states: pending (its turn is to come: in the core's line, or waiting for
`next_attempt` after a failed attempt, not in line meanwhile) -> ringing (an agent took it
and the citizen is being called: one attempt counted) -> done (they talked), or pending
again (the attempt failed and attempts <= retries), or failed (no retries left: never
retried forever, queue_callback_v17's bug); cancelled while it is pending or ringing.

An engine killed mid-attempt loses nothing it had stored: a restarted engine adopts an
attempt still going on in Asterisk (the agent's leg is in its snapshot) and stores its end
as usual; an attempt that ended while no engine ran counts as failed with outcome
`unknown` (nobody can tell how it went: the citizen may be called once more).

Not handled here: a citizen with a pending callback who calls in again (the new call is
routed like any other and the request stays), and position announcements counting callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import structlog
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from acd.callbacks import ANSWER, UNKNOWN
from acd.commands import CallbackAttempt, CallbackOutcome, CallRecord, RingAgent
from acd.events import CallbackCancelled, CallbackQueued
from acd.model import Outcome, QueueSettings
from cti import dialplan
from cti.dispatcher import Dispatcher
from cti.logs import mask_number
from metrics.exporter import Metrics
from tickets.models import CallbackRow
from tickets.store import Failure, classify, describe

log = structlog.get_logger("hotline.callbacks")

PENDING, RINGING, DONE, FAILED, CANCELLED = "pending", "ringing", "done", "failed", "cancelled"
OPEN = (PENDING, RINGING)
REQUEST_PREFIX = dialplan.CALLBACK_PREFIX  # request id = "cb-" + the booking call's Linkedid
NUMBER = re.compile(r"[0-9]{3,20}")  # what reaches the dialplan (FILTERed there once more)
CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a Linkedid: it becomes a ChannelId and a file name
SKILL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
LANGUAGES = frozenset({"zh", "en"})
DISPLAY = "回拨"  # what the agent's phone shows, before the citizen's number
# Dial's status of the call to the citizen -> the attempt's outcome as stored.
OUTCOMES = {
    ANSWER: "connected",
    "NOANSWER": "no_answer",
    "BUSY": "busy",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
    "CANCEL": "agent_hung_up",  # the agent hung up while the citizen's phone rang
    "": "agent_hung_up",  # ... or before the citizen was dialled
    UNKNOWN: "unknown",
}
ENDED_KEPT = 100_000  # attempt call ids remembered as ended, against feeding a stale row again


@dataclass(frozen=True)
class BookingRequest:
    """What the IVR asks for when a caller accepts a callback."""

    call_id: str  # the booking call's Linkedid
    number: str  # the digits to call back
    queue: str  # a configured queue
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()
    language: str = "zh"  # zh | en
    arrived_wall: float = 0.0  # epoch seconds when the citizen's call arrived: their place in line
    caller_restricted: bool = False  # the caller withheld their number: it is masked wherever shown
    caller: str = ""  # the number the booking call came from (its record's caller; `number` may be another)


class CallbackPolicy(Protocol):
    """settings.ivr.callback (ivr/flows_yaml.py CallbackSection) or `CallbackSettings`."""

    @property
    @property
    def retries(self) -> int: ...
    @property
    def retry_interval(self) -> float: ...
    @property
    def ring_timeout(self) -> float: ...


@dataclass(frozen=True)
class CallbackSettings:
    retries: int = 3  # calls to the citizen after the first, if unanswered
    retry_interval: float = 300.0  # seconds between them
    ring_timeout: float = 30.0  # seconds the citizen's phone rings each time


# -- the store ---------------------------------------------------------------------------------


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()  # SQLite drops the zone


@dataclass(frozen=True)
class Request:
    """A stored request as read back (times in epoch seconds)."""

    id: str
    origin_call_id: str
    number: str
    restricted: bool
    queue: str
    priority: int
    skills: tuple[tuple[str, int], ...]
    language: str
    arrived: float
    state: str
    attempts: int
    next_attempt: float | None
    outcome: str
    agent_id: str | None
    last_call_id: str | None
    recording: str | None
    talk_seconds: float
    created: float
    updated: float
    agent_hangups: int = 0  # attempts an agent ended before the citizen could answer


def _request(row: CallbackRow) -> Request:
    return Request(
        id=row.id, origin_call_id=row.origin_call_id, number=row.number, restricted=bool(row.restricted),
        queue=row.queue, priority=row.priority, skills=tuple((str(n), int(v)) for n, v in json.loads(row.skills)),
        language=row.language, arrived=_epoch(row.arrived), state=row.state, attempts=row.attempts,
        next_attempt=None if row.next_attempt is None else _epoch(row.next_attempt), outcome=row.outcome,
        agent_id=row.agent_id, last_call_id=row.last_call_id, recording=row.recording,
        talk_seconds=row.talk_seconds, created=_epoch(row.created), updated=_epoch(row.updated),
        agent_hangups=row.agent_hangups or 0)


def insert_request(engine: Engine, values: dict[str, Any]) -> bool:
    """Store a new request; False if one with that id exists (the same call booked again)."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(CallbackRow).values(values).on_conflict_do_nothing(index_elements=["id"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(CallbackRow).values(values).on_conflict_do_nothing(index_elements=["id"])
    else:  # pragma: no cover - other databases: check first (the engine is the only writer)
        with Session(engine) as s, s.begin():
            if s.get(CallbackRow, values["id"]) is not None:
                return False
            s.add(CallbackRow(**values))
        return True
    # RETURNING, not rowcount: SQLAlchemy 2.1 on psycopg reports -1 rows for this INSERT.
    with engine.begin() as conn:
        return conn.execute(stmt.returning(CallbackRow.id)).first() is not None


def due_requests(engine: Engine, now: float, limit: int = 1000) -> list[Request]:
    """Pending requests whose turn may come now (no next attempt set, or it is due), oldest arrival first."""
    t = CallbackRow
    query = (select(t).where(t.state == PENDING, or_(t.next_attempt.is_(None), t.next_attempt <= _ts(now)))
             .order_by(t.arrived).limit(limit))
    with Session(engine) as s:
        return [_request(r) for r in s.scalars(query)]


def requests_in(engine: Engine, state: str) -> list[Request]:
    with Session(engine) as s:
        return [_request(r) for r in s.scalars(select(CallbackRow).where(CallbackRow.state == state))]


def get_request(engine: Engine, request_id: str) -> Request | None:
    with Session(engine) as s:
        row = s.get(CallbackRow, request_id)
        return None if row is None else _request(row)


def count_open(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(CallbackRow).where(CallbackRow.state.in_(OPEN))) or 0)


def mark_attempt(engine: Engine, request_id: str, call_id: str, agent_id: str, now: float) -> bool:
    """An agent took the request: the citizen is being called (one attempt). Idempotent: a
    request already ringing for this call, or finished, is left as it is."""
    with Session(engine) as s, s.begin():
        row = s.get(CallbackRow, request_id, with_for_update=True)
        if row is None or row.state != PENDING or row.last_call_id == call_id:
            return False
        row.state = RINGING
        row.attempts += 1
        row.last_call_id = call_id
        row.agent_id = agent_id
        row.next_attempt = None
        row.updated = _ts(now)
        return True


@dataclass(frozen=True)
class Finished:
    state: str  # what the request is now: done, pending (a retry at next_attempt) or failed
    queue: str
    outcome: str
    attempts: int


def finish_attempt(engine: Engine, request_id: str, call_id: str, status: str, agent_id: str | None,
                   talk: float, recording: str | None, now: float, retries: int,
                   retry_interval: float) -> Finished | None:
    """Store how an attempt ended. They talked: done. Otherwise a retry after `retry_interval`
    while attempts <= retries, then failed for good. Idempotent: an attempt already stored,
    or a request finished or cancelled meanwhile, is left as it is; an attempt whose start
    was never stored (the database was away) is counted now."""
    with Session(engine) as s, s.begin():
        row = s.get(CallbackRow, request_id, with_for_update=True)
        if row is None or row.state not in OPEN:
            return None
        if row.last_call_id == call_id and row.state == PENDING:
            return None  # this attempt's end is stored already
        outcome = OUTCOMES.get(status, "failed")
        # The agent hung up before the citizen's phone could be answered: the citizen did nothing
        # wrong, so it uses up none of their retries; back in line at once, at their place.
        agent_side = outcome == "agent_hung_up"
        if row.last_call_id != call_id:
            row.attempts += 1
            row.last_call_id = call_id
        if agent_side:
            row.agent_hangups += 1
        row.outcome = outcome
        row.agent_id = agent_id or row.agent_id
        row.talk_seconds = talk
        row.recording = recording or row.recording
        row.updated = _ts(now)
        if status == ANSWER:
            row.state, row.next_attempt = DONE, None
        elif agent_side:
            row.state, row.next_attempt = PENDING, _ts(now)
        elif row.attempts - row.agent_hangups <= retries:
            row.state, row.next_attempt = PENDING, _ts(now) + timedelta(seconds=retry_interval)
        else:
            row.state, row.next_attempt = FAILED, None
        return Finished(row.state, row.queue, outcome, row.attempts)


def cancel_request(engine: Engine, request_id: str, now: float) -> Request | None:
    """Cancel a request still pending or ringing; None if there is none such."""
    with Session(engine) as s, s.begin():
        row = s.get(CallbackRow, request_id, with_for_update=True)
        if row is None or row.state not in OPEN:
            return None
        row.state, row.outcome, row.next_attempt, row.updated = CANCELLED, "cancelled", None, _ts(now)
        s.flush()
        return _request(row)


def list_requests(engine: Engine, since: float) -> list[dict[str, Any]]:
    """Requests booked since `since`, and every one still open, newest first (the number is
    as stored: whoever shows it masks it when `restricted`)."""
    t = CallbackRow
    query = select(t).where(or_(t.created >= _ts(since), t.state.in_(OPEN))).order_by(t.created.desc())

    def iso(value: float | None) -> str | None:
        return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()

    with Session(engine) as s:
        rows = [_request(r) for r in s.scalars(query)]
    return [{"request_id": r.id, "call_id": r.origin_call_id, "queue": r.queue, "number": r.number,
             "restricted": r.restricted, "state": r.state, "attempts": r.attempts,
             "next_attempt": iso(r.next_attempt), "outcome": r.outcome, "agent_id": r.agent_id,
             "last_call_id": r.last_call_id, "arrived": iso(r.arrived), "booked": iso(r.created),
             "updated": iso(r.updated), "talk_seconds": r.talk_seconds} for r in rows]


# -- the service --------------------------------------------------------------------------------


Op = tuple[Literal["start"], CallbackAttempt] | tuple[Literal["end"], CallbackOutcome]


class Callbacks:
    """Book, feed, place and store callbacks. One per engine; `run` is its task.

    Wiring (cti/engine.py): build it after the dispatcher, on the store's database
    (`outbox.engine`), with settings.ivr.callback; expose it as `engine.callbacks` for the
    IVR; start `run()` with the engine's other tasks. It sets `dispatcher.callbacks`."""

    def __init__(self, db: Engine, dispatcher: Dispatcher, settings: CallbackPolicy, metrics: Metrics | None = None,
                 *, caller_ids: Mapping[str, str] | None = None, poll: float = 1.0, retry_max: float = 30.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.settings = settings
        self.metrics = metrics if metrics is not None else dispatcher.metrics
        # queue -> the number the citizen sees calling (digits: the hotline's own).
        self.caller_ids = {q: n for q, n in (caller_ids or {}).items() if NUMBER.fullmatch(n)}
        self.poll = poll
        self.retry_max = retry_max
        self.wall = wall
        self.withdrawn: set[str] = set()  # booking calls the IVR stopped waiting for (see withdraw)
        self.fed: dict[str, str] = {}  # request id -> the call id fed to the core (waiting, ringing or talking)
        self.requests: dict[str, Request] = {}  # those requests as stored: what their Originate carries
        self.ended: dict[str, None] = {}  # attempts' call ids whose end is stored (oldest first)
        self.recovered = False  # the attempts a stopped engine left open are settled
        self.errors = 0
        self._ops: deque[Op] = deque()  # attempts' starts and ends to store, in order
        self._op_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._bookings: set[asyncio.Task[bool]] = set()
        dispatcher.callbacks = self

    # -- the IVR's hooks ---------------------------------------------------------------------

    async def book(self, req: BookingRequest) -> bool:
        """Book a callback; True once it is stored durably (also when this call booked before)."""
        problem = self._refused(req)
        if problem:
            log.warning("callback_refused", call_id=req.call_id[:64], reason=problem)
            return False
        # Shielded: a caller who gives up waiting (a time-out, a hang-up) cannot cut it between
        # the stored request and its booking record. Stored is booked, whatever the caller heard.
        task = asyncio.get_running_loop().create_task(self._store_booking(req))
        self._bookings.add(task)
        task.add_done_callback(self._bookings.discard)
        return await asyncio.shield(task)

    async def _store_booking(self, req: BookingRequest) -> bool:
        now = self.wall()
        arrived = min(req.arrived_wall, now) if req.arrived_wall > 0 else now
        request_id = REQUEST_PREFIX + req.call_id
        values = {
            "id": request_id, "origin_call_id": req.call_id, "number": req.number, "restricted": req.caller_restricted,
            "queue": req.queue, "priority": req.priority, "skills": json.dumps([list(s) for s in req.skills]),
            "language": req.language, "arrived": _ts(arrived), "state": PENDING, "attempts": 0, "agent_hangups": 0,
            "next_attempt": None,
            "outcome": "", "agent_id": None, "last_call_id": None, "recording": None, "talk_seconds": 0.0,
            "created": _ts(now), "updated": _ts(now),
        }
        try:
            created = await asyncio.to_thread(insert_request, self.db, values)
        except Exception as exc:
            self.errors += 1
            log.error("callback_not_booked", call_id=req.call_id, error=describe(exc),
                      hint="the store did not take the request: the caller is told it was not booked")
            return False
        caller = mask_number(req.number, req.caller_restricted)
        if req.call_id in self.withdrawn:
            # The IVR stopped waiting for this booking and put the caller in the queue: the
            # caller's own record will tell what happened; the request must not be called back.
            self.withdrawn.discard(req.call_id)
            await asyncio.to_thread(cancel_request, self.db, request_id, self.wall())
            log.warning("callback_withdrawn", call_id=req.call_id, request=request_id,
                        hint="stored after the IVR had given up waiting; cancelled, the caller was queued instead")
            return False
        if not created:
            log.info("callback_booked_already", call_id=req.call_id, request=request_id, number=caller)
            return True
        state = self.dispatcher.state
        q = state.queues.get(req.queue) or state.default_queue  # a reload may have removed it meanwhile
        self.dispatcher.record_booking(self._booking_record(req, q, arrived, now))
        self.metrics.callbacks_booked.labels(req.queue).inc()
        log.info("callback_booked", call_id=req.call_id, request=request_id, queue=req.queue, number=caller,
                 waited=round(now - arrived, 3))
        self._wake.set()
        return True

    def withdraw(self, call_id: str) -> None:
        """The IVR gave up waiting for this call's booking (the store was slow) and queued the
        caller: a booking still in flight is cancelled when it lands, with no booking record."""
        if any(not t.done() for t in self._bookings):
            self.withdrawn.add(call_id)

    async def cancel(self, request_id: str) -> bool:
        """Cancel a request that is pending or ringing; False if there is none such. A callback
        waiting in line leaves it; one already ringing an agent or talking runs to its end."""
        try:
            row = await asyncio.to_thread(cancel_request, self.db, request_id, self.wall())
        except Exception as exc:
            self.errors += 1
            log.error("callback_not_cancelled", request=request_id[:80], error=describe(exc))
            return False
        if row is None:
            return False
        self.requests.pop(request_id, None)
        call_id = self.fed.pop(request_id, None)
        if call_id is not None:
            self.dispatcher.submit(CallbackCancelled(call_id))
        self.metrics.callbacks_finished.labels(row.queue, "cancelled").inc()
        log.info("callback_cancelled", request=request_id, call_id=call_id)
        return True

    def _refused(self, req: BookingRequest) -> str:
        if not CALL_ID.fullmatch(req.call_id):
            return "the booking call id is not a Linkedid"
        if not NUMBER.fullmatch(req.number):
            return "the number must be 3 to 20 digits"
        if req.number.startswith("00") or len(req.number) < 7:
            # Only numbers a citizen has (a local, trunk or mobile number): never an international
            # call or a short service number at the hotline's expense, keyed by anyone.
            return "only a domestic number of 7 or more digits is called back (no 00..., no short numbers)"
        if req.queue not in self.dispatcher.state.queues:
            return f"no queue {req.queue[:32]!r}"
        if req.language not in LANGUAGES:
            return f"language {req.language[:8]!r} is not zh or en"
        if not 0 <= req.priority <= 9:
            return "priority must be 0-9"
        if any(not SKILL_NAME.fullmatch(name) or not 1 <= level <= 100 for name, level in req.skills):
            return "skills must be (name, level 1-100)"
        return ""

    @staticmethod
    def _booking_record(req: BookingRequest, q: QueueSettings, arrived: float, now: float) -> CallRecord:
        """The booking call as a call record: offered in the queue it asked for, not answered."""
        return CallRecord(
            call_id=req.call_id, queue=req.queue, caller_num=req.caller, caller_name="", arrived=arrived,
            answered=None, ended=now, agent_id=None, outcome=Outcome.CALLBACK, wait_seconds=round(now - arrived, 3),
            talk_seconds=0.0, recording=None, restricted=req.caller_restricted, offered_queue=req.queue,
            path=(req.queue,), priority=req.priority, service_level=q.service_level, short_abandon=q.short_abandon)

    # -- the dispatcher's hooks (in its task: they return at once) ---------------------------

    def originate(self, cmd: RingAgent) -> dict[str, str] | None:
        """The AMI Originate for a callback's ring of `cmd.agent_id` (None: no such request here)."""
        row = self.requests.get(cmd.callback or "")
        if row is None or not NUMBER.fullmatch(row.number) or not dialplan.AGENT_ENDPOINT_ID.fullmatch(cmd.agent_id):
            return None
        variables = {
            dialplan.CALLBACK_ID: row.id,
            dialplan.CB_NUMBER: row.number,
            dialplan.CB_TIMEOUT: str(max(1, round(self.settings.ring_timeout))),
            dialplan.CB_CLI: self.caller_ids.get(row.queue, ""),
            dialplan.LANGUAGE: row.language if row.language in LANGUAGES else "zh",
            dialplan.QUEUE: row.queue,
        }
        if any("," in v or "=" in v for v in variables.values()):
            return None  # one Variable header holds them all, comma-separated
        return {
            "Action": "Originate",
            "Channel": f"PJSIP/agent{cmd.agent_id}",
            "Context": dialplan.CALLBACK,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(max(1000, round(cmd.timeout * 1000))),
            "ChannelId": cmd.call_id,
            "CallerID": f'"{DISPLAY}"' if row.restricted else f'"{DISPLAY}" <{row.number}>',
            "Async": "true",
            "Variable": ",".join(f"{k}={v}" for k, v in variables.items()),
        }

    def attempt_started(self, cmd: CallbackAttempt) -> None:
        self._ops.append(("start", cmd))
        self._op_ready.set()

    def attempt_ended(self, cmd: CallbackOutcome) -> None:
        self._ops.append(("end", cmd))
        self._op_ready.set()

    # -- the task ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Settle what a stopped engine left open, then feed due requests to the core (every
        `poll` seconds, or at once after a booking), and store the attempts as they go."""
        writer = asyncio.get_running_loop().create_task(self._store_ops(), name="callback-store")
        try:
            await self._recover()
            while True:
                try:
                    await self.scan()
                except Exception as exc:
                    self.errors += 1
                    log.warning("callback_scan_failed", error=describe(exc),
                                hint="the store is away; requests are fed when it answers again")
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
                # that lands as the wait completes, and this task would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _recover(self) -> None:
        """After the first resync: an attempt stored as ringing that the engine does not hold
        (Asterisk showed no leg for it) ended while no engine saw it: a failed attempt,
        outcome unknown. One Asterisk still shows was adopted: its end is stored as usual."""
        while not self.dispatcher.state.routing:  # noqa: ASYNC110 - the dispatcher's flag; its hook is the account's
            await asyncio.sleep(0.1)
        delay = 0.5
        while True:
            try:
                open_attempts = await asyncio.to_thread(requests_in, self.db, RINGING)
                break
            except Exception as exc:
                log.warning("callback_recovery_waits", error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        now = self.wall()
        for row in open_attempts:
            call_id = row.last_call_id or dialplan.callback_call_id(row.id, row.attempts)
            if self.dispatcher.holds(call_id):
                self.fed[row.id] = call_id
                self.requests[row.id] = row
                continue
            log.warning("callback_attempt_unseen", request=row.id, call_id=call_id,
                        hint="it ended while no engine ran: counted as a failed attempt (outcome unknown)")
            self.attempt_ended(CallbackOutcome(row.id, call_id, row.agent_id, UNKNOWN, None, now, 0.0, None))
        self.recovered = True

    async def scan(self) -> None:
        """Feed the due requests the core does not hold yet; refresh the open count."""
        now = self.wall()
        rows = await asyncio.to_thread(due_requests, self.db, now)
        for row in rows:
            call_id = dialplan.callback_call_id(row.id, row.attempts + 1)
            if row.id in self.fed or call_id in self.ended:
                continue  # in the core already, or a row read before its attempt's end was stored
            self.fed[row.id] = call_id
            self.requests[row.id] = row
            self.dispatcher.submit(CallbackQueued(call_id, row.id, row.queue, row.priority, row.skills, row.arrived,
                                                  max(0.0, now - row.arrived), row.number, row.restricted))
            log.info("callback_queued", request=row.id, call_id=call_id, queue=row.queue,
                     waited=round(now - row.arrived, 3), attempt=row.attempts + 1)
        self.metrics.callbacks_pending.set(await asyncio.to_thread(count_open, self.db))

    async def _store_ops(self) -> None:
        delay = 0.5
        while True:
            if not self._ops:
                self._op_ready.clear()
                await self._op_ready.wait()
                continue
            op = self._ops[0]
            try:
                await self._store(op)
            except Exception as exc:
                self.errors += 1
                if classify(exc) is Failure.REFUSED:
                    log.error("callback_store_refused", call_id=op[1].call_id, error=describe(exc),
                              hint="the database refuses this update for good; it is dropped")
                    self._ops.popleft()
                    continue
                log.warning("callback_store_failed", call_id=op[1].call_id, error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self._ops.popleft()
            delay = 0.5

    async def _store(self, op: Op) -> None:
        now = self.wall()
        if op[0] == "start":
            started = op[1]
            await asyncio.to_thread(mark_attempt, self.db, started.request_id, started.call_id, started.agent_id, now)
            return
        cmd = op[1]
        s = self.settings
        result = await asyncio.to_thread(finish_attempt, self.db, cmd.request_id, cmd.call_id, cmd.status,
                                         cmd.agent_id, cmd.talk_seconds, cmd.recording, now, s.retries,
                                         s.retry_interval)
        self.ended[cmd.call_id] = None
        if len(self.ended) > ENDED_KEPT:
            del self.ended[next(iter(self.ended))]
        if self.fed.get(cmd.request_id) == cmd.call_id:
            del self.fed[cmd.request_id]
            self.requests.pop(cmd.request_id, None)
        if result is None:
            return
        log.info("callback_attempt_stored", request=cmd.request_id, call_id=cmd.call_id, outcome=result.outcome,
                 state=result.state, attempts=result.attempts)
        if result.state in (DONE, FAILED):
            self.metrics.callbacks_finished.labels(result.queue, result.outcome).inc()

    async def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the attempts' starts and ends handed over so far are stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._ops:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True
