"""`hotline_tickets_overdue`: how many 工单 are 超期 now, for the alert on a rising count.

A ticket is overdue the moment its running deadline passes (`due_at < now`, what
`GET /api/v1/tickets/overdue` lists), with no event to count it by, so the number is read
from the store: one indexed count every `interval` seconds (60), in a worker thread
("store-read", as the month's figures). The
engine runs it on its own store whether the ticket API runs inside it or in `hotline ticket
serve` workers (which have no metrics listener). A store that does not answer keeps the last
count, counts the failure, and is logged once per outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tickets.models import TicketRow
from tickets.store import READER_THREAD, describe, in_daemon_thread

log = structlog.get_logger("hotline.tickets.overdue")

QUERY_TIMEOUT = 20.0


def count_overdue(db: Engine, now: datetime) -> int:
    with Session(db) as s:
        return s.scalar(select(func.count()).select_from(TicketRow)
                        .where(TicketRow.due_at.is_not(None), TicketRow.due_at < now)) or 0


class OverdueTickets(Collector):
    def __init__(self, db: Engine, interval: float = 60.0, clock: Callable[[], float] = time.time,
                 count: Callable[[Engine, datetime], int] = count_overdue) -> None:
        self.db = db
        self.interval = interval
        self.clock = clock
        self.count = count
        self.overdue: int | None = None  # None until the store first answers: no series, never a false 0
        self.errors = 0
        self._failing = False
        self._query: asyncio.Future[int] | None = None

    async def refresh(self) -> bool:
        if self._query is None:
            self._query = in_daemon_thread(self.count, self.db, datetime.fromtimestamp(self.clock(), UTC),
                                           name=READER_THREAD)
        query = self._query
        await asyncio.wait({query}, timeout=QUERY_TIMEOUT)  # a hung query is waited for, not started again
        if not query.done():
            self._failed(f"no answer from the store within {QUERY_TIMEOUT:g} s")
            return False
        self._query = None
        try:
            self.overdue = query.result()
        except Exception as exc:
            self._failed(describe(exc))
            return False
        if self._failing:
            self._failing = False
            log.info("overdue_count_recovered", failed_counts=self.errors)
        return True

    def _failed(self, error: str) -> None:
        self.errors += 1
        if not self._failing:
            self._failing = True
            log.warning("overdue_count_failed", error=error, kept=self.overdue,
                        hint="hotline_tickets_overdue keeps its last value until the store answers")

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # never stops the engine
                self._failed(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    def collect(self) -> Iterable[Metric]:
        errors = CounterMetricFamily("hotline_tickets_overdue_count_errors",
                                     "Counts of overdue tickets the store did not answer")
        errors.add_metric([], self.errors)
        yield errors
        if self.overdue is not None:
            gauge = GaugeMetricFamily("hotline_tickets_overdue", "Tickets past their running deadline (超期) now")
            gauge.add_metric([], self.overdue)
            yield gauge
