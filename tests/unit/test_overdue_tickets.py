"""hotline_tickets_overdue (tickets/overdue.py): the tickets whose running deadline has passed,
read from the store; absent until the store first answers, kept through an outage."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from tickets.db import migrate, open_engine
from tickets.models import TicketRow
from tickets.overdue import OverdueTickets, count_overdue

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(engine)
    return engine


def add_tickets(db: Engine, *due: datetime | None) -> None:
    with Session(db) as s, s.begin():
        for i, at in enumerate(due):
            s.add(TicketRow(number=f"20261126{i:05d}", state="dispatched", channel="phone", due_at=at,
                            created=NOW - timedelta(days=3), updated=NOW - timedelta(days=3)))


def exposition(c: OverdueTickets) -> str:
    registry = CollectorRegistry()
    registry.register(c)
    return generate_latest(registry).decode()


def test_only_tickets_whose_running_deadline_has_passed_count(db: Engine) -> None:
    add_tickets(db, NOW - timedelta(hours=2), NOW - timedelta(seconds=1), NOW, NOW + timedelta(hours=1), None)
    assert count_overdue(db, NOW) == 2  # due exactly now is not yet overdue; no deadline running: never


async def test_the_gauge_appears_with_the_first_count_and_keeps_it_through_an_outage(db: Engine) -> None:
    add_tickets(db, NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    down = False

    def count(engine: Engine, now: datetime) -> int:
        if down:
            raise ConnectionRefusedError("connection refused")
        return count_overdue(engine, now)

    gauge = OverdueTickets(db, clock=NOW.timestamp, count=count)
    assert "hotline_tickets_overdue " not in exposition(gauge)  # no false 0 before the store answered
    assert await gauge.refresh()
    assert "hotline_tickets_overdue 2.0" in exposition(gauge)
    down = True
    with capture_logs() as logs:
        assert not await gauge.refresh()
        assert not await gauge.refresh()
    text = exposition(gauge)
    assert "hotline_tickets_overdue 2.0" in text
    assert "hotline_tickets_overdue_count_errors_total 2.0" in text
    assert [line["event"] for line in logs] == ["overdue_count_failed"]


async def test_the_count_runs_in_a_thread_named_for_the_stores_readers(db: Engine) -> None:
    names: list[str] = []

    def count(engine: Engine, now: datetime) -> int:
        names.append(threading.current_thread().name)
        return 0

    assert await OverdueTickets(db, clock=NOW.timestamp, count=count).refresh()
    assert names == ["store-read"]  # not the record writer's "store-write"
