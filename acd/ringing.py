"""What Asterisk says about a ring (Dial events, the answer to a probe) and what the
core does when a call's deadline comes."""

from __future__ import annotations

from acd import announce, callbacks, rules
from acd.agents import Activity, ActivityTrigger
from acd.calls import PENDING_RING, Call, CallState, CallTrigger
from acd.commands import Command, Unexpected
from acd.events import DialEnded, DialStarted, Probed, Where
from acd.lifecycle import (
    agent_missed,
    agent_step,
    ask_where,
    back_in_line,
    connect,
    finish,
    overflow,
    plan_leave,
    ring_over,
    send_out,
    step,
)
from acd.model import LeaveReason
from acd.state import State


def dial_started(state: State, ev: DialStarted, now: float, out: list[Command]) -> None:
    call = state.calls.get(ev.call_id)
    if call is None:
        out.append(Unexpected("call", "unknown", "dial_begin", ev.call_id))
        return
    if ev.attempt is None:
        # A Dial we did not ask for: the dialplan's fallback rings every agent.
        if call.state is not CallState.FALLBACK and not step(state, call, CallTrigger.FALLBACK_DIAL, now, out):
            return
        call.ringing = call.ringing | {ev.agent_id}
        call.served_by_fallback = True
        return
    if ev.attempt != call.attempt or ev.attempt == call.dial_ended:
        # An older ring's, or one whose DialEnd overtook it: that ring is over.
        out.append(Unexpected("call", call.state.value, "dial_begin_stale", call.call_id))
        return
    if call.state is not CallState.DIALING and not step(state, call, CallTrigger.DIAL_BEGIN, now, out):
        return
    if ev.agent_id not in call.ringing:
        # A ring only assumed over (its deadline, or a snapshot between Redirect and Dial)
        # is on after all: its agent is rung again, whom the assumption had released.
        call.ringing = call.ringing | {ev.agent_id}
        call.agent_id = call.agent_id or ev.agent_id
        agent = state.agents.get(ev.agent_id)
        if agent is not None and agent.activity is Activity.IDLE:
            agent_step(state, agent, ActivityTrigger.RESERVE, now, out, call.call_id)


def dial_ended(state: State, ev: DialEnded, now: float, wall: float, out: list[Command]) -> None:
    call = state.calls.get(ev.call_id)
    if call is None:
        return  # the caller hung up first: Asterisk ends the Dial after the hang-up
    if ev.status == "ANSWER":
        if call.state is CallState.AFTER_TALK:
            return  # the agent's pick-up was taken from its channel, and they have hung up since
        if call.state is CallState.CONNECTED:
            if ev.agent_id != call.agent_id:
                out.append(Unexpected("call", call.state.value, "second_answer", call.call_id))
            return
        if ev.attempt is not None and ev.attempt != call.attempt:
            # An older ring was answered after all. Asterisk has the caller talking to that
            # agent: that is the truth the record must tell.
            out.append(Unexpected("call", call.state.value, "answer_stale_attempt", call.call_id))
        connect(state, call, ev.agent_id, now, wall, out, fallback=ev.attempt is None)
        return
    if ev.attempt is None:
        if call.state is CallState.FALLBACK:
            call.ringing = call.ringing - {ev.agent_id}
            if not call.ringing:
                ring_over(state, call, CallTrigger.DIAL_END, now, out)
        return
    if ev.attempt != call.attempt or call.state not in PENDING_RING or ev.agent_id not in call.ringing:
        if not (call.state is CallState.CONNECTED and ev.status == "CANCEL"):  # ring_all's other phones
            out.append(Unexpected("call", call.state.value, "dial_end_stale", call.call_id))
        return
    agent = state.agents.get(ev.agent_id)
    if agent is not None and ev.status != "CANCEL":
        agent_missed(state, agent, call, ev.status, now, out)
    if len(call.ringing) > 1:
        # ring_all: this phone gave up, the others still ring.
        call.ringing = call.ringing - {ev.agent_id}
        call.tried = call.tried | {ev.agent_id}
        if agent is not None and agent.call_id == call.call_id:
            agent_step(state, agent, ActivityTrigger.RELEASE, now, out)
        if call.agent_id == ev.agent_id:
            call.agent_id = min(call.ringing)
        return
    at_fault = frozenset() if ev.status == "CANCEL" else frozenset({ev.agent_id})
    call.dial_ended = call.attempt
    ring_over(state, call, CallTrigger.DIAL_END, now, out, at_fault)


def probed(state: State, ev: Probed, now: float, wall: float, out: list[Command]) -> None:
    call = state.calls.get(ev.call_id)
    if call is None:
        return
    if call.state is not CallState.CONFIRMING:
        out.append(Unexpected("call", call.state.value, "probed", call.call_id))
        return
    if ev.probe is not None and ev.probe != call.probe:
        out.append(Unexpected("call", call.state.value, "probed_stale", call.call_id))
        return
    if ev.where is None:
        # Asterisk has no such channel: the caller has gone and its Hangup was lost (or is
        # still on its way, and will find nothing). The record is written now (a send-out
        # of unknown fate ends as its planned leave, as when the Hangup comes first); the
        # shell prefers Asterisk's own account of the call when it has one.
        finish(state, call, now, wall, out, source="resync")
        return
    leaving = call.confirming_leave
    call.confirming_leave = False
    match ev.where:
        case Where.HOLD:
            # The Redirect never happened: back in line (a planned leave is sent again).
            back_in_line(state, call, CallTrigger.PROBED_IN_LINE, now, wall, out)
        case Where.CONNECT if not leaving:
            step(state, call, CallTrigger.PROBED_DIALING, now, out)
        case Where.FALLBACK:
            step(state, call, CallTrigger.FALLBACK_DIAL, now, out)
        case Where.LEAVING if leaving:
            step(state, call, CallTrigger.PROBED_LEAVING, now, out)
        case _:
            out.append(Unexpected("call", call.state.value, f"probed_{ev.where.value}", call.call_id))
            call.confirming_leave = leaving
            call.since = now
            state.touch(call)


def call_due(state: State, call: Call, now: float, wall: float, out: list[Command]) -> None:
    """The call's deadline (acd/deadlines.py `call_due`) has come: do what its state says."""
    if call.callback is not None:
        callbacks.due(state, call, now, out)
        return
    q = state.queues[call.queue]
    match call.state:
        case CallState.IN_LINE:
            if call.leave_reason is None:
                if rules.timed_out(q, call, now):
                    plan_leave(state, call, LeaveReason.TIMEOUT)
                elif rules.overflow_due(q, call, now):
                    overflow(state, call, now, wall, out)
                else:
                    announce.check(state, call, q, now)
            if call.leave_reason is not None and call.state is CallState.IN_LINE and now >= call.retry_after:
                send_out(state, call, now, out)
            state.touch(call)  # widening, stickiness or a back-off moved on: the route looks again
        case CallState.REDIRECTING | CallState.CONFIRMING:
            # No DialBegin in time (or no answer to the probe): ask Asterisk where the caller
            # is instead of ringing again blindly, which could pull them out of a ring.
            if step(state, call, CallTrigger.UNSURE, now, out):
                call.since = now
                ask_where(call, out)
        case CallState.DIALING:
            q_ringing = frozenset(call.ringing)
            for agent_id in sorted(q_ringing):
                agent = state.agents.get(agent_id)
                if agent is not None:
                    agent_missed(state, agent, call, "TIMEOUT", now, out)
            ring_over(state, call, CallTrigger.RING_DUE, now, out, q_ringing)
        case CallState.WALKING_BACK:
            back_in_line(state, call, CallTrigger.PARK_DUE, now, wall, out)
        case CallState.FALLBACK | CallState.CONNECTED | CallState.AFTER_TALK | CallState.LEAVING:
            state.touch(call)
