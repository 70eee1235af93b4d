"""`decide(state, event, now)`: the whole routing policy, with no I/O and no clock.

`decide` updates the `State` it is given in place (one task owns it; copying a
picture of thousands of calls on every event would cost more than it proves)
and returns it together with the commands the shell must carry out.
"""

from __future__ import annotations

from acd.commands import (
    CallAnswered,
    CallOffered,
    CallRecord,
    Command,
    RingAgent,
    SendToTimeout,
    StartTimer,
)
from acd.events import (
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    DialStarted,
    Event,
    LinkLost,
    RecordingStarted,
    Resynced,
    RingFailed,
    SnapshotChannel,
    TimerFired,
    TimerKind,
)
from acd.model import Agent, AgentPhase, Call, CallPhase, Outcome, State
from acd.strategy import pick_agent

Result = tuple[State, list[Command]]


def decide(state: State, event: Event, now: float) -> Result:
    out: list[Command] = []
    match event:
        case CallerJoined():
            _join(state, event, now, out)
        case CallerHungUp():
            call = state.calls.get(event.call_id)
            # Agent legs share the caller's Linkedid: only the caller's own hangup ends the call.
            if call is not None and call.channel == event.channel:
                _finish(state, call, now, out)
        case CallerParked():
            call = state.calls.get(event.call_id)
            if call is not None and call.phase is CallPhase.WAITING:
                call.parked = True
                if now - call.arrived >= state.queue.max_wait:
                    _send_to_timeout(call, out)
        case DialStarted():
            call = state.calls.get(event.call_id)
            if call is not None and call.phase is CallPhase.RINGING and call.agent_id == event.agent_id:
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
            _device(state, event, now)
        case TimerFired():
            _timer(state, event, now, out)
        case LinkLost():
            state.routing = False
        case Resynced():
            _resync(state, event, now, out)
        case AgentsConfigured():
            _configure(state, event.agent_ids, now)
    _route(state, now, out)
    return state, out


def agent_state(agent: Agent) -> str:
    """The label supervisors see for an agent."""
    if agent.phase is not AgentPhase.IDLE:
        return str(agent.phase.value)
    if not agent.registered:
        return "logged_out"
    if agent.device_busy:
        return "busy_other"
    return "available"


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
    )
    state.calls[call.call_id] = call
    out.append(CallOffered(call.call_id, call.queue))
    out.append(StartTimer(TimerKind.MAX_WAIT, call.call_id, now + state.queue.max_wait))


def _set_phase(agent: Agent, phase: AgentPhase, now: float, call_id: str | None = None) -> None:
    was = agent.available()
    agent.phase = phase
    agent.call_id = call_id
    if not was and agent.available():
        agent.idle_since = now


def _finish(state: State, call: Call, now: float, out: list[Command]) -> None:
    del state.calls[call.call_id]
    agent = state.agents.get(call.agent_id) if call.agent_id else None
    wait = call.waited(now)
    talk = 0.0
    if call.phase is CallPhase.CONNECTED:
        outcome = Outcome.ANSWERED
        talk = max(0.0, now - (call.answered or now))
        if agent is not None and agent.call_id == call.call_id:
            agent.wrap_until = now + state.queue.wrapup
            _set_phase(agent, AgentPhase.WRAP_UP, now, None)
            out.append(StartTimer(TimerKind.WRAPUP, agent.agent_id, agent.wrap_until))
    else:
        if call.leaving:
            outcome = Outcome.TIMED_OUT
        elif wait < state.queue.short_abandon:
            outcome = Outcome.SHORT_ABANDON
        else:
            outcome = Outcome.ABANDONED
        if agent is not None and agent.call_id == call.call_id:
            _set_phase(agent, AgentPhase.IDLE, now)
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
    if call is None or call.phase is not CallPhase.RINGING or call.agent_id != agent_id:
        return  # a late answer to a ring we already gave up on
    if attempt is not None and attempt != call.attempt:
        return
    agent = state.agents.get(agent_id)
    if status == "ANSWER":
        call.phase = CallPhase.CONNECTED
        call.answered = now
        if agent is not None:
            _set_phase(agent, AgentPhase.ON_CALL, now, call.call_id)
        out.append(CallAnswered(call.call_id, call.queue, agent_id, call.waited(now)))
        return
    # After Asterisk's Dial returned, the dialplan walks the caller back to the hold loop
    # and raises HotlineParked when it is safe to Redirect again. A Redirect that failed
    # (attempt given) left the caller where it was, blocked in Wait().
    _ring_over(state, call, now, out, parked=attempt is not None)


def _ring_over(
    state: State, call: Call, now: float, out: list[Command], agent_at_fault: bool = True, parked: bool = True
) -> None:
    """The agent did not take the call: free them and put the caller back in line."""
    agent = state.agents.get(call.agent_id) if call.agent_id else None
    if agent is not None and agent.call_id == call.call_id:
        _set_phase(agent, AgentPhase.IDLE, now)
    if call.agent_id and agent_at_fault:
        call.tried = call.tried | {call.agent_id}
    call.phase = CallPhase.WAITING
    call.agent_id = None
    call.parked = parked
    if parked and now - call.arrived >= state.queue.max_wait:
        _send_to_timeout(call, out)


def _send_to_timeout(call: Call, out: list[Command]) -> None:
    if not call.leaving:
        call.leaving = True
        out.append(SendToTimeout(call.call_id, call.channel))


def _device(state: State, ev: DeviceChanged, now: float) -> None:
    agent = state.agents.get(ev.agent_id)
    if agent is None:
        # A phone we have no configuration for: remember it, never route to it.
        agent = state.agents[ev.agent_id] = Agent(ev.agent_id, configured=False)
    was = agent.available()
    agent.registered = ev.registered
    agent.device_busy = ev.busy
    if not was and agent.available():
        agent.idle_since = now


def _timer(state: State, ev: TimerFired, now: float, out: list[Command]) -> None:
    if ev.kind is TimerKind.RING:
        call = state.calls.get(ev.key)
        if call is not None and call.phase is CallPhase.RINGING and call.attempt == ev.attempt:
            _ring_over(state, call, now, out)
    elif ev.kind is TimerKind.DIAL_CONFIRM:
        call = state.calls.get(ev.key)
        if (call is not None and call.phase is CallPhase.RINGING and call.attempt == ev.attempt
                and not call.dialing):
            _ring_over(state, call, now, out, agent_at_fault=False)
    elif ev.kind is TimerKind.WRAPUP:
        agent = state.agents.get(ev.key)
        if agent is not None and agent.phase is AgentPhase.WRAP_UP and now >= agent.wrap_until:
            _set_phase(agent, AgentPhase.IDLE, now)
    elif ev.kind is TimerKind.MAX_WAIT:
        call = state.calls.get(ev.key)
        if call is not None and call.phase is CallPhase.WAITING and call.parked:
            _send_to_timeout(call, out)
        # A caller being rung (or walking back to the loop) keeps that chance; the
        # wait is checked again when the ring is over or the caller is parked.


def _configure(state: State, agent_ids: frozenset[str], now: float) -> None:
    for agent_id in agent_ids:
        if agent_id not in state.agents:
            state.agents[agent_id] = Agent(agent_id, idle_since=now)
    for agent in state.agents.values():
        was = agent.available()
        agent.configured = agent.agent_id in agent_ids
        if not was and agent.available():
            agent.idle_since = now


def _resync(state: State, ev: Resynced, now: float, out: list[Command]) -> None:
    for device in ev.devices:
        _device(state, device, now)
    seen = {c.call_id: c for c in ev.callers}
    for call in list(state.calls.values()):
        if call.call_id not in seen:
            # Ended while we could not see it: the record is still owed.
            _finish(state, call, now, out)
    for snap in ev.callers:
        known = state.calls.get(snap.call_id)
        call = known if known is not None else _adopt(state, snap, now, out)
        _reconcile(state, call, snap, now, out)
    state.routing = True


def _adopt(state: State, snap: SnapshotChannel, now: float, out: list[Command]) -> Call:
    call = Call(
        call_id=snap.call_id,
        channel=snap.channel,
        queue=snap.queue,
        arrived=now - snap.age,
        caller_num=snap.caller_num,
        caller_name=snap.caller_name,
    )
    state.calls[call.call_id] = call
    out.append(CallOffered(call.call_id, call.queue))
    out.append(StartTimer(TimerKind.MAX_WAIT, call.call_id, max(now, call.arrived + state.queue.max_wait)))
    return call


def _reconcile(state: State, call: Call, snap: SnapshotChannel, now: float, out: list[Command]) -> None:
    agent = state.agents.get(snap.agent_id) if snap.agent_id else None
    if snap.bridged and snap.agent_id:
        if call.phase is not CallPhase.CONNECTED:
            if call.phase is CallPhase.RINGING and call.agent_id not in (None, snap.agent_id):
                _ring_over(state, call, now, out)
            call.phase = CallPhase.CONNECTED
            call.agent_id = snap.agent_id
            call.answered = now  # answered while we were away; the nearest honest time
            out.append(CallAnswered(call.call_id, call.queue, snap.agent_id, call.waited(now)))
        if agent is not None:
            _set_phase(agent, AgentPhase.ON_CALL, now, call.call_id)
    elif snap.agent_id:
        if call.phase is CallPhase.RINGING and call.agent_id == snap.agent_id:
            return
        if call.phase is CallPhase.RINGING:
            _ring_over(state, call, now, out)
        call.phase = CallPhase.RINGING
        call.agent_id = snap.agent_id
        call.attempt += 1
        call.rung_at = now
        call.dialing = True  # the agent's leg exists
        if agent is not None:
            _set_phase(agent, AgentPhase.RINGING, now, call.call_id)
        deadline = now + state.queue.ring_timeout + state.queue.ring_grace
        out.append(StartTimer(TimerKind.RING, call.call_id, deadline, call.attempt))
    else:
        if call.phase is CallPhase.RINGING:
            _ring_over(state, call, now, out)
        call.parked = True  # in the hold loop now, whatever event was missed


def _route(state: State, now: float, out: list[Command]) -> None:
    if not state.routing:
        return
    free = [a for a in state.agents.values() if a.available()]
    if not free:
        return
    waiting = sorted(
        (c for c in state.calls.values() if c.phase is CallPhase.WAITING and c.parked and not c.leaving),
        key=lambda c: (c.arrived, c.call_id),
    )
    for call in waiting:
        if not free:
            break
        agent = pick_agent(free, call.tried)
        free.remove(agent)
        _ring(state, call, agent, now, out)


def _ring(state: State, call: Call, agent: Agent, now: float, out: list[Command]) -> None:
    call.phase = CallPhase.RINGING
    call.agent_id = agent.agent_id
    call.attempt += 1
    call.rung_at = now
    call.dialing = False
    _set_phase(agent, AgentPhase.RINGING, now, call.call_id)
    q = state.queue
    out.append(RingAgent(call.call_id, call.channel, agent.agent_id, q.ring_timeout, call.attempt))
    out.append(StartTimer(TimerKind.RING, call.call_id, now + q.ring_timeout + q.ring_grace, call.attempt))
    out.append(StartTimer(TimerKind.DIAL_CONFIRM, call.call_id, now + q.dial_confirm, call.attempt))
