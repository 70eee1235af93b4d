"""What happens to a call, step by step: join, ring, answer, ring over, leave, finish.

Each function moves the call through `acd.calls.CALL_TRANSITIONS` (via `step`) and the
agents through `acd.agents.ACTIVITY_TRANSITIONS` (via `agent_step`), and appends the
commands the shell must carry out. A move the tables do not allow is reported as an
`Unexpected` command and changes nothing.
"""

from __future__ import annotations

from acd import rules
from acd.agents import Activity, ActivityTrigger, Agent, Presence, move
from acd.calls import NOT_OFFERED, Call, CallState, CallTrigger, advance
from acd.commands import (
    CallAnswered,
    CallOffered,
    CallRecord,
    Command,
    ProbeCall,
    RecordSource,
    RingAgent,
    SendOut,
    TagCaller,
    Unexpected,
)
from acd.deadlines import PARK_GRACE
from acd.events import CallerJoined
from acd.match import Assignment
from acd.model import LeaveReason, Outcome, OverflowTo, QueueSettings, WhenClosed, WhenEmpty
from acd.rules import Admission
from acd.state import AgentWatch, State

# Dial statuses that say the phone was busy or refused: back the agent off for a while.
BUSY_STATUSES = frozenset({"BUSY", "CONGESTION", "CHANUNAVAIL"})
# Dial statuses that say nobody picked up within the ring time.
NO_ANSWER_STATUSES = frozenset({"NOANSWER"})
# A Redirect Asterisk refused is retried after this long, doubling per failure in a row.
RETRY_FIRST, RETRY_MAX = 1.0, 30.0


def step(state: State, call: Call, trigger: CallTrigger, now: float, out: list[Command]) -> bool:
    """Move the call along the table, keep its place in line and its deadline right."""
    before = call.state
    if not advance(call, trigger, now):
        out.append(Unexpected("call", before.value, trigger.value, call.call_id))
        return False
    state.touch(call)
    if call.state is not before:
        state.place(call)
    return True


def agent_step(state: State, agent: Agent, trigger: ActivityTrigger, now: float, out: list[Command],
               call_id: str | None = None) -> bool:
    watch = AgentWatch(agent)
    before = agent.activity
    if not move(agent, trigger):
        out.append(Unexpected("agent", before.value, trigger.value, agent.agent_id))
        return False
    agent.call_id = call_id if agent.activity is not Activity.IDLE else None
    watch.done(state, now, out)
    return True


def ask_where(call: Call, out: list[Command]) -> None:
    """Ask Asterisk where the caller is; an answer to an earlier question is stale by then
    (it may predate a Redirect sent since), so the question is numbered."""
    call.probe += 1
    out.append(ProbeCall(call.call_id, call.channel, call.probe))


def _retry_delay(failures: int) -> float:
    return float(min(RETRY_FIRST * 2.0 ** max(failures - 1, 0), RETRY_MAX))


# -- joining and queues ---------------------------------------------------------------


def join(state: State, ev: CallerJoined, now: float, wall: float, out: list[Command]) -> None:
    if ev.call_id in state.calls:
        out.append(Unexpected("call", state.calls[ev.call_id].state.value, "join", ev.call_id))
        return
    queue = ev.queue
    if queue not in state.queues:
        # The dialplan knows a queue the configuration does not (a reload without
        # re-rendering Asterisk's files): the caller is served by the first queue.
        out.append(Unexpected("call", "joining", f"unknown_queue:{queue[:32]}", ev.call_id))
        queue = state.default_queue.name
    call = Call(
        call_id=ev.call_id,
        channel=ev.channel,
        queue=queue,
        arrived=now,
        arrived_wall=wall,
        caller_num=ev.caller_num,
        caller_name=ev.caller_name,
        restricted=ev.restricted,
        priority=ev.priority,
        extra_skills=ev.skills,
        since=now,
    )
    state.calls[call.call_id] = call
    # Served by another queue than the dialplan named: the channel is told (TagCaller), so
    # that a restarted engine and Asterisk's account see the queue that served the caller.
    enter_queue(state, call, queue, now, wall, out, first=queue == ev.queue)


def enter_queue(state: State, call: Call, name: str, now: float, wall: float, out: list[Command],
                first: bool = False, hops: int = 0) -> None:
    """The caller enters queue `name` (at join, or moved by overflow): their line place
    keeps their arrival; widening and overflow count from now; the queue's admission
    rules apply (closed, full, nobody logged in)."""
    state.unplace(call)
    q = state.queues[name]
    call.queue = name
    call.path = (*call.path, name)
    call.queue_since = now
    state.seq += 1
    call.seq = state.seq
    call.skills = rules.needed_skills(q, call.extra_skills)
    call.key = rules.line_key(q, call.arrived, call.priority)
    call.sticky_agent = None
    state.touch(call)
    admitted = rules.admission(state, q, wall)
    if call.offered_in is None and admitted is not Admission.CLOSED:
        offer(call, q, out)
    if not first or call.offered_in is None:
        out.append(TagCaller(call.call_id, call.channel, name, call.offered_in or NOT_OFFERED, call.path))
    if admitted is Admission.CLOSED:
        closed(state, call, now, wall, out, hops)
        return
    if admitted is Admission.EMPTY and not state.routing:
        # The phones are not known yet (the engine is (re)building its picture): the
        # emptiness is judged again when routing starts (resync.leave_empty_queues).
        admitted = Admission.OPEN
    if admitted in (Admission.FULL, Admission.EMPTY):
        overflow(state, call, now, wall, out, hops + 1)
        return
    sticky = rules.sticky_agent_for(state, call, q, wall)
    if sticky is not None:
        call.sticky_agent = sticky
        call.sticky_until = now + q.sticky_wait
    state.place(call)


def offer(call: Call, q: QueueSettings, out: list[Command], already_counted: bool = False) -> None:
    """Offered once, in the first open queue the caller entered: KPIs count the call there,
    with that queue's service level and short-abandon threshold. `already_counted`: the engine
    that ran before a restart counted this offer (no CallOffered, so no second count)."""
    call.offered_in = q.name
    call.service_level = q.service_level
    call.short_abandon = q.short_abandon
    if not already_counted:
        out.append(CallOffered(call.call_id, q.name))


def closed(state: State, call: Call, now: float, wall: float, out: list[Command], hops: int = 0) -> None:
    q = state.queues[call.queue]
    if q.when_closed is WhenClosed.OVERFLOW and q.overflow is not None:
        overflow(state, call, now, wall, out, hops + 1)
    else:
        plan_leave(state, call, LeaveReason.CLOSED)


def admit_again(state: State, call: Call, now: float, wall: float, out: list[Command]) -> None:
    """A caller never offered (closed hours) whom a snapshot shows waiting in the hold loop
    (the engine stopped before its send-out): the queue's rules apply again, as at a join."""
    q = state.queues[call.queue]
    if rules.admission(state, q, wall) is Admission.CLOSED:
        closed(state, call, now, wall, out)
    else:
        offer(call, q, out)


def overflow(state: State, call: Call, now: float, wall: float, out: list[Command], hops: int = 1) -> None:
    """Apply the queue's overflow rule: another queue (keeping the arrival), or out of line."""
    rule = state.queues[call.queue].overflow
    if rule is None:
        plan_leave(state, call, LeaveReason.OVERFLOW)
        return
    match rule.to:
        case OverflowTo.QUEUE:
            if rule.target in state.queues and rule.target != call.queue and hops <= len(state.queues):
                enter_queue(state, call, rule.target, now, wall, out, hops=hops)
            else:
                plan_leave(state, call, LeaveReason.OVERFLOW)
        case OverflowTo.NUMBER:
            plan_leave(state, call, LeaveReason.FORWARD, number=rule.target)
        case OverflowTo.CALLBACK:
            plan_leave(state, call, LeaveReason.CALLBACK)
        case OverflowTo.MESSAGE:
            plan_leave(state, call, LeaveReason.OVERFLOW)


# -- leaving the line -------------------------------------------------------------------


def plan_leave(state: State, call: Call, reason: LeaveReason, number: str = "") -> None:
    """Decide that the caller leaves the line; the Redirect is sent when it is due and the
    engine is routing (`send_out`), so a decision taken during a blip is never lost."""
    call.leave_reason = reason
    call.forward_to = number
    state.unplace(call)
    state.touch(call)


def send_out(state: State, call: Call, now: float, out: list[Command]) -> None:
    reason = call.leave_reason
    if reason is None or not step(state, call, CallTrigger.LEAVE, now, out):
        return
    out.append(SendOut(call.call_id, call.channel, reason, call.forward_to))


def leave_failed(state: State, call: Call, sure: bool, now: float, out: list[Command]) -> None:
    if not sure:
        if step(state, call, CallTrigger.UNSURE, now, out):
            call.confirming_leave = True
            ask_where(call, out)
        return
    if step(state, call, CallTrigger.LEAVE_FAILED, now, out):
        # Still leaving: sent again after a back-off, never in a tight loop.
        call.failures += 1
        call.retry_after = now + _retry_delay(call.failures)
        state.unplace(call)


# -- ringing ------------------------------------------------------------------------------


def ring(state: State, a: Assignment, now: float, out: list[Command]) -> None:
    call = a.call
    if not step(state, call, CallTrigger.RING, now, out):
        return
    # A callback is one Originate to one agent: ring_all's others stay free for the next caller.
    everyone = (a.agent,) if call.callback is not None else (a.agent, *a.also)
    call.agent_id = a.agent.agent_id
    call.ringing = frozenset(x.agent_id for x in everyone)
    call.attempt += 1
    call.confirming_leave = False
    for agent in everyone:
        state.seq += 1
        agent.last_offered = state.seq
        agent_step(state, agent, ActivityTrigger.RESERVE, now, out, call.call_id)
    q = state.queues[call.queue]
    call.ring_for = q.ring_timeout
    out.append(RingAgent(call.call_id, call.channel, a.agent.agent_id, q.ring_timeout, call.attempt,
                         tuple(x.agent_id for x in everyone[1:]), callback=call.callback))


def release(state: State, call: Call, now: float, out: list[Command], keep: str | None = None) -> None:
    """Free every agent this call's ring had reserved (but `keep`)."""
    for agent_id in sorted(call.ringing | ({call.agent_id} if call.agent_id else set())):
        agent = state.agents.get(agent_id)
        if agent_id != keep and agent is not None and agent.call_id == call.call_id \
                and agent.activity is Activity.RINGING:
            agent_step(state, agent, ActivityTrigger.RELEASE, now, out)
    call.ringing = frozenset()


def ring_failed(state: State, call: Call, attempt: int, sure: bool, now: float, out: list[Command]) -> None:
    if attempt != call.attempt or call.state is not CallState.REDIRECTING:
        out.append(Unexpected("call", call.state.value, "ring_failed_stale", call.call_id))
        return
    if not sure:
        # The Redirect may have happened after all: never ring again before knowing.
        if step(state, call, CallTrigger.UNSURE, now, out):
            ask_where(call, out)
        return
    if step(state, call, CallTrigger.RING_FAILED, now, out):
        # Asterisk refused to move the caller (who is still in the hold loop). Try
        # somebody else first, and this caller again only after a growing back-off.
        call.tried = call.tried | call.ringing
        call.failures += 1
        call.retry_after = now + _retry_delay(call.failures)
        release(state, call, now, out)
        call.agent_id = None


def ring_over(state: State, call: Call, trigger: CallTrigger, now: float, out: list[Command],
              at_fault: frozenset[str] = frozenset()) -> None:
    """The ring ended without an answer: the caller walks back to the hold loop."""
    if not step(state, call, trigger, now, out):
        return
    call.tried = call.tried | at_fault
    release(state, call, now, out)
    call.agent_id = None
    call.walk_back_due = now + PARK_GRACE


def back_in_line(state: State, call: Call, trigger: CallTrigger, now: float, wall: float,
                 out: list[Command]) -> None:
    """The caller is in the hold loop again (a time-out or overflow that fell due while
    they were ringing is applied by the deadline that is now due). A `when_empty:
    overflow` queue whose last agent left while this caller rang moves them on now."""
    if step(state, call, trigger, now, out):
        call.agent_id = None
        release(state, call, now, out)
        q = state.queues[call.queue]
        if (q.when_empty is WhenEmpty.OVERFLOW and state.routing and call.leave_reason is None
                and not rules.staffed(state, call.queue)):
            overflow(state, call, now, wall, out)


def agent_missed(state: State, agent: Agent, call: Call, status: str, now: float, out: list[Command]) -> None:
    """Ring-no-answer N times in a row (N of the queue that rang) pauses the agent; a busy
    or refusing phone backs them off."""
    q = state.queues[call.queue]
    watch = AgentWatch(agent)
    if status in BUSY_STATUSES:
        agent.backoff_until = now + q.busy_backoff
        agent.backoff_reason = status
    elif status in NO_ANSWER_STATUSES or status == "TIMEOUT":
        agent.no_answer_streak += 1
        if agent.no_answer_streak >= q.max_no_answer and agent.presence is Presence.READY:
            agent.presence = Presence.PAUSED
            agent.pause_reason = "no answer"
    watch.done(state, now, out)


# -- answered and finished ------------------------------------------------------------------


def connect(state: State, call: Call, agent_id: str, now: float, wall: float, out: list[Command],
            fallback: bool = False) -> None:
    if not step(state, call, CallTrigger.ANSWER, now, out):
        return
    release(state, call, now, out, keep=agent_id)
    call.agent_id = agent_id
    call.answered = now
    call.served_by_fallback = call.served_by_fallback or fallback
    agent = state.agents.get(agent_id)
    if agent is not None:
        agent.no_answer_streak = 0
        agent.calls_taken += 1
        if agent.call_id in (None, call.call_id) or agent.activity is not Activity.ON_CALL:
            agent_step(state, agent, ActivityTrigger.ANSWER, now, out, call.call_id)
    answered(state, call, now, out)


def answered(state: State, call: Call, now: float, out: list[Command]) -> None:
    """Count the answer, in the offered queue, once per call: an answer the counters have
    already (`answer_counted`: an adopted call answered before this process began counting)
    is reported uncounted. A caller answered without having been offered (the dialplan's
    fallback rang agents for a caller who met closed hours while the engine could not see) is
    offered at the answer: no queue answers more than it offers."""
    already = call.answer_counted
    call.answer_counted = True
    if call.offered_in is None:
        offer(call, state.queues[call.queue], out, already_counted=already)
    # The record keeps the wait to the millisecond: the counter judges that same figure.
    out.append(CallAnswered(call.call_id, call.offered_queue, call.agent_id or "", round(call.waited(now), 3),
                            call.service_level, call.queue, counted=not already))


def finish(state: State, call: Call, now: float, wall: float, out: list[Command],
           source: RecordSource = "live") -> None:
    """The caller's channel is gone: write the record first, then forget the call."""
    talking = call.state is CallState.CONNECTED
    connected = talking or call.state is CallState.AFTER_TALK
    talk_end = call.talk_ended if call.talk_ended is not None else now
    talk = max(0.0, talk_end - call.answered) if connected and call.answered is not None else 0.0
    # The send-out's reply was lost and the caller hung up before Asterisk said where they
    # were: most likely they heard the message. A guess, so marked as one (`resync`), and
    # Asterisk's account, which knows, replaces it when it is read.
    unsure_leave = call.state is CallState.CONFIRMING and call.confirming_leave
    if unsure_leave and source == "live":
        source = "resync"
    if connected:
        outcome = Outcome.ANSWERED
    elif (call.state is CallState.LEAVING or unsure_leave) and call.leave_reason is not None:
        outcome = call.leave_reason.outcome
        if outcome is Outcome.CLOSED and call.offered_in is not None:
            # Offered in an open queue, then moved into a closed one: offered and not
            # answered (`closed` is for callers who never reached an open queue).
            outcome = Outcome.OVERFLOW
    else:
        outcome = Outcome.ABANDONED
    if not connected and call.offered_in is None:
        # Closed hours in every queue the caller entered: never offered, wherever the
        # closed rule sent them (the message, a duty number, a callback).
        outcome = Outcome.CLOSED
    out.append(CallRecord(
        call_id=call.call_id,
        queue=call.queue,
        caller_num=call.caller_num,
        caller_name=call.caller_name,
        # The wall clock labels the arrival; the other times follow from it by the
        # monotonic durations, so a clock step during the call cannot put them out of order.
        arrived=call.arrived_wall,
        answered=call.arrived_wall + (call.answered - call.arrived) if connected and call.answered is not None
        else None,
        ended=call.arrived_wall + max(0.0, now - call.arrived),
        agent_id=call.agent_id if connected else None,
        outcome=outcome,
        wait_seconds=round(call.waited(now), 3),
        talk_seconds=round(talk, 3),
        recording=call.recording,
        restricted=call.restricted,
        offered_queue=call.offered_queue,
        path=call.path,
        priority=call.priority,
        service_level=call.service_level,
        short_abandon=call.short_abandon,
        served_by="fallback" if call.served_by_fallback else "engine",
        source=source,
        surveyed=call.surveyed,
        rating=call.rating if call.surveyed else None,
        parties=closed_parties(call.parties, call.arrived_wall + max(0.0, now - call.arrived)),
    ))
    state.unplace(call)
    del state.calls[call.call_id]
    state.dirty_calls.discard(call.call_id)
    state.deadlines.set(("call", call.call_id), None)
    agent = state.agents.get(call.agent_id) if call.agent_id else None
    if connected:
        if call.caller_num and call.agent_id:
            rules.remember_answer(state, call.caller_num, call.agent_id, wall)
        if talking and agent is not None:
            _talk_over(state, agent, call, talk, now, out)
    else:
        release(state, call, now, out)


def _talk_over(state: State, agent: Agent, call: Call, talk: float, now: float, out: list[Command]) -> None:
    """The agent's conversation with this caller is over: wrap-up starts."""
    if agent.call_id == call.call_id and agent.activity is Activity.ON_CALL:
        agent.talk_total += talk
        q = state.queues.get(call.queue) or state.default_queue
        agent.wrap_until = now + (agent.wrapup if agent.wrapup is not None else q.wrapup)
        agent_step(state, agent, ActivityTrigger.HANG_UP, now, out)


def agent_left(state: State, call: Call, agent_id: str, now: float, out: list[Command]) -> None:
    """The answering agent hung up first. The caller stays on the line (the satisfaction
    survey): the talk ends now, and the agent is free for wrap-up and the next caller
    without waiting for the caller's own hang-up. Other agents' legs (ring_all's losers,
    an earlier ring) ending are no news."""
    if call.state is not CallState.CONNECTED or call.agent_id != agent_id:
        return
    step(state, call, CallTrigger.AGENT_LEFT, now, out)
    call.talk_ended = now
    agent = state.agents.get(agent_id)
    if agent is not None and call.answered is not None:
        _talk_over(state, agent, call, max(0.0, now - call.answered), now, out)


def closed_parties(parties: tuple[tuple[float, str, str, str], ...],
                   ended: float) -> tuple[tuple[float, str, str, str], ...]:
    """The call's conference history as its record keeps it: every party still on the line (or
    still ringing) when the call ended gets its ending, at the call's end, so that the record
    never shows someone joined and never gone (their own hang-up is reported after the record)."""
    last: dict[str, str] = {}
    for _, kind, party, _ in parties:
        last[party] = kind
    open_ = [(party, kind) for party, kind in last.items() if kind in ("dialing", "joined")]
    return parties + tuple((ended, "failed" if kind == "dialing" else "left", party, "call_ended")
                           for party, kind in open_)
