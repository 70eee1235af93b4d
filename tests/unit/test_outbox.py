"""The outbox on SQLite with injected faults: one bad record never blocks the others, nothing
accepted is lost, nothing is written twice."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from structlog.testing import capture_logs

import tickets.store as store_module
from acd.commands import CallRecord
from tests.unit.store_helpers import record, spool_files, stored_ids, until, writing
from tickets import spool as spool_module
from tickets.db import insert_record, migrate, open_engine
from tickets.spool import list_quarantine, requeue, spool_name
from tickets.store import Failure, Outbox, classify


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(engine)
    return engine


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def fast(db: Engine, spool: Path, **kw: Any) -> Outbox:
    return Outbox(db, spool, **{"retry_min": 0.01, "retry_max": 0.05, "probe_every": 0.01, **kw})


def down() -> Engine:
    """A database that cannot be reached: every insert and every probe fails."""
    return create_engine("sqlite:////nonexistent-folder/hotline.db")


def refuse(monkeypatch: pytest.MonkeyPatch, call_ids: set[str], exc: Exception) -> list[str]:
    """Make the insert of these calls fail with `exc`; returns the call ids tried, in order."""
    real, tried = insert_record, []

    def insert(engine: Engine, rec: CallRecord) -> bool:
        tried.append(rec.call_id)
        if rec.call_id in call_ids:
            raise exc
        return real(engine, rec)

    monkeypatch.setattr(store_module, "insert_record", insert)
    return tried


TOO_LONG = DataError("INSERT INTO call_records ...", None, Exception("value too long for type character varying(64)"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("failure", [
    (DataError("INSERT", None, Exception("value too long")), Failure.REFUSED),
    (IntegrityError("INSERT", None, Exception("null value in column")), Failure.REFUSED),
    (OperationalError("INSERT", None, Exception("connection refused")), Failure.TRANSIENT),
    (InterfaceError("INSERT", None, Exception("connection already closed")), Failure.TRANSIENT),
    (DBAPIError("INSERT", None, Exception("server closed"), connection_invalidated=True), Failure.TRANSIENT),
    (ConnectionRefusedError(111, "refused"), Failure.TRANSIENT),
    (TimeoutError("timed out"), Failure.TRANSIENT),
    (ProgrammingError("INSERT", None, Exception("permission denied")), Failure.UNKNOWN),
    (RuntimeError("surprise"), Failure.UNKNOWN),
])
def test_insert_failures_are_classified_as_transient_refused_or_unknown(failure: tuple[Exception, Failure]) -> None:
    exc, expected = failure
    assert classify(exc) is expected


async def test_a_refused_record_is_quarantined_and_the_next_ones_are_written(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = refuse(monkeypatch, {"c2"}, TOO_LONG)
    outbox = fast(db, spool)
    with capture_logs() as logs:
        async with writing(outbox):
            for i in range(1, 5):
                outbox.put(record(f"c{i}"))
            await until(lambda: outbox.pending() == 0, what="every record stored or set aside")
    assert stored_ids(db) == ["c1", "c3", "c4"]
    assert tried.count("c2") == 1  # at once, not after retries
    assert (outbox.written, outbox.quarantined, outbox.errors, outbox.in_quarantine()) == (3, 1, 1, 1)
    [event] = [e for e in logs if e["event"] == "store_record_quarantined"]
    assert (event["log_level"], event["call_id"], event["reason"]) == ("error", "c2", "refused")
    assert "value too long" in event["error"] and "requeue" in event["hint"]


async def test_a_quarantined_record_says_why_and_is_not_world_readable(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    outbox = fast(db, spool)
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: outbox.pending() == 0)
    [q] = list_quarantine(spool)
    assert (q.call_id, q.attempts, q.file.name) == ("c1", 1, spool_name("c1"))
    assert "value too long" in q.error and q.quarantined_at and "requeue" in q.hint
    reason = q.file.with_suffix(".reason")
    assert json.loads(reason.read_text())["call_id"] == "c1"
    assert (mode(q.file.parent), mode(q.file), mode(reason)) == (0o750, 0o640, 0o640)
    assert not spool_files(spool)


async def test_a_requeued_record_is_written_once_the_cause_is_fixed(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    outbox = fast(db, spool)
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: outbox.in_quarantine() == 1)
        monkeypatch.undo()  # the operator widened the column
        outbox.requeue("c1")
        await until(lambda: outbox.pending() == 0)
    assert stored_ids(db) == ["c1"]
    assert (outbox.in_quarantine(), list_quarantine(spool)) == (0, [])
    with pytest.raises(LookupError, match="no quarantined record"):
        requeue(spool, "c1")


async def test_a_record_requeued_while_the_writer_is_still_setting_it_aside_is_written(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # quarantine() moves the file and then fsyncs two folders in a worker thread; the writer
    # takes the record off its line only after that. An operator's retry in that window (GET
    # /quarantine shows the record as soon as the file is moved) must not be lost with the
    # entry that leaves the line.
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    real = store_module.quarantine

    def slow_quarantine(*args: Any, **kw: Any) -> Any:
        done = real(*args, **kw)
        time.sleep(0.3)
        return done

    monkeypatch.setattr(store_module, "quarantine", slow_quarantine)
    outbox = fast(db, spool)
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: outbox.in_quarantine() == 1)
        monkeypatch.undo()  # the column was widened...
        outbox.requeue("c1")  # ...and the operator retries
        await until(lambda: stored_ids(db) == ["c1"], timeout=5,
                    what="the requeued record to be written (not left in the spool until a restart)")
    assert spool_files(spool) == []


async def test_a_record_requeued_while_the_engine_was_stopped_is_written_at_the_next_start(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    first = fast(db, spool)
    async with writing(first):
        first.put(record("c1"))
        await until(lambda: first.in_quarantine() == 1)
    monkeypatch.undo()
    requeue(spool, "c1")  # as the CLI would, with the engine stopped
    again = fast(db, spool)
    assert again.recover() == 1
    async with writing(again):
        await until(lambda: again.pending() == 0)
    assert (stored_ids(db), again.written) == (["c1"], 1)


@pytest.mark.parametrize("content", [b"{\"call_id\": \"c2\", \"queue\"", b"[1, 2]", b"\xff\xfe",
                                     b'{"call_id": "c2", "outcome": "answered", "arrived": "noon"}'])
async def test_an_unparseable_spool_file_is_quarantined_and_the_others_written(
    db: Engine, spool: Path, content: bytes
) -> None:
    outbox = fast(db, spool)
    outbox.put(record("c1"))
    (spool / "c2.json").write_bytes(content)  # cut short by a full disk, or edited by hand
    outbox.put(record("c3"))
    outbox.recover()
    async with writing(outbox):
        await until(lambda: outbox.pending() == 0)
    assert stored_ids(db) == ["c1", "c3"]
    [q] = list_quarantine(spool)
    assert (q.call_id, q.file.name, q.attempts, outbox.quarantined) == ("c2", "c2.json", 1, 1)  # at once


async def test_an_unclassified_error_with_a_healthy_database_quarantines_after_three_attempts(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = refuse(monkeypatch, {"c1"}, RuntimeError("something only this record triggers"))
    outbox = fast(db, spool)
    async with writing(outbox):
        outbox.put(record("c1"))
        outbox.put(record("c2"))
        await until(lambda: outbox.pending() == 0)
    assert tried.count("c1") == 3
    assert stored_ids(db) == ["c2"]
    assert [q.call_id for q in list_quarantine(spool)] == ["c1"]
    assert list_quarantine(spool)[0].attempts == 3


async def test_an_unclassified_error_while_the_database_is_down_is_retried_not_quarantined(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = refuse(monkeypatch, {"c1"}, RuntimeError("odd driver error"))
    outbox = fast(db, spool)
    outbox.engine = down()  # the probe fails too: the database, not the record, is the problem
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: len(tried) >= 6, what="six attempts")
        assert (outbox.in_quarantine(), outbox.pending()) == (0, 1)
        monkeypatch.undo()
        outbox.engine = db
        await until(lambda: outbox.pending() == 0)
    assert stored_ids(db) == ["c1"]


async def test_database_down_then_up_writes_every_record_exactly_once(db: Engine, spool: Path) -> None:
    outbox = fast(db, spool)
    outbox.engine = down()
    async with writing(outbox):
        for i in range(5):
            outbox.put(record(f"c{i}"))
        await until(lambda: outbox.errors >= 3, what="failed attempts")
        assert (outbox.pending(), outbox.in_quarantine(), stored_ids(db)) == (5, 0, [])
        assert len(spool_files(spool)) == 5
        outbox.engine = db
        await until(lambda: outbox.pending() == 0)
    assert stored_ids(db) == [f"c{i}" for i in range(5)]
    assert (outbox.written, outbox.duplicates, outbox.quarantined) == (5, 0, 0)
    assert not spool_files(spool)


async def test_a_database_down_at_start_gets_its_schema_first_and_then_every_record_once(
        tmp_path: Path, spool: Path) -> None:
    """Review 3: an engine (re)started before its database (a host reboot) routes calls all
    the same; the writer brings the schema up once the database answers, then writes."""
    fresh = open_engine(f"sqlite:///{tmp_path / 'fresh.db'}")  # no schema yet
    tries: list[int] = []

    def schema() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise OperationalError("connect", None, Exception("connection refused"))
        migrate(fresh)

    outbox = fast(fresh, spool, schema=schema)
    async with writing(outbox):
        for i in range(3):
            outbox.put(record(f"c{i}"))
        await until(lambda: outbox.pending() == 0)
    assert len(tries) == 3 and outbox.errors == 0  # no insert was tried before the schema was up
    assert stored_ids(fresh) == ["c0", "c1", "c2"]


async def test_the_writer_resumes_soon_after_the_database_returns_not_at_the_end_of_its_backoff(
    db: Engine, spool: Path
) -> None:
    outbox = Outbox(db, spool, retry_min=30.0, retry_max=30.0, probe_every=0.02)
    outbox.engine = down()
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: outbox.errors == 1)
        outbox.engine = db  # the database is back; the next regular attempt would be 30 s away
        took = await until(lambda: outbox.pending() == 0, timeout=3.0)
    assert took < 1.0
    assert stored_ids(db) == ["c1"]


async def test_a_crash_between_insert_and_unlink_writes_no_duplicate(db: Engine, spool: Path) -> None:
    # Kills mutant M8 at the outbox: with a plain INSERT the leftover file would be refused.
    crashed = fast(db, spool)
    crashed.put(record("c1"))
    insert_record(db, record("c1"))  # stored, then the engine died before deleting the file
    restarted = fast(db, spool)
    assert restarted.recover() == 1
    async with writing(restarted):
        await until(lambda: restarted.pending() == 0)
    assert stored_ids(db) == ["c1"]
    assert (restarted.written, restarted.duplicates, restarted.quarantined) == (0, 1, 0)
    assert not spool_files(spool)


async def test_recover_queues_each_spool_file_once(db: Engine, spool: Path) -> None:
    outbox = fast(db, spool)
    outbox.put(record("c1"))
    outbox.put(record("c1"))  # the same call again
    assert (outbox.recover(), outbox.recover(), outbox.pending()) == (0, 0, 1)


def test_a_half_written_spool_file_left_by_a_kill_is_removed_at_the_next_start(db: Engine, spool: Path) -> None:
    """Review 3: a kill -9 inside a spool write leaves `<name>.json.tmp`: never a record that
    was accepted (put() had not returned), and nothing else would ever remove it."""
    outbox = fast(db, spool)
    outbox.put(record("c1"))
    (spool / (spool_name("c2") + ".tmp")).write_text('{"call_id": "c2", "que', encoding="utf-8")
    restarted = fast(db, spool)
    assert restarted.recover() == 1
    assert sorted(p.name for p in spool.iterdir() if p.is_file()) == [spool_name("c1")]


def test_two_call_ids_that_differ_only_in_unsafe_characters_get_their_own_spool_files() -> None:
    names = {spool_name("a/b"), spool_name("a:b"), spool_name("a_b"), spool_name("")}
    assert len(names) == 4
    assert all(n.endswith(".json") and "/" not in n and not n.startswith(".") for n in names)


def fsync_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the path behind every fsync'd descriptor."""
    real, synced = os.fsync, []

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


def test_put_fsyncs_the_spool_file_and_its_folder_before_it_returns(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = fast(db, spool)
    synced = fsync_spy(monkeypatch)
    outbox.put(record("c1"))
    assert synced == [str(spool / "c1.json.tmp"), str(spool)]  # the data, then the rename
    assert (spool / "c1.json").exists()


async def test_a_quarantine_move_is_fsynced(db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    outbox = fast(db, spool)
    outbox.put(record("c1"))
    synced = fsync_spy(monkeypatch)
    async with writing(outbox):
        await until(lambda: outbox.pending() == 0)
    folder = spool / "quarantine"
    assert synced == [str(folder / "c1.reason.tmp"), str(folder), str(folder), str(spool)]


def fail_spooling(monkeypatch: pytest.MonkeyPatch, error: int) -> dict[str, bool]:
    """Make every spool write fail with `error` while the returned switch is on."""
    real = spool_module.spool_record
    switch = {"on": True}

    def spool_record(spool: Path, rec: CallRecord) -> Path:
        if switch["on"]:
            raise OSError(error, os.strerror(error))
        return real(spool, rec)

    monkeypatch.setattr(store_module, "spool_record", spool_record)
    return switch


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EACCES])
async def test_put_into_a_full_or_read_only_spool_keeps_the_record_and_writes_it_directly(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    fail_spooling(monkeypatch, error)
    outbox = fast(db, spool)
    with capture_logs() as logs:
        outbox.put(record("c1"))  # never raises into the dispatcher
    assert (outbox.pending(), outbox.held(), outbox.spool_errors) == (1, 1, 1)
    assert [e["log_level"] for e in logs if e["event"] == "store_spool_failed"] == ["error"]
    async with writing(outbox):
        await until(lambda: outbox.pending() == 0)
    assert stored_ids(db) == ["c1"]
    assert outbox.written == 1 and outbox.spool_errors >= 2  # the writer tried the spool again first


@pytest.mark.parametrize("fsync_s", [0.0, 0.2], ids=["disk", "slow_disk"])
async def test_a_record_held_while_the_spool_and_the_database_fail_is_spooled_once_there_is_room(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch, fsync_s: float
) -> None:
    # On a slow disk the file is in place well before the folder's fsync returns; the record
    # counts as spooled only after that.
    real_fsync_dir = spool_module.fsync_dir

    def fsync_dir(folder: Path) -> None:
        time.sleep(fsync_s)
        real_fsync_dir(folder)

    monkeypatch.setattr(spool_module, "fsync_dir", fsync_dir)
    disk_full = fail_spooling(monkeypatch, errno.ENOSPC)
    outbox = fast(db, spool)
    outbox.engine = down()
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: outbox.spool_errors >= 3, what="spool retries")
        assert (outbox.held(), outbox.pending(), outbox.in_quarantine()) == (1, 1, 0)
        assert not await outbox.drain(0.05)  # a held record is pending
        disk_full["on"] = False
        await until(lambda: outbox.held() == 0, what="the record to reach the spool")
        assert (spool / "c1.json").exists()
        assert outbox.pending() == 1
        outbox.engine = db
        assert await outbox.drain(3.0)
    assert stored_ids(db) == ["c1"]
    assert not spool_files(spool)


async def test_drain_waits_for_pending_records_but_not_for_quarantined_ones(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, {"bad"}, TOO_LONG)
    outbox = fast(db, spool)
    outbox.put(record("bad"))
    outbox.put(record("good"))
    assert outbox.pending() == 2
    assert not await outbox.drain(0.05)  # no writer running yet
    async with writing(outbox):
        assert await outbox.drain(3.0)
    assert (outbox.pending(), outbox.in_quarantine(), stored_ids(db)) == (0, 1, ["good"])


async def test_an_unexpected_error_in_the_writer_is_logged_and_the_writer_goes_on(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    real, calls = spool_module.quarantine, []

    def quarantine(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(*args)

    monkeypatch.setattr(store_module, "quarantine", quarantine)
    outbox = fast(db, spool)
    with capture_logs() as logs:
        async with writing(outbox) as task:
            outbox.put(record("c1"))
            outbox.put(record("c2"))
            await until(lambda: outbox.pending() == 0)
            assert not task.done()
    assert "store_writer_error" in [e["event"] for e in logs]
    assert (stored_ids(db), outbox.in_quarantine()) == (["c2"], 1)


async def test_a_schema_migration_that_keeps_failing_on_a_database_that_answers_backs_off(tmp_path: Path) -> None:
    """The database was down at start and comes back with the table of an older schema,
    but the pending migration fails for good (alembic's CommandError, a bug in a revision:
    no SQLAlchemy error, so classify() says UNKNOWN). Outbox.run retries _bring_schema
    after `_pause(delay)`, and _pause returns at its first probe because the table takes a
    probe record: the migration is re-run, and `store_schema_not_ready` logged at error
    level, every probe_every (1 s in the engine) for as long as nobody fixes it, whatever
    the back-off says."""
    from tests.unit.store_helpers import writing

    db = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(db)  # the table is there: probes succeed
    tries: list[int] = []

    def schema() -> None:
        tries.append(1)
        raise RuntimeError("Can't locate revision identified by '0009'")

    outbox = Outbox(db, tmp_path / "spool", retry_min=0.1, retry_max=1.0, probe_every=0.02, schema=schema)
    async with writing(outbox):
        await asyncio.sleep(1.6)
    # A growing back-off from 0.1 s: attempts at about 0, 0.1, 0.3, 0.7, 1.5 s.
    assert len(tries) <= 8, f"{len(tries)} migration attempts in 1.6 s"
