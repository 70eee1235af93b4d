"""The ticket service: every read and change of a 工单, on SQLAlchemy, synchronous.

Each change is one transaction: the ticket row (locked), a history row with the next
sequence number, the push event for the provincial platform, and the knowledge base's use
count when an article is cited. The lifecycle table decides what may happen
(tickets/lifecycle.py), the role table who may do it (tickets/permissions.py), the rule
table when it is due (tickets/deadlines.py). Scoping is in the queries: a department user's
reads and writes all carry `department_id = own`, so another department's ticket is "not
found" by id, by number, by search and by history alike.

Callers pass `now` (aware UTC); the HTTP layer runs these in threads, never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, Text, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import column, table

from acd.calendar import Calendar
from cti.logs import mask_number
from tickets import deadlines, kb
from tickets.auth import Principal
from tickets.kb import fts_phrase, like_pattern, terms_of, trigrams_starting
from tickets.lifecycle import (
    ACTION_LABELS,
    CLOSED_STATES,
    LABELS,
    Action,
    Clock,
    Facts,
    Limits,
    Refused,
    State,
    Step,
    allowed,
    step,
)
from tickets.models import (
    CallRecordRow,
    DepartmentRow,
    TicketCallRow,
    TicketCounterRow,
    TicketEventRow,
    TicketRow,
)
from tickets.permissions import may, why_not
from tickets.push import enqueue

CHANNELS = {"phone": "电话", "web": "网站", "wechat": "微信", "mailbox": "信箱", "provincial": "省平台下派"}
CATEGORIES = ("咨询", "求助", "投诉", "举报", "建议", "表扬", "其他", "无效", "重复")
URGENCIES = {"normal": "一般", "urgent": "紧急", "critical": "特急"}
RATINGS = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
ENGINE = Principal(user_id=0, username="engine", role="agent", department_id=None, agent_id=None,
                   display_name="呼叫引擎")
LINK_CALL = "link_call"  # a history row that is no lifecycle step: a call joined the ticket

# The five levels of the satisfaction survey (好差评), by the key the caller pressed.
SURVEY_LABELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}


# States in which the departments' work is done: the phone says the state, no deadline.
FINISHED = frozenset(s.value for s in (State.DIRECT_ANSWERED, State.CALLBACK, State.FOLLOWED_UP, State.CLOSED,
                                       State.ARCHIVED, State.INVALID, State.DUPLICATE, State.MERGED))


def survey_label(surveyed: bool, rating: int | None) -> str:
    """"" when the caller never reached the survey; 未评价 when they gave no rating."""
    if not surveyed:
        return ""
    return SURVEY_LABELS.get(rating, "未评价") if rating is not None else "未评价"


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, *, field: str | None = None, allowed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message, self.field, self.allowed = message, field, tuple(allowed)


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    status = 403


class Conflict(ServiceError):
    status = 409


class Invalid(ServiceError):
    status = 422


@dataclass(frozen=True)
class Policy:
    """What the service reads of the configuration (tickets.yaml and calendar.yaml)."""

    rules: deadlines.RuleTable
    calendar: Calendar
    max_returns: int = 3
    soon_due: timedelta = timedelta(hours=4)
    locations: Mapping[str, Sequence[str]] = field(default_factory=dict)
    wrapup: timedelta = timedelta(seconds=30)  # a draft unfinished this long after its call ended is listed
    push: bool = False  # write events for the provincial platform's relay


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite gives back naive UTC


def _iso(value: datetime | None) -> str | None:
    v = _aware(value)
    return None if v is None else v.isoformat()


@dataclass(frozen=True)
class Filters:
    number: str | None = None
    phone: str | None = None
    category: str | None = None
    department: str | None = None  # code
    state: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str | None = None
    agent_id: str | None = None
    page: int = 1
    per_page: int = 20


class TicketService:
    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.engine, self.policy = engine, policy
        self.committed: Callable[[], None] | None = None  # after a change commits (wakes the push relay)

    def _committed(self) -> None:
        if self.committed is not None and self.policy.push:
            self.committed()

    # ---- reading ------------------------------------------------------------------------

    def _scoped(self, who: Principal) -> Any:
        """The WHERE clause of what `who` may see: the department filter lives in the query."""
        if who.role == "department":
            return TicketRow.department_id == who.department_id
        return True

    def _load(self, s: Session, who: Principal, ticket: int | str, *, lock: bool = False) -> TicketRow:
        key = TicketRow.number == ticket if isinstance(ticket, str) else TicketRow.id == ticket
        query = select(TicketRow).where(key, self._scoped(who))
        if lock:
            query = query.with_for_update()
        row = s.scalars(query).first()
        if row is None:
            raise NotFound(f"工单 {ticket} 不存在 (no such ticket, or not one of your department's)")
        return row

    def get(self, who: Principal, ticket: int | str, now: datetime) -> dict[str, Any]:
        with Session(self.engine) as s:
            return self._view(s, who, self._load(s, who, ticket), now)

    def progress(self, number: str) -> tuple[str, date | None] | None:
        """A ticket's state and the date its running deadline falls on (local), for the caller
        who keys its number on the phone (跟踪); None for no such registered ticket. Nothing
        else about it: whoever knows a number hears no name, place or content."""
        if not number.isdigit() or len(number) > 16:
            return None
        with Session(self.engine) as s:
            row = s.execute(select(TicketRow.state, TicketRow.due_at, TicketRow.handle_due)
                            .where(TicketRow.number == number)).first()
        if row is None or row.state in (State.NEW.value, State.DRAFT.value):
            return None
        if row.state in FINISHED:
            return row.state, None  # done: no deadline to read out
        due = row.due_at or row.handle_due
        if due is None:
            return row.state, None
        due = due if due.tzinfo is not None else due.replace(tzinfo=UTC)
        return row.state, self.policy.calendar.local(due.timestamp()).date()

    def history(self, who: Principal, ticket: int | str) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            row = self._load(s, who, ticket)
            events = s.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id == row.id)
                               .order_by(TicketEventRow.seq))
            masked = row.caller_restricted and who.role == "department"
            return [_event_view(e, masked) for e in events]

    def search(self, who: Principal, f: Filters, now: datetime) -> dict[str, Any]:
        t = TicketRow
        where: list[Any] = [self._scoped(who)]
        if f.number:
            where.append(t.number == f.number)
        if f.phone:
            if who.role == "department":  # it would confirm a masked caller's number
                raise Forbidden("承办单位不能按来电号码查询 (departments cannot search by the caller's number)")
            where.append(t.caller_num == f.phone)
        if f.category:
            where.append(t.category == f.category)
        if f.state:
            where.append(t.state == f.state)
        if f.agent_id:
            where.append(t.agent_id == f.agent_id)
        if f.department:
            where.append(t.department_id == select(DepartmentRow.id).where(DepartmentRow.code == f.department)
                         .scalar_subquery())
        if f.created_from:  # in UTC, as stored: SQLite compares the text and drops an offset
            where.append(t.created >= f.created_from.astimezone(UTC))
        if f.created_to:
            where.append(t.created < f.created_to.astimezone(UTC))
        if f.text:
            return _text_search(self, who, where, f, now)
        return self._page(who, where, f.page, f.per_page, now, t.created.desc(), t.id.desc())

    def _page(self, who: Principal, where: list[Any], page: int, per_page: int, now: datetime,
              *order: Any) -> dict[str, Any]:
        with Session(self.engine) as s:
            total = s.scalar(select(func.count()).select_from(TicketRow).where(*where)) or 0
            rows = s.scalars(select(TicketRow).where(*where).order_by(*order)
                             .limit(per_page).offset((page - 1) * per_page))
            return {"total": total, "total_capped": False, "page": page, "per_page": per_page,
                    "items": [self._summary(s, who, r, now) for r in rows]}

    def due_list(self, who: Principal, now: datetime, which: Literal["overdue", "soon"], page: int = 1,
                 per_page: int = 50) -> dict[str, Any]:
        """Overdue (due_at passed) or soon due (within `soon_due`): one indexed range on due_at."""
        t = TicketRow
        if which == "overdue":
            where = [t.due_at.is_not(None), t.due_at < now]
        else:
            where = [t.due_at >= now, t.due_at < now + self.policy.soon_due]
        return self._page(who, [self._scoped(who), *where], page, per_page, now, t.due_at, t.id)

    def unfinished_drafts(self, who: Principal, now: datetime) -> list[dict[str, Any]]:
        """Drafts whose call ended more than the wrap-up ago: the agent moved on without finishing."""
        if who.role not in ("supervisor", "admin"):
            raise Forbidden("只有班长可以查看未完成的草稿 (supervisors only)")
        cutoff = now - self.policy.wrapup
        with Session(self.engine) as s:
            rows = s.scalars(select(TicketRow).join(CallRecordRow, CallRecordRow.call_id == TicketRow.origin_call_id)
                             .where(TicketRow.state == State.DRAFT.value, CallRecordRow.ended < cutoff)
                             .order_by(TicketRow.created))
            return [self._summary(s, who, r, now) for r in rows]

    def caller(self, who: Principal, number: str, now: datetime, calls: int = 20) -> dict[str, Any]:
        """A caller's open tickets and last calls, for the agent who answers them."""
        if who.role == "department":
            raise Forbidden("承办单位不能按来电号码查询 (departments cannot look callers up)")
        with Session(self.engine) as s:
            open_rows = s.scalars(select(TicketRow).where(
                TicketRow.caller_num == number, TicketRow.state.not_in([x.value for x in CLOSED_STATES]),
                TicketRow.state != State.DRAFT.value).order_by(TicketRow.created.desc()).limit(50))
            tickets = [self._summary(s, who, r, now) for r in open_rows]
            recent = s.execute(select(CallRecordRow.call_id, CallRecordRow.arrived, CallRecordRow.outcome,
                                      CallRecordRow.agent_id, CallRecordRow.recording)
                               .where(CallRecordRow.caller_num == number)
                               .order_by(CallRecordRow.arrived.desc()).limit(calls))
            past = [{"call_id": c, "arrived": _iso(a), "outcome": o, "agent_id": ag, "recording": rec}
                    for c, a, o, ag, rec in recent]
        return {"number": number, "open_tickets": tickets, "calls": past}

    def _summary(self, s: Session, who: Principal, row: TicketRow, now: datetime) -> dict[str, Any]:
        due = _aware(row.due_at)
        restricted = row.caller_restricted and who.role == "department"
        return {
            "id": row.id, "number": row.number, "state": row.state, "state_label": LABELS[State(row.state)],
            "channel": row.channel, "category": row.category, "urgency": row.urgency,
            "caller_num": mask_number(row.caller_num, restricted), "district": row.district,
            "department_id": row.department_id, "agent_id": row.agent_id,
            # overdue: a deadline is running and has passed (what /tickets/overdue lists); late: a
            # step was taken after its deadline (kept for the reports once the ticket moves on).
            "due_at": _iso(due), "overdue": due is not None and due < now, "late": row.late,
            "urged": row.urged, "created": _iso(row.created),
        }

    def _view(self, s: Session, who: Principal, row: TicketRow, now: datetime) -> dict[str, Any]:
        out = self._summary(s, who, row, now)
        restricted = row.caller_restricted and who.role == "department"
        dept = s.get(DepartmentRow, row.department_id) if row.department_id else None
        original = s.get(TicketRow, row.original_id) if row.original_id else None
        calls = s.execute(select(TicketCallRow.call_id, TicketCallRow.recording, TicketCallRow.linked,
                                 TicketCallRow.surveyed, TicketCallRow.rating, CallRecordRow.parties)
                          .outerjoin(CallRecordRow, CallRecordRow.call_id == TicketCallRow.call_id)
                          .where(TicketCallRow.ticket_id == row.id).order_by(TicketCallRow.linked))
        facts = self._facts(row)
        out.update({
            "caller_name": "" if restricted else row.caller_name, "caller_restricted": row.caller_restricted,
            "street": row.street, "address": row.address, "content": row.content,
            "department": None if dept is None else {"id": dept.id, "code": dept.code, "name": dept.name,
                                                     "phone": dept.phone},
            "original": None if original is None else original.number,
            "article_id": row.article_id, "returns": row.returns, "extensions": row.extensions, "redos": row.redos,
            "accept_due": _iso(row.accept_due), "handle_due": _iso(row.handle_due),
            "reply": row.reply, "followup": row.followup, "rating": row.rating,
            "registered_at": _iso(row.registered_at), "dispatched_at": _iso(row.dispatched_at),
            "accepted_at": _iso(row.accepted_at), "replied_at": _iso(row.replied_at),
            "closed_at": _iso(row.closed_at), "updated": _iso(row.updated), "version": row.version,
            # The caller's survey of each call: 1 = 非常满意 .. 5 = 非常不满意; surveyed without a
            # rating is 未评价 (no key, or hung up).
            # Who else was on each call and when (三方通话, transfers: the record's history).
            "calls": [{"call_id": c, "recording": r, "linked": _iso(t), "surveyed": bool(sv),
                       "rating": rt, "rating_label": survey_label(bool(sv), rt), "parties": _parties(pt)}
                      for c, r, t, sv, rt, pt in calls],
            "allowed_actions": [a.value for a in allowed(facts, self._limits(row)) if may(who.role, a)],
        })
        return out

    # ---- changing -----------------------------------------------------------------------

    def _limits(self, row: TicketRow) -> Limits:
        rule = self.policy.rules.limits(row.category or "*", row.urgency or "normal")
        return Limits(max_returns=self.policy.max_returns, max_extensions=rule.extensions)

    @staticmethod
    def _facts(row: TicketRow) -> Facts:
        return Facts(state=State(row.state), returns=row.returns, extensions=row.extensions,
                     has_department=row.department_id is not None or row.accepted_at is not None,
                     accept_due=_aware(row.accept_due), handle_due=_aware(row.handle_due))

    def _next_number(self, now: datetime) -> str:
        """Date + daily sequence, in its own short transaction: the counter row is hot, so its
        lock is held for one statement, not for the whole registration. A number taken by a
        registration that then fails is skipped, never reused."""
        day = self.policy.calendar.local(now.timestamp()).strftime("%Y%m%d")
        dialect = self.engine.dialect.name
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TicketCounterRow)
        stmt = ins.values(day=day, last=1).on_conflict_do_update(
            index_elements=["day"], set_={"last": TicketCounterRow.last + 1}).returning(TicketCounterRow.last)
        with self.engine.begin() as conn:
            seq = int(conn.execute(stmt).scalar_one())
        return f"{day}{seq:05d}"

    def open_draft(self, *, call_id: str, caller_num: str, caller_name: str, restricted: bool, agent_id: str | None,
                   recording: str | None, now: datetime) -> dict[str, Any]:
        """The draft an answered call opens, once per call: a second call of this (a retry, a
        replay after a restart) returns the first draft."""
        with Session(self.engine) as s:
            found = s.scalars(select(TicketRow).where(TicketRow.origin_call_id == call_id)).first()
            if found is not None:
                return self._view(s, ENGINE, found, now)
        number = self._next_number(now)
        try:
            with Session(self.engine) as s, s.begin():
                row = TicketRow(number=number, state=State.NEW.value, channel="phone", caller_num=caller_num,
                                caller_name=caller_name, caller_restricted=restricted, agent_id=agent_id,
                                origin_call_id=call_id, created=now, updated=now, **_zeroes())
                s.add(row)
                s.flush()
                s.add(TicketCallRow(ticket_id=row.id, call_id=call_id, recording=recording, linked=now))
                self._apply(s, ENGINE, row, Action.OPEN_DRAFT, now, note="", data={"call_id": call_id})
        except IntegrityError:  # the same call's draft, opened at this moment by another worker
            pass
        else:
            self._committed()
        with Session(self.engine) as s:
            found = s.scalars(select(TicketRow).where(TicketRow.origin_call_id == call_id)).one()
            return self._view(s, ENGINE, found, now)

    def create(self, who: Principal, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """A ticket typed in directly (web, WeChat, mailbox, provincial, or a phone call without a draft)."""
        self._may(who, Action.REGISTER)
        form = self._form(body, require=True)
        channel = body.get("channel", "phone")
        if channel not in CHANNELS:
            raise Invalid(f"channel 必须是 {'、'.join(CHANNELS)} 之一", field="channel")
        number = self._next_number(now)
        with Session(self.engine) as s, s.begin():
            row = TicketRow(number=number, state=State.NEW.value, channel=channel, agent_id=who.agent_id,
                            created=now, updated=now, **_zeroes())
            for k, v in form.items():
                setattr(row, k, v)
            s.add(row)
            s.flush()
            call_id = body.get("call_id")
            if call_id:
                s.add(TicketCallRow(ticket_id=row.id, call_id=str(call_id), recording=body.get("recording"),
                                    linked=now))
            row.registered_at = now
            self._apply(s, who, row, Action.REGISTER, now, note=str(body.get("note", "")), data=form)
            ticket_id = row.id
        self._committed()
        return self.get(who, ticket_id, now)

    def act(self, who: Principal, ticket: int | str, action: Action, body: Mapping[str, Any],
            now: datetime) -> dict[str, Any]:
        self._may(who, action)
        try:
            return self._act(who, ticket, action, body, now)
        except StaleDataError:
            raise Conflict("工单刚被他人修改，请刷新后重试 (changed by someone else a moment ago: reload and "
                           "try again)", field="version") from None

    def _act(self, who: Principal, ticket: int | str, action: Action, body: Mapping[str, Any],
             now: datetime) -> dict[str, Any]:
        with Session(self.engine) as s, s.begin():
            row = self._load(s, who, ticket, lock=True)
            expected = body.get("version")
            if expected is not None and expected != row.version:
                raise Conflict(f"工单 {row.number} 已被他人修改 (version {row.version}, you read {expected}); "
                               "reload it and try again", field="version")
            if who.role == "agent" and row.state == State.DRAFT.value and row.agent_id not in (None, who.agent_id):
                raise Forbidden(f"草稿 {row.number} 属于话务员 {row.agent_id} (another agent's draft)")
            self._step(row, action, now)  # an illegal step is a 409 before any field is looked at
            note, data = self._prepare(s, who, row, action, body, now)
            self._apply(s, who, row, action, now, note=note, data=data)
            s.flush()
            # The view of the ticket as this step left it (a department that returned it sees it
            # one last time here, and no more).
            view = self._view(s, who, row, now)
        self._committed()
        return view

    def link_call(self, who: Principal, ticket: int | str, call_id: str, recording: str | None,
                  now: datetime) -> dict[str, Any]:
        """Attach a call (a citizen calling back about the same 工单) to a ticket."""
        if who.role not in ("agent", "supervisor"):
            raise Forbidden(why_not(who.role, Action.ATTACH))
        try:
            with Session(self.engine) as s, s.begin():
                row = self._load(s, who, ticket, lock=True)
                self._link(s, who, row, call_id, recording, now)
                ticket_id = row.id
        except StaleDataError:
            raise Conflict("工单刚被他人修改，请重试 (changed a moment ago: try again)", field="version") from None
        self._committed()
        return self.get(who, ticket_id, now)

    def _link(self, s: Session, who: Principal, row: TicketRow, call_id: str, recording: str | None,
              now: datetime) -> None:
        if row.state in (State.ARCHIVED.value, State.MERGED.value, State.DRAFT.value):
            raise Conflict(f"工单 {row.number} 已{LABELS[State(row.state)]}，不能再关联来电: register the call as a "
                           "new ticket (and mark it 重复 of this one) or attach it to the live ticket", field="ticket")
        if s.get(TicketCallRow, (row.id, call_id)) is None:
            row.updated = now  # the ticket changed: its version moves, a stale writer is refused
            s.add(TicketCallRow(ticket_id=row.id, call_id=call_id, recording=recording, linked=now))
            self._history(s, who, row, LINK_CALL, row.state, row.state, now, "", {"call_id": call_id})

    def _may(self, who: Principal, action: Action) -> None:
        if not may(who.role, action):
            raise Forbidden(why_not(who.role, action))

    def _prepare(self, s: Session, who: Principal, row: TicketRow, action: Action, body: Mapping[str, Any],
                 now: datetime) -> tuple[str, dict[str, Any]]:
        """Check the body an action needs and set the fields it changes; returns the history note and data."""
        note = str(body.get("note") or "").strip()
        data: dict[str, Any] = {}
        match action:
            case Action.REGISTER | Action.EDIT:
                data = self._form(body, require=action is Action.REGISTER)
                for k, v in data.items():
                    setattr(row, k, v)
                if action is Action.REGISTER:
                    row.registered_at = now
            case Action.ATTACH:
                target = self._target_ticket(s, body, "target")
                for call_id, recording in s.execute(select(TicketCallRow.call_id, TicketCallRow.recording)
                                                    .where(TicketCallRow.ticket_id == row.id)).all():
                    self._link(s, who, target, call_id, recording, now)
                row.original_id = target.id
                data = {"target": target.number}
            case Action.MARK_DUPLICATE:
                original = self._target_ticket(s, body, "original")
                if original.id == row.id:
                    raise Invalid("一张工单不能是自己的重复件 (a ticket cannot duplicate itself)", field="original")
                row.original_id, row.category = original.id, "重复"
                data = {"original": original.number}
            case Action.MARK_INVALID:
                row.category = "无效"
                _need(note, "note", "无效件需说明原因 (say why the request is invalid)")
            case Action.ANSWER_DIRECTLY:
                row.reply = _need(str(body.get("reply") or "").strip(), "reply", "直接答复需填写答复内容")
                article = body.get("article_id")
                if article is not None:
                    self._cite(s, article, now)
                    row.article_id = int(article)
                data = {"reply": row.reply, "article_id": row.article_id}
            case Action.DISPATCH | Action.DESIGNATE:
                dept = self._department(s, body)
                row.department_id, row.dispatched_at = dept.id, now
                data = {"department": dept.code}
            case Action.RETURN:
                _need(note, "note", "退单需说明理由 (a return needs the reason)")
                data = {"department_id": row.department_id}
                row.department_id = None
            case Action.ACCEPT:
                row.accepted_at = now
            case Action.REQUEST_EXTENSION:
                _need(note, "note", "申请延期需说明理由 (an extension request needs the reason)")
            case Action.REPLY:
                row.reply = _need(str(body.get("reply") or "").strip(), "reply", "办结反馈需填写办理结果")
                row.replied_at = now
                data = {"reply": row.reply}
            case Action.REJECT_REPLY | Action.REOPEN | Action.URGE | Action.REFUSE_EXTENSION:
                _need(note, "note", f"{ACTION_LABELS[action]}需填写说明 (a note is required)")
                if action is Action.URGE:
                    row.urged += 1
            case Action.FOLLOW_UP:
                rating = body.get("rating")
                if rating not in RATINGS:
                    raise Invalid(f"rating 必须是 {'、'.join(RATINGS)} 之一", field="rating")
                row.rating, row.followup = str(rating), str(body.get("result") or note)
                data = {"rating": row.rating, "result": row.followup}
            case Action.CLOSE:
                if row.state == State.CALLBACK.value:
                    _need(note, "note", "未回访即办结需说明原因 (e.g. 多次联系不上)")
                row.closed_at = now
            case Action.APPROVE_EXTENSION | Action.APPROVE_REPLY | Action.SUBMIT | Action.ARCHIVE | Action.OPEN_DRAFT:
                pass
        return note, data

    def _apply(self, s: Session, who: Principal, row: TicketRow, action: Action, now: datetime, *, note: str,
               data: dict[str, Any]) -> None:
        """Take the lifecycle step and write it: state, clocks, counters, history, push."""
        result = self._step(row, action, now)
        match result.clock:
            case Clock.START_ACCEPT:
                rule = self.policy.rules.limits(row.category or "*", row.urgency)
                row.accept_due = self._due(now, rule.accept)
                row.handle_due = None
                row.due_at = row.accept_due
            case Clock.START_HANDLE:
                rule = self.policy.rules.limits(row.category or "*", row.urgency)
                row.handle_due = self._due(now, rule.handle)
                row.due_at = row.handle_due
            case Clock.EXTEND_HANDLE:
                rule = self.policy.rules.limits(row.category or "*", row.urgency)
                base = _aware(row.handle_due) or now
                row.handle_due = datetime.fromtimestamp(
                    deadlines.extend(self.policy.calendar, base.timestamp(), rule.extension), UTC)
                row.due_at = row.handle_due
                data = {**data, "handle_due": row.handle_due.isoformat()}
            case Clock.RESUME_HANDLE:
                row.due_at = row.handle_due
            case Clock.STOP:
                row.due_at = None
            case Clock.KEEP:
                pass
        row.state, row.returns, row.extensions = result.target.value, result.returns, result.extensions
        row.redos += result.redo
        row.late = row.late or result.late
        row.updated = now  # `version` is bumped by the UPDATE itself (TicketRow's version counter)
        self._history(s, who, row, action.value, result.source.value, result.target.value, now, note, data)

    def _step(self, row: TicketRow, action: Action, now: datetime) -> Step:
        try:
            return step(self._facts(row), action, now, self._limits(row))
        except Refused as refused:
            raise Conflict(str(refused), allowed=[a.value for a in refused.allowed]) from None

    def _due(self, now: datetime, span: deadlines.Span) -> datetime:
        return datetime.fromtimestamp(deadlines.due(self.policy.calendar, now.timestamp(), span), UTC)

    def _history(self, s: Session, who: Principal, row: TicketRow, action: str, source: str, target: str,
                 now: datetime, note: str, data: dict[str, Any]) -> None:
        last = s.scalar(select(func.max(TicketEventRow.seq)).where(TicketEventRow.ticket_id == row.id)) or 0
        payload = json.dumps(data, ensure_ascii=False, default=str)
        s.add(TicketEventRow(ticket_id=row.id, seq=last + 1, at=now, actor=who.username, role=who.role,
                             action=action, from_state=source, to_state=target, note=note, data=payload))
        if self.policy.push:
            enqueue(s, ticket_id=row.id, event=action, now=now, payload=self._push_payload(
                s, row, action, source, target, who, now, note))

    def _push_payload(self, s: Session, row: TicketRow, action: str, source: str, target: str, who: Principal,
                      now: datetime, note: str) -> dict[str, Any]:
        dept = s.get(DepartmentRow, row.department_id) if row.department_id else None
        return {
            "number": row.number, "action": action, "from": source, "to": target, "at": now.isoformat(),
            "actor": who.username, "note": note, "channel": row.channel, "category": row.category,
            "urgency": row.urgency, "district": row.district, "street": row.street, "content": row.content,
            "caller_name": "" if row.caller_restricted else row.caller_name,
            "caller_num": mask_number(row.caller_num, row.caller_restricted),
            "department": None if dept is None else dept.code, "due_at": _iso(row.due_at), "rating": row.rating,
        }

    # ---- helpers ------------------------------------------------------------------------

    def _form(self, body: Mapping[str, Any], *, require: bool) -> dict[str, Any]:
        """The registration form's fields present in `body`, checked; `require`: the ones 登记 needs."""
        out: dict[str, Any] = {}
        for name in ("caller_name", "caller_num", "caller_restricted", "category", "urgency", "district", "street",
                     "address", "content"):
            if name in body and body[name] is not None:
                out[name] = body[name]
        if require:
            for name in ("category", "content", "district"):
                if not out.get(name):
                    raise Invalid(f"登记需填写 {name}", field=name)
        category = out.get("category")
        if category is not None and category not in CATEGORIES[:7]:
            raise Invalid(f"category 必须是 {'、'.join(CATEGORIES[:7])} 之一 (无效 and 重复 are marked with "
                          "mark_invalid and mark_duplicate)", field="category")
        if "urgency" in out and out["urgency"] not in URGENCIES:
            raise Invalid(f"urgency 必须是 {'、'.join(URGENCIES)} 之一", field="urgency")
        district = out.get("district")
        if district is not None and self.policy.locations and district not in self.policy.locations:
            raise Invalid(f"district {district!r} 不在行政区划列表中 (tickets.yaml locations)", field="district")
        street = out.get("street")
        if street and district is not None:
            streets = self.policy.locations.get(district, ())
            if streets and street not in streets:
                raise Invalid(f"street {street!r} 不属于 {district}", field="street")
        return out

    def _target_ticket(self, s: Session, body: Mapping[str, Any], name: str) -> TicketRow:
        ref = body.get(name)
        if not ref:
            raise Invalid(f"{name} 需填写原工单编号 (the original ticket's number)", field=name)
        target = s.scalars(select(TicketRow).where(TicketRow.number == str(ref))).first()
        if target is None or target.state == State.DRAFT.value:
            raise Invalid(f"工单 {ref} 不存在或仍是草稿", field=name)
        return target

    def _department(self, s: Session, body: Mapping[str, Any]) -> DepartmentRow:
        code = body.get("department")
        if not code:
            raise Invalid("转办需指定承办单位 department (its code)", field="department")
        dept = s.scalars(select(DepartmentRow).where(DepartmentRow.code == str(code))).first()
        if dept is None or not dept.active:
            raise Invalid(f"承办单位 {code} 不存在或已停用", field="department")
        return dept

    def _cite(self, s: Session, article_id: Any, now: datetime) -> None:
        if not isinstance(article_id, int) or isinstance(article_id, bool):
            raise Invalid("article_id 必须是整数", field="article_id")
        try:
            kb.cite(s, article_id, today=self.policy.calendar.local(now.timestamp()).date())
        except kb.KbError as exc:
            raise Invalid(f"知识库文章 {article_id} 不存在或不在有效期内 ({exc})", field="article_id") from None


def _zeroes() -> dict[str, Any]:
    return {"returns": 0, "extensions": 0, "redos": 0, "urged": 0, "late": False, "reply": "",
            "followup": "", "rating": "", "category": "", "urgency": "normal", "district": "", "street": "",
            "address": "", "content": ""}


def _need(value: str, name: str, message: str) -> str:
    if not value:
        raise Invalid(message, field=name)
    return value


def _event_view(e: TicketEventRow, masked: bool) -> dict[str, Any]:
    data = json.loads(e.data)
    if masked and isinstance(data, dict):  # what the ticket view masks, the history masks too
        if "caller_num" in data:
            data["caller_num"] = mask_number(str(data["caller_num"]), True)
        if "caller_name" in data:
            data["caller_name"] = ""
    return {"seq": e.seq, "at": _iso(e.at), "actor": e.actor, "role": e.role, "action": e.action,
            "action_label": ACTION_LABELS[Action(e.action)] if e.action in Action._value2member_map_ else "关联来电",
            "from": e.from_state, "to": e.to_state, "note": e.note, "data": data}


# ---- full-text search (migration 0005) ------------------------------------------------------
# As in tickets.kb: a word of 3+ characters goes through the trigram index; a 2-character
# word (供暖, 噪音: no trigram of its own) through the bigram index on PostgreSQL and the
# trigram vocabulary on SQLite; a 1-character word filters what the others found (alone, it
# scans). Every word must match, in the content or the address. Words are data: LIKE's % and
# _ are escaped, FTS5 phrases quoted, PostgreSQL literals quoted by SQLAlchemy.
#
# A search first collects its matches through the indexes, up to TEXT_COUNT_CAP + 1: that is
# the total and, when there are no more than the cap, the page too (the newest, sorted here,
# then read by id). Past the cap the total is the cap with total_capped, and the page comes
# from walking the tickets newest first, testing each row: 1,000 matches in a million tickets
# put a page within about 20,000 rows. Deciding by the count, not by the planner's estimate,
# matters: it takes words, and departments, for independent, which they are not (物业费 上涨
# come together; a department's tickets are about its own matters), and walked 160,000 rows
# for 20 matches or fetched 10,000 to sort 20. The cap is a trade: counting reads every match
# from the table (10,000 took 150 ms at a million tickets), and a lower cap lengthens the walk.

TEXT_COUNT_CAP = 1000
PG_TEXT = "(content || ' ' || address)"  # migration 0005's trigram index, verbatim
PG_BIGRAMS = "ticket_bigrams(lower(content || ' ' || address))"  # and its bigram index
_tickets_fts = table("tickets_fts", column("rowid"))


def _text_search(svc: TicketService, who: Principal, where: list[Any], f: Filters, now: datetime) -> dict[str, Any]:
    """A search page with `f.text` as words (see above)."""
    t = TicketRow
    out: dict[str, Any] = {"total": 0, "total_capped": False, "page": f.page, "per_page": f.per_page, "items": []}
    terms = terms_of(f.text or "")
    postgres = svc.engine.dialect.name == "postgresql"
    offset = (f.page - 1) * f.per_page
    with Session(svc.engine) as s:
        indexed = _pg_indexed(terms) if postgres else _sqlite_indexed(s, terms)
        if indexed is None:
            return out
        found = s.execute(select(t.id, t.created).where(*where, *indexed).limit(TEXT_COUNT_CAP + 1)).all()
        if len(found) <= TEXT_COUNT_CAP:
            newest = sorted(found, key=lambda r: (r.created, r.id), reverse=True)
            place = {r.id: n for n, r in enumerate(newest[offset : offset + f.per_page])}
            rows = sorted(s.scalars(select(t).where(t.id.in_(place))), key=lambda r: place[r.id]) if place else []
            out.update(total=len(found))
        else:
            tested = _pg_tested(terms) if postgres else _sqlite_tested(terms)
            rows = list(s.scalars(select(t).where(*where, *tested).order_by(t.created.desc(), t.id.desc())
                                  .limit(f.per_page).offset(offset)))
            out.update(total=TEXT_COUNT_CAP, total_capped=True)
        out["items"] = [svc._summary(s, who, r, now) for r in rows]
        return out


def _pg_indexed(terms: list[str]) -> list[ColumnElement[bool]]:
    """The words as conditions the indexes answer. Words are inlined as literals: the planner
    then sees each word and how common it is (a prepared statement's generic plan cannot)."""
    doc: ColumnElement[str] = literal_column(PG_TEXT)
    out: list[ColumnElement[bool]] = []
    pairs = [w for w in terms if len(w) == 2]
    if pairs:
        keys = postgresql.array([func.lower(_literal(w)) for w in pairs])
        out.append(literal_column(PG_BIGRAMS).op("@>")(keys))
        # Should the planner scan rather than use the index, the bigram function (12 us a row)
        # runs only on rows that passed this cheap test of the same words first.
        out.extend(_pg_tested(pairs))
    for w in terms:
        if len(w) != 2:  # ILIKE only where case exists: it is much slower than LIKE on long Chinese text
            pattern = _literal(like_pattern(w))
            out.append(doc.ilike(pattern) if w.lower() != w.upper() else doc.like(pattern))
    return out


def _pg_tested(terms: list[str]) -> list[ColumnElement[bool]]:
    """The words as a test of each row, cheap (strpos) and estimated as "most rows match",
    so that the planner walks the newest tickets and stops at the page's last."""
    doc: ColumnElement[str] = literal_column(PG_TEXT)
    return [func.strpos(func.lower(doc), func.lower(_literal(w))) != 0 if w.lower() != w.upper()
            else func.strpos(doc, _literal(w)) != 0 for w in terms]


def _sqlite_indexed(s: Session, terms: list[str]) -> list[ColumnElement[bool]] | None:
    """The FTS5 query for the words the index can answer, LIKE for the others; None if a
    2-character word is in no ticket at all."""
    phrases, scans = [], []
    for w in terms:
        starting = trigrams_starting(s, w, "tickets_fts_vocab") if len(w) == 2 else None
        if len(w) >= 3:
            phrases.append(fts_phrase(w))
        elif starting is None:
            scans.append(w)
        elif not starting:
            return None
        else:
            phrases.append("(" + " OR ".join(map(fts_phrase, starting)) + ")")
    out = _sqlite_tested(scans)
    if phrases:
        matching = select(_tickets_fts.c.rowid).where(literal_column("tickets_fts").op("MATCH")(" AND ".join(phrases)))
        out.append(TicketRow.id.in_(matching))
    return out


def _sqlite_tested(terms: list[str]) -> list[ColumnElement[bool]]:
    patterns = [like_pattern(w) for w in terms]
    return [or_(TicketRow.content.like(p, escape="\\"), TicketRow.address.like(p, escape="\\")) for p in patterns]


def _literal(value: str) -> Any:
    return bindparam(None, value, type_=Text, literal_execute=True)


__all__ = ["CATEGORIES", "CHANNELS", "ENGINE", "RATINGS", "URGENCIES", "Conflict", "Filters", "Forbidden", "Invalid",
           "NotFound", "Policy", "ServiceError", "TicketService"]


def _parties(text: str | None) -> list[dict[str, Any]]:
    """The record's conference history as the API shows it (times in ISO 8601). Only the engine
    writes it, checked; a value altered in the database shows as no history, not as a 500
    (RecursionError: arrays nested deeper than the JSON parser recurses)."""
    try:
        return [{"at": datetime.fromtimestamp(float(at), UTC).isoformat(), "kind": str(kind), "party": str(party),
                 "detail": str(detail)} for at, kind, party, detail in json.loads(text or "[]")]
    except (ValueError, TypeError, OverflowError, OSError, RecursionError):
        return []
