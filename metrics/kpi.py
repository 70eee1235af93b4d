"""The hotline's call KPIs, defined once. Pure: no I/O, no clock, no Prometheus.

The live counters (metrics/exporter.py), the demo's summary and every report compute
from these functions, so the figure a supervisor watches and the figure the monthly
report proves are the same figure. Definitions (../shared/reference/hotline-domain-
and-kpis.md §3, §5, §6; choices written out in README "Counting"):

- A call is counted once, in the queue it was *offered* in: the first open queue it
  entered (`CallRecord.offered_queue`). An overflow moves the caller, not the count, so
  no queue's answer rate can pass 100%. Thresholds are that queue's, as recorded with
  the call (`service_level`, `short_abandon`): a later configuration change does not
  rewrite history.
- offered (呼入量): every call that entered an open queue. A caller who met closed hours
  never entered the agent queue: not offered (reported as `closed`). Queue full, nobody
  logged in, time-out, overflow to a message, a callback or an external number are all
  offered and not answered.
- answered (接通量): an agent answered (the dialplan's fallback counts: a human answered).
- abandoned (放弃量): hung up before an answer (short abandons included). Time-outs and
  overflows out of the agent queue (message, callback, external number) are not abandons
  but are not answered either: `unanswered` = offered - answered counts them all.
- short abandon (速挂): a caller who hung up before an answer within `short_abandon`
  seconds of joining. Excluded from the answer rate's denominator, reported.
- answered within the service level: answered with wait <= `service_level`.
- answer rate (接通率) = answered / (offered - short abandons).
- service-level rate (15秒接通率 when the level is 15 s) = answered within the level /
  (offered - short abandons): offered-based, the strictest form. The answered-based
  form (Asterisk's SL) is `sl_of_answered` for comparison only.
- Rates are ratios of sums over the period, never averages of daily rates.

The SQL form of the same rules (`sql_counts`, at the end) is built beside them and proven
equal to `totals` (tests/unit/test_kpi_sql.py): building a SQLAlchemy expression is no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from sqlalchemy import ColumnElement, FromClause, and_, case, func, literal_column, not_

from acd.model import Outcome


class RecordLike(Protocol):
    """What a KPI needs of a call record (acd.commands.CallRecord or a stored row)."""

    @property
    def queue(self) -> str: ...
    @property
    def offered_queue(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def wait_seconds(self) -> float: ...
    @property
    def service_level(self) -> float: ...
    @property
    def short_abandon(self) -> float: ...


def offered_queue(rec: RecordLike) -> str:
    return rec.offered_queue or rec.queue


def is_offered(outcome: str) -> bool:
    return outcome != Outcome.CLOSED


def is_answered(outcome: str) -> bool:
    return outcome == Outcome.ANSWERED


def is_short_abandon(outcome: str, wait: float, threshold: float) -> bool:
    return outcome == Outcome.ABANDONED and wait < threshold


def within_service_level(wait: float, level: float) -> bool:
    return wait <= level


@dataclass(frozen=True)
class Classified:
    """What one call counts for."""

    queue: str  # where it counts (the offered queue)
    offered: bool
    answered: bool
    answered_within_sl: bool
    abandoned: bool  # hung up before an answer
    short_abandoned: bool
    closed: bool


def classify(rec: RecordLike) -> Classified:
    outcome = str(rec.outcome)
    offered = is_offered(outcome)
    answered = is_answered(outcome)
    return Classified(
        queue=offered_queue(rec),
        offered=offered,
        answered=answered,
        answered_within_sl=answered and within_service_level(rec.wait_seconds, rec.service_level),
        abandoned=outcome == Outcome.ABANDONED,
        short_abandoned=is_short_abandon(outcome, rec.wait_seconds, rec.short_abandon),
        closed=not offered,
    )


@dataclass(frozen=True)
class Totals:
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    closed: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))

    @property
    def unanswered(self) -> int:
        return self.offered - self.answered

    @property
    def eligible(self) -> int:
        """The answer rate's denominator: offered minus short abandons."""
        return self.offered - self.short_abandoned

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.eligible if self.eligible > 0 else None

    @property
    def sl_rate(self) -> float | None:
        return self.answered_within_sl / self.eligible if self.eligible > 0 else None

    @property
    def sl_of_answered(self) -> float | None:
        return self.answered_within_sl / self.answered if self.answered > 0 else None


def _fields(t: Totals) -> tuple[int, ...]:
    return (t.offered, t.answered, t.answered_within_sl, t.abandoned, t.short_abandoned, t.closed)


def of(c: Classified) -> Totals:
    return Totals(int(c.offered), int(c.answered), int(c.answered_within_sl), int(c.abandoned),
                  int(c.short_abandoned), int(c.closed))


def totals(records: Iterable[RecordLike]) -> Totals:
    out = Totals()
    for rec in records:
        out = out + of(classify(rec))
    return out


def by_queue(records: Iterable[RecordLike]) -> dict[str, Totals]:
    out: dict[str, Totals] = {}
    for rec in records:
        c = classify(rec)
        out[c.queue] = out.get(c.queue, Totals()) + of(c)
    return out


def percent(rate: float | None) -> str:
    """A rate as published: percent, two decimals, rounded half up ("—" with no calls)."""
    if rate is None:
        return "—"
    value = (Decimal(repr(rate)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{value}%"


# ---- The same rules in SQL ----------------------------------------------------------------------
# A year of calls (1.5M records) is aggregated by the database, not looped over in Python. Each
# condition below is the SQL twin of the rule above it names, written beside it so that a change
# to one is seen next to the other; tests/unit/test_kpi_sql.py proves on SQLite and PostgreSQL,
# over random records (boundaries included), that `sql_counts` sums to what `totals` counts.
# Literals are inlined (not bound): PostgreSQL must see a GROUP BY expression identical to the
# selected one, and two bound parameters of the same value are not identical to it.


def sql_offered_queue(t: FromClause) -> ColumnElement[str]:
    """`offered_queue`: the record's offered queue, or its queue when that is empty."""
    return func.coalesce(func.nullif(t.c.offered_queue, literal_column("''")), t.c.queue)


def _is(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    return column == literal_column(f"'{value}'")  # Outcome values are plain identifiers: nothing to escape


def sql_is_offered(t: FromClause) -> ColumnElement[bool]:
    """`is_offered`."""
    return t.c.outcome != literal_column(f"'{Outcome.CLOSED.value}'")


def sql_is_answered(t: FromClause) -> ColumnElement[bool]:
    """`is_answered`."""
    return _is(t.c.outcome, Outcome.ANSWERED.value)


def sql_is_abandoned(t: FromClause) -> ColumnElement[bool]:
    """`Classified.abandoned`."""
    return _is(t.c.outcome, Outcome.ABANDONED.value)


def sql_is_short_abandon(t: FromClause, threshold: float | None = None) -> ColumnElement[bool]:
    """`is_short_abandon`, with the record's own threshold, or `threshold` for every call."""
    if threshold is not None and not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"short-abandon threshold must be a finite number of seconds >= 0, not {threshold!r}")
    limit: ColumnElement[Any] = t.c.short_abandon if threshold is None else literal_column(repr(float(threshold)))
    return and_(sql_is_abandoned(t), t.c.wait_seconds < limit)


def sql_within_service_level(t: FromClause) -> ColumnElement[bool]:
    """`is_answered` and `within_service_level`, with the record's own level."""
    return and_(sql_is_answered(t), t.c.wait_seconds <= t.c.service_level)


def sql_conditions(t: FromClause, short_abandon: float | None = None) -> dict[str, ColumnElement[bool]]:
    """What one row counts for, by `Totals` field: the SQL form of `classify`."""
    return {
        "offered": sql_is_offered(t),
        "answered": sql_is_answered(t),
        "answered_within_sl": sql_within_service_level(t),
        "abandoned": sql_is_abandoned(t),
        "short_abandoned": sql_is_short_abandon(t, short_abandon),
        "closed": not_(sql_is_offered(t)),
    }


def sql_count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows meet `condition` (0, not NULL, over no rows)."""
    return func.coalesce(func.sum(case((condition, literal_column("1")), else_=literal_column("0"))),
                         literal_column("0"))


def sql_counts(t: FromClause, short_abandon: float | None = None) -> dict[str, ColumnElement[int]]:
    """The `Totals` fields as SQL sums over call-record rows of table `t` (labelled by field name).
    `short_abandon` replaces every record's own threshold (a report's override)."""
    return {name: sql_count(cond).label(name) for name, cond in sql_conditions(t, short_abandon).items()}


def totals_from_row(row: Mapping[Any, Any]) -> Totals:
    """The `Totals` of a result row that selected `sql_counts`."""
    return Totals(*(int(row[name] or 0) for name in TOTALS_FIELDS))


TOTALS_FIELDS = ("offered", "answered", "answered_within_sl", "abandoned", "short_abandoned", "closed")
