"""The call-record store's outbox: nothing accepted is lost, nothing is written twice, and one
bad record never holds up the others.

`put` (called by the dispatcher) spools a finished call durably and returns; it never raises.
The writer task `run` inserts spooled records into the database off the event loop, oldest
first, and deletes each file once the row is stored. A failure is classified:

- transient (the database is down or busy): the record stays first in line and is retried
  with a backoff of 0.5 s doubling to 30 s; while waiting the writer probes the database every
  second and goes on as soon as it takes a record again;
- refused for good (a value too long for its column, a broken constraint, a spool file that
  is not a record): the record is quarantined at once and the writer goes on with the next;
- anything else: the writer probes the database with a well-formed record. If the probe also
  fails the database is the problem (transient); if it works, the record is, and after
  `suspect_limit` such failures the record is quarantined.

If the spool itself cannot be written (disk full, permissions) the record is held in memory,
counted in `spool_errors`, and the writer keeps trying to spool it, or to insert it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from acd.commands import CallRecord
from tickets.db import (
    callback_requests,
    insert_record,
    migrate,
    open_engine,
    probe,
    read_records,
    recent_answers,
    row_to_record,
    stored_ids,
)
from tickets.spool import (
    QUARANTINE,
    BadSpoolFile,
    Quarantined,
    list_quarantine,
    quarantine,
    read_spool_file,
    record_from_json,
    record_to_json,
    requeue,
    spool_name,
    spool_record,
)

__all__ = [
    "Failure",
    "Outbox",
    "Quarantined",
    "callback_requests",
    "classify",
    "insert_record",
    "list_quarantine",
    "migrate",
    "open_engine",
    "read_records",
    "recent_answers",
    "record_from_json",
    "record_to_json",
    "requeue",
    "row_to_record",
    "stored_ids",
]

log = structlog.get_logger("hotline.store")
T = TypeVar("T")


WRITER_THREAD = "store-write"  # the record writer's threads
READER_THREAD = "store-read"  # the threads that read figures (month to date, overdue tickets)


def in_daemon_thread(fn: Callable[..., T], *args: Any, name: str = WRITER_THREAD) -> asyncio.Future[T]:
    """`fn(*args)` in a thread of its own that never holds the process up: a database call stuck
    in recv() must not keep `hotline run` from exiting after SIGTERM (the default executor's
    threads are joined at exit; a daemon thread is not). What it was writing is in the spool.
    `name` tells the threads apart in a dump."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future


def describe(exc: BaseException) -> str:
    """What went wrong, without what was being written: SQLAlchemy appends the statement's
    parameters (callers' numbers and names), and PostgreSQL a DETAIL line with the failing
    row; this text reaches the log and the quarantine's reason files."""
    orig = getattr(exc, "orig", None) if isinstance(exc, StatementError) else None
    text = str(orig) if orig is not None else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    kind = type(orig).__name__ if orig is not None else type(exc).__name__
    return f"{kind}: {first[:300]}"


class Failure(enum.Enum):
    TRANSIENT = "transient"  # the database is unreachable or busy: keep the record, retry
    REFUSED = "refused"  # the database refuses this record for good: quarantine it now
    UNKNOWN = "unknown"  # unclassified: a probe tells which of the two


_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, TimeoutError, ConnectionError)
# ON CONFLICT (call_id) DO NOTHING means an IntegrityError is never the call-id conflict.
_REFUSED = (DataError, IntegrityError)


def classify(exc: BaseException) -> Failure:
    """What an exception from an insert says about the database and the record."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Failure.TRANSIENT
    if isinstance(exc, _TRANSIENT):
        return Failure.TRANSIENT
    if isinstance(exc, _REFUSED):
        return Failure.REFUSED
    return Failure.UNKNOWN


HINTS = {
    "transient": "the database is unreachable or busy; records wait in the spool and are retried. "
                 "Check that the database at store.url is up and accepts writes",
    "refused": "the database refuses this record for good (e.g. a value longer than its column). It is kept in "
               "the quarantine folder with a .reason file; correct the record or widen the column by a "
               "migration, then requeue it by call id",
    "unreadable": "the spool file is not a call record (cut short or edited). It is kept in the quarantine "
                  "folder; repair it and requeue it, or delete it if it holds no call",
    "suspect": "the database takes other records but failed this one repeatedly with an unclassified error. "
               "It is kept in the quarantine folder; read the error, fix the record or the database, then "
               "requeue it by call id",
    "unspooled": "the spool cannot be written and the database refuses the record: it is held in memory only "
                 "and lost if the engine stops. Free space in (or fix permissions of) the spool folder",
}


@dataclass
class _Entry:
    """One accepted record on its way to the database."""

    path: Path | None  # its spool file; None while it could not be spooled (held in memory)
    rec: CallRecord | None  # None until read from `path`
    attempts: int = 0  # failed attempts
    suspect: int = 0  # unclassified failures while the database took a probe record


# What one attempt came to. "gone": the spool file vanished (stored and removed by another run).
# "suspect": an unclassified failure while the database took a probe record.
_Kind = Literal["stored", "duplicate", "gone", "transient", "refused", "unreadable", "suspect"]


@dataclass(frozen=True)
class _Try:
    kind: _Kind
    error: str = ""
    spool_failed: bool = False  # a held record still could not be spooled


class Outbox:
    """Spool + writer. `put` is called by the dispatcher; `run` is the writer task.

    Counters (plain ints, only ever increasing; export them as Prometheus counters):
    """

    written: int
    """Records inserted into the database."""
    duplicates: int
    """Records the database already held (a crash between insert and unlink, a requeue of a stored call)."""
    errors: int
    """Failed write attempts, each retry counted: database down, record refused, spool file unreadable."""
    quarantined: int
    """Records this process moved to quarantine (see `in_quarantine()` for how many are there now)."""
    spool_errors: int
    """Failed attempts to write a spool file (by `put`, then by the writer's retries): disk full, permissions."""

    def __init__(
        self,
        engine: Engine,
        spool: Path,
        retry_max: float = 30.0,
        *,
        retry_min: float = 0.5,
        probe_every: float = 1.0,
        suspect_limit: int = 3,
        attempt_timeout: float = 20.0,
        schema: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        # Brings the schema up when the database did not answer at start (None: it is up):
        # the writer runs it first, retrying like any outage, and writes nothing before.
        self._schema_pending = schema
        self.spool = spool
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.probe_every = probe_every
        self.suspect_limit = suspect_limit
        self.attempt_timeout = attempt_timeout  # one write (or probe) the database does not answer
        self.written = self.duplicates = self.errors = self.quarantined = self.spool_errors = 0
        self._entries: deque[_Entry] = deque()  # oldest first; the head is the one being written
        self._queued: set[Path] = set()  # spool files in `_entries`, so none is queued twice
        self._wake = asyncio.Event()
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o750)

    # -- what the dispatcher and the engine call ------------------------------------------------

    def put(self, rec: CallRecord) -> None:
        """Accept a finished call: spooled durably (file and folder fsynced) before this returns.
        Never raises: if the spool cannot be written the record is held in memory and retried."""
        try:
            path: Path | None = spool_record(self.spool, rec)
        except Exception as exc:  # disk full, read-only, permissions: keep the record all the same
            self.spool_errors += 1
            path = None
            log.error("store_spool_failed", call_id=rec.call_id, spool=str(self.spool), error=str(exc)[:300],
                      hint="free space in (or fix permissions of) the spool folder; the record is held in memory "
                           "and retried, but is lost if the engine stops first")
        if path is not None and path in self._queued:
            return  # the same call again: its file now holds the latest copy
        self._add(_Entry(path, None if path else rec))

    def pending(self) -> int:
        """Records accepted and not yet stored: spooled plus held in memory (not quarantined ones)."""
        return len(self._entries)

    def held(self) -> int:
        """Records held in memory only, because the spool could not be written."""
        return sum(1 for e in self._entries if e.path is None)

    def in_quarantine(self) -> int:
        """Records in the quarantine folder now (set aside, waiting for an operator)."""
        folder = self.spool / QUARANTINE
        return sum(1 for _ in folder.glob("*.json")) if folder.is_dir() else 0

    def knows(self, call_id: str) -> bool:
        """A record for this call was accepted and is not stored yet: spooled, held in
        memory, or set aside in quarantine."""
        name = spool_name(call_id)
        if (self.spool / name).exists() or (self.spool / QUARANTINE / name).exists():
            return True
        return any(e.rec is not None and e.rec.call_id == call_id for e in self._entries if e.path is None)

    def recover(self) -> int:
        """Queue spool files left by an earlier run (or put back from quarantine); returns how many."""
        for half in self.spool.glob("*.json.tmp"):  # a spool write cut short by a kill: its record
            half.unlink(missing_ok=True)          # was never accepted (put() had not returned)
            log.info("store_half_written_spool_file_removed", spool=str(half))
        found = [p for p in sorted(self.spool.glob("*.json")) if p not in self._queued]
        for path in found:
            self._add(_Entry(path, None))
        return len(found)

    def requeue(self, call_id: str) -> Path:
        """Put a quarantined record back in line (see `tickets.spool.requeue` for the errors)."""
        path = requeue(self.spool, call_id)
        # Always a new entry: the one that was set aside may still be leaving the line (the
        # writer pops it once the quarantine move returns), and would take the path with it.
        self._add(_Entry(path, None))
        log.info("store_record_requeued", call_id=call_id, spool=str(path))
        return path

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending; False if the time ran out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._entries:
            if loop.time() >= deadline:
                for e in self._entries:
                    if e.path is None and e.rec is not None:  # the log is the last place left to keep it
                        log.error("store_record_not_saved", call_id=e.rec.call_id, record=record_to_json(e.rec),
                                  hint="the spool could not be written; insert this record by hand")
                return False
            await asyncio.sleep(0.05)
        return True

    # -- the writer -----------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: store records oldest first, until cancelled."""
        delay = self.retry_min
        while True:
            if self._schema_pending is not None:
                transient = await self._bring_schema()
                if transient is not None:
                    # An outage ends at the first probe that answers; a migration that fails
                    # on a database that answers is tried again only after the back-off.
                    await (self._pause(delay) if transient else asyncio.sleep(delay))
                    delay = min(delay * 2, self.retry_max)
                    continue
                delay = self.retry_min
            if not self._entries:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                delay = await self._step(delay)
            except Exception:  # a bug here must not stop every later record: log it, wait, go on
                log.exception("store_writer_error", hint="a bug in the writer; records stay in the spool and are "
                                                         "retried. Report it with this log line")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    async def _step(self, delay: float) -> float:
        """One attempt at the first record in line; returns the backoff for the next failure."""
        entry = self._entries[0]
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that lands as the write completes, and the writer would then never stop.
            async with asyncio.timeout(self.attempt_timeout):
                result = await in_daemon_thread(self._store, entry)
        except TimeoutError:
            # The database stopped answering mid-statement (a failover, a dead path): leave that
            # connection to its thread, start afresh with new ones, and retry like any outage.
            self.engine.dispose()
            result = _Try("transient", f"no answer from the database within {self.attempt_timeout:g} s")
        if entry.path is not None:
            self._queued.add(entry.path)  # a held record may have been spooled just now
        if result.spool_failed:
            self.spool_errors += 1
        if result.kind in ("stored", "duplicate", "gone"):
            self._done(entry, result.kind)
            return self.retry_min
        self.errors += 1
        entry.attempts += 1
        call_id = self._call_id(entry)
        if result.kind == "transient":
            log.warning("store_write_failed", call_id=call_id, error=result.error, retry_in=delay,
                        pending=len(self._entries), hint=HINTS["transient"])
            await self._pause(delay)
            return min(delay * 2, self.retry_max)
        if result.kind == "suspect":
            entry.suspect += 1
            if entry.suspect < self.suspect_limit:
                log.warning("store_write_failed", call_id=call_id, error=result.error, attempt=entry.suspect,
                            hint="the database takes other records; this one is quarantined after "
                                 f"{self.suspect_limit} such failures")
                await asyncio.sleep(self.retry_min)
                return delay
        if await self._set_aside(entry, call_id, result):
            return delay
        await asyncio.sleep(delay)  # could not quarantine it: it went to the back of the line
        return min(delay * 2, self.retry_max)

    async def _bring_schema(self) -> bool | None:
        """Run the pending migration: None when done, else whether the failure was an outage."""
        assert self._schema_pending is not None
        try:
            await in_daemon_thread(self._schema_pending)
        except Exception as exc:
            transient = classify(exc) is Failure.TRANSIENT
            (log.warning if transient else log.error)(
                "store_schema_not_ready", error=describe(exc), pending=len(self._entries),
                hint=HINTS["transient"] if transient else
                "the schema migration failed; records wait in the spool. Fix the cause (see the error) and restart")
            return transient
        self._schema_pending = None
        log.info("store_schema_ready", pending=len(self._entries))
        return None

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(self.attempt_timeout):
                return await in_daemon_thread(probe, self.engine)
        except TimeoutError:
            self.engine.dispose()
            return False

    def _add(self, entry: _Entry) -> None:
        self._entries.append(entry)
        if entry.path is not None:
            self._queued.add(entry.path)
        self._wake.set()

    def _done(self, entry: _Entry, kind: _Kind) -> None:
        self._entries.popleft()
        if entry.path is not None:
            self._queued.discard(entry.path)
        if kind == "gone":
            log.info("store_spool_file_gone", spool=str(entry.path))  # someone else stored or removed it
            return
        self.written += kind == "stored"
        self.duplicates += kind == "duplicate"
        rec = entry.rec
        assert rec is not None  # read before it could be stored
        log.info("call_record_stored", call_id=rec.call_id, outcome=rec.outcome.value, duplicate=kind == "duplicate")

    def _store(self, entry: _Entry) -> _Try:
        """One attempt at storing `entry`. Runs in a worker thread and touches nothing but `entry`."""
        spool_failed = False
        if entry.path is None and entry.rec is not None:
            try:
                entry.path = spool_record(self.spool, entry.rec)
            except Exception:
                spool_failed = True  # still held in memory: try the database directly
        try:
            if entry.rec is None:
                assert entry.path is not None
                entry.rec = read_spool_file(entry.path)
            stored = insert_record(self.engine, entry.rec)
        except FileNotFoundError:
            return _Try("gone")
        except BadSpoolFile as exc:
            return _Try("unreadable", str(exc)[:500])
        except Exception as exc:
            failure = classify(exc)
            kind: _Kind = "transient"
            if failure is Failure.REFUSED:
                kind = "refused"
            elif failure is Failure.UNKNOWN and probe(self.engine):
                kind = "suspect"  # the database takes a well-formed record: this one is the problem
            return _Try(kind, describe(exc), spool_failed)
        if entry.path is not None:
            try:
                entry.path.unlink(missing_ok=True)  # a crash before this only leaves a duplicate to skip
            except OSError as exc:
                log.warning("store_spool_file_kept", spool=str(entry.path), error=str(exc),
                            hint="the record is stored; the file is skipped as a duplicate at the next start")
        return _Try("stored" if stored else "duplicate", spool_failed=spool_failed)

    async def _set_aside(self, entry: _Entry, call_id: str, result: _Try) -> bool:
        """Quarantine the head record; False if it could not be (it then goes to the back of the line)."""
        reason = result.kind  # refused | unreadable | suspect
        if entry.path is not None:
            try:
                q = await asyncio.to_thread(quarantine, self.spool, entry.path, call_id, result.error,
                                            entry.attempts, HINTS[reason])
            except OSError as exc:
                log.error("store_quarantine_failed", call_id=call_id, error=str(exc)[:300], record_error=result.error,
                          hint="fix the spool folder (space, permissions); the record is retried meanwhile")
            else:
                self._entries.popleft()
                self._queued.discard(entry.path)
                self.quarantined += 1
                log.error("store_record_quarantined", call_id=call_id, reason=reason, error=result.error,
                          attempts=entry.attempts, file=str(q.file), hint=HINTS[reason])
                return True
        else:
            log.error("store_record_refused", call_id=call_id, error=result.error, hint=HINTS["unspooled"])
        self._entries.rotate(-1)
        return False

    async def _pause(self, delay: float) -> None:
        """Wait `delay` seconds before the next attempt, but probe the database every `probe_every`
        seconds meanwhile and go on at once when it takes a record again (the attempt that just
        failed says it did not): a database back after a 1 s outage costs 1 s, not the 30 s cap."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(self.probe_every, left))
            if loop.time() < end and await self._probe():
                return

    @staticmethod
    def _call_id(entry: _Entry) -> str:
        if entry.rec is not None:
            return entry.rec.call_id
        return entry.path.stem if entry.path is not None else "?"
