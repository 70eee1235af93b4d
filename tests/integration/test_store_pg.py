"""The store on the real PostgreSQL (no Asterisk): it enforces column sizes, so a 70-digit
caller number is refused; the outbox quarantines that record and stores every other one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError

from tests.pg import pg_database
from tests.unit.store_helpers import check_migration_from_0001, record, stored_ids, until, writing
from tickets.db import insert_record, migrate, open_engine
from tickets.spool import list_quarantine
from tickets.store import Failure, Outbox, classify


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    db = open_engine(pg_url)
    migrate(db)
    yield db
    db.dispose()


def test_postgresql_refuses_a_70_digit_caller_number_as_a_data_error(pg: Engine) -> None:
    with pytest.raises(DataError, match="too long") as caught:
        insert_record(pg, record("long", caller_num="1" * 70))
    assert classify(caught.value) is Failure.REFUSED


async def test_a_70_digit_caller_number_is_quarantined_and_every_other_record_stored(
    pg: Engine, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    outbox = Outbox(pg, spool, retry_min=0.05, probe_every=0.05)
    async with writing(outbox):
        outbox.put(record("ok-before-1"))
        outbox.put(record("ok-before-2"))
        outbox.put(record("long", caller_num="1" * 70))
        outbox.put(record("ok-after-1"))
        outbox.put(record("ok-after-2"))
        assert await outbox.drain(10.0)
    assert stored_ids(pg) == ["ok-after-1", "ok-after-2", "ok-before-1", "ok-before-2"]
    assert (outbox.written, outbox.quarantined, outbox.errors, outbox.in_quarantine()) == (4, 1, 1, 1)
    [q] = list_quarantine(spool)
    assert q.call_id == "long" and "value too long for type character varying(64)" in q.error

    # After a restart (a new outbox on the same spool) nothing is retried or written twice.
    restarted = Outbox(pg, spool, retry_min=0.05, probe_every=0.05)
    assert restarted.recover() == 0
    async with writing(restarted):
        restarted.put(record("ok-after-restart"))
        assert await restarted.drain(10.0)
    assert (restarted.written, restarted.errors, restarted.duplicates, restarted.in_quarantine()) == (1, 0, 0, 1)
    assert len(stored_ids(pg)) == 5


async def test_postgresql_unreachable_then_back_writes_every_record_once(pg: Engine, pg_url: str,
                                                                       tmp_path: Path) -> None:
    outbox = Outbox(pg, tmp_path / "spool", retry_min=0.05, retry_max=0.2, probe_every=0.05)
    outbox.engine = open_engine(pg_url.replace(":5432/", ":1/"))  # connection refused
    async with writing(outbox):
        for i in range(3):
            outbox.put(record(f"c{i}"))
        await until(lambda: outbox.errors >= 2, what="failed attempts")
        assert (outbox.pending(), outbox.in_quarantine()) == (3, 0)
        outbox.engine = pg
        assert await outbox.drain(10.0)
    assert stored_ids(pg) == ["c0", "c1", "c2"]
    assert (outbox.written, outbox.duplicates, outbox.quarantined) == (3, 0, 0)


def test_migration_0002_keeps_old_rows_and_their_short_abandons_on_postgresql(pg_url: str) -> None:
    db = open_engine(pg_url)
    try:
        check_migration_from_0001(db)
    finally:
        db.dispose()


def test_the_month_report_by_offered_queue_and_arrival_can_use_an_index_on_postgresql(pg: Engine) -> None:
    with pg.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show its options
        plan = " ".join(str(row[0]) for row in conn.execute(text(
            "EXPLAIN SELECT count(*) FROM call_records WHERE offered_queue = 'tax' "
            "AND arrived >= '2026-11-01T00:00:00+08:00' AND arrived < '2026-12-01T00:00:00+08:00'")))
    assert "ix_call_records_offered_queue_arrived" in plan


def test_options_in_a_postgresql_store_url_are_kept_alongside_the_silence_watchdog(pg_url: str) -> None:
    """Review 3: the watchdog's `options=-c statement_timeout=...` replaced an `options` the
    admin wrote in store.url (libpq's usual way to pick a schema): records went to `public`."""
    db = open_engine(f"{pg_url}?options=-csearch_path%3Dhotline")
    try:
        with db.connect() as c:
            search_path = c.execute(text("SHOW search_path")).scalar()
            timeout = c.execute(text("SHOW statement_timeout")).scalar()
    finally:
        db.dispose()
    assert (search_path, timeout) == ("hotline", "15s")  # the admin's schema, and the watchdog on


def test_a_schema_migration_longer_than_the_silence_watchdog_still_runs(pg_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 3: migration 0002 rewrites every stored row; under the writer's statement timeout
    (15 s) a year of a city's calls would cancel it and the engine would not start after an
    upgrade. Scaled down: a 150 ms watchdog and 300,000 rows."""
    from tickets import db as store_db

    monkeypatch.setattr(store_db, "PG_SILENCE_MS", 150)
    db = open_engine(pg_url)
    try:
        migrate(db, "0001")
        with db.begin() as c:
            c.execute(text("SET LOCAL statement_timeout = 0"))
            c.execute(text(
                "INSERT INTO call_records (call_id, queue, caller_num, caller_name, caller_restricted, arrived, "
                "ended, outcome, wait_seconds, talk_seconds) SELECT 'c' || i, 'main', '13900000000', '', false, "
                "now(), now(), 'answered', 3, 60 FROM generate_series(1, 300000) AS i"))
        migrate(db)  # to head, in spite of the 150 ms watchdog
        with db.connect() as c:
            assert c.execute(text("SELECT count(*) FROM call_records WHERE offered_queue = 'main'")).scalar() == 300000
            assert c.execute(text("SHOW statement_timeout")).scalar() == "150ms"  # the pool's connections keep it
    finally:
        db.dispose()

