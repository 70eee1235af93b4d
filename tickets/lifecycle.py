"""The 工单 lifecycle as an explicit transition table (in the style of h11's state machine).

Pure: no I/O, no clock. `step()` takes the ticket's facts, the action and `now`, and says
where the ticket goes, which deadline clock to start or stop and which counters move, or
refuses with the actions that state allows. The service applies the step (tickets/service.py);
deadlines are computed from the clock instruction by tickets/deadlines.py.

    新建 ─open_draft→ 草稿 ─register→ 已登记 ─answer_directly→ 直接答复 ─follow_up→ 已回访 ─close→ 办结 ─archive→ 归档
                                        └─submit→ 待派单 ─dispatch→ 待签收 ─accept→ 办理中 ─reply→ 办结待审
                                                   └─designate→ 指定承办 ┘  └─return→ 已退单 (dispatch or designate)
    办理中 ⇄ 延期待审 (request_extension; approve or refuse); 办结待审 ─approve_reply→ 待回访 (or reject_reply → 办理中)
    待回访 ─follow_up→ 已回访 ─close→ 办结, or ─reopen→ 办理中 (重办)
    草稿/已登记 ─mark_invalid→ 无效, ─mark_duplicate→ 重复 (linked to the original); 草稿 ─attach→ 已并入 (the call
    belongs to an existing ticket). 督办 (urge) is a flag, not a state: allowed while a department holds the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    NEW = "new"  # before the first step: the "from" of the first history row
    DRAFT = "draft"
    REGISTERED = "registered"
    DIRECT_ANSWERED = "direct_answered"
    PENDING_DISPATCH = "pending_dispatch"
    DISPATCHED = "dispatched"
    RETURNED = "returned"
    DESIGNATED = "designated"
    IN_PROGRESS = "in_progress"
    EXTENSION_REQUESTED = "extension_requested"
    REPLIED = "replied"
    CALLBACK = "callback"
    FOLLOWED_UP = "followed_up"
    CLOSED = "closed"
    ARCHIVED = "archived"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    MERGED = "merged"


LABELS: dict[State, str] = {
    State.NEW: "新建", State.DRAFT: "草稿", State.REGISTERED: "已登记", State.DIRECT_ANSWERED: "直接答复",
    State.PENDING_DISPATCH: "待派单", State.DISPATCHED: "已转办待签收", State.RETURNED: "已退单",
    State.DESIGNATED: "指定承办待签收", State.IN_PROGRESS: "办理中", State.EXTENSION_REQUESTED: "延期待审批",
    State.REPLIED: "办结反馈待审核", State.CALLBACK: "待回访", State.FOLLOWED_UP: "已回访", State.CLOSED: "办结",
    State.ARCHIVED: "归档", State.INVALID: "无效", State.DUPLICATE: "重复", State.MERGED: "已并入其他工单",
}


class Action(StrEnum):
    OPEN_DRAFT = "open_draft"  # an answered call opens a draft (the engine)
    REGISTER = "register"  # 登记
    EDIT = "edit"  # correct the form before dispatch
    ATTACH = "attach"  # the draft's call belongs to an existing ticket
    ANSWER_DIRECTLY = "answer_directly"  # 直接答复
    SUBMIT = "submit"  # 待派单
    DISPATCH = "dispatch"  # 转办
    ACCEPT = "accept"  # 签收
    RETURN = "return"  # 退单, with a reason
    DESIGNATE = "designate"  # 指定承办, after repeated returns
    REQUEST_EXTENSION = "request_extension"  # 申请延期
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"
    REPLY = "reply"  # 办结反馈
    APPROVE_REPLY = "approve_reply"  # 审核通过
    REJECT_REPLY = "reject_reply"  # 审核驳回: back to 办理
    FOLLOW_UP = "follow_up"  # 回访 with the rating
    REOPEN = "reopen"  # 重办
    CLOSE = "close"  # 办结
    ARCHIVE = "archive"  # 归档
    URGE = "urge"  # 督办
    MARK_INVALID = "mark_invalid"
    MARK_DUPLICATE = "mark_duplicate"


ACTION_LABELS: dict[Action, str] = {
    Action.OPEN_DRAFT: "来电生成草稿", Action.REGISTER: "登记", Action.EDIT: "修改", Action.ATTACH: "并入已有工单",
    Action.ANSWER_DIRECTLY: "直接答复", Action.SUBMIT: "提交待派单", Action.DISPATCH: "转办",
    Action.ACCEPT: "签收", Action.RETURN: "退单", Action.DESIGNATE: "指定承办",
    Action.REQUEST_EXTENSION: "申请延期", Action.APPROVE_EXTENSION: "同意延期", Action.REFUSE_EXTENSION: "不同意延期",
    Action.REPLY: "办结反馈", Action.APPROVE_REPLY: "审核通过", Action.REJECT_REPLY: "审核驳回",
    Action.FOLLOW_UP: "回访", Action.REOPEN: "重办", Action.CLOSE: "办结", Action.ARCHIVE: "归档",
    Action.URGE: "督办", Action.MARK_INVALID: "无效件", Action.MARK_DUPLICATE: "重复件",
}


class Clock(StrEnum):
    """What a step does to the deadline running now (`due_at`)."""

    KEEP = "keep"
    START_ACCEPT = "start_accept"  # a department must 签收 by the accept limit
    START_HANDLE = "start_handle"  # ... and answer by the handle limit, counted from 签收
    EXTEND_HANDLE = "extend_handle"  # an approved 延期 adds to the handle deadline
    RESUME_HANDLE = "resume_handle"  # back to 办理 after a rejected reply: the handle deadline runs again
    STOP = "stop"  # no department holds the ticket: nothing runs


S, A, C = State, Action, Clock
# (state, action) -> (next state, clock). Anything not here is refused.
TABLE: dict[tuple[State, Action], tuple[State, Clock]] = {
    (S.NEW, A.OPEN_DRAFT): (S.DRAFT, C.STOP),
    (S.NEW, A.REGISTER): (S.REGISTERED, C.STOP),
    (S.DRAFT, A.REGISTER): (S.REGISTERED, C.STOP),
    (S.DRAFT, A.EDIT): (S.DRAFT, C.KEEP),
    (S.DRAFT, A.ATTACH): (S.MERGED, C.STOP),
    (S.DRAFT, A.MARK_INVALID): (S.INVALID, C.STOP),
    (S.DRAFT, A.MARK_DUPLICATE): (S.DUPLICATE, C.STOP),
    (S.REGISTERED, A.EDIT): (S.REGISTERED, C.KEEP),
    (S.REGISTERED, A.ANSWER_DIRECTLY): (S.DIRECT_ANSWERED, C.STOP),
    (S.REGISTERED, A.SUBMIT): (S.PENDING_DISPATCH, C.STOP),
    (S.REGISTERED, A.DISPATCH): (S.DISPATCHED, C.START_ACCEPT),
    (S.REGISTERED, A.MARK_INVALID): (S.INVALID, C.STOP),
    (S.REGISTERED, A.MARK_DUPLICATE): (S.DUPLICATE, C.STOP),
    (S.PENDING_DISPATCH, A.EDIT): (S.PENDING_DISPATCH, C.KEEP),
    (S.PENDING_DISPATCH, A.DISPATCH): (S.DISPATCHED, C.START_ACCEPT),
    (S.PENDING_DISPATCH, A.DESIGNATE): (S.DESIGNATED, C.START_ACCEPT),
    (S.PENDING_DISPATCH, A.URGE): (S.PENDING_DISPATCH, C.KEEP),
    (S.DISPATCHED, A.ACCEPT): (S.IN_PROGRESS, C.START_HANDLE),
    (S.DISPATCHED, A.RETURN): (S.RETURNED, C.STOP),
    (S.DISPATCHED, A.URGE): (S.DISPATCHED, C.KEEP),
    (S.RETURNED, A.DISPATCH): (S.DISPATCHED, C.START_ACCEPT),
    (S.RETURNED, A.DESIGNATE): (S.DESIGNATED, C.START_ACCEPT),
    (S.RETURNED, A.URGE): (S.RETURNED, C.KEEP),
    (S.DESIGNATED, A.ACCEPT): (S.IN_PROGRESS, C.START_HANDLE),  # a designated department may not return it
    (S.DESIGNATED, A.URGE): (S.DESIGNATED, C.KEEP),
    (S.IN_PROGRESS, A.REQUEST_EXTENSION): (S.EXTENSION_REQUESTED, C.KEEP),
    (S.IN_PROGRESS, A.REPLY): (S.REPLIED, C.STOP),
    (S.IN_PROGRESS, A.URGE): (S.IN_PROGRESS, C.KEEP),
    (S.EXTENSION_REQUESTED, A.APPROVE_EXTENSION): (S.IN_PROGRESS, C.EXTEND_HANDLE),
    (S.EXTENSION_REQUESTED, A.REFUSE_EXTENSION): (S.IN_PROGRESS, C.KEEP),
    (S.EXTENSION_REQUESTED, A.REPLY): (S.REPLIED, C.STOP),
    (S.EXTENSION_REQUESTED, A.URGE): (S.EXTENSION_REQUESTED, C.KEEP),
    (S.REPLIED, A.APPROVE_REPLY): (S.CALLBACK, C.STOP),
    (S.REPLIED, A.REJECT_REPLY): (S.IN_PROGRESS, C.RESUME_HANDLE),  # 驳回 is no extension: the deadline stands
    (S.DIRECT_ANSWERED, A.FOLLOW_UP): (S.FOLLOWED_UP, C.STOP),
    (S.DIRECT_ANSWERED, A.CLOSE): (S.CLOSED, C.STOP),
    (S.CALLBACK, A.FOLLOW_UP): (S.FOLLOWED_UP, C.STOP),
    (S.CALLBACK, A.CLOSE): (S.CLOSED, C.STOP),  # the citizen could not be reached: a note says so
    (S.FOLLOWED_UP, A.CLOSE): (S.CLOSED, C.STOP),
    (S.FOLLOWED_UP, A.REOPEN): (S.IN_PROGRESS, C.START_HANDLE),  # 重办 by the same department
    (S.FOLLOWED_UP, A.SUBMIT): (S.PENDING_DISPATCH, C.STOP),  # a direct answer that did not satisfy
    (S.CLOSED, A.ARCHIVE): (S.ARCHIVED, C.STOP),
    (S.INVALID, A.ARCHIVE): (S.ARCHIVED, C.STOP),
    (S.DUPLICATE, A.ARCHIVE): (S.ARCHIVED, C.STOP),
    (S.MERGED, A.ARCHIVE): (S.ARCHIVED, C.STOP),
}
del S, A, C

# Where a department holds the ticket: it sees it, and 督办 applies.
WITH_DEPARTMENT = frozenset({State.DISPATCHED, State.DESIGNATED, State.IN_PROGRESS, State.EXTENSION_REQUESTED,
                             State.REPLIED})
FINAL = frozenset({State.ARCHIVED})
CLOSED_STATES = frozenset({State.CLOSED, State.ARCHIVED, State.INVALID, State.DUPLICATE, State.MERGED})


@dataclass(frozen=True)
class Facts:
    """What the guards read of a ticket."""

    state: State
    returns: int = 0  # 退单 so far
    extensions: int = 0  # 延期 approved so far
    has_department: bool = False
    accept_due: datetime | None = None
    handle_due: datetime | None = None


@dataclass(frozen=True)
class Limits:
    max_returns: int  # after this many returns only 指定承办 is left
    max_extensions: int  # 延期 that may be approved for this ticket's category and urgency


@dataclass(frozen=True)
class Step:
    action: Action
    source: State
    target: State
    clock: Clock
    returns: int  # the counters after the step
    extensions: int
    redo: bool  # a 重办: the service counts it
    late: bool  # this step came after the deadline that limited it (签收 or 退单, 办结反馈)


class Refused(Exception):
    """An action the state (or a guard) does not allow. `allowed` names what the state allows."""

    def __init__(self, source: State, action: Action, allowed: tuple[Action, ...], reason: str) -> None:
        self.source, self.action, self.allowed, self.reason = source, action, allowed, reason
        names = "、".join(f"{a.value}({ACTION_LABELS[a]})" for a in allowed) or "无 (none)"
        super().__init__(f"{LABELS[source]} ({source.value}) 不能 {ACTION_LABELS[action]} ({action.value}): {reason}; "
                         f"allowed now: {names}")


def allowed(facts: Facts, limits: Limits) -> tuple[Action, ...]:
    """The actions `facts.state` allows now, guards included, in table order."""
    return tuple(a for (s, a) in TABLE if s is facts.state and _guard(facts, a, limits) is None)


def _guard(facts: Facts, action: Action, limits: Limits) -> str | None:
    """Why a listed action is refused for this ticket now, or None."""
    if action is Action.DISPATCH and facts.state is State.RETURNED and facts.returns >= limits.max_returns:
        return f"returned {facts.returns} times (limit {limits.max_returns}): the hotline designates the department"
    if action is Action.REQUEST_EXTENSION and facts.extensions >= limits.max_extensions:
        return f"{facts.extensions} of {limits.max_extensions} extensions already approved for this ticket"
    if action is Action.REOPEN and not facts.has_department:
        return "no department has handled it (a direct answer): submit it for dispatch instead"
    return None


def step(facts: Facts, action: Action, now: datetime, limits: Limits) -> Step:
    """The step `action` takes from `facts`, or Refused."""
    entry = TABLE.get((facts.state, action))
    if entry is None:
        raise Refused(facts.state, action, allowed(facts, limits), "this state does not allow it")
    reason = _guard(facts, action, limits)
    if reason is not None:
        raise Refused(facts.state, action, allowed(facts, limits), reason)
    target, clock = entry
    # A return after the accept limit is late too: returning must not wipe out a missed 签收.
    late = (action in (Action.ACCEPT, Action.RETURN) and facts.accept_due is not None and now > facts.accept_due) or (
        action is Action.REPLY and facts.handle_due is not None and now > facts.handle_due)
    return Step(
        action=action, source=facts.state, target=target, clock=clock,
        returns=facts.returns + (action is Action.RETURN),
        extensions=facts.extensions + (action is Action.APPROVE_EXTENSION),
        redo=action is Action.REOPEN, late=late,
    )


def reachable(start: State = State.NEW) -> frozenset[State]:
    """Every state some sequence of actions reaches from `start` (guards aside)."""
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for (s, _), (t, _) in TABLE.items():
            if s is here and t not in seen:
                seen.add(t)
                todo.append(t)
    return frozenset(seen)
