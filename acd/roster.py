"""Agents: their phones, their own requests, the roster and queues from configuration."""

from __future__ import annotations

from acd import rules
from acd.agents import PRESENCE_TRANSITIONS, REFUSALS, Activity, ActivityTrigger, Agent, Control
from acd.commands import Command, ControlDone, TagCaller
from acd.events import AgentControl, AgentsConfigured, DeviceChanged, FeatureCallEnded, PhoneReach, QueuesConfigured
from acd.lifecycle import agent_step, overflow
from acd.line import Line
from acd.model import WhenEmpty
from acd.state import AgentWatch, State, relabel


def device(state: State, ev: DeviceChanged, now: float, out: list[Command]) -> None:
    agent = state.agents.get(ev.agent_id)
    if agent is None:
        # A phone we have no configuration for: remember it, never route to it.
        agent = state.agents[ev.agent_id] = Agent(ev.agent_id, configured=False, queues=frozenset())
    watch = AgentWatch(agent)
    agent.registered = ev.registered
    agent.device_busy = ev.busy
    watch.done(state, now, out)


def phone_reach(state: State, ev: PhoneReach, now: float, out: list[Command]) -> None:
    """A phone that stopped answering OPTIONS leaves routing now, not when its registration
    expires; it comes back when it answers (or registers) again."""
    agent = state.agents.get(ev.agent_id)
    if agent is None:
        return  # a phone with no agent: its device state alone is remembered
    watch = AgentWatch(agent)
    agent.unreachable = not ev.reachable
    watch.done(state, now, out)


def feature_call_ended(state: State, ev: FeatureCallEnded, now: float, out: list[Command]) -> None:
    agent = state.agents.get(ev.agent_id)
    if agent is None or not agent.feature_call:
        return
    watch = AgentWatch(agent)
    agent.feature_call = False
    # Asterisk's "not in use" for the phone comes a moment after the hang-up: without this the
    # agent would look busy with another call for that moment. A phone busy before the code
    # (dialled on a second line) stays busy.
    agent.device_busy = agent.busy_before_feature
    agent.busy_before_feature = False
    watch.done(state, now, out)


def control(state: State, ev: AgentControl, now: float, out: list[Command]) -> None:
    agent = state.agents.get(ev.agent_id)
    if agent is not None and ev.by_phone and not agent.feature_call:
        watch = AgentWatch(agent)
        agent.feature_call = True  # the phone is busy with this code, not with a caller...
        agent.busy_before_feature = agent.device_busy  # ...unless it was busy before (a second line)
        watch.done(state, now, out)
    if agent is None or not agent.configured:
        out.append(ControlDone(ev.agent_id, ev.action, False, "no such agent in agents.yaml"))
        return
    if ev.action is Control.END_WRAPUP:
        if agent.activity is not Activity.WRAP_UP:
            out.append(ControlDone(ev.agent_id, ev.action, False, f"not in wrap-up (now {agent.activity.value})"))
            return
        agent_step(state, agent, ActivityTrigger.END_WRAPUP, now, out)
        out.append(ControlDone(ev.agent_id, ev.action, True))
        return
    nxt = PRESENCE_TRANSITIONS.get((agent.presence, ev.action))
    if nxt is None:
        reason = REFUSALS.get((agent.presence, ev.action), f"not allowed while {agent.presence.value}")
        out.append(ControlDone(ev.agent_id, ev.action, False, reason))
        return
    watch = AgentWatch(agent)
    agent.presence = nxt
    if ev.action is Control.PAUSE:
        agent.pause_reason = ev.reason or "break"
    elif ev.action in (Control.UNPAUSE, Control.LOGIN, Control.LOGOUT):
        agent.pause_reason = None
    if ev.action in (Control.UNPAUSE, Control.LOGIN):
        agent.no_answer_streak = 0
    watch.done(state, now, out)
    out.append(ControlDone(ev.agent_id, ev.action, True))


def configure_agents(state: State, ev: AgentsConfigured, now: float, out: list[Command]) -> None:
    profiles = {p.agent_id: p for p in ev.profiles}
    every_queue = frozenset(state.queues)
    for agent_id in sorted(ev.agent_ids):
        if agent_id not in state.agents:
            state.agents[agent_id] = Agent(agent_id, idle_since=now)
    for agent in state.agents.values():
        watch = AgentWatch(agent)
        agent.configured = agent.agent_id in ev.agent_ids
        profile = profiles.get(agent.agent_id)
        if profile is not None:
            agent.queues = profile.queues
            agent.skills = dict(profile.skills)
            agent.wrapup = profile.wrapup
        elif agent.configured:
            agent.queues = every_queue
        watch.done(state, now, out)


def configure_queues(state: State, ev: QueuesConfigured, out: list[Command]) -> None:
    """New queue settings apply to the next decision: every caller keeps their place in
    line and is re-timed against the new settings (their deadlines are derived from them)."""
    if ev.calendar is not None:
        state.calendar = ev.calendar
    if not ev.queues:
        return
    state.queues = {q.name: q for q in ev.queues}
    state.reindex()
    fallback = state.default_queue.name
    for call in state.calls.values():
        if call.queue not in state.queues:
            # Its queue was removed: the caller goes to the first queue, keeping their arrival.
            call.queue = fallback
            call.path = (*call.path, fallback)
            call.key = rules.line_key(state.queues[fallback], call.arrived, call.priority)
            if call.callback is None:  # a callback has no channel to tag
                out.append(TagCaller(call.call_id, call.channel, fallback, call.offered_queue, call.path))
        # The place in line (`key`) was given on entering the queue and survives a reload
        # (README): a changed priority_step or max_boost applies to callers who join later.
        call.skills = rules.needed_skills(state.queues[call.queue], call.extra_skills)
        state.touch(call)
    state.lines = {}
    for call in state.calls.values():
        state.place(call)
    for agent in state.agents.values():
        state.dirty_agents.add(agent.agent_id)


def wrapup_due(state: State, agent: Agent, now: float, out: list[Command]) -> None:
    if agent.activity is Activity.WRAP_UP and now >= agent.wrap_until:
        agent_step(state, agent, ActivityTrigger.WRAPUP_DUE, now, out)
    else:
        state.dirty_agents.add(agent.agent_id)  # a back-off ended: the route below looks again
        relabel(agent, now, out)


def leave_empty_queues(state: State, now: float, wall: float, out: list[Command]) -> None:
    """When the last agent of a `when_empty: overflow` queue logs out or unregisters, the
    callers waiting in it move on (app_queue's leavewhenempty). Not while routing is off:
    the phones are not known until the resync's devices half; it judges them then."""
    if not state.routing:
        return
    for q in list(state.queues.values()):
        line: Line | None = state.lines.get(q.name)
        if q.when_empty is not WhenEmpty.OVERFLOW or not line or rules.staffed(state, q.name):
            continue
        for _, _, call_id in list(line):
            call = state.calls[call_id]
            if call.callback is None:  # a callback waits for the agents to come back: nobody is on hold
                overflow(state, call, now, wall, out)
