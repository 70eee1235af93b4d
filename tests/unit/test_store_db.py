"""The call-record table on SQLite: every field stored, once; migrations; a private file."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from acd.model import Outcome
from tests.unit.store_helpers import check_migration_from_0001, record
from tickets.db import (
    callback_requests,
    insert_record,
    migrate,
    open_engine,
    read_records,
    recent_answers,
    row_to_record,
)
from tickets.models import Base
from tickets.spool import BadSpoolFile, record_from_json, record_to_json


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(engine)
    return engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_insert_record_writes_every_field_and_reads_it_back(db: Engine) -> None:
    rec = record("c1", restricted=True, priority=7, served_by="fallback", source="resync")
    assert insert_record(db, rec)
    assert [row_to_record(row) for row in read_records(db)] == [rec]


def test_a_spool_file_round_trips_every_field_with_the_path_as_a_tuple() -> None:
    rec = record("c1", restricted=True, path=("tax", "main", "overflow"), served_by="fallback", source="asterisk")
    back = record_from_json(record_to_json(rec))
    assert back == rec
    assert isinstance(back.path, tuple)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_spool_file_with_a_wait_that_is_not_a_number_is_refused_by_field(value: str) -> None:
    text = record_to_json(record("1764122400.9")).replace('"wait_seconds": 3.25', f'"wait_seconds": {value}')
    assert value in text
    with pytest.raises(BadSpoolFile, match="wait_seconds"):
        record_from_json(text)


def test_a_record_from_before_offered_queues_counts_in_its_own_queue(db: Engine) -> None:
    insert_record(db, record("old", offered_queue="", path=()))
    row = read_records(db)[0]
    assert (row.offered_queue, row.path) == ("main", '["main"]')


def test_a_short_abandon_from_an_older_engine_is_stored_as_abandoned(db: Engine) -> None:
    # A spool file an older engine left says "short_abandon"; the KPI module counts it as
    # short from wait_seconds < short_abandon, which still holds.
    old = record_to_json(record("s", answered=None, agent_id=None, outcome=Outcome.ABANDONED, wait_seconds=1.0))
    insert_record(db, record_from_json(old.replace('"abandoned"', '"short_abandon"')))
    rec = row_to_record(read_records(db)[0])
    assert rec.outcome is Outcome.ABANDONED
    assert rec.wait_seconds < rec.short_abandon


def test_the_same_call_inserted_twice_is_stored_once_and_reported_as_a_duplicate(db: Engine) -> None:
    # Kills mutant M8: a plain INSERT raises on the second write instead of skipping it.
    assert insert_record(db, record("c1")) is True
    assert insert_record(db, record("c1", caller_name="changed")) is False
    assert [(r.call_id, r.caller_name) for r in read_records(db)] == [("c1", "王小明")]


def test_a_70_digit_caller_number_is_stored_whole_on_sqlite(db: Engine) -> None:
    # SQLite does not enforce VARCHAR(64): the number is kept whole, never cut to fit.
    # (PostgreSQL refuses it and the outbox quarantines it: tests/integration/test_store_pg.py.)
    assert insert_record(db, record("long", caller_num="1" * 70))
    assert read_records(db)[0].caller_num == "1" * 70


def test_callback_requests_say_whether_the_caller_withheld_the_number(db: Engine) -> None:
    insert_record(db, record("open", outcome=Outcome.CALLBACK, answered=None, agent_id=None))
    insert_record(db, record("hidden", outcome=Outcome.CALLBACK, answered=None, agent_id=None, restricted=True,
                             ended=1_700_000_070.0))
    rows = callback_requests(db, 1_699_999_999.0)
    assert [(r["call_id"], r["restricted"]) for r in rows] == [("hidden", True), ("open", False)]
    assert rows[0]["queue"] == "main" and rows[0]["caller_num"] == "13900000001"


def test_recent_answers_still_name_caller_agent_and_end(db: Engine) -> None:
    insert_record(db, record("a1"))
    insert_record(db, record("a2", outcome=Outcome.ABANDONED, answered=None, agent_id=None))
    assert recent_answers(db, 1_700_000_000.0) == [("13900000001", "1001", 1_700_000_060.75)]


def test_the_month_report_by_offered_queue_and_arrival_uses_an_index(db: Engine) -> None:
    query = ("EXPLAIN QUERY PLAN SELECT count(*) FROM call_records "
             "WHERE offered_queue = 'tax' AND arrived >= '2026-11-01' AND arrived < '2026-12-01'")
    with db.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(query)))
    assert "ix_call_records_offered_queue_arrived" in plan


def test_the_migrations_build_exactly_the_schema_the_models_describe(db: Engine) -> None:
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": not_full_text_search})
        assert compare_metadata(context, Base.metadata) == []


def not_full_text_search(name: str | None, type_: str, _parents: object) -> bool:
    """The FTS5 tables of migrations 0004 and 0005 (kb_fts, tickets_fts and the shadow tables
    SQLite makes for them) are the database's search index, not tables the models describe."""
    return not (type_ == "table" and name is not None and re.fullmatch(r"[a-z_]+_fts(_[a-z]+)?", name) is not None)


def test_migration_0002_keeps_old_rows_and_their_short_abandons_on_sqlite(tmp_path: Path) -> None:
    check_migration_from_0001(open_engine(f"sqlite:///{tmp_path / 'old.db'}"))


def test_a_new_sqlite_database_is_private_and_so_is_its_journal(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "lib" / "hotline.db"
        db = open_engine(f"sqlite:///{path}")
        migrate(db)
        with db.connect() as conn:
            conn.execute(text("PRAGMA journal_mode=WAL"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('x')"))
            assert mode(path.with_name("hotline.db-wal")) == 0o600
            conn.rollback()
    finally:
        os.umask(old)
    assert (mode(path), mode(path.parent)) == (0o600, 0o750)


def test_a_world_readable_database_is_tightened_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "hotline.db"
    migrate(open_engine(f"sqlite:///{path}"))
    os.chmod(path, 0o644)
    with capture_logs() as logs:
        open_engine(f"sqlite:///{path}")
    assert mode(path) == 0o600
    assert [(e["event"], e["log_level"], e["mode"]) for e in logs] == [
        ("store_file_was_world_readable", "warning", "0o644")]
