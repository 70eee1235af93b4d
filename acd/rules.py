"""The queue's rules: place in line, skills, who may take a caller as the wait grows,
who may join at all, overflow and sticky agents. Pure functions of the state."""

from __future__ import annotations

from enum import StrEnum

from acd.agents import Agent, Presence
from acd.calendar import is_open
from acd.calls import Call
from acd.model import QueueSettings, WhenEmpty
from acd.state import State


def line_key(q: QueueSettings, arrived: float, priority: int) -> float:
    """Arrival minus the priority boost: a priority caller overtakes only callers who
    arrived less than `max_boost` seconds before it, so nobody waits longer for priority."""
    return arrived - min(max(priority, 0) * q.priority_step, q.max_boost)


def needed_skills(q: QueueSettings, extra: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """The queue's skills plus the ones the dialled number asks for (the higher level wins)."""
    need = dict(q.skills)
    for skill, level in extra:
        need[skill] = max(level, need.get(skill, 0))
    return tuple(sorted(need.items()))


def may_take(state: State, agent: Agent, call: Call, now: float) -> bool:
    """The agent serves the caller's queue, or is lent to it by a widening step that
    applies by now, and meets the caller's skills (a widening floor may lower the queue's)."""
    q = state.queues[call.queue]
    serves = call.queue in agent.queues
    floor: int | None = None
    for rule in q.widen:
        if now < call.queue_since + rule.after:  # the sum the deadline uses (acd/deadlines.py)
            break
        if rule.min_level is not None:
            floor = rule.min_level
        if not serves and not agent.queues.isdisjoint(rule.add_queues):
            serves = True
    if not serves:
        return False
    skills = agent.skills
    for skill, level in call.skills:
        # A widening floor lowers the queue's own skills; the number's extra skills stay.
        need = min(level, floor) if floor is not None and any(s == skill for s, _ in q.skills) else level
        if skills.get(skill, 0) < need:
            return False
    return True


def sticky_elsewhere(state: State, agent: Agent, call: Call, now: float) -> bool:
    """The caller is being kept for the agent who last answered them (while that agent can come)."""
    if call.sticky_agent is None or call.sticky_agent == agent.agent_id or now >= call.sticky_until:
        return False
    held = state.agents.get(call.sticky_agent)
    return (held is not None and held.configured and held.registered and not held.unreachable
            and held.presence is Presence.READY)


def staffed(state: State, queue: str) -> bool:
    """Somebody who serves the queue is logged in with a registered phone (paused counts)."""
    return any(a.present() and queue in a.queues for a in state.agents.values())


class Admission(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # outside the queue's hours or on a holiday
    FULL = "full"  # max_length callers already in line
    EMPTY = "empty"  # nobody logged in, and the queue says `when_empty: overflow`


def admission(state: State, q: QueueSettings, wall: float) -> Admission:
    """May a new caller join queue `q` now?"""
    if not is_open(state.calendar, q.hours, wall):
        return Admission.CLOSED
    if q.max_length > 0 and len(state.lines.get(q.name, ())) >= q.max_length:
        return Admission.FULL
    if q.when_empty is WhenEmpty.OVERFLOW and not staffed(state, q.name):
        return Admission.EMPTY
    return Admission.OPEN


def overflow_due(q: QueueSettings, call: Call, now: float) -> bool:
    # `now >= start + length`, never `now - start >= length`: the deadline is that sum, and
    # floats may round the difference below `length` at the very wake-up it asked for.
    return q.overflow is not None and now >= call.queue_since + q.overflow.after


def timed_out(q: QueueSettings, call: Call, now: float) -> bool:
    return now >= call.arrived + q.max_wait


def sticky_agent_for(state: State, call: Call, q: QueueSettings, wall: float) -> str | None:
    """The agent who last answered this caller, if sticky routing applies to them."""
    if q.sticky_days <= 0 or not call.caller_num:
        return None
    last = state.last_agent.get(call.caller_num)
    if last is None or wall - last[1] > q.sticky_days * 86400:
        return None
    agent = state.agents.get(last[0])
    if agent is None or not agent.configured or call.queue not in agent.queues:
        return None
    return agent.agent_id


def remember_answer(state: State, number: str, agent_id: str, wall: float) -> None:
    """Keep who answered this number for sticky routing; forget what no queue can use."""
    horizon = state.sticky_horizon()
    if horizon <= 0 or not number:
        return
    history = state.last_agent
    history.pop(number, None)  # re-insert at the end: the dict stays ordered by time
    history[number] = (agent_id, wall)
    while history:
        oldest = next(iter(history))
        if wall - history[oldest][1] <= horizon:
            break
        del history[oldest]
