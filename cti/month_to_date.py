"""The current month's and the last 24 hours' call figures for Prometheus, from the store.

The contract's first duty is the *monthly* answer rate, by the call's arrival time in
Asia/Shanghai (README "Counting"). PromQL cannot take a range that starts at a month
boundary (`increase(x[30d])` slides, and a counter restarts with the engine), so the engine
asks the store instead: every `metrics.month_to_date_interval` seconds (engine.yaml, default
30) a worker thread runs `reports.calls.totals_by_queue` over [the 1st of this Shanghai month
00:00, the 1st of the next) and over [now - 24 h, now), and the results are exported as

- `hotline_month_calls{queue,kind}`: kind offered, answered, answered_within_sl,
  short_abandoned, abandoned (every configured queue, 0 before its first call); only while
  the figures are of the current Shanghai month: after the 1st's midnight last month's are
  never shown as this month's, even while the store does not answer;
- `hotline_month_info{month="2026-11"}` 1: the month those figures are of (same condition);
- `hotline_rolling_24h_calls{queue,kind}`: the same kinds over the calls that arrived in the
  24 hours before the refresh (the report's definition, finished calls by arrival time);
- `hotline_month_refreshed_timestamp_seconds`: when the store last answered (both figures);
- `hotline_month_refresh_errors_total`: refreshes the store did not answer.

With `today=True` (the supervisor wallboard turns it on, web/wall.py) the same refresh also
asks for today's window, [this Shanghai day's 00:00, the next day's), with the same query:
`Figures.today` and `Figures.day` hold them for the wallboard. They are no Prometheus series
(PromQL's `increase` over the rolling 24 hours serves dashboards); like the month's, they are
of their day only (`today_of` gives nothing once the day has changed).

Restart-safe by construction: nothing is counted in this process. The figures are the
store's answer about the records of calls that arrived this month, the same rows and the
same `kpi.Totals` the month report computes from, so a restarted engine, a second engine on
the same store and the report all read the same numbers; nothing is lost or counted twice
when the engine stops. Until the first refresh after a start the series are absent (never 0):
a graph shows a gap, not a drop. A call counts once its record is stored (it ended, and the
writer stored it): the figures lag the live counters by the calls in progress.

A store that does not answer: the last figures stay (their `month` and refresh time say how
old they are; the month's only within their month), each failed refresh is counted, and the
outage is logged once when it starts and once when it ends. A query still running when the
next refresh falls due is waited for, never started a second time: a hung database costs one
thread (named "store-read"), not one per interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from metrics import kpi
from tickets.store import READER_THREAD, describe, in_daemon_thread

log = structlog.get_logger("hotline.month_to_date")

SHANGHAI = ZoneInfo("Asia/Shanghai")
KINDS = ("offered", "answered", "answered_within_sl", "short_abandoned", "abandoned")
QUERY_TIMEOUT = 20.0  # seconds one refresh may take before it counts as failed (it is still awaited)
ROLLING = timedelta(hours=24)

TotalsByQueue = Callable[[Engine, datetime, datetime], dict[str, kpi.Totals]]
T = TypeVar("T")


def in_reader_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`fn(*args)` in a daemon thread named READER_THREAD (tickets.store.in_daemon_thread)."""
    return in_daemon_thread(fn, *args, name=READER_THREAD)


def month_window(now: datetime) -> tuple[str, datetime, datetime]:
    """("2026-11", start, end) of the Shanghai month holding `now`, the bounds in UTC, end excluded."""
    local = now.astimezone(SHANGHAI)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)  # Shanghai keeps no daylight saving time
    return f"{start:%Y-%m}", start.astimezone(UTC), end.astimezone(UTC)


def day_window(now: datetime) -> tuple[str, datetime, datetime]:
    """("2026-11-27", start, end) of the Shanghai day holding `now`, the bounds in UTC, end excluded."""
    start = now.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    return f"{start:%Y-%m-%d}", start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def store_totals(db: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
    from reports.calls import totals_by_queue  # noqa: PLC0415 - reports/ pulls in openpyxl and rjieba

    return totals_by_queue(db, start, end)


@dataclass(frozen=True)
class Figures:
    month: str
    totals: dict[str, kpi.Totals]  # the month's, per offered queue
    refreshed: float  # Unix time the store answered
    rolling: dict[str, kpi.Totals] = field(default_factory=dict)  # the 24 hours before the query
    day: str = ""  # the Shanghai day `today` is of ("" when today's window is not asked for)
    today: dict[str, kpi.Totals] = field(default_factory=dict)  # today's, per offered queue

    def month_of(self, now: float) -> dict[str, kpi.Totals] | None:
        """The month's totals if they are of the month holding `now` (Unix time), else None."""
        return self.totals if self.month == month_window(datetime.fromtimestamp(now, UTC))[0] else None

    def today_of(self, now: float) -> dict[str, kpi.Totals] | None:
        """Today's totals if they are of the Shanghai day holding `now` (Unix time), else None."""
        if not self.day or self.day != day_window(datetime.fromtimestamp(now, UTC))[0]:
            return None
        return self.today


# (the month's, the last 24 hours', today's or None when not asked for)
Queried = tuple[dict[str, kpi.Totals], dict[str, kpi.Totals], dict[str, kpi.Totals] | None]


class MonthToDate(Collector):
    def __init__(
        self,
        db: Engine,
        queues: Callable[[], Iterable[str]],
        interval: float = 30.0,
        totals: TotalsByQueue = store_totals,
        clock: Callable[[], float] = time.time,
        today: bool = False,
    ) -> None:
        self.db = db
        self.queues = queues  # the configured queues: each shows from the month's first second
        self.interval = interval
        self.totals = totals
        self.clock = clock
        self.today = today  # also ask for today's window (for the wallboard; no series of its own)
        self.figures: Figures | None = None
        self.errors = 0
        self._failing = False
        self._query: asyncio.Future[Queried] | None = None
        self._query_month = ""
        self._query_day = ""

    def _windows(self, month_start: datetime, month_end: datetime, now: datetime, today: bool) -> Queried:
        month = self.totals(self.db, month_start, month_end)
        rolling = self.totals(self.db, now - ROLLING, now)
        if not today:
            return month, rolling, None
        _, day_start, day_end = day_window(now)
        return month, rolling, self.totals(self.db, day_start, day_end)

    async def refresh(self) -> bool:
        """Ask the store once; True when it answered and the figures are new."""
        if self._query is None:
            now = datetime.fromtimestamp(self.clock(), UTC)
            self._query_month, start, end = month_window(now)
            self._query_day = day_window(now)[0] if self.today else ""
            self._query = in_reader_thread(self._windows, start, end, now, self.today)
        query = self._query
        await asyncio.wait({query}, timeout=QUERY_TIMEOUT)  # never cancels the thread's future
        if not query.done():
            self._failed(f"no answer from the store within {QUERY_TIMEOUT:g} s")
            return False
        self._query = None
        try:
            month, rolling, today = query.result()
        except Exception as exc:
            self._failed(describe(exc))
            return False
        self.figures = Figures(self._query_month, self._every_queue(month), self.clock(), self._every_queue(rolling),
                               self._query_day if today is not None else "",
                               self._every_queue(today) if today is not None else {})
        if self._failing:
            self._failing = False
            log.info("month_to_date_refresh_recovered", failed_refreshes=self.errors, month=self._query_month)
        return True

    def _every_queue(self, by_queue: dict[str, kpi.Totals]) -> dict[str, kpi.Totals]:
        totals = {name: kpi.Totals() for name in self.queues()}
        totals.update(by_queue)
        return totals

    def _failed(self, error: str) -> None:
        self.errors += 1
        if not self._failing:  # once per outage, not once per interval
            self._failing = True
            log.warning("month_to_date_refresh_failed", error=error,
                        kept_month=self.figures.month if self.figures else None,
                        hint="the month-to-date figures keep their last values until the store answers")

    async def run(self) -> None:
        """Refresh now and every `interval` seconds, until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # a bug here must not stop the engine: counted and logged like an outage
                self._failed(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    def collect(self) -> Iterable[Metric]:
        errors = CounterMetricFamily("hotline_month_refresh_errors",
                                     "Refreshes of the month-to-date figures the store did not answer")
        errors.add_metric([], self.errors)
        yield errors
        figures = self.figures
        if figures is None:
            return
        if figures.month_of(self.clock()) is not None:
            # Last month's figures (the store has not answered since midnight on the 1st) are
            # never shown as this month's: the series are absent until it answers.
            yield _by_kind("hotline_month_calls", "This Shanghai month's calls by arrival, from the store "
                           "(kpi.Totals per offered queue; restart-safe)", figures.totals)
            info = GaugeMetricFamily("hotline_month_info", "The month (Asia/Shanghai) hotline_month_calls is of",
                                     labels=["month"])
            info.add_metric([figures.month], 1)
            yield info
        yield _by_kind("hotline_rolling_24h_calls", "Calls that arrived in the 24 hours before the last refresh, "
                       "from the store (kpi.Totals per offered queue; restart-safe)", figures.rolling)
        refreshed = GaugeMetricFamily("hotline_month_refreshed_timestamp_seconds",
                                      "When the store last answered for hotline_month_calls and "
                                      "hotline_rolling_24h_calls (Unix time)")
        refreshed.add_metric([], figures.refreshed)
        yield refreshed


def _by_kind(name: str, help_text: str, by_queue: dict[str, kpi.Totals]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["queue", "kind"])
    for queue, t in sorted(by_queue.items()):
        for kind in KINDS:
            family.add_metric([queue, kind], getattr(t, kind))
    return family
