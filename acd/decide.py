"""`decide(state, event, now)`: the whole routing policy, with no I/O and no clock.

`decide` updates the `State` it is given in place (one task owns it; copying a
picture of thousands of calls on every event would cost more than it proves)
and returns it together with the commands the shell must carry out.

Who gets whom:
- A caller's place in line is its key = arrival - min(priority x priority_step, max_boost):
  a priority caller overtakes only callers who arrived less than max_boost seconds
  before it, so nobody is starved by priority for longer than max_boost.
- When callers outnumber free agents, each free agent (longest idle first) takes the
  caller with the smallest key among the queues it serves whose skills it meets.
- When free agents outnumber callers, each caller (smallest key first) gets an agent
  chosen by its queue's strategy among the free agents that serve the queue and meet
  the caller's skills.
- An agent who let a caller ring out is offered that caller again only when no other
  agent can take it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left

from acd.calendar import is_open
from acd.commands import (
    AgentStateChanged,
    CallAnswered,
    CallOffered,
    CallRecord,
    Command,
    RingAgent,
    SendToTimeout,
    StartTimer,
)
from acd.events import (
    AgentControl,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    DialStarted,
    Event,
    History,
    LinkLost,
    QueuesConfigured,
    RecordingStarted,
    Resynced,
    RingFailed,
    SnapshotChannel,
    TimerFired,
    TimerKind,
)
from acd.model import Agent, AgentPhase, Call, CallPhase, Outcome, QueueSettings, State, Strategy
from acd.strategy import pick_agent

Result = tuple[State, list[Command]]
BUSY_STATUSES = frozenset({"BUSY", "CONGESTION", "CHANUNAVAIL"})


def decide(state: State, event: Event, now: float) -> Result:
    out: list[Command] = []
    match event:
        case CallerJoined():
            _join(state, event, now, out)
        case CallerParked():
            call = state.calls.get(event.call_id)
            if call is not None and call.phase is CallPhase.WAITING and not call.parked:
                _back_in_line(state, call, now, out)
        case CallerHungUp():
            call = state.calls.get(event.call_id)
            # Agent legs share the caller's Linkedid: only the caller's own hangup ends the call.
            if call is not None and call.channel == event.channel:
                _finish(state, call, now, out)
        case DialStarted():
            call = state.calls.get(event.call_id)
            if call is not None and call.phase is CallPhase.RINGING and event.agent_id in call.ringing:
                call.dialing = True
        case DialEnded():
            _dial_ended(state, event.call_id, event.agent_id, event.status, None, now, out)
        case RingFailed():
            _dial_ended(state, event.call_id, event.agent_id, "FAILED", event.attempt, now, out)
        case RecordingStarted():
            call = state.calls.get(event.call_id)
            if call is not None:
                call.recording = event.path
        case DeviceChanged():
            _device(state, event, now, out)
            if not event.registered:
                _leave_empty_queues(state, now, out)
        case TimerFired():
            _timer(state, event, now, out)
        case LinkLost():
            state.routing = False
        case Resynced():
            _resync(state, event, now, out)
            _leave_empty_queues(state, now, out)
        case AgentsConfigured():
            _configure_agents(state, event, now, out)
            _leave_empty_queues(state, now, out)
        case QueuesConfigured():
            if event.calendar is not None:
                state.calendar = event.calendar
            _configure_queues(state, event.queues)
        case AgentControl():
            _control(state, event, now, out)
            if event.action == "logout":
                _leave_empty_queues(state, now, out)
        case History():
            for number, agent_id, ended in event.answered:
                state.last_agent[number] = (agent_id, ended)
    _route(state, now, out)
    return state, out


def agent_state(agent: Agent) -> str:
    """The label supervisors see for an agent."""
    if agent.phase is not AgentPhase.IDLE:
        return str(agent.phase.value)
    if not agent.registered or not agent.logged_in:
        return "logged_out"
    if agent.paused is not None:
        return "paused"
    if agent.device_busy:
        return "busy_other"
    return "available"


# -- the line ----------------------------------------------------------------------


def _routable(call: Call) -> bool:
    return call.phase is CallPhase.WAITING and call.parked and not call.leaving


def _place(state: State, call: Call) -> None:
    """Put a routable caller in its queue's line (idempotent)."""
    if not _routable(call):
        _unplace(state, call)
        return
    line = state.lines.setdefault(call.queue, [])
    item = (call.key, call.seq, call.call_id)
    i = bisect_left(line, item)
    if i == len(line) or line[i] != item:
        line.insert(i, item)


def _unplace(state: State, call: Call) -> None:
    line = state.lines.get(call.queue)
    if not line:
        return
    item = (call.key, call.seq, call.call_id)
    i = bisect_left(line, item)
    if i < len(line) and line[i] == item:
        del line[i]


# -- agents --------------------------------------------------------------------------


class _Watch:
    """Remember an agent's label and availability before a change, report after it."""

    __slots__ = ("agent", "available", "label")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.available = agent.available()
        self.label = agent_state(agent)

    def done(self, state: State, now: float, out: list[Command]) -> None:
        agent = self.agent
        if agent.available():
            if not self.available:
                agent.idle_since = now
            state.free.add(agent.agent_id)
        else:
            state.free.discard(agent.agent_id)
        label = agent_state(agent)
        if label != self.label:
            out.append(AgentStateChanged(agent.agent_id, self.label, label, agent.paused or ""))


def _set_phase(state: State, agent: Agent, phase: AgentPhase, now: float, out: list[Command],
               call_id: str | None = None) -> None:
    watch = _Watch(agent)
    agent.phase = phase
    agent.call_id = call_id
    watch.done(state, now, out)


def _device(state: State, ev: DeviceChanged, now: float, out: list[Command]) -> None:
    agent = state.agents.get(ev.agent_id)
    if agent is None:
        # A phone we have no configuration for: remember it, never route to it.
        agent = state.agents[ev.agent_id] = Agent(ev.agent_id, configured=False, queues=frozenset())
    watch = _Watch(agent)
    agent.registered = ev.registered
    agent.device_busy = ev.busy
    watch.done(state, now, out)


def _control(state: State, ev: AgentControl, now: float, out: list[Command]) -> None:
    agent = state.agents.get(ev.agent_id)
    if agent is None or not agent.configured:
        return
    watch = _Watch(agent)
    if ev.action == "login":
        agent.logged_in = True
        agent.paused = None
    elif ev.action == "logout":
        agent.logged_in = False
    elif ev.action == "pause":
        agent.paused = ev.reason or "break"
    elif ev.action == "unpause":
        agent.paused = None
        agent.no_answer_streak = 0
    elif ev.action == "end_wrapup" and agent.phase is AgentPhase.WRAP_UP:
        agent.phase = AgentPhase.IDLE
    watch.done(state, now, out)


def _configure_agents(state: State, ev: AgentsConfigured, now: float, out: list[Command]) -> None:
    profiles = {p.agent_id: p for p in ev.profiles}
    every_queue = frozenset(state.queues)
    for agent_id in ev.agent_ids:
        if agent_id not in state.agents:
            state.agents[agent_id] = Agent(agent_id, idle_since=now)
    for agent in state.agents.values():
        watch = _Watch(agent)
        agent.configured = agent.agent_id in ev.agent_ids
        profile = profiles.get(agent.agent_id)
        if profile is not None:
            agent.queues = profile.queues
            agent.skills = dict(profile.skills)
            agent.wrapup = profile.wrapup
        elif agent.configured:
            agent.queues = every_queue
        watch.done(state, now, out)


def _configure_queues(state: State, queues: tuple[QueueSettings, ...]) -> None:
    """New queue settings apply to the next decision; nobody loses their place."""
    if not queues:
        return
    for call in state.calls.values():
        _unplace(state, call)
    state.queues = {q.name: q for q in queues}
    state.reindex()
    for call in state.calls.values():
        if call.queue not in state.queues:
            # Its queue was removed: the caller goes to the first queue, keeping their arrival.
            call.overflowed_from = call.queue
            call.queue = state.queue.name
            call.key = _key(state.queue, call.arrived, call.priority)
        call.skills = _skills_for(state.settings(call.queue), call.extra_skills)
    state.lines = {}
    for call in state.calls.values():
        _place(state, call)


# -- callers ---------------------------------------------------------------------------


def _skills_for(q: QueueSettings, extra: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    need = dict(q.skills)
    for skill, level in extra:
        need[skill] = max(level, need.get(skill, 0))
    return tuple(sorted(need.items()))


def _key(q: QueueSettings, arrived: float, priority: int) -> float:
    return arrived - min(max(priority, 0) * q.priority_step, q.max_boost)


def _new_call(state: State, call: Call, extra: tuple[tuple[str, int], ...], out: list[Command]) -> Call:
    q = state.settings(call.queue)
    state.seq += 1
    call.seq = state.seq
    call.extra_skills = extra
    call.skills = _skills_for(q, extra)
    call.key = _key(q, call.arrived, call.priority)
    call.queue_since = call.arrived
    state.calls[call.call_id] = call
    out.append(CallOffered(call.call_id, call.queue))
    out.append(StartTimer(TimerKind.MAX_WAIT, call.call_id, max(call.arrived + q.max_wait, 0.0)))
    _arm_queue_timers(state, call, out)
    return call


def _arm_queue_timers(state: State, call: Call, out: list[Command]) -> None:
    """The next widening step and the overflow, counted from when the caller entered this queue."""
    q = state.settings(call.queue)
    if call.widened < len(q.widen):
        at = call.queue_since + q.widen[call.widened].after
        out.append(StartTimer(TimerKind.WIDEN, call.call_id, at, call.widened))
    if q.overflow is not None:
        out.append(StartTimer(TimerKind.OVERFLOW, call.call_id, call.queue_since + q.overflow.after, call.seq))


def _overflow_due(state: State, call: Call, now: float) -> bool:
    q = state.settings(call.queue)
    return q.overflow is not None and now - call.queue_since >= q.overflow.after


def _overflow(state: State, call: Call, now: float, out: list[Command]) -> None:
    """Move the caller to the overflow queue (keeping their arrival), or to the message."""
    q = state.settings(call.queue)
    rule = q.overflow
    if rule is not None and rule.action == "queue" and rule.target in state.queues and rule.target != call.queue:
        _unplace(state, call)
        target = state.queues[rule.target]
        call.overflowed_from = call.queue
        call.queue = target.name
        call.queue_since = now
        call.widened = 0
        call.skills = _skills_for(target, call.extra_skills)
        call.key = _key(target, call.arrived, call.priority)
        state.seq += 1
        call.seq = state.seq
        _place(state, call)
        _arm_queue_timers(state, call, out)
        return
    if rule is not None and rule.action in ("number", "callback"):
        _send_to_timeout(state, call, out, reason=rule.action, number=rule.target if rule.action == "number" else "")
        return
    _send_to_timeout(state, call, out, reason="overflow")


def _join(state: State, ev: CallerJoined, now: float, out: list[Command]) -> None:
    if ev.call_id in state.calls:
        return  # already known (e.g. seen in a resync before its join event)
    call = Call(
        call_id=ev.call_id,
        channel=ev.channel,
        queue=ev.queue,
        arrived=now,
        caller_num=ev.caller_num,
        caller_name=ev.caller_name,
        restricted=ev.restricted,
        priority=ev.priority,
    )
    _new_call(state, call, ev.skills, out)
    q = state.settings(call.queue)
    if not is_open(state.calendar, q.hours, now):
        if q.when_closed == "overflow" and q.overflow is not None:
            _overflow(state, call, now, out)
        else:
            _send_to_timeout(state, call, out, reason="closed")
        return
    full = q.max_length > 0 and len(state.lines.get(call.queue, ())) >= q.max_length
    empty = q.when_empty == "overflow" and not _staffed(state, call.queue)
    if full or empty:
        _overflow(state, call, now, out)
        return
    _make_sticky(state, call, q, now, out)
    _place(state, call)


def _staffed(state: State, queue: str) -> bool:
    return any(a.configured and a.logged_in and a.registered and queue in a.queues for a in state.agents.values())


def _leave_empty_queues(state: State, now: float, out: list[Command]) -> None:
    """When the last agent of a `when_empty: overflow` queue logs out, its callers move on
    (app_queue's leavewhenempty)."""
    for q in state.queues.values():
        line = state.lines.get(q.name)
        if q.when_empty != "overflow" or not line or _staffed(state, q.name):
            continue
        for _, _, call_id in list(line):
            _overflow(state, state.calls[call_id], now, out)


def _make_sticky(state: State, call: Call, q: QueueSettings, now: float, out: list[Command]) -> None:
    if q.sticky_days <= 0 or not call.caller_num:
        return
    last = state.last_agent.get(call.caller_num)
    if last is None or now - last[1] > q.sticky_days * 86400:
        return
    agent = state.agents.get(last[0])
    if agent is None or not agent.configured or call.queue not in agent.queues:
        return
    call.sticky_agent = agent.agent_id
    call.sticky_until = now + q.sticky_wait
    out.append(StartTimer(TimerKind.STICKY, call.call_id, call.sticky_until))


def _finish(state: State, call: Call, now: float, out: list[Command]) -> None:
    _unplace(state, call)
    del state.calls[call.call_id]
    agent = state.agents.get(call.agent_id) if call.agent_id else None
    q = state.settings(call.queue)
    wait = call.waited(now)
    talk = 0.0
    if call.phase is CallPhase.CONNECTED:
        outcome = Outcome.ANSWERED
        talk = max(0.0, now - (call.answered or now))
        if call.caller_num and call.agent_id:
            state.last_agent[call.caller_num] = (call.agent_id, now)
        if agent is not None and agent.call_id == call.call_id:
            agent.talk_total += talk
            wrapup = agent.wrapup if agent.wrapup is not None else q.wrapup
            agent.wrap_until = now + wrapup
            _set_phase(state, agent, AgentPhase.WRAP_UP, now, out)
            out.append(StartTimer(TimerKind.WRAPUP, agent.agent_id, agent.wrap_until))
    else:
        if call.leaving:
            outcome = {
                "overflow": Outcome.OVERFLOW,
                "closed": Outcome.CLOSED,
                "number": Outcome.FORWARDED,
                "callback": Outcome.CALLBACK,
            }.get(call.leave_reason, Outcome.TIMED_OUT)
        elif wait < q.short_abandon:
            outcome = Outcome.SHORT_ABANDON
        else:
            outcome = Outcome.ABANDONED
        _release(state, call, now, out)
    out.append(
        CallRecord(
            call_id=call.call_id,
            queue=call.queue,
            caller_num=call.caller_num,
            caller_name=call.caller_name,
            arrived=call.arrived,
            answered=call.answered,
            ended=now,
            agent_id=call.agent_id if call.phase is CallPhase.CONNECTED else None,
            outcome=outcome,
            wait_seconds=round(wait, 3),
            talk_seconds=round(talk, 3),
            recording=call.recording,
            restricted=call.restricted,
        )
    )


def _dial_ended(
    state: State,
    call_id: str,
    agent_id: str,
    status: str,
    attempt: int | None,
    now: float,
    out: list[Command],
) -> None:
    call = state.calls.get(call_id)
    if call is not None and status == "ANSWER" and call.phase is CallPhase.WAITING:
        # Answered without us: the dialplan's own fallback rang the agents while the
        # engine was away. The record must say answered, by whom it was.
        _connect(state, call, agent_id, now, out)
        return
    if (call is not None and status == "ANSWER" and call.phase is CallPhase.RINGING
            and agent_id not in call.ringing and agent_id not in call.tried):
        # Somebody we did not ring answered (the dialplan's fallback): that is the truth.
        _connect(state, call, agent_id, now, out)
        return
    if call is None or call.phase is not CallPhase.RINGING or agent_id not in call.ringing:
        return  # a late answer to a ring we already gave up on
    if attempt is not None and attempt != call.attempt:
        return
    agent = state.agents.get(agent_id)
    if status == "ANSWER":
        _connect(state, call, agent_id, now, out)
        return
    if agent is not None and status != "CANCEL":
        _agent_missed(state, agent, state.settings(call.queue), status, now, out)
    if len(call.ringing) > 1 and attempt is None:
        # ring_all: this phone gave up, the others still ring.
        call.ringing = call.ringing - {agent_id}
        call.tried = call.tried | {agent_id}
        if agent is not None and agent.call_id == call.call_id:
            _set_phase(state, agent, AgentPhase.IDLE, now, out)
        if call.agent_id == agent_id:
            call.agent_id = min(call.ringing)
        return
    # After Asterisk's Dial returned, the dialplan walks the caller back to the hold loop
    # and raises HotlineParked when it is safe to Redirect again. A Redirect that failed
    # (attempt given) left the caller where it was, blocked in Wait().
    _ring_over(state, call, now, out, parked=attempt is not None, agent_at_fault=status != "FAILED")


def _release(state: State, call: Call, now: float, out: list[Command], keep: str | None = None) -> None:
    """Free every agent this call's ring had reserved (but `keep`)."""
    for agent_id in call.ringing | ({call.agent_id} if call.agent_id else set()):
        agent = state.agents.get(agent_id)
        if agent_id != keep and agent is not None and agent.call_id == call.call_id:
            _set_phase(state, agent, AgentPhase.IDLE, now, out)
    call.ringing = frozenset()


def _connect(state: State, call: Call, agent_id: str, now: float, out: list[Command]) -> None:
    _unplace(state, call)
    _release(state, call, now, out, keep=agent_id)
    call.phase = CallPhase.CONNECTED
    call.answered = now
    call.agent_id = agent_id
    agent = state.agents.get(agent_id)
    # An agent already tied to another call keeps that tie (only Asterisk's fallback can
    # put a second call on a phone); the record still names who answered.
    if agent is not None and agent.call_id in (None, call.call_id):
        agent.no_answer_streak = 0
        agent.calls_taken += 1
        _set_phase(state, agent, AgentPhase.ON_CALL, now, out, call.call_id)
    out.append(CallAnswered(call.call_id, call.queue, agent_id, call.waited(now)))


def _agent_missed(state: State, agent: Agent, q: QueueSettings, status: str, now: float,
                  out: list[Command]) -> None:
    """Ring-no-answer N times in a row (N of the queue rung for) pauses the agent; busy or
    rejected backs them off."""
    watch = _Watch(agent)
    if status in BUSY_STATUSES:
        agent.backoff_until = now + q.busy_backoff
        out.append(StartTimer(TimerKind.BACKOFF, agent.agent_id, agent.backoff_until))
    elif status in ("NOANSWER", "TIMEOUT"):
        agent.no_answer_streak += 1
        if agent.no_answer_streak >= q.max_no_answer:
            agent.paused = "no answer"
    watch.done(state, now, out)


def _ring_over(
    state: State, call: Call, now: float, out: list[Command], agent_at_fault: bool = True, parked: bool = True
) -> None:
    """The agent did not take the call: free them and put the caller back in line."""
    if agent_at_fault:
        call.tried = call.tried | call.ringing | ({call.agent_id} if call.agent_id else set())
    _release(state, call, now, out)
    call.phase = CallPhase.WAITING
    call.agent_id = None
    if parked:
        _back_in_line(state, call, now, out)
    else:
        call.parked = False
        # If HotlineParked is lost, assume the dialplan is back in the loop after a while.
        out.append(StartTimer(TimerKind.PARK, call.call_id, now + 5.0, call.attempt))


def _back_in_line(state: State, call: Call, now: float, out: list[Command]) -> None:
    """A caller safe to Redirect again: the time-out or overflow if due, else their place in line."""
    call.parked = True
    if now - call.arrived >= state.settings(call.queue).max_wait:
        _send_to_timeout(state, call, out)
    elif _overflow_due(state, call, now):
        _overflow(state, call, now, out)
    _place(state, call)


def _send_to_timeout(state: State, call: Call, out: list[Command], reason: str = "timeout",
                     number: str = "") -> None:
    if not call.leaving:
        call.leaving = True
        call.leave_reason = reason
        _unplace(state, call)
        out.append(SendToTimeout(call.call_id, call.channel, reason, number))


def _timer(state: State, ev: TimerFired, now: float, out: list[Command]) -> None:
    if ev.kind is TimerKind.RING:
        call = state.calls.get(ev.key)
        if call is not None and call.phase is CallPhase.RINGING and call.attempt == ev.attempt:
            for agent_id in sorted(call.ringing):
                agent = state.agents.get(agent_id)
                if agent is not None:
                    _agent_missed(state, agent, state.settings(call.queue), "TIMEOUT", now, out)
            _ring_over(state, call, now, out)
    elif ev.kind is TimerKind.DIAL_CONFIRM:
        call = state.calls.get(ev.key)
        if (call is not None and call.phase is CallPhase.RINGING and call.attempt == ev.attempt
                and not call.dialing):
            _ring_over(state, call, now, out, agent_at_fault=False)
    elif ev.kind is TimerKind.WRAPUP:
        agent = state.agents.get(ev.key)
        if agent is not None and agent.phase is AgentPhase.WRAP_UP and now >= agent.wrap_until:
            _set_phase(state, agent, AgentPhase.IDLE, now, out)
    elif ev.kind is TimerKind.PARK:
        call = state.calls.get(ev.key)
        if call is not None and call.phase is CallPhase.WAITING and not call.parked and call.attempt == ev.attempt:
            _back_in_line(state, call, now, out)
    elif ev.kind is TimerKind.WIDEN:
        call = state.calls.get(ev.key)
        if call is not None and ev.attempt == call.widened:
            call.widened += 1
            q = state.settings(call.queue)
            if call.widened < len(q.widen):
                at = call.queue_since + q.widen[call.widened].after
                out.append(StartTimer(TimerKind.WIDEN, call.call_id, at, call.widened))
        # The route below now sees the wider pool.
    elif ev.kind is TimerKind.OVERFLOW:
        call = state.calls.get(ev.key)
        if call is not None and ev.attempt == call.seq and _routable(call) and _overflow_due(state, call, now):
            _overflow(state, call, now, out)
    elif ev.kind in (TimerKind.BACKOFF, TimerKind.STICKY):
        pass  # the route below looks again now that the backoff or the sticky wait is over
    elif ev.kind is TimerKind.MAX_WAIT:
        call = state.calls.get(ev.key)
        if call is not None and call.phase is CallPhase.WAITING and call.parked:
            _send_to_timeout(state, call, out)
        # A caller being rung (or walking back to the loop) keeps that chance; the
        # wait is checked again when the ring is over or the caller is parked.


# -- resync ----------------------------------------------------------------------------


def _resync(state: State, ev: Resynced, now: float, out: list[Command]) -> None:
    for device in ev.devices:
        _device(state, device, now, out)
    seen = {c.call_id: c for c in ev.callers}
    for call in list(state.calls.values()):
        if call.call_id not in seen and call.call_id not in ev.joined:
            # Ended while we could not see it: the record is still owed.
            _finish(state, call, now, out)
    for snap in ev.callers:
        known = state.calls.get(snap.call_id)
        call = known if known is not None else _adopt(state, snap, now, out)
        _reconcile(state, call, snap, now, out)
        _place(state, call)
    state.routing = True


def _adopt(state: State, snap: SnapshotChannel, now: float, out: list[Command]) -> Call:
    call = Call(
        call_id=snap.call_id,
        channel=snap.channel,
        queue=snap.queue if snap.queue in state.queues else state.queue.name,
        arrived=now - snap.age,
        caller_num=snap.caller_num,
        caller_name=snap.caller_name,
    )
    return _new_call(state, call, (), out)


def _reconcile(state: State, call: Call, snap: SnapshotChannel, now: float, out: list[Command]) -> None:
    agent = state.agents.get(snap.agent_id) if snap.agent_id else None
    if call.phase is CallPhase.CONNECTED:
        return  # answered while the snapshot was taken: never downgrade a conversation
    if snap.bridged and snap.agent_id:
        if call.phase is CallPhase.RINGING:
            _release(state, call, now, out, keep=snap.agent_id)
        call.phase = CallPhase.CONNECTED
        call.agent_id = snap.agent_id
        call.answered = now  # answered while we were away; the nearest honest time
        out.append(CallAnswered(call.call_id, call.queue, snap.agent_id, call.waited(now)))
        if agent is not None:
            _set_phase(state, agent, AgentPhase.ON_CALL, now, out, call.call_id)
    elif snap.agent_id:
        if call.phase is CallPhase.RINGING and snap.agent_id in call.ringing:
            return
        if call.phase is CallPhase.RINGING:
            _release(state, call, now, out)  # no time-out or overflow side effects mid-resync
        _unplace(state, call)
        call.phase = CallPhase.RINGING
        call.agent_id = snap.agent_id
        call.ringing = frozenset({snap.agent_id})
        call.attempt += 1
        call.rung_at = now
        call.dialing = True  # the agent's leg exists
        if agent is not None:
            _set_phase(state, agent, AgentPhase.RINGING, now, out, call.call_id)
        q = state.settings(call.queue)
        out.append(StartTimer(TimerKind.RING, call.call_id, now + q.ring_timeout + q.ring_grace, call.attempt))
    else:
        if call.phase is CallPhase.RINGING:
            _release(state, call, now, out)
            call.phase = CallPhase.WAITING
            call.agent_id = None
        call.parked = True  # in the hold loop now, whatever event was missed


# -- routing ----------------------------------------------------------------------------


def _sticky_elsewhere(state: State, agent: Agent, call: Call, now: float) -> bool:
    """The caller is being kept for the agent who last answered them (while they can come)."""
    if call.sticky_agent is None or call.sticky_agent == agent.agent_id or now >= call.sticky_until:
        return False
    held = state.agents.get(call.sticky_agent)
    return held is not None and held.configured and held.logged_in and held.registered and held.paused is None


def _qualified(state: State, agent: Agent, call: Call, now: float) -> bool:
    if _sticky_elsewhere(state, agent, call, now):
        return False
    q = state.settings(call.queue)
    serves = call.queue in agent.queues
    floor: int | None = None
    waited = now - call.queue_since
    for rule in q.widen:
        if waited < rule.after:
            break
        if rule.min_level is not None:
            floor = rule.min_level
        if not serves and not agent.queues.isdisjoint(rule.add_queues):
            serves = True
    if not serves:
        return False
    skills = agent.skills
    queue_skills = dict(q.skills)
    for skill, level in call.skills:
        need = min(level, floor) if floor is not None and skill in queue_skills else level
        if skills.get(skill, 0) < need:
            return False
    return True


def _route(state: State, now: float, out: list[Command]) -> None:
    if not state.routing or not state.free:
        return
    waiting = sum(len(line) for line in state.lines.values())
    if not waiting:
        return
    free = [a for a in (state.agents[i] for i in state.free) if a.available(now)]
    if not free:
        return
    if len(free) < waiting:
        # Few agents, many callers: each agent takes the caller first in line it can serve.
        free.sort(key=lambda a: (a.idle_since, a.agent_id))
        for agent in free:
            # A caller who already rang this agent comes only when it has nobody else.
            call = _first_caller(state, agent, False, now) or _first_caller(state, agent, True, now)
            if call is not None:
                _ring(state, call, agent, now, out)
        return
    # Few callers, many agents: each caller, first in line first, gets the queue's pick.
    for _, _, call_id in list(heapq.merge(*state.lines.values())):
        if not free:
            break
        call = state.calls[call_id]
        candidates = [a for a in free if _qualified(state, a, call, now)]
        if not candidates:
            continue
        q = state.settings(call.queue)
        agent = pick_agent(candidates, call.tried, q, call.skills)
        others = [a for a in candidates if a is not agent] if q.strategy is Strategy.RING_ALL else []
        for a in (agent, *others):
            free.remove(a)
        _ring(state, call, agent, now, out, others)


def _first_caller(state: State, agent: Agent, allow_tried: bool, now: float) -> Call | None:
    best: Call | None = None
    queues = set(agent.queues)
    for served in agent.queues:
        queues |= state.borrowers.get(served, frozenset())
    for queue in queues:
        for key, seq, call_id in state.lines.get(queue, ()):
            if best is not None and (key, seq) >= (best.key, best.seq):
                break
            call = state.calls[call_id]
            if _qualified(state, agent, call, now) and (allow_tried or agent.agent_id not in call.tried):
                best = call
                break
    return best


def _ring(state: State, call: Call, agent: Agent, now: float, out: list[Command],
          others: list[Agent] | None = None) -> None:
    _unplace(state, call)
    call.phase = CallPhase.RINGING
    call.agent_id = agent.agent_id
    everyone = [agent, *(others or [])]
    call.ringing = frozenset(a.agent_id for a in everyone)
    call.attempt += 1
    call.rung_at = now
    call.dialing = False
    for a in everyone:
        state.seq += 1
        a.last_offered = state.seq
        _set_phase(state, a, AgentPhase.RINGING, now, out, call.call_id)
    q = state.settings(call.queue)
    out.append(RingAgent(call.call_id, call.channel, agent.agent_id, q.ring_timeout, call.attempt,
                         tuple(a.agent_id for a in everyone[1:])))
    out.append(StartTimer(TimerKind.RING, call.call_id, now + q.ring_timeout + q.ring_grace, call.attempt))
    out.append(StartTimer(TimerKind.DIAL_CONFIRM, call.call_id, now + q.dial_confirm, call.attempt))

