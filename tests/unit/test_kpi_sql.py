"""One definition, two forms: `kpi.sql_counts` (what the database sums for a report) equals
`kpi.by_queue` (what the live counters and the demo compute) over random call records, on
SQLite and on PostgreSQL, thresholds' boundaries included; so does the report's override
of the short-abandon threshold, and `reports.calls.totals_by_queue`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from acd.model import Outcome
from metrics import kpi
from reports.calls import totals_by_queue
from tests.unit import report_helpers
from tickets.models import CallRecordRow

CALLS = CallRecordRow.__table__
T0 = datetime(2026, 11, 1, tzinfo=UTC)
_ids = itertools.count()


@dataclass(frozen=True)
class Rec:
    queue: str
    offered_queue: str
    outcome: str
    wait_seconds: float
    service_level: float
    short_abandon: float


THRESHOLDS = [0.0, 4.0, 5.0, 5.5, 15.0, 20.0]
waits = st.one_of(st.sampled_from([0.0, 3.999, 4.0, 4.999, 5.0, 5.0001, 5.5, 14.999, 15.0, 15.001, 20.0]),
                  st.floats(min_value=0, max_value=600, allow_nan=False, allow_infinity=False))
recs = st.builds(Rec, queue=st.sampled_from(["main", "tax", "sales"]),
                 offered_queue=st.sampled_from(["", "main", "tax", "sales"]),
                 outcome=st.sampled_from([o.value for o in Outcome]), wait_seconds=waits,
                 service_level=st.sampled_from(THRESHOLDS), short_abandon=st.sampled_from(THRESHOLDS))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with report_helpers.store(request.param, tmp_path_factory.mktemp("kpi")) as engine:
        yield engine


def store_records(db: Engine, records: list[Rec]) -> None:
    rows = [{"call_id": f"c{next(_ids)}", "queue": r.queue, "offered_queue": r.offered_queue, "outcome": r.outcome,
             "wait_seconds": r.wait_seconds, "talk_seconds": 30.0, "service_level": r.service_level,
             "short_abandon": r.short_abandon, "arrived": T0 + timedelta(seconds=i), "ended": T0 + timedelta(hours=1)}
            for i, r in enumerate(records)]
    with db.begin() as conn:
        conn.execute(delete(CallRecordRow))
        if rows:
            conn.execute(insert(CallRecordRow), rows)


def sql_by_queue(db: Engine, short_abandon: float | None = None) -> dict[str, kpi.Totals]:
    queue = kpi.sql_offered_queue(CALLS)
    query = select(queue.label("q"), *kpi.sql_counts(CALLS, short_abandon).values()).group_by(queue)
    with db.connect() as conn:
        return {r["q"]: kpi.totals_from_row(r) for r in conn.execute(query).mappings()}


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(records=st.lists(recs, max_size=40))
def test_the_sql_counts_equal_the_python_rules_queue_by_queue(store: Engine, records: list[Rec]) -> None:
    store_records(store, records)
    assert sql_by_queue(store) == kpi.by_queue(records)


@PROPERTY
@given(records=st.lists(recs, max_size=40), threshold=st.sampled_from([0.0, 3.0, 5.0, 5.5, 10.0]))
def test_an_overridden_short_abandon_threshold_counts_as_if_every_record_carried_it(
        store: Engine, records: list[Rec], threshold: float) -> None:
    store_records(store, records)
    assert sql_by_queue(store, threshold) == kpi.by_queue([replace(r, short_abandon=threshold) for r in records])


@PROPERTY
@given(records=st.lists(recs, max_size=40))
def test_totals_by_queue_is_kpi_by_queue_of_the_window(store: Engine, records: list[Rec]) -> None:
    store_records(store, records)  # call i arrives at T0 + i s: the window [T0 + 5 s, T0 + 20 s) takes 5..19
    assert totals_by_queue(store, T0 + timedelta(seconds=5), T0 + timedelta(seconds=20)) == kpi.by_queue(records[5:20])


def test_the_sum_over_no_rows_is_zero_not_null(store: Engine) -> None:
    store_records(store, [])
    with store.connect() as conn:
        row = conn.execute(select(*kpi.sql_counts(CALLS).values())).mappings().one()
    assert kpi.totals_from_row(row) == kpi.Totals()
