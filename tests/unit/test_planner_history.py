"""The forecast from the store (planner/history.py), on SQLite and PostgreSQL, from hand-made
call records: hours of the week in Asia/Shanghai (across the UTC day boundary), the offered queue,
the period's bounds, what is offered, and the censored patience estimate."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, insert

from planner.erlang import PlanError
from planner.history import CALLS, LOCAL, Forecast, HourOfWeek, Tally, forecast
from reports.calls import totals_by_queue
from tests.unit import report_helpers

_ids = itertools.count()


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment of November 2026 in Shanghai (2 November is a Monday)."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=LOCAL)


def row(arrived: datetime, outcome: str, wait: float = 0.0, talk: float = 0.0, queue: str = "tax",
        offered_queue: str = "tax") -> dict[str, object]:
    return {"call_id": f"c{next(_ids)}", "queue": queue, "offered_queue": offered_queue, "outcome": outcome,
            "arrived": arrived.astimezone(UTC), "ended": arrived.astimezone(UTC) + timedelta(minutes=5),
            "wait_seconds": wait, "talk_seconds": talk}


ROWS = [
    # Monday 09-10, two Mondays in the period: 4 offered (the closed call is not), 2 answered.
    row(at(2, 9, 10), "answered", wait=10, talk=200),
    row(at(2, 9, 20), "answered", wait=0, talk=100),
    row(at(9, 9, 59, 59), "abandoned", wait=30),
    row(at(9, 9, 30), "timed_out", wait=60),  # offered, not answered, not an abandon: censored patience
    row(at(9, 9, 40), "closed"),
    row(at(9, 9, 15), "answered", wait=1, talk=500, queue="main", offered_queue="main"),  # another queue
    # Monday 07:30 in Shanghai is Sunday 23:30 UTC.
    row(at(9, 7, 30), "abandoned", wait=4),
    # The first moment of the period, and the last one's edge (excluded).
    row(at(2, 0, 0), "answered", wait=2, talk=40),
    row(at(16, 0, 0), "answered", wait=2, talk=40),
    # Sunday 23-24: 15:30 UTC.
    row(at(15, 23, 30), "answered", wait=5, talk=60),
    # Tuesday 10-11: a row from before offered queues, an overflow that still counts in tax, and
    # a short hang-up (an older engine's "short_abandon", as migration 0002 stored it: abandoned).
    row(at(3, 10, 0), "answered", wait=3, talk=90, queue="tax", offered_queue=""),
    row(at(3, 10, 30), "answered", wait=7, talk=30, queue="main", offered_queue="tax"),
    row(at(10, 10, 45), "abandoned", wait=2),
]


@contextlib.contextmanager
def _store(kind: str, tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, object]]) -> Iterator[Engine]:
    with report_helpers.store(kind, tmp_path_factory.mktemp("history")) as engine:
        with engine.begin() as conn:
            conn.execute(delete(CALLS))
            conn.execute(insert(CALLS), rows)
        yield engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with _store(request.param, tmp_path_factory, ROWS) as engine:
        yield engine


def slot(f: Forecast, weekday: int, hour: int) -> HourOfWeek:
    found = f.slots[weekday * 24 + hour]
    assert (found.weekday, found.hour) == (weekday, hour)
    return found


def test_an_hour_of_the_week_has_its_calls_per_hour_aht_and_censored_patience(store: Engine) -> None:
    f = forecast(store, queue="tax", since=date(2026, 11, 2), until=date(2026, 11, 16))
    monday_9 = slot(f, 0, 9)
    assert monday_9.label == "周一 09-10"
    assert (monday_9.hours, monday_9.tally.offered, monday_9.tally.answered, monday_9.tally.abandoned) == (2, 4, 2, 1)
    assert monday_9.calls_per_hour == 2.0
    assert monday_9.tally.aht == 150.0
    # Σ waits of every offered call (10 + 0 + 30 + 60) over one abandon.
    assert monday_9.tally.patience == 100.0


def test_hours_are_local_to_shanghai_across_the_utc_day_boundary(store: Engine) -> None:
    f = forecast(store, queue="tax", since=date(2026, 11, 2), until=date(2026, 11, 16))
    assert slot(f, 0, 7).tally.offered == 1  # Sunday 23:30 UTC
    assert slot(f, 6, 23).tally.offered == 1 and slot(f, 6, 23).label == "周日 23-24"
    assert slot(f, 0, 0).tally.offered == 1  # the period's first moment is in; its end is out
    assert len(f.slots) == 168 and f.slots[0].label == "周一 00-01" and f.slots[-1].label == "周日 23-24"
    assert all(s.hours == 2 for s in f.slots)
    assert sum(s.tally.offered for s in f.slots) == f.total.offered == 10


def test_the_queue_is_the_offered_queue_and_old_rows_count_in_their_queue(store: Engine) -> None:
    f = forecast(store, queue="tax", since=date(2026, 11, 2), until=date(2026, 11, 16))
    tuesday_10 = slot(f, 1, 10)
    assert (tuesday_10.tally.offered, tuesday_10.tally.answered, tuesday_10.tally.abandoned) == (3, 2, 1)
    assert tuesday_10.tally.aht == 60.0
    everyone = forecast(store, since=date(2026, 11, 2), until=date(2026, 11, 16))
    assert slot(everyone, 0, 9).tally.offered == 5  # main's call joins
    assert forecast(store, queue="nowhere", since=date(2026, 11, 2), until=date(2026, 11, 16)).total.offered == 0


def test_the_pooled_figures_cover_the_whole_period(store: Engine) -> None:
    total = forecast(store, queue="tax", since=date(2026, 11, 2), until=date(2026, 11, 16)).total
    assert (total.offered, total.answered, total.abandoned) == (10, 6, 3)
    assert total.aht == pytest.approx((200 + 100 + 40 + 60 + 90 + 30) / 6)
    assert total.patience == pytest.approx((10 + 0 + 30 + 60 + 4 + 2 + 5 + 3 + 7 + 2) / 3)


def test_a_period_left_open_runs_from_the_first_to_the_last_stored_calls_day(store: Engine) -> None:
    f = forecast(store, queue="tax")
    assert (f.since, f.until) == (date(2026, 11, 2), date(2026, 11, 17))  # the 16th's midnight call is in
    assert f.total.offered == 11
    assert slot(f, 0, 0).hours == 3  # Mondays 2, 9 and 16


def test_a_forecast_without_calls_or_with_a_backwards_period_says_what_to_change(store: Engine) -> None:
    with pytest.raises(PlanError, match="no offered calls in the store for queue nowhere"):
        forecast(store, queue="nowhere")
    with pytest.raises(PlanError, match="must be before --until"):
        forecast(store, since=date(2026, 11, 9), until=date(2026, 11, 9))


def test_hours_without_abandons_or_answers_have_no_patience_or_aht() -> None:
    assert Tally(offered=3, answered=3, talk_seconds=30.0, wait_seconds=12.0).patience is None
    assert Tally(offered=2, abandoned=2, wait_seconds=12.0).aht is None
    assert HourOfWeek(0, 0, 0, Tally()).calls_per_hour == 0.0


# Monday 2 November, 09-10: every way a call can end, in tax and through it.
EVERY_END = [
    row(at(2, 9, 0), "closed"),  # closed hours: never entered the queue, not offered
    row(at(2, 9, 5), "overflow", wait=60),  # offered in tax, sent to the overflow message
    row(at(2, 9, 10), "answered", wait=5, talk=100, queue="main"),  # overflowed to main, answered there
    row(at(2, 9, 15), "abandoned", wait=20, queue="main"),  # overflowed to main, hung up there
    row(at(2, 9, 20), "timed_out", wait=90),
    row(at(2, 9, 25), "callback", wait=40),
    row(at(2, 9, 30), "forwarded", wait=45),
    row(at(2, 9, 35), "short_abandon", wait=2),  # a value migration 0002 rewrote: counted as the report does
    row(at(2, 9, 40), "answered", wait=1, talk=50, queue="main", offered_queue="main"),
    row(at(2, 9, 45), "closed", queue="main", offered_queue="main"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def every_end(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with _store(request.param, tmp_path_factory, EVERY_END) as engine:
        yield engine


def test_closed_and_overflowed_calls_are_counted_as_the_report_counts_them(every_end: Engine) -> None:
    since, until = date(2026, 11, 2), date(2026, 11, 3)
    report = totals_by_queue(every_end, at(2, 0), at(3, 0))  # the period report's own query
    tax = forecast(every_end, queue="tax", since=since, until=until).total
    assert (tax.offered, tax.answered, tax.abandoned) == (report["tax"].offered, report["tax"].answered,
                                                          report["tax"].abandoned)
    # The closed call is not offered; the overflows count in tax, where they were offered.
    assert (tax.offered, tax.answered, tax.abandoned, report["tax"].closed) == (7, 1, 1, 1)
    everyone = forecast(every_end, since=since, until=until).total
    assert (everyone.offered, everyone.answered, everyone.abandoned) == (
        sum(t.offered for t in report.values()), sum(t.answered for t in report.values()),
        sum(t.abandoned for t in report.values()))
    assert slot(forecast(every_end, queue="main", since=since, until=until), 0, 9).tally.offered == 1
