"""The store on the real PostgreSQL (no Asterisk)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from tests.unit.store_helpers import check_migration_from_0001
from tickets.db import migrate, open_engine

ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"hotline_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    db = open_engine(pg_url)
    migrate(db)
    yield db
    db.dispose()


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
