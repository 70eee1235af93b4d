"""Asterisk's own account of every call, and the records it gives for calls the engine
never saw end.

Why CEL, and this way: Asterisk keeps no per-call summary we could trust as it is (its
CDRs fork at every Dial and bridge; its CEL is a stream of low-level channel events).
So the caller's hangup handler (extensions.conf [hotline-ended]) writes one CEL user
event, HOTLINE_END, carrying what the dialplan and the engine stored on the caller's
channel: the queue, the offered queue, the path, the join and answer times, the agent,
whether the fallback served the call, why it left the line. Asterisk writes it to a
SQLite file (cel_sqlite3_custom) whether or not an engine is running: durable, local,
and readable while Asterisk writes. One row per call, keyed by the call's Linkedid.

The engine reads rows it has not checked yet (a checkpoint in the spool folder) after
every resync and every minute, and records every call that has ended, is not known to
the engine, and has no record: exactly once, because the store is keyed by call id and
the candidates are checked against the live calls, the spool and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import structlog
from sqlalchemy import Engine

from acd.calls import NOT_OFFERED
from acd.commands import CallRecord
from acd.model import LeaveReason, Outcome, QueueSettings
from cti.decode import caller_name
from tickets.store import stored_ids

log = structlog.get_logger("hotline.account")

END_EVENT = "HOTLINE_END"
TABLE = "hotline_cel"
CHECKPOINT = "account.checkpoint"
# Rows younger than this are read again next time: a call's row can exist a moment
# before the engine has handled the call's hang-up.
SETTLE = 120.0
# The row of a call the engine still holds (it could not see the hang-up: the link is down)
# is read again until the engine lets the call go, for at most this long.
HELD_ROWS_MAX_AGE = 86400.0


@dataclass(frozen=True)
class AccountRow:
    rowid: int
    ended: float  # epoch seconds: when the caller's channel hung up
    call_id: str  # the Linkedid
    channel_id: str  # the caller channel's Uniqueid (equal to call_id for a caller)
    number: str
    name: str
    fields: Mapping[str, str]


def parse_extra(text: str) -> dict[str, str]:
    """The user event's extra: 'k=v&k=v' (CEL may wrap it as JSON {"extra": "..."}); the
    recording path comes last and may hold any character, so it takes the rest."""
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("extra", ""))
        except (ValueError, AttributeError):
            return {}
    out: dict[str, str] = {}
    rest = text
    while rest:
        if rest.startswith("rec="):
            out["rec"] = rest[4:]
            break
        part, _, rest = rest.partition("&")
        key, sep, value = part.partition("=")
        if sep:
            out[key] = unquote(value)
    return out


def _text(raw: bytes) -> str:
    """A text column as Asterisk wrote it: UTF-8, or a carrier's GBK/GB18030 name passed
    through as bytes; never an error that would stop the rows behind it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")


def read_rows(db: Path, after: int | None, since: float) -> tuple[list[AccountRow], int | None]:
    """HOTLINE_END rows after rowid `after`, and where reading started. With no checkpoint
    (`after` None) reading starts at the rows that ended since `since`; the rowid just
    before them is returned so that it becomes the first checkpoint."""
    if not db.exists():
        return [], after
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
    conn.text_factory = _text
    try:
        if after is not None:
            (top,) = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {TABLE}").fetchone()
            if int(top) < after:
                # A new file (rotated, recreated, restored): its rows are numbered from 1 again.
                log.warning("account_file_replaced", db=str(db), checkpoint=after, rows=int(top),
                            hint="reading the new file from the configured days back")
                after = None
        if after is None:
            # Asterisk creates the table with untyped columns and writes the time as text.
            (before,) = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {TABLE} "
                                     "WHERE CAST(eventtime AS REAL) < ?", (since,)).fetchone()
            after = int(before)
        cur = conn.execute(
            f"SELECT rowid, eventtime, linkedid, uniqueid, cidnum, cidname, eventextra FROM {TABLE} "
            "WHERE userdeftype = ? AND rowid > ? ORDER BY rowid",
            (END_EVENT, after),
        )
        rows = []
        for rowid, ended, linkedid, uniqueid, num, name, extra in cur:
            try:
                ended_at = float(ended)
            except (TypeError, ValueError):
                continue
            rows.append(AccountRow(int(rowid), ended_at, str(linkedid or ""), str(uniqueid or ""), str(num or ""),
                                   str(name or ""), parse_extra(str(extra or ""))))
        return rows, after
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return [], None  # Asterisk has not written its first row yet
        raise
    finally:
        conn.close()


def _float(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _name(row: AccountRow) -> str:
    return caller_name(row.name, row.fields.get("from", ""), row.call_id)


def record_from(row: AccountRow, queues: Mapping[str, QueueSettings]) -> CallRecord | None:
    """The call record Asterisk's account gives for one call; None for a caller who hung
    up before joining a queue (never offered: nothing to record)."""
    f = row.fields
    joined = _float(f.get("joined", ""))
    if joined is None or row.call_id != row.channel_id:
        return None
    answered = _float(f.get("answered", ""))
    agent = f.get("agent", "")
    path = tuple(p for p in f.get("path", "").split(">") if p)
    queue = f.get("queue", "") or (path[-1] if path else "")
    offered = f.get("offered", "") or (path[0] if path else queue)
    never_offered = offered == NOT_OFFERED
    answered_by_agent = answered is not None and agent.isdigit()
    if never_offered:
        # Answered: offered at the answer, in the queue that answered (as lifecycle.answered);
        # otherwise it counts as closed where the caller first came.
        offered = queue if answered_by_agent else (path[0] if path else queue)
    settings = queues.get(offered) or queues.get(queue)
    try:
        leave = LeaveReason(f.get("leave", ""))
    except ValueError:
        leave = None
    if answered_by_agent:
        outcome = Outcome.ANSWERED
    elif leave is not None:
        outcome = leave.outcome
    else:
        outcome = Outcome.ABANDONED
        answered = None
    if outcome is not Outcome.ANSWERED:
        if never_offered:
            outcome = Outcome.CLOSED  # closed hours wherever the caller went (as lifecycle.finish)
        elif outcome is Outcome.CLOSED and len(path) > 1:
            outcome = Outcome.OVERFLOW  # offered in an open queue, then moved into a closed one
    end = max(row.ended, joined)
    wait = max(0.0, (answered if answered is not None else end) - joined)
    talk = max(0.0, end - answered) if answered is not None else 0.0
    prio = f.get("prio", "")
    priority = int(prio) if prio in tuple("0123456789") else 0
    pres = f.get("pres", "").lower()
    return CallRecord(
        call_id=row.call_id,
        queue=queue,
        caller_num=row.number if row.number != "<unknown>" else "",
        caller_name=_name(row),
        arrived=joined,
        answered=answered,
        ended=end,
        agent_id=agent if outcome is Outcome.ANSWERED else None,
        outcome=outcome,
        wait_seconds=round(wait, 3),
        talk_seconds=round(talk, 3),
        recording=f.get("rec") or None,
        restricted=pres.startswith("prohib") or pres == "unavailable",
        offered_queue=offered,
        path=path or ((queue,) if queue else ()),
        priority=priority,
        service_level=settings.service_level if settings else 15.0,
        short_abandon=settings.short_abandon if settings else 5.0,
        served_by="fallback" if f.get("fallback") == "1" else "engine",
        source="asterisk",
    )


def load_checkpoint(spool: Path) -> int | None:
    try:
        return int((spool / CHECKPOINT).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def save_checkpoint(spool: Path, rowid: int) -> None:
    path = spool / CHECKPOINT
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(f"{rowid}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def settled_checkpoint(rows: list[AccountRow], previous: int | None, now_wall: float,
                       held: Callable[[str], bool] = lambda _: False) -> int | None:
    """How far the checkpoint may move: past every row older than SETTLE, and no further
    than the first younger one, or the first of a call the engine still holds (those are
    read again next time)."""
    top = previous
    for row in rows:
        if row.ended > now_wall - SETTLE:
            break
        if held(row.call_id) and row.ended > now_wall - HELD_ROWS_MAX_AGE:
            break
        top = row.rowid
    return top


class Ledger(Protocol):
    """What the reconciler needs of the dispatcher (it runs in the dispatcher's task)."""

    def unknown(self, call_id: str) -> bool: ...
    def holds(self, call_id: str) -> bool: ...
    async def recovered(self, records: list[CallRecord]) -> int: ...
    def settle_provisional(self, everything: bool = False) -> int: ...


class AccountReader:
    """Records the calls Asterisk's account shows ended and nobody recorded (the engine
    was stopped, or the dialplan's fallback served them while no engine routed)."""

    def __init__(self, db: Path, spool: Path, store: Engine, ledger: Ledger, knows: Callable[[str], bool],
                 queues: Callable[[], Mapping[str, QueueSettings]], first_days: int = 7,
                 wall: Callable[[], float] = time.time) -> None:
        self.db = db
        self.spool = spool
        self.store = store
        self.ledger = ledger
        self.knows = knows
        self.queues = queues
        self.first_days = first_days
        self.wall = wall
        self.recovered = 0
        self.bad_rows = 0
        self.read_errors = 0  # reconciles that failed (counted and alerted on: the safety net is down)
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """Read the account soon (the engine just rebuilt its picture after being away)."""
        self._kick.set()

    async def run(self, every: float = 60.0) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), every)
            self._kick.clear()
            try:
                await self.reconcile()
            except Exception as exc:  # the account is a safety net: a failure is logged, never fatal
                self.read_errors += 1
                log.error("account_read_failed", db=str(self.db), error=str(exc)[:300],
                          hint="check that the engine may read Asterisk's CEL file (account.cel_db)")

    async def reconcile(self) -> int:
        try:
            return await self._reconcile()
        finally:
            # Guesses waiting for the account are written when their wait is over, also
            # when the account cannot be read: a record is never held back for good.
            self.ledger.settle_provisional()

    async def _reconcile(self) -> int:
        saved = load_checkpoint(self.spool)
        now = self.wall()
        rows, after = await asyncio.to_thread(read_rows, self.db, saved, now - self.first_days * 86400)
        candidates = [r for r in rows if self.ledger.unknown(r.call_id) and not self.knows(r.call_id)]
        stored = await asyncio.to_thread(stored_ids, self.store, [r.call_id for r in candidates])
        queues = self.queues()
        records = []
        for r in candidates:
            if r.call_id in stored:
                continue
            try:
                rec = record_from(r, queues)
            except Exception as exc:  # one junk row is skipped, never the rows after it
                self.bad_rows += 1
                log.error("account_row_unreadable", call_id=r.call_id[:64], rowid=r.rowid, error=str(exc)[:200],
                          hint="the row is skipped; the call may need a record written by hand")
                continue
            if rec is not None:
                records.append(rec)
        added = await self.ledger.recovered(records) if records else 0
        top = settled_checkpoint(rows, after, now, self.ledger.holds)
        if top is not None and top != saved:
            await asyncio.to_thread(save_checkpoint, self.spool, top)
        if added:
            self.recovered += added
            log.warning("calls_recorded_from_asterisk_account", records=added,
                        fallback=sum(1 for r in records if r.served_by == "fallback"),
                        hint="these calls ended while the engine was not watching")
        return added
