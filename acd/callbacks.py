"""Callbacks (virtual hold, 回拨): a citizen who asked to be called back keeps their place in line.

A booked callback is fed to the core when its turn may come (`CallbackQueued`). It becomes a
`Call` with no channel of its own (`callback` is the request id), placed in its queue's line
by the citizen's original arrival and priority like any caller (the usual bounded priority
boost, nothing extra: a callback never jumps the line), and matched by acd/match.py like
any caller. Its booking was counted as offered (the booking call's record, outcome
callback), so a callback never emits CallOffered, CallAnswered or a CallRecord: what it
ends with is a `CallbackOutcome` for the request, which the shell stores.

    IN_LINE     --RING--> REDIRECTING      the shell Originates a call to one agent
    REDIRECTING --RING_FAILED--> IN_LINE   the agent missed it (Asterisk's Originate verdict,
                                           or none within the ring time and its grace):
                                           back at its place, counted against that agent
    REDIRECTING | IN_LINE --ANSWER--> CONNECTED   the agent answered (a verdict that comes
                                           after the ring was given up is still the truth);
                                           the dialplan plays the agent an intro and calls
                                           the citizen from the agent's phone (CallbackAttempt)
    CONNECTED   --the agent's leg hangs up--> CallbackOutcome; the agent goes to wrap-up

The agent's leg is the call: its channel's Uniqueid, and so the Linkedid of everything that
follows, is the call id, and Asterisk refuses a second channel with that id while one
lives, so two agents can never be calling the same citizen for the same attempt.

While it waits no time-out, overflow or closed-hours rule applies: the citizen is not on
the line. A resync keeps a waiting callback (Asterisk has no channel for it) and rebuilds
one whose agent's leg Asterisk shows (`snapshot`) or no longer shows (`not_seen`).
"""

from __future__ import annotations

from acd import rules
from acd.agents import Activity, ActivityTrigger, Agent
from acd.calls import Call, CallState, CallTrigger
from acd.commands import CallbackAttempt, CallbackOutcome, Command, Unexpected
from acd.events import CallbackAgentAnswered, CallbackAgentMissed, CallbackDialed, CallbackQueued, SnapshotCall
from acd.lifecycle import agent_missed, agent_step, release, ring_failed, step
from acd.state import AgentWatch, State

UNKNOWN = "UNKNOWN"  # the status of an attempt whose end the engine could not see
ANSWER = "ANSWER"


def queued(state: State, ev: CallbackQueued, now: float, wall: float, out: list[Command]) -> None:
    """The callback takes its place in line: the citizen's original arrival and priority."""
    if ev.call_id in state.calls:
        return  # fed again (a restarted scheduler, or a call the resync adopted): it has its place
    queue = ev.queue
    if queue not in state.queues:
        out.append(Unexpected("call", "callback", f"unknown_queue:{queue[:32]}", ev.call_id))
        queue = state.default_queue.name
    q = state.queues[queue]
    waited = max(0.0, ev.waited)
    arrived = now - waited
    call = Call(
        call_id=ev.call_id,
        channel="",
        queue=queue,
        arrived=arrived,
        arrived_wall=ev.arrived_wall or wall - waited,
        caller_num=ev.caller_num,
        restricted=ev.restricted,
        priority=ev.priority,
        extra_skills=ev.skills,
        path=(queue,),
        offered_in=queue,  # counted at the booking; nothing here offers it again
        service_level=q.service_level,
        short_abandon=q.short_abandon,
        since=now,
        queue_since=arrived,
        callback=ev.request_id,
    )
    _take_place(state, call, q.name)
    state.calls[call.call_id] = call
    state.touch(call)
    state.place(call)


def _take_place(state: State, call: Call, queue: str) -> None:
    q = state.queues[queue]
    state.seq += 1
    call.seq = state.seq
    call.skills = rules.needed_skills(q, call.extra_skills)
    call.key = rules.line_key(q, call.arrived, call.priority)


def agent_answered(state: State, ev: CallbackAgentAnswered, now: float, wall: float, out: list[Command]) -> None:
    """The agent took the callback: the dialplan calls the citizen now."""
    call = state.calls.get(ev.call_id)
    if call is None or call.callback is None:
        return  # a callback the engine does not hold: a resync adopts its leg if it still lives
    if call.state is CallState.CONNECTED:
        if call.agent_id != ev.agent_id:
            out.append(Unexpected("call", call.state.value, "second_answer", call.call_id))
        return
    if call.state is CallState.REDIRECTING and call.agent_id != ev.agent_id:
        # An earlier ring, given up by its deadline, was answered after all: Asterisk has
        # that agent calling the citizen, which is what counts.
        out.append(Unexpected("call", call.state.value, "answer_stale_attempt", call.call_id))
    if not step(state, call, CallTrigger.ANSWER, now, out):
        return
    _connect(state, call, ev.agent_id, now, now, out)
    if call.callback_gone == ev.agent_id:
        # Its leg hung up before Asterisk's verdict reached us: the attempt is over already.
        end(state, call, now, wall, out)


def _connect(state: State, call: Call, agent_id: str, now: float, answered: float, out: list[Command]) -> None:
    release(state, call, now, out, keep=agent_id)
    call.agent_id = agent_id
    call.answered = answered
    agent = state.agents.get(agent_id)
    if agent is not None:
        agent.no_answer_streak = 0
        agent.calls_taken += 1
        if agent.call_id in (None, call.call_id) or agent.activity is not Activity.ON_CALL:
            agent_step(state, agent, ActivityTrigger.ANSWER, now, out, call.call_id)
    assert call.callback is not None
    out.append(CallbackAttempt(call.callback, call.call_id, agent_id))


def agent_missed_it(state: State, ev: CallbackAgentMissed, now: float, out: list[Command]) -> None:
    """The agent did not take the callback: it goes back to its place, another agent next."""
    call = state.calls.get(ev.call_id)
    if call is None or call.callback is None:
        return
    if call.state is not CallState.REDIRECTING or call.agent_id != ev.agent_id:
        out.append(Unexpected("call", call.state.value, "callback_miss_stale", call.call_id))
        return
    agent = state.agents.get(ev.agent_id)
    blame = ev.status != "CANCEL"
    if agent is not None and blame:
        agent_missed(state, agent, call, ev.status, now, out)
    _back_in_line(state, call, now, out, frozenset({ev.agent_id}) if blame else frozenset())


def _back_in_line(state: State, call: Call, now: float, out: list[Command], at_fault: frozenset[str]) -> None:
    if not step(state, call, CallTrigger.RING_FAILED, now, out):
        return
    call.tried = call.tried | at_fault
    release(state, call, now, out)
    call.agent_id = None
    call.callback_gone = None


def originate_failed(state: State, call: Call, attempt: int, sure: bool, now: float, out: list[Command]) -> None:
    """The Originate action itself failed. Refused: the agent was never rung, the callback
    is tried again after a back-off (acd.lifecycle.ring_failed). Unanswered (a time-out, the
    link dropped): it may be ringing all the same, so its verdict, or the ring's deadline, or
    the resync says."""
    if sure:
        ring_failed(state, call, attempt, True, now, out)


def dialed(state: State, ev: CallbackDialed) -> None:
    """How the call to the citizen went (raised as the agent's leg hangs up, before its Hangup)."""
    call = state.calls.get(ev.call_id)
    if call is None or call.callback is None:
        return
    call.callback_status = ev.status
    if ev.answered_at is not None:
        call.callback_answered = ev.answered_at


def agent_hung_up(state: State, call: Call, agent_id: str, now: float, wall: float, out: list[Command]) -> None:
    """An agent's leg of this callback hung up: the end of the attempt if it is the agent who
    answered. While the ring is on, a leg that hangs up is the ring ending: Asterisk's
    verdict follows (a miss, or an answer whose leg is gone already)."""
    if call.state is CallState.CONNECTED:
        if agent_id == call.agent_id:
            end(state, call, now, wall, out)
        return
    if call.state is CallState.REDIRECTING and agent_id == call.agent_id:
        call.callback_gone = agent_id


def end(state: State, call: Call, now: float, wall: float, out: list[Command], status: str | None = None) -> None:
    """The attempt is over: report its outcome, free the agent (wrap-up after a conversation)."""
    assert call.callback is not None
    talking = call.state is CallState.CONNECTED
    if status is None:
        status = call.callback_status if call.callback_status is not None else UNKNOWN
    answered_at: float | None = None
    talk = 0.0
    if status == ANSWER:
        answered_at = call.callback_answered
        if answered_at is None and call.answered is not None:
            answered_at = wall - (now - call.answered)  # no time from the dialplan: the agent's answer
        if answered_at is not None:
            talk = max(0.0, wall - answered_at)
    out.append(CallbackOutcome(call.callback, call.call_id, call.agent_id if talking else None, status, answered_at,
                               wall, round(talk, 3), call.recording))
    state.unplace(call)
    del state.calls[call.call_id]
    state.dirty_calls.discard(call.call_id)
    state.deadlines.set(("call", call.call_id), None)
    agent = state.agents.get(call.agent_id) if call.agent_id else None
    if talking and agent is not None:
        if agent.call_id == call.call_id and agent.activity is Activity.ON_CALL:
            agent.talk_total += talk
            q = state.queues.get(call.queue) or state.default_queue
            agent.wrap_until = now + (agent.wrapup if agent.wrapup is not None else q.wrapup)
            agent_step(state, agent, ActivityTrigger.HANG_UP, now, out)
    else:
        release(state, call, now, out)


def cancelled(state: State, call_id: str) -> None:
    """A cancelled request leaves the line; one already ringing an agent or talking runs on."""
    call = state.calls.get(call_id)
    if call is None or call.callback is None or call.state is not CallState.IN_LINE:
        return
    state.unplace(call)
    del state.calls[call_id]
    state.dirty_calls.discard(call_id)
    state.deadlines.set(("call", call_id), None)


def due(state: State, call: Call, now: float, out: list[Command]) -> None:
    """The callback's deadline (acd.deadlines.callback_due) has come."""
    if call.state is CallState.REDIRECTING:
        # No verdict within the ring time and its grace: the ring is given up. A verdict
        # that still comes is taken (an answer is the truth; a miss is then stale).
        agent = state.agents.get(call.agent_id) if call.agent_id else None
        if agent is not None:
            agent_missed(state, agent, call, "TIMEOUT", now, out)
        _back_in_line(state, call, now, out, frozenset({call.agent_id}) if call.agent_id else frozenset())
        return
    state.touch(call)  # widening, stickiness or a back-off moved on: the route looks again


# -- rebuilding from Asterisk's snapshot ------------------------------------------------------


def snapshot(state: State, snap: SnapshotCall, now: float, wall: float, out: list[Command]) -> None:
    """Asterisk shows a callback's agent leg: ringing the agent, or answered (the agent is
    calling or talking to the citizen). A restarted engine adopts it: its end then reports
    the attempt's outcome as if the engine had never stopped."""
    call = state.calls.get(snap.call_id)
    if call is None:
        call = _adopt(state, snap, now, wall)
    if call.callback is None or not snap.legs:
        return
    leg = snap.legs[0]
    if leg.bridged or snap.answered_by:
        if call.state is CallState.CONNECTED and call.agent_id == leg.agent_id:
            return
        if call.state is CallState.CONNECTED and call.agent_id is not None:
            previous = state.agents.get(call.agent_id)
            if previous is not None and previous.call_id == call.call_id:
                _busy_with(state, previous, None, Activity.IDLE, now, out)
        _force(state, call, CallState.CONNECTED, now)
        ago = snap.answered_ago if snap.answered_ago is not None else 0.0
        _connect(state, call, leg.agent_id, now, now - ago, out)
        return
    if call.state is CallState.REDIRECTING and call.agent_id == leg.agent_id:
        _force(state, call, CallState.REDIRECTING, now)  # its deadline starts again from now
        return
    release(state, call, now, out)
    _force(state, call, CallState.REDIRECTING, now)
    call.agent_id = leg.agent_id
    call.ringing = frozenset({leg.agent_id})
    call.ring_for = state.queues[call.queue].ring_timeout
    agent = state.agents.get(leg.agent_id)
    if agent is not None:
        _busy_with(state, agent, call, Activity.RINGING, now, out)


def not_seen(state: State, call: Call, now: float, wall: float, out: list[Command]) -> None:
    """A callback the snapshot does not show. Waiting in line, it never had a channel. Ringing
    an agent, that ring ended while the engine could not see it: back to its place, nobody
    blamed. Talking, the attempt ended unseen: its outcome is reported as far as it is known."""
    match call.state:
        case CallState.IN_LINE:
            state.touch(call)
            state.place(call)
        case CallState.REDIRECTING:
            release(state, call, now, out)
            call.agent_id = None
            call.callback_gone = None
            _force(state, call, CallState.IN_LINE, now)
        case _:
            end(state, call, now, wall, out)


def _adopt(state: State, snap: SnapshotCall, now: float, wall: float) -> Call:
    queue = snap.queue if snap.queue in state.queues else state.default_queue.name
    q = state.queues[queue]
    call = Call(
        call_id=snap.call_id,
        channel="",
        queue=queue,
        arrived=now - snap.age,
        arrived_wall=wall - snap.age,
        path=(queue,),
        offered_in=queue,
        service_level=q.service_level,
        short_abandon=q.short_abandon,
        since=now,
        queue_since=now - snap.age,
        adopted=True,
        callback=snap.callback,
    )
    _take_place(state, call, queue)
    state.calls[call.call_id] = call
    return call


def _force(state: State, call: Call, new: CallState, now: float) -> None:
    """The snapshot is the truth: no table (as acd/resync.py does for callers)."""
    state.unplace(call)
    call.state = new
    call.since = now
    state.touch(call)
    state.place(call)


def _busy_with(state: State, agent: Agent, call: Call | None, activity: Activity, now: float,
               out: list[Command]) -> None:
    watch = AgentWatch(agent)
    agent.activity = activity
    agent.call_id = call.call_id if call is not None and activity is not Activity.IDLE else None
    watch.done(state, now, out)
