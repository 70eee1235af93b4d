"""A period report: the call figures and the ticket figures of a month, quarter, year or range,
the previous period's for 环比, and the tables behind them.

`build(db, period, options, now)` reads the store (reports.calls, reports.ticket_stats) and
returns a `Report`; `Report.snapshot()` is what is printed, written (reports.output) and frozen
(reports.versions): plain figures and tables, read back from JSON as they were written, so a
frozen report prints exactly as it did the day it was frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, select

from reports import calls, ticket_stats
from reports.calls import CallAgg, CallStats
from reports.figures import KEYS, Figure
from reports.periods import SHANGHAI, Period, from_key
from reports.ticket_stats import TicketAgg, TicketStats
from reports.topics_store import TextFilters, hot_topics
from tickets.models import DepartmentRow

FORMAT = "hotline-report"
FORMAT_VERSION = 1
Kind = Literal["text", "count", "rate", "seconds"]
Cell = str | int | float | None
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReportOptions:
    queues: tuple[str, ...] = ()  # offered queues (calls only)
    departments: tuple[str, ...] = ()  # department codes (tickets only)
    categories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    short_abandon: float | None = None  # seconds for every call; None: each record's own threshold
    satisfied_calls: tuple[int, ...] = calls.SATISFIED_DEFAULT  # survey keys counted satisfied (1 = 非常满意)
    satisfied_tickets: tuple[str, ...] = ticket_stats.SATISFIED_DEFAULT
    compare: bool = True  # compute the previous period's figures (环比)
    topics: bool = True  # 热点诉求 against the previous period (segments every ticket's text: the slow part)

    @property
    def special(self) -> bool:
        """A special analysis (filtered): not the period's official report."""
        return bool(self.queues or self.departments or self.categories or self.districts)

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Table:
    name: str  # by_queue, by_day, ...
    title: str  # zh-CN, also the XLSX sheet name
    header: tuple[str, ...]
    kinds: tuple[Kind, ...]  # per column: how to write its cells
    rows: tuple[tuple[Cell, ...], ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "header": list(self.header), "kinds": list(self.kinds),
                "rows": [list(r) for r in self.rows]}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Table:
        return Table(d["name"], d["title"], tuple(d["header"]), tuple(d["kinds"]), tuple(tuple(r) for r in d["rows"]))


def figure_from_json(d: Mapping[str, Any]) -> Figure:
    return Figure(d["key"], d["value"], d.get("numerator"), d.get("denominator"), d.get("note", ""))


def _period_json(p: Period) -> dict[str, Any]:
    return {"key": p.key, "label": p.label, "kind": p.kind, "start": p.start.isoformat(), "end": p.end.isoformat(),
            "start_utc": p.start_utc.isoformat(), "end_utc": p.end_utc.isoformat()}


@dataclass(frozen=True)
class Snapshot:
    """A report as figures and tables: what is printed, written, frozen and read back."""

    period: Period
    generated_at: datetime
    options: dict[str, Any]
    figures: dict[str, Figure]  # every key of reports.figures.KEYS, in its order
    extras: dict[str, Figure]  # figures beside the standard keys (longest abandoned wait, ...)
    tables: dict[str, Table]
    previous_period: Period | None = None
    previous: dict[str, Figure] | None = None  # the previous period's standard figures (环比)
    topics: Any = None
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "period": _period_json(self.period),
            "generated_at": self.generated_at.isoformat(),
            "options": self.options,
            "figures": [f.as_json() for f in self.figures.values()],
            "extras": [f.as_json() for f in self.extras.values()],
            "previous": None if self.previous_period is None or self.previous is None else {
                "period": _period_json(self.previous_period),
                "figures": [f.as_json() for f in self.previous.values()]},
            "tables": [t.as_json() for t in self.tables.values()],
            "topics": self.topics,
            "notes": list(self.notes),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Snapshot:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        prev = d.get("previous")
        return Snapshot(
            period=from_key(d["period"]["key"]),
            generated_at=datetime.fromisoformat(d["generated_at"]),
            options=dict(d.get("options", {})),
            figures={f["key"]: figure_from_json(f) for f in d["figures"]},
            extras={f["key"]: figure_from_json(f) for f in d.get("extras", [])},
            tables={t["name"]: Table.from_json(t) for t in d.get("tables", [])},
            previous_period=None if prev is None else from_key(prev["period"]["key"]),
            previous=None if prev is None else {f["key"]: figure_from_json(f) for f in prev["figures"]},
            topics=d.get("topics"),
            notes=tuple(d.get("notes", [])),
        )


@dataclass
class Report:
    period: Period
    options: ReportOptions
    generated_at: datetime
    calls: CallStats
    tickets: TicketStats
    previous_period: Period | None = None
    previous: dict[str, Figure] | None = None
    topics: Any = None  # hot topics (reports.topics) fill this; anything JSON can hold, or with .as_json()

    def figures(self) -> dict[str, Figure]:
        """Every key of reports.figures.KEYS, in its order."""
        found = {**self.calls.figures(), **self.tickets.figures()}
        missing = [k for k in KEYS if k not in found]
        if missing:  # a new key in figures.py that no module computes yet
            raise KeyError(f"no figure computed for {missing}")
        return {k: found[k] for k in KEYS}

    def extras(self) -> dict[str, Figure]:
        return {**self.calls.extras(), **self.tickets.extras()}

    def tables(self) -> dict[str, Table]:
        return {t.name: t for t in (
            queue_table(self.calls), day_table(self.calls), hour_table(self.calls),
            ticket_table("by_department", "按承办单位", "承办单位", self.tickets.by_department, self.tickets.total,
                         DEPARTMENT_COLUMNS),
            ticket_table("by_category", "按诉求类别", "诉求类别", self.tickets.by_category, self.tickets.total,
                         GROUP_COLUMNS),
            ticket_table("by_district", "按区域", "区域", self.tickets.by_district, self.tickets.total, GROUP_COLUMNS),
        )}

    def notes(self) -> tuple[str, ...]:
        out = ["时间均为北京时间（Asia/Shanghai）；来电按到达时刻、工单按各环节发生时刻归属统计期。",
               "比率为本期分子、分母合计之比（非日比率的平均），公布时四舍五入保留两位小数；无分母时显示“—”。"]
        if self.options.special:
            out.append("专项分析：按命令行筛选条件统计（受理队列筛选只作用于话务，承办单位/类别/区域筛选只作用于工单），"
                       "不是本期正式报表。")
        if self.calls.short_abandon is not None:
            out.append(f"速挂阈值按命令行指定的 {calls.seconds_text(self.calls.short_abandon)} 秒统一计算，"
                       "覆盖各通话记录自带的阈值。")
        return tuple(out)

    def snapshot(self) -> Snapshot:
        topics = self.topics.as_json() if hasattr(self.topics, "as_json") else self.topics
        return Snapshot(self.period, self.generated_at, self.options.as_json(), self.figures(), self.extras(),
                        self.tables(), self.previous_period, self.previous, topics, self.notes())

    def as_json(self) -> dict[str, Any]:
        return self.snapshot().as_json()


def _stats(db: Engine, period: Period, options: ReportOptions, now: datetime,
           progress: Progress | None) -> tuple[CallStats, TicketStats]:
    c = calls.period_stats(db, period, queues=options.queues, short_abandon=options.short_abandon,
                           satisfied=options.satisfied_calls, progress=progress)
    t = ticket_stats.period_stats(db, period, now, departments=options.departments, categories=options.categories,
                                  districts=options.districts, satisfied=options.satisfied_tickets,
                                  progress=progress)
    return c, t


def build(db: Engine, period: Period, options: ReportOptions, now: datetime,
          progress: Progress | None = None) -> Report:
    """The report of `period` as the store holds it at `now` (aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    c, t = _stats(db, period, options, now, progress)
    previous_period, previous = None, None
    if options.compare:
        previous_period = period.previous()
        if progress:
            progress(f"环比：上期 {previous_period.label}")
        pc, pt = _stats(db, previous_period, options, now, None)
        previous = {**pc.figures(), **pt.figures()}
        previous = {k: previous[k] for k in KEYS if k in previous}
    report = Report(period, options, now, c, t, previous_period, previous)
    if options.topics:
        if progress:
            progress("热点诉求：分词统计")
        report.topics = _hot_topics(db, period, options)
    return report


def _hot_topics(db: Engine, period: Period, options: ReportOptions) -> Any:
    ids: tuple[int, ...] = ()
    if options.departments:
        with db.connect() as conn:
            ids = tuple(conn.scalars(select(DepartmentRow.id).where(DepartmentRow.code.in_(options.departments))))
        ids = ids or (-1,)  # a code nobody has: no ticket, not every ticket
    filters = TextFilters(categories=options.categories, districts=options.districts, department_ids=ids)
    before = period.previous()
    return hot_topics(db, period.start_utc, period.end_utc, before.start_utc, before.end_utc, filters=filters)


# ---- tables ------------------------------------------------------------------------------------

CALL_HEADER = ("呼入量", "接通量", "放弃量", "速挂量", "接通率", "15秒接通率", "平均应答时长(秒)", "平均通话时长(秒)",
               "最长等待(秒)", "闭馆来电")
CALL_KINDS: tuple[Kind, ...] = ("count", "count", "count", "count", "rate", "rate", "seconds", "seconds", "seconds",
                                "count")


def _call_cells(a: CallAgg) -> tuple[Cell, ...]:
    t = a.totals
    return (t.offered, t.answered, t.abandoned, t.short_abandoned, t.answer_rate, t.sl_rate, a.asa, a.aht,
            a.longest_answered, t.closed)


def _call_table(name: str, title: str, first: str, rows: Iterable[tuple[str, CallAgg]], total: CallAgg) -> Table:
    body = [(label, *_call_cells(a)) for label, a in rows]
    body.append(("合计", *_call_cells(total)))
    return Table(name, title, (first, *CALL_HEADER), ("text", *CALL_KINDS), tuple(body))


def queue_table(s: CallStats) -> Table:
    return _call_table("by_queue", "按受理队列", "受理队列", s.by_queue.items(), s.total)


def day_table(s: CallStats) -> Table:
    return _call_table("by_day", "按日", "日期", ((d.isoformat(), a) for d, a in s.by_day.items()), s.total)


def hour_table(s: CallStats) -> Table:
    return _call_table("by_hour", "按时段", "时段（北京时间）",
                       ((f"{h:02d}:00-{h + 1:02d}:00", a) for h, a in s.by_hour.items()), s.total)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


Column = tuple[str, Kind, Callable[[TicketAgg], Cell]]
DEPARTMENT_COLUMNS: tuple[Column, ...] = (
    ("转办量", "count", lambda a: a.dispatched),
    ("已办结", "count", lambda a: a.dispatched_closed),
    ("办结率", "rate", lambda a: _ratio(a.dispatched_closed, a.dispatched)),
    ("应签收", "count", lambda a: a.accept_due),
    ("及时签收", "count", lambda a: a.accepted_in_time),
    ("及时签收率", "rate", lambda a: _ratio(a.accepted_in_time, a.accept_due)),
    ("应办结", "count", lambda a: a.handle_due),
    ("按时办结", "count", lambda a: a.replied_in_time),
    ("按时办结率", "rate", lambda a: _ratio(a.replied_in_time, a.handle_due)),
    ("超期件数", "count", lambda a: a.overdue),
    ("本期办结", "count", lambda a: a.closed),
    ("回访率", "rate", lambda a: _ratio(a.followed_up, a.followup_due)),
    ("满意率", "rate", lambda a: _ratio(a.satisfied, a.rated)),
    ("重办率", "rate", lambda a: _ratio(a.reopened, a.closed)),
)
GROUP_COLUMNS: tuple[Column, ...] = (
    ("登记量", "count", lambda a: a.registered),
    ("直接答复", "count", lambda a: a.direct),
    ("直接答复率", "rate", lambda a: _ratio(a.direct, a.registered_valid)),
    *DEPARTMENT_COLUMNS,
)


def ticket_table(name: str, title: str, first: str, groups: Mapping[str, TicketAgg], total: TicketAgg,
                 columns: Sequence[Column]) -> Table:
    rows = [(label, *(get(a) for _, _, get in columns)) for label, a in groups.items()]
    rows.append(("合计", *(get(total) for _, _, get in columns)))
    return Table(name, title, (first, *(c[0] for c in columns)), ("text", *(c[1] for c in columns)), tuple(rows))


def local_time(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"

