"""A forecast from the store: for each hour of the week (Asia/Shanghai, Monday 00-01 ... Sunday
23-24), the offered calls an hour, the AHT and a patience estimate, from `call_records`.

Counted by metrics/kpi.py's own SQL (`kpi.sql_offered_queue`, `kpi.sql_conditions`), the one
definition the period reports count by: a call once, in its offered queue (`offered_queue`, or
`queue` on rows from before offered queues), offered unless it met closed hours; answered by an
agent; abandoned when the caller hung up before an answer (速挂 included: exponential patience has
its short hang-ups too). Aggregated by the database (a year is ~1.5M rows), by SQLAlchemy Core,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from typing import cast as typed
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Float, Integer, Select, Table, case, cast, func, literal_column, select

from metrics import kpi
from planner.erlang import PlanError
from tickets.models import CallRecordRow

LOCAL = ZoneInfo("Asia/Shanghai")  # UTC+8 all year since 1991: every local day has 24 hours
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
CALLS = typed(Table, CallRecordRow.__table__)  # declared as a FromClause; it is the Table
KPI = kpi.sql_conditions(CALLS)  # what a row counts for, as the reports count it


@dataclass(frozen=True, slots=True)
class Tally:
    """Offered calls of some hours and what became of them."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    talk_seconds: float = 0.0  # of answered calls
    wait_seconds: float = 0.0  # of every offered call: how long each was seen waiting

    @property
    def aht(self) -> float | None:
        """Mean talk of answered calls (after-call work is not in the records)."""
        return self.talk_seconds / self.answered if self.answered else None

    @property
    def patience(self) -> float | None:
        """Mean patience, the maximum-likelihood estimate for exponential patience with censoring:
        an abandoned caller's wait is its patience; any other caller's wait (answered, timed out,
        sent to overflow) is a lower bound of it. The likelihood θ^a·e^{-θ·Σ waits} (a abandons,
        the sum over every offered call) is largest at θ = a / Σ waits, so
            patience = 1/θ = Σ waits of all offered calls / number of abandons.
        None without abandons (no evidence that anyone hangs up: plan with Erlang C)."""
        return self.wait_seconds / self.abandoned if self.abandoned else None


@dataclass(frozen=True, slots=True)
class HourOfWeek:
    weekday: int  # 0 = Monday ... 6 = Sunday, local
    hour: int  # local: `hour`:00 to `hour`+1:00
    hours: int  # how many such hours the period holds
    tally: Tally

    @property
    def calls_per_hour(self) -> float:
        return self.tally.offered / self.hours if self.hours else 0.0

    @property
    def label(self) -> str:
        return f"{WEEKDAYS_ZH[self.weekday]} {self.hour:02d}-{self.hour + 1:02d}"


@dataclass(frozen=True, slots=True)
class Forecast:
    since: date  # first local day counted
    until: date  # first local day not counted
    queue: str | None  # None: every queue
    slots: tuple[HourOfWeek, ...]  # 168, Monday 00-01 first
    total: Tally  # the whole period: the pooled AHT and patience


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(), LOCAL).astimezone(UTC)


def _local_day(value: datetime) -> date:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(LOCAL).date()  # SQLite drops the zone


def _filtered(query: Select[Any], queue: str | None, since: date | None, until: date | None) -> Select[Any]:
    conditions = [KPI["offered"]]  # closed hours: never offered
    if queue is not None:
        conditions.append(kpi.sql_offered_queue(CALLS) == queue)
    if since is not None:
        conditions.append(CALLS.c.arrived >= _utc(since))
    if until is not None:
        conditions.append(CALLS.c.arrived < _utc(until))
    return query.where(*conditions)


def _local_weekday_hour(dialect: str) -> tuple[Any, Any]:
    """SQL for the local weekday (0 = Monday) and hour of `arrived`. Literals, not bound
    parameters: the expressions are grouped by, and PostgreSQL must see them identical."""
    if dialect == "postgresql":
        local = func.timezone(literal_column("'Asia/Shanghai'"), CALLS.c.arrived)
        return (cast(func.extract("isodow", local), Integer) - 1, cast(func.extract("hour", local), Integer))
    if dialect == "sqlite":  # stored as UTC text; Shanghai is a fixed +8
        shift: Any = literal_column("'+8 hours'")
        return ((cast(func.strftime(literal_column("'%w'"), CALLS.c.arrived, shift), Integer) + 6) % 7,
                cast(func.strftime(literal_column("'%H'"), CALLS.c.arrived, shift), Integer))
    raise PlanError(f"the forecast reads SQLite or PostgreSQL stores, not {dialect}")


def forecast(engine: Engine, queue: str | None = None, since: date | None = None,
             until: date | None = None) -> Forecast:
    """Per hour of the week, from the calls that arrived from `since` (local, inclusive) to `until`
    (local, exclusive). A bound left out is the first / the day after the last stored call's local
    day; that last day may be partial and then lowers its hours' calls per hour: give `until`."""
    if since is not None and until is not None and since >= until:
        raise PlanError(f"起始日期须早于截止日期 / --since ({since}) must be before --until ({until})")
    with engine.connect() as conn:
        if since is None or until is None:
            first, last = conn.execute(_filtered(select(func.min(CALLS.c.arrived), func.max(CALLS.c.arrived)),
                                                 queue, since, until)).one()
            if first is None:
                raise PlanError("库中没有符合条件的来电记录 / no offered calls in the store"
                                + (f" for queue {queue}" if queue else "")
                                + ": nothing to forecast from; check --queue, --since and --until")
            since = since or _local_day(first)
            until = until or _local_day(last) + timedelta(days=1)
        weekday, hour = _local_weekday_hour(engine.dialect.name)
        rows = select(
            weekday.label("weekday"),
            hour.label("hour"),
            case((KPI["offered"], 1), else_=0).label("offered"),
            case((KPI["answered"], 1), else_=0).label("answered"),
            case((KPI["abandoned"], 1), else_=0).label("abandoned"),
            case((KPI["answered"], CALLS.c.talk_seconds), else_=0.0).label("talk"),
            CALLS.c.wait_seconds.label("wait"),
        )
        sub = _filtered(rows, queue, since, until).subquery()
        grouped = select(sub.c.weekday, sub.c.hour, func.sum(sub.c.offered), func.sum(sub.c.answered),
                         func.sum(sub.c.abandoned), cast(func.sum(sub.c.talk), Float), cast(func.sum(sub.c.wait), Float)
                         ).group_by(sub.c.weekday, sub.c.hour)
        tallies = {(int(w), int(h)): Tally(int(n or 0), int(a or 0), int(b or 0), float(t or 0), float(s or 0))
                   for w, h, n, a, b, t, s in conn.execute(grouped)}
    days = (until - since).days
    per_weekday = [sum(1 for d in range(days) if (since + timedelta(days=d)).weekday() == w) for w in range(7)]
    slots = tuple(HourOfWeek(w, h, per_weekday[w], tallies.get((w, h), Tally())) for w in range(7) for h in range(24))
    total = Tally(*(sum(getattr(t, f) for t in tallies.values())
                    for f in ("offered", "answered", "abandoned", "talk_seconds", "wait_seconds")))
    return Forecast(since, until, queue, slots, total)
