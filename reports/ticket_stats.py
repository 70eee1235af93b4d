"""The ticket (工单) figures of a period, by department, category and district.

Definitions (reference hotline-domain-and-kpis §6; what the data cannot say is in each note):

- 登记工单量: tickets registered in the period (registered_at, Beijing time).
- 直接答复率 = tickets registered in the period that were answered on the call and never
  dispatched / those registered, less the ones later marked 无效 or 重复.
- 及时签收率 = dispatches whose accept deadline fell in the period, and has passed, that were
  accepted by it / those dispatches. The store keeps the accept deadline of a ticket's last
  dispatch only (a return then a new dispatch overwrites it; a return moves no deadline into
  the events), so a dispatch that ended in a return is not in the cohort: its count is noted.
- 按时办结率 = tickets whose handling deadline (approved extensions included) fell in the
  period, and has passed, whose reply came by it and stands (not rejected) / those tickets.
- 办结率 = tickets dispatched in the period that are closed (办结) by the time of the report /
  those dispatched (cohort by the last dispatch).
- 超期件数 = tickets a department held past its deadline at the period's end (or now, while the
  period runs; none before it has begun): not accepted past the accept deadline, or accepted and
  not answered past the handling deadline.
- 回访率, 满意率, 重办率: the cohort of tickets closed in the period. 回访率 = followed up (a
  rating recorded) / closed tickets that went through a department (direct answers need no
  follow-up); 满意率 = satisfied ratings / valid ratings (unreachable citizens excluded and
  counted); 重办率 = closed tickets that were reopened (重办) at least once / closed tickets.

Everything is one aggregate query over `tickets` grouped by (department, category, district),
plus one count of returns from the history (`ticket_events`; with a department filter, the
returns that department made, read from the return event's data): a year of 600,000 tickets is
a scan and some CASE sums, seconds on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Integer, and_, cast, false, func, literal, literal_column, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from metrics import kpi
from reports.calls import reading
from reports.figures import Figure, rate
from reports.periods import SHANGHAI, Period
from tickets.lifecycle import Action, State
from tickets.models import DepartmentRow, TicketEventRow, TicketRow

TICKETS = TicketRow.__table__
EVENTS = TicketEventRow.__table__
RATINGS = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
SATISFIED_DEFAULT = ("非常满意", "满意")
NOT_VALID = ("无效", "重复")  # categories mark_invalid and mark_duplicate set
# States in which the department's latest reply stands (approved, or waiting for review).
REPLY_STANDS = tuple(s.value for s in (State.REPLIED, State.CALLBACK, State.FOLLOWED_UP, State.CLOSED, State.ARCHIVED))
DIRECT_DONE = tuple(s.value for s in (State.DIRECT_ANSWERED, State.FOLLOWED_UP, State.CLOSED, State.ARCHIVED))
NO_DEPARTMENT = "（未转办）"
NO_CATEGORY = "（未分类）"
NO_DISTRICT = "（未填）"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TicketAgg:
    registered: int = 0
    registered_not_valid: int = 0  # later marked 无效 or 重复
    direct: int = 0
    accept_due: int = 0  # dispatches whose accept deadline fell in the period (and passed)
    accepted_in_time: int = 0
    handle_due: int = 0  # tickets whose handling deadline fell in the period (and passed)
    replied_in_time: int = 0
    dispatched: int = 0
    dispatched_closed: int = 0
    overdue: int = 0
    closed: int = 0
    followup_due: int = 0  # closed, and went through a department
    followed_up: int = 0
    rated: int = 0
    satisfied: int = 0
    reopened: int = 0

    def __add__(self, other: TicketAgg) -> TicketAgg:
        return TicketAgg(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def registered_valid(self) -> int:
        return self.registered - self.registered_not_valid


FIELDS = tuple(f.name for f in fields(TicketAgg))


@dataclass(frozen=True)
class TicketStats:
    period: Period
    now: datetime
    as_of: datetime  # the period's end, or now while it runs (its start before it begins)
    total: TicketAgg
    by_department: dict[str, TicketAgg]
    by_category: dict[str, TicketAgg]
    by_district: dict[str, TicketAgg]
    returns: int  # 退单 in the period (from the history)
    satisfied: tuple[str, ...] = SATISFIED_DEFAULT
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (("department", codes), ...)

    def figures(self) -> dict[str, Figure]:
        return figures_of(self.total, self)

    def extras(self) -> dict[str, Figure]:
        return {"tickets.returns": Figure("tickets.returns", self.returns, note=(
            "本期退单次数（承办单位认为不属其职责而退回），取自工单流转记录"))}


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return kpi.sql_count(condition)


def _in_period(column: ColumnElement[Any], start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _conditions(start: datetime, end: datetime, as_of: datetime, now: datetime,
                satisfied: Sequence[str]) -> dict[str, ColumnElement[bool]]:
    t = TICKETS
    registered = _in_period(t.c.registered_at, start, end)
    accept_due = and_(_in_period(t.c.accept_due, start, as_of), t.c.state != State.RETURNED.value)
    handle_due = _in_period(t.c.handle_due, start, as_of)
    dispatched = _in_period(t.c.dispatched_at, start, end)
    closed = _in_period(t.c.closed_at, start, end)
    followup_due = and_(closed, t.c.dispatched_at.is_not(None))
    if now < start:  # the period has not begun: nothing can be overdue in it yet
        overdue: ColumnElement[bool] = false()
    elif as_of >= now:  # the period runs: `due_at` is the deadline running now, exactly
        overdue = and_(t.c.due_at.is_not(None), t.c.due_at < now)
    else:  # at a past end, from the steps' times and the deadlines on the ticket
        not_accepted = and_(t.c.dispatched_at < as_of, or_null_or_after(t.c.accepted_at, as_of),
                            t.c.accept_due < as_of, t.c.state != State.RETURNED.value)
        no_reply = or_(t.c.replied_at.is_(None), t.c.replied_at >= as_of, t.c.state.not_in(REPLY_STANDS))
        not_replied = and_(t.c.accepted_at < as_of, t.c.handle_due < as_of, no_reply,
                           or_null_or_after(t.c.closed_at, as_of))
        overdue = not_accepted | not_replied
    return {
        "registered": registered,
        "registered_not_valid": and_(registered, t.c.category.in_(NOT_VALID)),
        "direct": and_(registered, t.c.category.not_in(NOT_VALID), t.c.dispatched_at.is_(None), t.c.reply != "",
                       t.c.state.in_(DIRECT_DONE)),
        "accept_due": accept_due,
        "accepted_in_time": and_(accept_due, t.c.accepted_at.is_not(None), t.c.accepted_at <= t.c.accept_due),
        "handle_due": handle_due,
        "replied_in_time": and_(handle_due, t.c.replied_at.is_not(None), t.c.replied_at <= t.c.handle_due,
                                t.c.state.in_(REPLY_STANDS)),
        "dispatched": dispatched,
        "dispatched_closed": and_(dispatched, t.c.closed_at.is_not(None), t.c.closed_at <= now),
        "overdue": overdue,
        "closed": closed,
        "followup_due": followup_due,
        "followed_up": and_(followup_due, t.c.rating != ""),
        "rated": and_(closed, t.c.rating.in_(RATINGS)),
        "satisfied": and_(closed, t.c.rating.in_(list(satisfied))),
        "reopened": and_(closed, t.c.redos > 0),
    }


def or_null_or_after(column: ColumnElement[Any], moment: datetime) -> ColumnElement[bool]:
    """Not yet done at `moment`: never done, or done at or after it."""
    return column.is_(None) | (column >= moment)


def _filters(departments: Sequence[str], categories: Sequence[str], districts: Sequence[str]) -> list[Any]:
    t = TICKETS
    where: list[Any] = []
    if departments:
        ids = select(DepartmentRow.id).where(DepartmentRow.code.in_(list(departments)))
        where.append(t.c.department_id.in_(ids.scalar_subquery()))
    if categories:
        where.append(t.c.category.in_(list(categories)))
    if districts:
        where.append(t.c.district.in_(list(districts)))
    return where


def _returned_by(dialect: str) -> ColumnElement[Any]:
    """The department a return event took the ticket from: its data is {"department_id": N}
    (tickets.service, Action.RETURN); the ticket's own department_id is cleared by the return."""
    if dialect == "sqlite":
        return func.json_extract(EVENTS.c.data, literal_column("'$.department_id'"))
    if dialect == "postgresql":
        return cast(cast(EVENTS.c.data, JSONB)["department_id"].astext, Integer)
    raise ValueError(f"reports support SQLite and PostgreSQL stores, not {dialect}")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return moment.astimezone(UTC)


def period_stats(db: Engine, period: Period, now: datetime, *, departments: Sequence[str] = (),
                 categories: Sequence[str] = (), districts: Sequence[str] = (),
                 satisfied: Sequence[str] = SATISFIED_DEFAULT, progress: Progress | None = None) -> TicketStats:
    now = _aware(now)
    if not satisfied or not set(satisfied) <= set(RATINGS):
        raise ValueError(f"satisfied ratings must be some of {'、'.join(RATINGS)}, not {list(satisfied)}")
    start, end = period.start_utc, period.end_utc
    as_of = max(start, min(end, now))
    t = TICKETS
    conditions = _conditions(start, end, as_of, now, satisfied)
    where = [t.c.created < end, *_filters(departments, categories, districts)]
    query = (select(t.c.department_id, t.c.category, t.c.district,
                    *(_count(c).label(name) for name, c in conditions.items()))
             .where(*where).group_by(t.c.department_id, t.c.category, t.c.district))
    if progress:
        progress(f"工单：汇总 {period.label} 的工单 (tickets, by department, category and district)")
    with reading(db) as conn:
        rows = conn.execute(query).mappings().all()
        names = {i: name for i, name in conn.execute(select(DepartmentRow.id, DepartmentRow.name))}
        if progress:
            progress(f"工单：统计 {period.label} 的退单 (returns, from the history)")
        made_by: list[ColumnElement[bool]] = []
        if departments:  # the returns those departments made (the ticket may have moved on since)
            ids = select(DepartmentRow.id).where(DepartmentRow.code.in_(list(departments)))
            made_by.append(_returned_by(db.dialect.name).in_(ids.scalar_subquery()))
        returns = conn.execute(
            select(func.count()).select_from(EVENTS.join(t, EVENTS.c.ticket_id == t.c.id))
            .where(EVENTS.c.action == literal(Action.RETURN.value), _in_period(EVENTS.c.at, start, end),
                   *made_by, *_filters((), categories, districts))).scalar_one()
    total = TicketAgg()
    by_department: dict[str, TicketAgg] = {}
    by_category: dict[str, TicketAgg] = {}
    by_district: dict[str, TicketAgg] = {}
    for r in rows:
        agg = TicketAgg(*(int(r[name] or 0) for name in FIELDS))
        total = total + agg
        dept = NO_DEPARTMENT if r["department_id"] is None else names.get(r["department_id"], str(r["department_id"]))
        for table, key in ((by_department, dept), (by_category, r["category"] or NO_CATEGORY),
                           (by_district, r["district"] or NO_DISTRICT)):
            table[key] = table.get(key, TicketAgg()) + agg
    filters = tuple((name, tuple(values)) for name, values in
                    (("department", departments), ("category", categories), ("district", districts)) if values)
    return TicketStats(period, now, as_of, total, _sorted(by_department), _sorted(by_category),
                       _sorted(by_district), int(returns), tuple(satisfied), filters)


def _sorted(d: Mapping[str, TicketAgg]) -> dict[str, TicketAgg]:
    return dict(sorted(d.items()))


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def figures_of(a: TicketAgg, s: TicketStats) -> dict[str, Figure]:
    """The standard ticket figures of one aggregate (the period's, or one department's)."""
    running = s.as_of < s.period.end_utc
    at = f"截至 {_local(s.as_of)}（北京时间，统计期尚未结束）" if running else f"截至期末 {_local(s.as_of)}（北京时间）"
    not_due = "时限尚未到的不计入；" if running else ""
    overdue_note = (f"超期件数：{at}承办单位持有、已过签收时限未签收或已过办理时限（含延期）未办结反馈的工单；"
                    + ("" if running else "以工单当前记录的时限计（期末后批准的延期或重办会改变时限）"))
    if s.now < s.period.start_utc:
        not_due = "统计期尚未开始，尚无到期的时限；"
        overdue_note = f"超期件数：统计期尚未开始（北京时间 {_local(s.period.start_utc)} 起），尚无超期工单"
    satisfied = "+".join(s.satisfied)
    scope = ""
    if s.filters:
        names = {"department": "承办单位", "category": "类别", "district": "区域"}
        scope = "；专项分析：" + "，".join(f"{names[k]} {'、'.join(v)}" for k, v in s.filters)
    return {
        "tickets.registered": Figure("tickets.registered", a.registered, note=(
            "本期（北京时间）登记的工单，草稿未登记者不计；"
            f"其中后被标为无效或重复 {a.registered_not_valid:,} 件{scope}")),
        "tickets.direct_answer_rate": rate("tickets.direct_answer_rate", a.direct, a.registered_valid, (
            "直接答复率 = 登记后当即直接答复且未再转办的工单 / 本期登记工单；"
            f"分母已剔除后被标为无效或重复的 {a.registered_not_valid:,} 件；直接答复后因市民不满意又转办的不计入分子")),
        "tickets.timely_accept_rate": rate("tickets.timely_accept_rate", a.accepted_in_time, a.accept_due, (
            f"及时签收率 = 签收时限落在本期的派单中在时限内签收的件数 / 这些派单数；{not_due}"
            "以工单最后一次派单的签收时限计；以退单结束的派单，其签收时限未存储，不计入"
            f"（本期退单 {s.returns:,} 次）")),
        "tickets.on_time_rate": rate("tickets.on_time_rate", a.replied_in_time, a.handle_due, (
            f"按时办结率 = 办理时限（含已批准的延期）落在本期的工单中，在时限内办结反馈且反馈未被驳回的件数 / "
            f"这些工单数；{not_due}重办的工单以重办后的时限计")),
        "tickets.completion_rate": rate("tickets.completion_rate", a.dispatched_closed, a.dispatched, (
            f"办结率 = 本期转办的工单中截至报告生成时（{_local(s.now)}）已办结的件数 / 本期转办工单数；"
            "按最后一次转办时间归期（退回后重派的工单计入重派所在期）")),
        "tickets.overdue": Figure("tickets.overdue", a.overdue, note=overdue_note),
        "tickets.followup_rate": rate("tickets.followup_rate", a.followed_up, a.followup_due, (
            "回访率 = 本期办结的转办工单中已回访（记录了评价）的件数 / 本期办结的转办工单数；"
            f"未能联系上而办结的 {a.followup_due - a.followed_up:,} 件计入分母；直接答复的工单不要求回访，不计入")),
        "tickets.satisfaction_rate": rate("tickets.satisfaction_rate", a.satisfied, a.rated, (
            f"满意率 = ({satisfied}) / 有效评价数（本期办结工单的回访评价，5 级）；"
            f"未评价（联系不上等）的 {a.closed - a.rated:,} 件不计入分母")),
        "tickets.redo_rate": rate("tickets.redo_rate", a.reopened, a.closed, (
            "重办率 = 本期办结的工单中曾经重办（回访不满意后退回原单位再办）的件数 / 本期办结工单数")),
    }
