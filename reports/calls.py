"""The call figures of a period, from `call_records`, aggregated by the database.

One query groups the period's calls by (offered queue, hour): the counts are `kpi.sql_counts`,
the SQL twin of `kpi.totals`, so a report's 接通率 is the live counters' and the demo's. The
rest (by queue, by day, by hour of day, the worst 24 hours) is summed from those hourly
buckets in Python: a year is at most 8,784 hours per queue. Hours are whole in UTC and in
Beijing alike (UTC+8, no summer time), so an hour bucket belongs to one Beijing day.

`totals_by_queue(db, start_utc, end_utc)` is the same aggregation over a plain window, by
queue only (the engine's month-to-date gauges read it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, literal_column, or_, select

from metrics import kpi
from reports.figures import Figure, rate
from reports.periods import SHANGHAI, Period
from tickets.models import CallRecordRow

CALLS = CallRecordRow.__table__
SATISFIED_DEFAULT = (1, 2)  # 非常满意, 满意 of the survey's five levels (1 = best)
SURVEY_LEVELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
Progress = Callable[[str], None]
REPORT_TIMEOUT = 600  # seconds a report's query may take on PostgreSQL


@dataclass(frozen=True)
class CallAgg:
    """What a set of calls sums to: the KPI totals and what the averages and maxima need."""

    totals: kpi.Totals = field(default_factory=kpi.Totals)
    wait_answered: float = 0.0  # Σ wait of answered calls (ASA's numerator)
    talk_answered: float = 0.0  # Σ talk of answered calls (AHT's numerator)
    longest_answered: float | None = None
    longest_abandoned: float | None = None
    surveyed: int = 0  # reached the survey
    rated: int = 0  # ... and pressed a rating 1-5
    satisfied: int = 0  # ... one of the satisfied levels
    short_abandon_min: float | None = None  # the thresholds recorded with the offered calls
    short_abandon_max: float | None = None
    service_level_min: float | None = None
    service_level_max: float | None = None

    def __add__(self, other: CallAgg) -> CallAgg:
        a, b = self, other
        return CallAgg(
            a.totals + b.totals, a.wait_answered + b.wait_answered, a.talk_answered + b.talk_answered,
            _max(a.longest_answered, b.longest_answered), _max(a.longest_abandoned, b.longest_abandoned),
            a.surveyed + b.surveyed, a.rated + b.rated, a.satisfied + b.satisfied,
            _min(a.short_abandon_min, b.short_abandon_min), _max(a.short_abandon_max, b.short_abandon_max),
            _min(a.service_level_min, b.service_level_min), _max(a.service_level_max, b.service_level_max),
        )

    @property
    def asa(self) -> float | None:
        return self.wait_answered / self.totals.answered if self.totals.answered else None

    @property
    def aht(self) -> float | None:
        return self.talk_answered / self.totals.answered if self.totals.answered else None

    @property
    def response_rate(self) -> float | None:
        return self.rated / self.surveyed if self.surveyed else None

    @property
    def satisfaction(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _sum(aggs: Iterable[CallAgg]) -> CallAgg:
    out = CallAgg()
    for a in aggs:
        out = out + a
    return out


@dataclass(frozen=True)
class Bucket:
    queue: str  # the offered queue (kpi.offered_queue)
    hour: datetime  # the hour's start, aware UTC
    agg: CallAgg


# ---- the query ---------------------------------------------------------------------------------


def _aware_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime (naive times are ambiguous)")
    return moment.astimezone(UTC)


def _hour(dialect: str) -> ColumnElement[Any]:
    """The arrival's UTC hour, as the database can group by it."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
        return func.substr(CALLS.c.arrived, literal_column("1"), literal_column("13"))
    if dialect == "postgresql":  # hours since the epoch: independent of the session's TimeZone
        return func.floor(func.extract("epoch", CALLS.c.arrived) / literal_column("3600"))
    raise ValueError(f"reports support SQLite and PostgreSQL stores, not {dialect}")


def _hour_value(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.strptime(value[:13].replace("T", " "), "%Y-%m-%d %H").replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(Decimal(value)) * 3600, UTC)


def _rated() -> ColumnElement[bool]:
    return and_(CALLS.c.surveyed, CALLS.c.rating.between(literal_column("1"), literal_column("5")))


def _columns(short_abandon: float | None, satisfied: Sequence[int]) -> list[ColumnElement[Any]]:
    t = CALLS
    answered, abandoned, offered = kpi.sql_is_answered(t), kpi.sql_is_abandoned(t), kpi.sql_is_offered(t)
    if not satisfied or not set(satisfied) <= set(SURVEY_LEVELS):
        raise ValueError(f"satisfied levels must be some of 1-5, not {list(satisfied)}")
    levels: list[ColumnElement[Any]] = [literal_column(str(int(level))) for level in satisfied]
    return [
        *kpi.sql_counts(t, short_abandon).values(),
        func.coalesce(func.sum(case((answered, t.c.wait_seconds), else_=literal_column("0"))),
                      literal_column("0")).label("wait_answered"),
        func.coalesce(func.sum(case((answered, t.c.talk_seconds), else_=literal_column("0"))),
                      literal_column("0")).label("talk_answered"),
        func.max(case((answered, t.c.wait_seconds))).label("longest_answered"),
        func.max(case((abandoned, t.c.wait_seconds))).label("longest_abandoned"),
        kpi.sql_count(t.c.surveyed).label("surveyed"),
        kpi.sql_count(_rated()).label("rated"),
        kpi.sql_count(and_(_rated(), t.c.rating.in_(levels))).label("satisfied"),
        func.min(case((offered, t.c.short_abandon))).label("sa_min"),
        func.max(case((offered, t.c.short_abandon))).label("sa_max"),
        func.min(case((offered, t.c.service_level))).label("sl_min"),
        func.max(case((offered, t.c.service_level))).label("sl_max"),
    ]


def _agg(row: Mapping[Any, Any]) -> CallAgg:
    def opt(name: str) -> float | None:
        return None if row[name] is None else float(row[name])

    return CallAgg(kpi.totals_from_row(row), float(row["wait_answered"]), float(row["talk_answered"]),
                   opt("longest_answered"), opt("longest_abandoned"), int(row["surveyed"]), int(row["rated"]),
                   int(row["satisfied"]), opt("sa_min"), opt("sa_max"), opt("sl_min"), opt("sl_max"))


def _where(start_utc: datetime, end_utc: datetime, queues: Sequence[str]) -> list[ColumnElement[bool]]:
    t = CALLS
    where = [t.c.arrived >= _aware_utc(start_utc, "start_utc"), t.c.arrived < _aware_utc(end_utc, "end_utc")]
    if queues:
        # Written so that ix_call_records_offered_queue_arrived serves the common case.
        where.append(or_(t.c.offered_queue.in_(list(queues)),
                         and_(t.c.offered_queue == "", t.c.queue.in_(list(queues)))))
    return where


@contextlib.contextmanager
def reading(db: Engine) -> Iterator[Connection]:
    """A connection for a report's queries. On PostgreSQL the store's 15 s statement watchdog
    (tickets.db.PG_SILENCE_MS, meant for the engine's writes) is lifted to REPORT_TIMEOUT for
    this transaction only: a multi-year store may take longer than 15 s to sum a year."""
    with db.connect() as conn, conn.begin():
        if db.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = '{REPORT_TIMEOUT}s'")
        yield conn


def hourly(db: Engine, start_utc: datetime, end_utc: datetime, *, queues: Sequence[str] = (),
           short_abandon: float | None = None, satisfied: Sequence[int] = SATISFIED_DEFAULT) -> list[Bucket]:
    """The calls that arrived in [start_utc, end_utc) by (offered queue, UTC hour)."""
    queue, hour = kpi.sql_offered_queue(CALLS), _hour(db.dialect.name)
    query = (select(queue.label("offered_q"), hour.label("hour_utc"), *_columns(short_abandon, satisfied))
             .where(*_where(start_utc, end_utc, queues)).group_by(queue, hour))
    with reading(db) as conn:
        rows = conn.execute(query).mappings().all()
    return [Bucket(str(r["offered_q"]), _hour_value(r["hour_utc"]), _agg(r)) for r in rows]


def totals_by_queue(db: Engine, start_utc: datetime, end_utc: datetime) -> dict[str, kpi.Totals]:
    """`kpi.by_queue` of the calls that arrived in [start_utc, end_utc), computed by the database.

    Each record with its own thresholds, in its offered queue. Queues without calls are absent."""
    queue = kpi.sql_offered_queue(CALLS)
    query = (select(queue.label("offered_q"), *kpi.sql_counts(CALLS).values())
             .where(*_where(start_utc, end_utc, ())).group_by(queue))
    with db.connect() as conn:
        return {str(r["offered_q"]): kpi.totals_from_row(r) for r in conn.execute(query).mappings()}


# ---- the period's figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A run of 24 whole hours and its answer rate."""

    start: datetime  # Beijing time
    answered: int
    eligible: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=24)

    @property
    def rate(self) -> float:
        return self.answered / self.eligible


def worst_window(start: datetime, hours: Sequence[tuple[int, int]], width: int = 24) -> tuple[Window | None, int]:
    """The lowest answer rate over windows of `width` consecutive hours, sliding by one hour.

    `hours[i]` is (answered, eligible) of hour i after `start`. Windows with no eligible call are
    skipped; the earliest of equal rates wins. Returns (worst or None, windows considered)."""
    worst: Window | None = None
    considered = 0
    answered = sum(h[0] for h in hours[:width])
    eligible = sum(h[1] for h in hours[:width])
    for i in range(len(hours) - width + 1):
        if i:
            answered += hours[i + width - 1][0] - hours[i - 1][0]
            eligible += hours[i + width - 1][1] - hours[i - 1][1]
        if eligible <= 0:
            continue
        considered += 1
        if worst is None or Fraction(answered, eligible) < Fraction(worst.answered, worst.eligible):
            worst = Window(start + timedelta(hours=i), answered, eligible)
    return worst, considered


@dataclass(frozen=True)
class CallStats:
    period: Period
    total: CallAgg
    by_queue: dict[str, CallAgg]
    by_day: dict[date, CallAgg]  # every day of the period, Beijing
    by_hour: dict[int, CallAgg]  # hour of day 0-23, Beijing
    worst_24h: Window | None
    windows: int  # 24-hour windows that had eligible calls
    short_abandon: float | None = None  # the CLI's override for every call, or None: each record's own
    satisfied: tuple[int, ...] = SATISFIED_DEFAULT
    queues: tuple[str, ...] = ()  # the --queue filter

    def figures(self) -> dict[str, Figure]:
        return _figures(self)

    def extras(self) -> dict[str, Figure]:
        """Figures beside the standard keys: the longest abandoned wait, closed-hours calls, Asterisk's SL."""
        t = self.total
        return {
            "calls.longest_wait_abandoned": Figure(
                "calls.longest_wait_abandoned", t.longest_abandoned,
                note="放弃来电（含速挂）中的最长等待时长，秒；与接通来电的最长等待分列"),
            "calls.closed": Figure("calls.closed", t.totals.closed,
                                   note="闭馆时段（非服务时间）来电：未进入开放队列，不计入呼入量"),
            "calls.unanswered": Figure("calls.unanswered", t.totals.unanswered,
                                       note="呼入未接通 = 呼入量 − 接通量：放弃、超时、溢出至留言/外线/回拨预约"),
            "calls.sl_of_answered": rate(
                "calls.sl_of_answered", t.totals.answered_within_sl, t.totals.answered,
                "仅供对照（Asterisk 口径）：服务水平内接通量 / 接通量；考核以 15秒接通率（分母为呼入量 − 速挂量）为准"),
        }


def summarise(period: Period, buckets: Iterable[Bucket], *, short_abandon: float | None = None,
              satisfied: Sequence[int] = SATISFIED_DEFAULT, queues: Sequence[str] = ()) -> CallStats:
    """The period's figures from its hourly buckets (pure)."""
    start = period.start_utc
    n = period.hours
    per_hour = [CallAgg() for _ in range(n)]
    by_queue: dict[str, CallAgg] = {}
    for b in buckets:
        i = int((b.hour - start).total_seconds()) // 3600
        if not 0 <= i < n:
            raise ValueError(f"an hour bucket {b.hour.isoformat()} outside {period.key}")
        per_hour[i] = per_hour[i] + b.agg
        by_queue[b.queue] = by_queue.get(b.queue, CallAgg()) + b.agg
    by_day = {day: CallAgg() for day in period.days}
    by_hour = {h: CallAgg() for h in range(24)}
    for i, agg in enumerate(per_hour):
        local = (start + timedelta(hours=i)).astimezone(SHANGHAI)
        by_day[local.date()] = by_day[local.date()] + agg
        by_hour[local.hour] = by_hour[local.hour] + agg
    worst, windows = worst_window(period.start, [(a.totals.answered, a.totals.eligible) for a in per_hour])
    return CallStats(period, _sum(per_hour), dict(sorted(by_queue.items())), by_day, by_hour, worst, windows,
                     short_abandon, tuple(satisfied), tuple(queues))


def period_stats(db: Engine, period: Period, *, queues: Sequence[str] = (), short_abandon: float | None = None,
                 satisfied: Sequence[int] = SATISFIED_DEFAULT, progress: Progress | None = None) -> CallStats:
    if progress:
        progress(f"话务：汇总 {period.label} 的通话记录 (call records, by queue and hour)")
    buckets = hourly(db, period.start_utc, period.end_utc, queues=queues, short_abandon=short_abandon,
                     satisfied=satisfied)
    return summarise(period, buckets, short_abandon=short_abandon, satisfied=satisfied, queues=queues)


# ---- notes -------------------------------------------------------------------------------------


def seconds_text(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return ""
    return f"{seconds_text(lo)} 秒" if lo == hi else f"{seconds_text(lo)}–{seconds_text(hi)} 秒"


def _short_rule(s: CallStats) -> str:
    if s.short_abandon is not None:
        limit = seconds_text(s.short_abandon)
        return f"速挂：等待不足 {limit} 秒即挂机（本报表统一按 {limit} 秒计，为命令行指定，覆盖各通话记录自带的阈值）"
    recorded = _range_text(s.total.short_abandon_min, s.total.short_abandon_max)
    where = f"，本期为 {recorded}" if recorded else ""
    return f"速挂：等待不足阈值即挂机（阈值取各通话记录当时所在受理队列的设置{where}）"


def _scope(s: CallStats) -> str:
    out = "按北京时间来电时刻归属统计期，按首个受理队列（溢出不改变计数队列）计"
    if s.queues:
        out += f"；仅统计受理队列 {'、'.join(s.queues)}"
    return out


def _figures(s: CallStats) -> dict[str, Figure]:
    t = s.total.totals
    a = s.total
    closed = f"闭馆时段来电 {t.closed:,} 通不计入呼入量"
    short = f"{_short_rule(s)}，共 {t.short_abandoned:,} 通，已从分母中剔除"
    level = _range_text(a.service_level_min, a.service_level_max) or "15 秒"
    satisfied_names = "+".join(SURVEY_LEVELS[x] for x in s.satisfied if x in SURVEY_LEVELS) or "（无）"
    worst = s.worst_24h
    if worst is None:
        worst_fig = Figure("calls.worst_24h_answer_rate", None, note=(
            "无可比较的连续 24 小时窗口（统计期不足 24 小时，或各窗口均无有效呼入）"))
    else:
        worst_fig = Figure("calls.worst_24h_answer_rate", worst.rate, worst.answered, worst.eligible, note=(
            f"在统计期内以整点起算、每次滑动 1 小时的连续 24 小时窗口中接通率最低者（GB/T 33358：连续 24 小时内"
            f"呼叫接通率 ≥ 95%）；窗口 {worst.start:%Y-%m-%d %H:%M} 至 {worst.end:%Y-%m-%d %H:%M}（北京时间），"
            f"接通 {worst.answered:,} / 有效呼入 {worst.eligible:,}；共比较 {s.windows:,} 个窗口，"
            f"无有效呼入的窗口已跳过；{_short_rule(s)}"))
    return {
        "calls.offered": Figure("calls.offered", t.offered, note=(
            f"呼入量：进入开放受理队列的来电（含排队中放弃、超时、溢出、预约回拨），{_scope(s)}；{closed}；"
            "在语音导航中挂机的来电未进入队列，不计入")),
        "calls.answered": Figure("calls.answered", t.answered, note="接通量：话务员接起（含应急振铃兜底接起）"),
        "calls.abandoned": Figure("calls.abandoned", t.abandoned, note=(
            f"放弃量：接通前挂机（含速挂 {t.short_abandoned:,} 通）；超时与溢出不算放弃，但也未接通")),
        "calls.short_abandoned": Figure("calls.short_abandoned", t.short_abandoned, note=_short_rule(s)),
        "calls.answer_rate": rate("calls.answer_rate", t.answered, t.eligible, (
            f"接通率 = 接通量 / (呼入量 − 速挂量)；{short}；{closed}；月度为各时段合计之比，非日接通率的平均")),
        "calls.sl_rate": rate("calls.sl_rate", t.answered_within_sl, t.eligible, (
            f"15秒接通率 = 服务水平内（等待 ≤ {level}，取各记录当时所在队列的设置）接通量 / (呼入量 − 速挂量)；"
            f"等待自进入队列起计（不含语音导航）；{short}；{closed}")),
        "calls.asa": Figure("calls.asa", a.asa, a.wait_answered, t.answered, note=(
            "平均应答时长（秒）= 接通来电的排队等待时长之和 / 接通量；等待自进入队列起计，至话务员接起止")),
        "calls.aht": Figure("calls.aht", a.aht, a.talk_answered, t.answered, note=(
            "平均通话时长（秒）= 通话时长之和 / 接通量；通话记录中没有话后处理（事后整理）时长，故未计入，"
            "不是完整的平均处理时长 (AHT)")),
        "calls.longest_wait": Figure("calls.longest_wait", a.longest_answered, note=(
            f"接通来电中的最长排队等待，秒；放弃来电中的最长等待另列：{seconds_text(a.longest_abandoned)} 秒")),
        "calls.worst_24h_answer_rate": worst_fig,
        "calls.survey_response_rate": rate("calls.survey_response_rate", a.rated, a.surveyed, (
            "满意度评价参与率 = 给出评价（按 1-5 键）的通话 / 进入满意度评价的通话；未按键或中途挂机记为未评价，"
            "不记为不满意")),
        "calls.satisfaction_rate": rate("calls.satisfaction_rate", a.satisfied, a.rated, (
            f"通话满意率 = ({satisfied_names}) / 有效评价数（5 级：非常满意、满意、基本满意、不满意、非常不满意）；"
            f"未评价 {a.surveyed - a.rated:,} 通不计入分母")),
    }

