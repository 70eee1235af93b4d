"""The month-to-date figures (cti/month_to_date.py): the Shanghai month's window, the gauges
per queue and kind, restart safety (they come from the store, so a new process exports the
same), and a store that does not answer (the last figures stay, the failure is counted and
logged once per outage)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from structlog.testing import capture_logs

from acd.commands import CallRecord
from acd.model import Outcome
from cti import month_to_date
from cti.month_to_date import MonthToDate, month_window
from metrics import kpi
from tests.unit.store_helpers import record
from tickets.db import insert_record, migrate, open_engine

NOV_1_SHANGHAI = datetime(2026, 10, 31, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-01 00:00 +08:00


def samples(*collectors: object) -> dict[str, float]:
    registry = CollectorRegistry()
    for c in collectors:
        registry.register(c)  # type: ignore[arg-type]
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


@pytest.mark.parametrize(("now", "month", "start", "end"), [
    (datetime(2026, 10, 31, 16, 0, tzinfo=UTC), "2026-11", datetime(2026, 10, 31, 16, tzinfo=UTC),
     datetime(2026, 11, 30, 16, tzinfo=UTC)),
    (datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC), "2026-10", datetime(2026, 9, 30, 16, tzinfo=UTC),
     datetime(2026, 10, 31, 16, tzinfo=UTC)),
    (datetime(2026, 12, 31, 17, 0, tzinfo=UTC), "2027-01", datetime(2026, 12, 31, 16, tzinfo=UTC),
     datetime(2027, 1, 31, 16, tzinfo=UTC)),
    (datetime(2028, 2, 10, tzinfo=UTC), "2028-02", datetime(2028, 1, 31, 16, tzinfo=UTC),
     datetime(2028, 2, 29, 16, tzinfo=UTC)),
])
def test_the_month_is_shanghais_calendar_month_by_arrival(now: datetime, month: str, start: datetime,
                                                          end: datetime) -> None:
    assert month_window(now) == (month, start, end)


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(engine)
    return engine


def store_calls(db: Engine) -> list[CallRecord]:
    """October's last call, then November's: answered in 3 s and in 40 s, a short and a long abandon in main,
    one answered in tax (offered there, answered in main after an overflow)."""
    t = NOV_1_SHANGHAI
    calls = [
        record("oct", arrived=t - 1, answered=t + 2, ended=t + 60, offered_queue="main", path=("main",),
               service_level=15.0, short_abandon=5.0, wait_seconds=3.0),
        record("a", arrived=t + 10, answered=t + 13, ended=t + 60, offered_queue="main", path=("main",),
               service_level=15.0, short_abandon=5.0, wait_seconds=3.0),
        record("b", arrived=t + 20, answered=t + 60, ended=t + 90, offered_queue="main", path=("main",),
               service_level=15.0, short_abandon=5.0, wait_seconds=40.0),
        record("c", arrived=t + 30, answered=None, ended=t + 32, agent_id=None, outcome=Outcome.ABANDONED,
               offered_queue="main", path=("main",), service_level=15.0, short_abandon=5.0, wait_seconds=2.0,
               talk_seconds=0.0, recording=None),
        record("d", arrived=t + 40, answered=None, ended=t + 100, agent_id=None, outcome=Outcome.ABANDONED,
               offered_queue="main", path=("main",), service_level=15.0, short_abandon=5.0, wait_seconds=60.0,
               talk_seconds=0.0, recording=None),
        record("e", arrived=t + 50, answered=t + 55, ended=t + 70, offered_queue="tax", queue="main",
               path=("tax", "main"), service_level=10.0, short_abandon=5.0, wait_seconds=5.0),
    ]
    for rec in calls:
        insert_record(db, rec)
    return calls


def mtd(db: Engine, now: float, queues: tuple[str, ...] = ("main", "tax", "night")) -> MonthToDate:
    return MonthToDate(db, lambda: queues, clock=lambda: now)  # the store's own totals_by_queue


async def test_the_gauges_are_the_kpi_totals_of_this_months_stored_calls_per_offered_queue(db: Engine) -> None:
    store_calls(db)
    m = mtd(db, NOV_1_SHANGHAI + 3600)
    assert await m.refresh()
    got = samples(m)
    assert got["hotline_month_info{month=2026-11}"] == 1
    assert got["hotline_month_refreshed_timestamp_seconds{}"] == NOV_1_SHANGHAI + 3600

    def figures(queue: str) -> dict[str, float]:
        return {kind: got[f"hotline_month_calls{{kind={kind},queue={queue}}}"] for kind in month_to_date.KINDS}

    # October's call is left out; the overflowed call counts in tax, where it was offered.
    assert figures("main") == {"offered": 4, "answered": 2, "answered_within_sl": 1, "short_abandoned": 1,
                               "abandoned": 2}
    assert figures("tax") == {"offered": 1, "answered": 1, "answered_within_sl": 1, "short_abandoned": 0,
                              "abandoned": 0}
    assert figures("night") == dict.fromkeys(month_to_date.KINDS, 0)  # configured, no call yet


async def test_a_new_process_on_the_same_store_exports_the_same_figures(db: Engine) -> None:
    """Restart safety: nothing is counted in memory, so a restarted engine starts where the store is."""
    store_calls(db)
    before = mtd(db, NOV_1_SHANGHAI + 3600)
    await before.refresh()
    after = mtd(db, NOV_1_SHANGHAI + 3700)  # "restarted" a little later: no call since
    await after.refresh()
    month = {k: v for k, v in samples(before).items() if not k.startswith("hotline_month_refreshed")}
    assert month == {k: v for k, v in samples(after).items() if not k.startswith("hotline_month_refreshed")}
    assert month["hotline_month_calls{kind=offered,queue=main}"] == 4


def test_no_figures_are_exported_before_the_store_first_answers(db: Engine) -> None:
    assert samples(mtd(db, NOV_1_SHANGHAI)) == {"hotline_month_refresh_errors_total{}": 0}


async def test_a_store_that_fails_keeps_the_last_figures_counts_each_failure_and_logs_once_per_outage(
    db: Engine,
) -> None:
    store_calls(db)
    down = False

    def totals(engine: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
        if down:
            raise ConnectionRefusedError("connection refused")
        return month_to_date.store_totals(engine, start, end)

    m = MonthToDate(db, lambda: ["main"], totals=totals, clock=lambda: NOV_1_SHANGHAI + 3600)
    assert await m.refresh()
    kept = samples(m)
    down = True
    with capture_logs() as logs:
        for _ in range(3):
            assert not await m.refresh()
        got = samples(m)
        down = False
        assert await m.refresh()
    assert got["hotline_month_refresh_errors_total{}"] == 3
    assert {k: v for k, v in got.items() if k.startswith("hotline_month_calls")} == \
        {k: v for k, v in kept.items() if k.startswith("hotline_month_calls")}
    assert [line["event"] for line in logs] == ["month_to_date_refresh_failed", "month_to_date_refresh_recovered"]
    assert "connection refused" in logs[0]["error"]


async def test_a_store_that_hangs_is_waited_for_not_asked_again(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(month_to_date, "QUERY_TIMEOUT", 0.05)
    release = threading.Event()
    asked = 0

    def totals(engine: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
        nonlocal asked
        asked += 1
        release.wait(5)
        return {"main": kpi.Totals(offered=7)}

    m = MonthToDate(db, lambda: ["main"], totals=totals, clock=lambda: NOV_1_SHANGHAI)
    assert not await m.refresh()
    assert not await m.refresh()
    release.set()
    assert await m.refresh()
    assert asked == 2  # one refresh's two queries (the month, the last 24 hours), never a second refresh's
    assert m.errors == 2
    assert samples(m)["hotline_month_calls{kind=offered,queue=main}"] == 7


async def test_the_refresh_task_survives_a_bug_in_the_query_and_goes_on(db: Engine) -> None:
    calls = 0

    def totals(engine: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a bug")
        return {}

    m = MonthToDate(db, lambda: ["main"], interval=0.01, totals=totals, clock=lambda: NOV_1_SHANGHAI)
    task = asyncio.create_task(m.run())
    try:
        while m.figures is None:
            await asyncio.sleep(0.01)
        assert not task.done()  # the failed refresh did not end the task (the engine would stop)
    finally:
        task.cancel()
    assert m.errors == 1


def by_kind(got: dict[str, float], family: str, queue: str) -> kpi.Totals:
    return kpi.Totals(**{kind: int(got[f"{family}{{kind={kind},queue={queue}}}"]) for kind in month_to_date.KINDS})


async def test_the_rolling_24_hours_are_the_kpi_totals_of_the_calls_that_arrived_in_the_24_hours_before(
    db: Engine,
) -> None:
    """An hour into November the 24 hours hold October's last call too (the month does not), and
    not a call of two days before; a call still in progress has no record and is not counted."""
    calls = store_calls(db)
    old = record("old", arrived=NOV_1_SHANGHAI - 2 * 86400, answered=None, ended=NOV_1_SHANGHAI - 2 * 86400 + 9,
                 agent_id=None, outcome=Outcome.ABANDONED, offered_queue="main", path=("main",), wait_seconds=9.0,
                 talk_seconds=0.0, recording=None)
    insert_record(db, old)
    now = NOV_1_SHANGHAI + 3600
    m = mtd(db, now)
    assert await m.refresh()
    got = samples(m)
    window = kpi.by_queue(r for r in calls if now - 86400 <= r.arrived < now)  # kpi's own figures, not the SQL
    assert by_kind(got, "hotline_rolling_24h_calls", "main") == window["main"]
    assert by_kind(got, "hotline_rolling_24h_calls", "tax") == window["tax"]
    assert by_kind(got, "hotline_rolling_24h_calls", "night") == kpi.Totals()
    assert by_kind(got, "hotline_rolling_24h_calls", "main").offered == 5  # October's call is in, the old one out
    assert by_kind(got, "hotline_month_calls", "main").offered == 4


async def test_last_months_figures_are_not_exported_once_the_month_has_changed(db: Engine) -> None:
    """Refreshed at 23:59 on 31 October (Shanghai); the store then stops answering. After
    midnight the October figures must not pass for November's: hotline_month_calls and
    hotline_month_info go, the refresh time stays (the stale alert reads it), and November's
    figures come with the store's next answer."""
    store_calls(db)
    clock = NOV_1_SHANGHAI - 60
    down = False

    def totals(engine: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
        if down:
            raise ConnectionRefusedError("connection refused")
        return month_to_date.store_totals(engine, start, end)

    m = MonthToDate(db, lambda: ["main"], totals=totals, clock=lambda: clock)
    assert await m.refresh()
    october = samples(m)
    assert october["hotline_month_info{month=2026-10}"] == 1
    assert by_kind(october, "hotline_month_calls", "main").offered == 1
    down = True
    clock = NOV_1_SHANGHAI + 60
    assert not await m.refresh()
    after_midnight = samples(m)
    assert [k for k in after_midnight if k.startswith(("hotline_month_calls", "hotline_month_info"))] == []
    assert after_midnight["hotline_month_refreshed_timestamp_seconds{}"] == NOV_1_SHANGHAI - 60
    down = False
    assert await m.refresh()
    november = samples(m)
    assert november["hotline_month_info{month=2026-11}"] == 1
    assert by_kind(november, "hotline_month_calls", "main").offered == 4


async def test_the_figures_are_read_in_threads_of_their_own_name(db: Engine) -> None:
    names: list[str] = []

    def totals(engine: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
        names.append(threading.current_thread().name)
        return {}

    assert await MonthToDate(db, lambda: ["main"], totals=totals, clock=lambda: NOV_1_SHANGHAI).refresh()
    assert names == ["store-read", "store-read"]


async def test_todays_figures_are_the_kpi_totals_of_the_calls_that_arrived_this_shanghai_day(db: Engine) -> None:
    """Asked for (the wallboard), the same refresh reads today's window with the same query: on
    2 November at 01:00 Shanghai, today holds the call of 00:30 and none of 1 November's."""
    store_calls(db)
    nov_2 = NOV_1_SHANGHAI + 86400
    insert_record(db, record("f", arrived=nov_2 + 1800, answered=nov_2 + 1820, ended=nov_2 + 1900,
                             offered_queue="main", path=("main",), service_level=15.0, short_abandon=5.0,
                             wait_seconds=20.0))
    m = MonthToDate(db, lambda: ["main", "tax"], clock=lambda: nov_2 + 3600, today=True)
    assert await m.refresh()
    assert m.figures is not None
    assert m.figures.day == "2026-11-02"
    assert m.figures.today_of(nov_2 + 3600) == {"main": kpi.Totals(offered=1, answered=1), "tax": kpi.Totals()}
    month = m.figures.month_of(nov_2 + 3600)
    assert month is not None and month["main"].offered == 5
    assert m.figures.today_of(nov_2 + 86400) is None  # the next day: yesterday's are not today's
    assert not [k for k in samples(m) if "today" in k]  # no Prometheus series of their own


async def test_todays_window_is_not_read_unless_asked_for(db: Engine) -> None:
    asked: list[tuple[datetime, datetime]] = []

    def totals(engine: Engine, start: datetime, end: datetime) -> dict[str, kpi.Totals]:
        asked.append((start, end))
        return {}

    m = MonthToDate(db, lambda: ["main"], totals=totals, clock=lambda: NOV_1_SHANGHAI + 60)
    assert await m.refresh()
    assert len(asked) == 2 and m.figures is not None and m.figures.today_of(NOV_1_SHANGHAI + 60) is None
    m.today = True
    assert await m.refresh()
    assert asked[-1] == (datetime(2026, 10, 31, 16, tzinfo=UTC), datetime(2026, 11, 1, 16, tzinfo=UTC))
