"""Shared by the store's unit tests (SQLite) and its PostgreSQL tests: records, the writer
task, and the migration check from revision 0001."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Engine, bindparam, text

from acd.commands import CallRecord
from acd.model import Outcome
from tickets.db import MIGRATIONS, callback_requests, insert_record, migrate, read_records, recent_answers
from tickets.store import Outbox


def record(call_id: str, caller_num: str = "13900000001", **kw: Any) -> CallRecord:
    """An answered call in queue main, with every report field set."""
    base: dict[str, Any] = dict(
        call_id=call_id, queue="main", caller_num=caller_num, caller_name="王小明", arrived=1_700_000_000.25,
        answered=1_700_000_003.5, ended=1_700_000_060.75, agent_id="1001", outcome=Outcome.ANSWERED,
        wait_seconds=3.25, talk_seconds=57.25, recording="/var/spool/hotline/rec/x.wav", restricted=False,
        offered_queue="tax", path=("tax", "main"), priority=2, service_level=20.0, short_abandon=4.0,
        served_by="engine", source="live",
    )
    base.update(kw)
    return CallRecord(**base)


@contextlib.asynccontextmanager
async def writing(outbox: Outbox) -> AsyncIterator[asyncio.Task[None]]:
    """The writer task, running for the duration of the block."""
    task = asyncio.create_task(outbox.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Wait for `check()`; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def spool_files(spool: Path) -> list[Path]:
    """Records waiting in the spool (not the quarantined ones)."""
    return sorted(spool.glob("*.json"))


def stored_ids(db: Engine) -> list[str]:
    return sorted(r.call_id for r in read_records(db))


# Rows as revision 0001 stored them: (call_id, queue, outcome, wait_seconds).
OLD_ROWS = [
    ("o1", "main", "answered", 3.0),
    ("o2", "main", "short_abandon", 1.0),
    ("o3", "tax", "short_abandon", 6.3),  # its queue's threshold was above the 5 s default
    ("o4", "main", "abandoned", 3.0),  # its queue's threshold was at most 3 s
    ("o5", "main", "abandoned", 12.0),
    ("o6", "tax", "timed_out", 300.0),
    ("o7", "main", "callback", 40.0),
]


def _alembic() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def check_migration_from_0001(db: Engine) -> None:
    """Old rows survive 0001 -> head with defaults and backfills, each hang-up keeps its class
    (short or not), the store works, and a downgrade gives back every old outcome."""
    migrate(db, "0001")
    when = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with db.begin() as conn:
        for cid, queue, outcome, wait in OLD_ROWS:
            conn.execute(
                text("INSERT INTO call_records (call_id, queue, caller_num, caller_name, caller_restricted, arrived, "
                     "answered, ended, agent_id, outcome, wait_seconds, talk_seconds, recording) VALUES "
                     "(:cid, :queue, '13900000009', '李四', :restricted, :t, NULL, :t, NULL, :outcome, :wait, 0, NULL)")
                .bindparams(bindparam("t", type_=DateTime(timezone=True))),
                {"cid": cid, "queue": queue, "outcome": outcome, "wait": wait, "t": when, "restricted": cid == "o7"},
            )
    migrate(db)
    rows = {r.call_id: r for r in read_records(db)}
    for cid, queue, outcome, wait in OLD_ROWS:
        row = rows[cid]
        assert (row.offered_queue, json.loads(row.path)) == (queue, [queue])
        assert (row.priority, row.service_level, row.served_by, row.source) == (0, 15.0, "engine", "live")
        assert row.outcome == ("abandoned" if outcome == "short_abandon" else outcome)
        assert row.wait_seconds == wait
        is_short = row.outcome == "abandoned" and row.wait_seconds < row.short_abandon  # the KPI module's rule
        assert is_short == (outcome == "short_abandon"), cid
    assert {cid: rows[cid].short_abandon for cid in ("o1", "o2", "o3", "o4", "o5")} == {
        "o1": 5.0, "o2": 5.0, "o3": 7.0, "o4": 3.0, "o5": 5.0}

    # The store works on the migrated table.
    assert insert_record(db, record("new", ended=when.timestamp() + 60, answered=when.timestamp() + 3))
    assert recent_answers(db, when.timestamp()) == [("13900000001", "1001", when.timestamp() + 60)]
    assert [(c["call_id"], c["restricted"]) for c in callback_requests(db, when.timestamp() - 1)] == [("o7", True)]

    with db.begin() as conn:
        conn.execute(text("DELETE FROM call_records WHERE call_id = 'new'"))
        cfg = _alembic()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with db.connect() as conn:
        back = {str(cid): str(out) for cid, out in conn.execute(text("SELECT call_id, outcome FROM call_records"))}
    assert back == {cid: outcome for cid, _queue, outcome, _wait in OLD_ROWS}
