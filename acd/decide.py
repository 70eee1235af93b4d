"""`decide(state, event, now)`: the whole routing policy, with no I/O and no clock.

`decide` updates the `State` it is given in place and returns it with the commands the
shell must carry out. After every event, whatever fell due is handled (`settle`), then
free agents are matched with waiting callers (`acd.match`), and the deadlines of
everything that changed are recomputed; the shell arms one wake-up at `next_deadline`.

`now` is the engine's monotonic clock, used for every rule and deadline; `wall` is the
wall clock (seconds since the epoch), used only for what people read: the times in the
call record, opening hours and holidays, and sticky-agent history. Tests may pass one
clock for both.

Which module holds what:
  calls.py, agents.py   the two state machines, as tables
  lifecycle.py          join, ring, answer, ring over, leave, finish
  ringing.py            Asterisk's Dial events, probes, and what a due deadline does
  callbacks.py          callbacks (virtual hold): a place in line with no channel, an Originate
  roster.py             phones, agents' requests, configuration (reload)
  resync.py             rebuilding from Asterisk's snapshot
  rules.py, match.py    the queue rules and who gets whom
  deadlines.py          deadlines derived from state (no timers to cancel)
"""

from __future__ import annotations

from typing import assert_never

from acd import announce, callbacks, lifecycle, resync, ringing, roster, rules, saved
from acd.agents import Control
from acd.calls import CallTrigger
from acd.commands import Command, Unexpected
from acd.deadlines import agent_due, call_due
from acd.events import (
    AgentControl,
    AgentHungUp,
    AgentsConfigured,
    AgentsRestored,
    CallbackAgentAnswered,
    CallbackAgentMissed,
    CallbackCancelled,
    CallbackDialed,
    CallbackQueued,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    DialEnded,
    DialStarted,
    Event,
    FeatureCallEnded,
    History,
    LeaveFailed,
    LinkLost,
    PartyNoted,
    PhoneReach,
    Probed,
    QueuesConfigured,
    RecordingStarted,
    RingFailed,
    SurveyRated,
    SurveyStarted,
    Tick,
)
from acd.match import assignments
from acd.state import State

Result = tuple[State, list[Command]]

# A due deadline is handled, which may make another one due at once (an overflow that
# leaves the line); a few rounds always settle. More would mean a rule that never makes
# progress: such a deadline is pushed a second on and reported, never spun on.
SETTLE_ROUNDS = 8
# A call's conference history is kept whole up to this many steps (a runaway loop of joins
# must not grow a record without end); later steps are in the logs only.
MAX_PARTIES = 64
STUCK_DELAY = 1.0


class DecideError(Exception):
    """`decide` failed half-way. `commands` are those produced before the failure: the
    shell still writes the call records among them, so that no record is lost."""

    def __init__(self, commands: list[Command]) -> None:
        super().__init__("decide failed")
        self.commands = commands


def decide(state: State, event: Event, now: float, wall: float | None = None) -> Result:
    out: list[Command] = []
    w = now if wall is None else wall
    try:
        _handle(state, event, now, w, out)
        settle(state, now, w, out)
    except Exception as exc:
        raise DecideError(out) from exc
    return state, out


def _handle(state: State, event: Event, now: float, wall: float, out: list[Command]) -> None:
    match event:
        case CallerJoined():
            lifecycle.join(state, event, now, wall, out)
        case CallerParked():
            call = state.calls.get(event.call_id)
            if call is not None:
                lifecycle.back_in_line(state, call, CallTrigger.PARKED, now, wall, out)
        case CallerHungUp():
            call = state.calls.get(event.call_id)
            # Agent legs share the caller's Linkedid: only the caller's own hangup ends the call.
            if call is not None and call.channel == event.channel:
                lifecycle.finish(state, call, now, wall, out)
        case AgentHungUp():
            call = state.calls.get(event.call_id)
            if call is not None and call.callback is not None:
                callbacks.agent_hung_up(state, call, event.agent_id, now, wall, out)  # its agent's leg is the call
            elif call is not None:
                lifecycle.agent_left(state, call, event.agent_id, now, out)
        case SurveyStarted():
            call = state.calls.get(event.call_id)
            if call is not None:
                call.surveyed = True
        case SurveyRated():
            call = state.calls.get(event.call_id)
            if call is not None:
                call.surveyed = True
                call.rating = event.rating
        case PartyNoted():
            call = state.calls.get(event.call_id)
            if call is not None and len(call.parties) < MAX_PARTIES:
                call.parties += ((event.at, event.kind, event.party, event.detail),)
        case DialStarted():
            ringing.dial_started(state, event, now, out)
        case DialEnded():
            ringing.dial_ended(state, event, now, wall, out)
        case RingFailed():
            call = state.calls.get(event.call_id)
            if call is not None and call.callback is not None:
                callbacks.originate_failed(state, call, event.attempt, event.sure, now, out)
            elif call is not None:
                lifecycle.ring_failed(state, call, event.attempt, event.sure, now, out)
        case LeaveFailed():
            call = state.calls.get(event.call_id)
            if call is not None:
                lifecycle.leave_failed(state, call, event.sure, now, out)
        case Probed():
            ringing.probed(state, event, now, wall, out)
        case RecordingStarted():
            call = state.calls.get(event.call_id)
            if call is not None:
                call.recording = event.path
        case DeviceChanged():
            roster.device(state, event, now, out)
            if not event.registered:
                roster.leave_empty_queues(state, now, wall, out)
        case Tick():
            pass  # settle() below handles whatever is due
        case LinkLost():
            resync.link_lost(state)
        case ChannelsSnapshot():
            resync.channels(state, event, now, wall, out)
        case DevicesSnapshot():
            resync.devices(state, event, now, wall, out)
        case AgentsConfigured():
            roster.configure_agents(state, event, now, out)
            roster.leave_empty_queues(state, now, wall, out)
        case QueuesConfigured():
            roster.configure_queues(state, event, out)
        case AgentControl():
            roster.control(state, event, now, out)
            if event.action is Control.LOGOUT:
                roster.leave_empty_queues(state, now, wall, out)
        case FeatureCallEnded():
            roster.feature_call_ended(state, event, now, out)
        case PhoneReach():
            roster.phone_reach(state, event, now, out)
            if not event.reachable:
                roster.leave_empty_queues(state, now, wall, out)
        case AgentsRestored():
            saved.restore(state, event, now, wall, out)
        case History():
            for number, agent_id, ended in event.answered:
                rules.remember_answer(state, number, agent_id, ended)
        case CallbackQueued():
            callbacks.queued(state, event, now, wall, out)
        case CallbackAgentAnswered():
            callbacks.agent_answered(state, event, now, wall, out)
        case CallbackAgentMissed():
            callbacks.agent_missed_it(state, event, now, out)
        case CallbackDialed():
            callbacks.dialed(state, event)
        case CallbackCancelled():
            callbacks.cancelled(state, event.call_id)
        case _:
            assert_never(event)


def settle(state: State, now: float, wall: float, out: list[Command]) -> None:
    """Handle what is due, match free agents with callers, and refresh the deadlines."""
    for _ in range(SETTLE_ROUNDS):
        _refresh(state, now)
        due = state.deadlines.pop_due(now)
        if not due:
            break
        for kind, key in due:
            if kind == "call":
                call = state.calls.get(key)
                if call is not None:
                    ringing.call_due(state, call, now, wall, out)
            else:
                agent = state.agents.get(key)
                if agent is not None:
                    roster.wrapup_due(state, agent, now, out)
    for a in assignments(state, now):
        lifecycle.ring(state, a, now, out)
    if state.announce:
        announce.emit(state, now, out)
    _refresh(state, now, out)


def _refresh(state: State, now: float, out: list[Command] | None = None) -> None:
    """Recompute the deadline of every call and agent that changed."""
    deadlines = state.deadlines
    for call_id in state.dirty_calls:
        call = state.calls.get(call_id)
        at = call_due(call, state.queues[call.queue], state.routing, now) if call is not None else None
        if at is not None and at <= now and out is not None:
            out.append(Unexpected("call", call.state.value if call else "", "stuck_deadline", call_id))
            at = now + STUCK_DELAY
        deadlines.set(("call", call_id), at)
    state.dirty_calls.clear()
    for agent_id in state.dirty_agents:
        agent = state.agents.get(agent_id)
        deadlines.set(("agent", agent_id), agent_due(agent, now) if agent is not None else None)
    state.dirty_agents.clear()


def next_deadline(state: State) -> float | None:
    """When the shell must feed the next `Tick` (on the clock `decide` gets as `now`)."""
    return state.deadlines.next()

