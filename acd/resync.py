"""Rebuilding the picture from Asterisk's snapshot after the engine (re)connects.

The shell delivers each snapshot at its place in the AMI stream: every event before it
is older than it, so the snapshot is the truth about every caller it lists, and the
events after it are applied on top (the state machines ignore the stale ones by their
ring attempt). Facts the engine needs and Asterisk's channel state does not show (the
queue, the overflow path, the priority, the skills, presentation, the join and answer
times) are channel variables the dialplan and the engine set, read back here: an
adopted caller loses nothing.
"""

from __future__ import annotations

from acd import callbacks, rules
from acd.agents import Activity, Agent
from acd.calls import NOT_OFFERED, PENDING_RING, Call, CallState
from acd.commands import CallOffered, Command
from acd.deadlines import PARK_GRACE
from acd.events import ChannelsSnapshot, DevicesSnapshot, SnapshotCall, Where
from acd.lifecycle import admit_again, answered, finish, release
from acd.model import LeaveReason
from acd.roster import device, leave_empty_queues
from acd.state import AgentWatch, State

HALVES = frozenset({"channels", "devices"})


def link_lost(state: State) -> None:
    state.routing = False
    state.awaiting = set(HALVES)
    state.dirty_calls.update(state.calls)  # their deadlines wait for the routing to return


def channels(state: State, ev: ChannelsSnapshot, now: float, wall: float, out: list[Command]) -> None:
    seen: set[str] = set()
    for snap in ev.callers:
        if snap.where in (Where.INBOUND, Where.OTHER):
            continue  # not in a queue yet: its HotlineJoin is still to come
        seen.add(snap.call_id)
        if snap.callback:
            callbacks.snapshot(state, snap, now, wall, out)  # a callback's agent leg: no caller's channel
            continue
        call = state.calls.get(snap.call_id) or _adopt(state, snap, now, wall, out)
        _reconcile(state, call, snap, now, wall, out)
    for call in list(state.calls.values()):
        if call.call_id not in seen:
            if call.callback is not None:
                callbacks.not_seen(state, call, now, wall, out)  # one waiting in line never had a channel
                continue
            # Ended while the engine could not see it: the record is still owed.
            finish(state, call, now, wall, out, source="resync")
    for agent in state.agents.values():
        if agent.call_id is not None and agent.call_id not in state.calls:
            _agent_off_call(state, agent, now, out)
    _half_done(state, "channels", now, wall, out)


def devices(state: State, ev: DevicesSnapshot, now: float, wall: float, out: list[Command]) -> None:
    for dev in ev.devices:
        agent = state.agents.get(dev.agent_id)
        if agent is not None:
            # What Asterisk says now replaces what was kept: a phone it has reachable is no
            # longer unreachable, and a feature call seen before the link dropped is over.
            agent.feature_call = False
            agent.busy_before_feature = False
            if dev.registered:
                agent.unreachable = False
        # An agent free before the link dropped, or restored free from the engine before this
        # one, keeps their idle time for longest-idle routing; one who was not (phone off, on a
        # call) starts it now, as the live events would have.
        keep = agent is not None and (agent.agent_id in state.free or agent.idle_kept)
        idle_since = agent.idle_since if agent is not None else 0.0
        device(state, dev, now, out)
        if agent is not None:
            if keep and agent.available():
                agent.idle_since = min(idle_since, agent.idle_since)
            agent.idle_kept = False
    _half_done(state, "devices", now, wall, out)


def _half_done(state: State, half: str, now: float, wall: float, out: list[Command]) -> None:
    state.awaiting.discard(half)
    if state.awaiting or state.routing:
        return
    state.routing = True
    state.dirty_calls.update(state.calls)  # deadlines held back while rebuilding come back
    leave_empty_queues(state, now, wall, out)


def _adopt(state: State, snap: SnapshotCall, now: float, wall: float, out: list[Command]) -> Call:
    queue = snap.queue if snap.queue in state.queues else state.default_queue.name
    path = tuple(p for p in snap.path if p) or (queue,)
    offered = snap.offered_queue if snap.offered_queue in state.queues else path[0]
    # Never offered: the engine said so on the channel, or the caller hears the closed
    # message of the only queue they entered (a tag not written yet, or an older engine).
    never_offered = snap.offered_queue == NOT_OFFERED or (
        snap.where is Where.LEAVING and snap.leave_reason is LeaveReason.CLOSED and len(path) == 1)
    ago = snap.joined_ago if snap.joined_ago is not None else snap.age
    q = state.queues[queue]
    call = Call(
        call_id=snap.call_id,
        channel=snap.channel,
        queue=queue,
        arrived=now - ago,
        arrived_wall=wall - ago,
        caller_num=snap.caller_num,
        caller_name=snap.caller_name,
        restricted=snap.restricted,
        priority=snap.priority,
        extra_skills=snap.skills,
        path=path,
        offered_in=None if never_offered else offered,
        since=now,
        adopted=True,
        served_by_fallback=snap.fallback,
    )
    offered_q = state.queues.get(offered, q)
    call.service_level = offered_q.service_level
    call.short_abandon = offered_q.short_abandon
    # Widening and overflow count from entering this queue: for the first queue that is
    # the join; after an overflow the engine did not keep when, so count from now.
    call.queue_since = call.arrived if len(path) == 1 else now
    state.seq += 1
    call.seq = state.seq
    call.skills = rules.needed_skills(q, call.extra_skills)
    call.key = rules.line_key(q, call.arrived, call.priority)
    state.calls[call.call_id] = call
    # Counted once, by the engine that saw it happen: a caller who joined before the counted-
    # until mark was offered by the engine then; one who joined since (while no engine counted:
    # a restart, a dropped link) was counted by nobody yet.
    if call.offered_in is not None and call.arrived_wall >= state.counted_until:
        out.append(CallOffered(call.call_id, call.offered_queue))
    if snap.answered_by or snap.answered_ago is not None or any(leg.bridged for leg in snap.legs):
        # Answered already: when the dialplan says; with no time kept, a fallback answer came
        # while no engine routed (counted by none: now), any other as early as the join.
        guess = wall if snap.fallback else call.arrived_wall
        at = wall - snap.answered_ago if snap.answered_ago is not None else guess
        call.answer_counted = at < state.counted_until
    return call


def _force(state: State, call: Call, new: CallState, now: float) -> None:
    """A snapshot says where the caller is: no table, the snapshot is the truth."""
    state.unplace(call)
    if call.state is not new:
        call.state = new
        call.since = now
    state.touch(call)
    state.place(call)


def _reconcile(state: State, call: Call, snap: SnapshotCall, now: float, wall: float, out: list[Command]) -> None:
    call.served_by_fallback = call.served_by_fallback or snap.fallback
    bridged = [leg.agent_id for leg in snap.legs if leg.bridged]
    ringing = frozenset(leg.agent_id for leg in snap.legs if not leg.bridged)
    match snap.where:
        case Where.HOLD:
            if call.state is not CallState.IN_LINE:
                release(state, call, now, out)
                call.agent_id = None
            # A caller we had sent out but who is still in the loop: the Redirect never
            # happened, and the decided send-out is tried again (B1). A caller just
            # adopted is IN_LINE already, but not yet in its queue's line.
            _force(state, call, CallState.IN_LINE, now)
            if call.offered_in is None and call.leave_reason is None:
                admit_again(state, call, now, wall, out)
        case Where.SURVEY:
            _after_talk(state, call, snap, now, wall, out)
        case Where.DONE if call.state is CallState.AFTER_TALK:
            pass  # hanging up after the survey: nothing left to do but the record
        case Where.CONNECT | Where.FALLBACK | Where.DONE if bridged or snap.answered_by:
            agent_id = bridged[0] if bridged else snap.answered_by or ""
            _connected(state, call, agent_id, snap, now, wall, out)
        case Where.CONNECT if ringing:
            if not (call.state in PENDING_RING and call.attempt == snap.attempt and call.ringing == ringing):
                release(state, call, now, out)
                call.attempt = snap.attempt if snap.attempt is not None else call.attempt
                _ringing(state, call, ringing, now, out)
            _force(state, call, CallState.DIALING, now)
        case Where.CONNECT if call.state in PENDING_RING and call.attempt == snap.attempt:
            # This ring, with no agent leg: before its Dial began, or after it ended. Never
            # assume the walk back (a Redirect then could pull the caller out of a Dial about
            # to begin): the ring is unconfirmed, and after dial_confirm Asterisk is asked.
            if call.state is not CallState.REDIRECTING:
                _force(state, call, CallState.REDIRECTING, now)
        case Where.CONNECT:
            # An older ring's Dial is over: the caller walks back to the loop.
            release(state, call, now, out)
            call.agent_id = None
            call.walk_back_due = now + PARK_GRACE
            _force(state, call, CallState.WALKING_BACK, now)
        case Where.FALLBACK:
            release(state, call, now, out)
            call.ringing = ringing
            call.served_by_fallback = True
            _force(state, call, CallState.FALLBACK, now)
        case Where.LEAVING:
            release(state, call, now, out)
            call.leave_reason = snap.leave_reason or call.leave_reason or LeaveReason.TIMEOUT
            _force(state, call, CallState.LEAVING, now)
        case Where.DONE:
            # Hanging up (its hangup handler runs): nobody may ring or move it any more. With
            # no answer and no reason to leave it is a hang-up before answer: abandoned.
            release(state, call, now, out)
            call.leave_reason = snap.leave_reason or call.leave_reason
            _force(state, call, CallState.LEAVING, now)
        case Where.INBOUND | Where.OTHER:
            pass


def _connected(state: State, call: Call, agent_id: str, snap: SnapshotCall, now: float, wall: float,
               out: list[Command]) -> None:
    if call.state is CallState.CONNECTED and call.agent_id == agent_id:
        return
    release(state, call, now, out, keep=agent_id)
    previous = state.agents.get(call.agent_id) if call.agent_id and call.agent_id != agent_id else None
    if previous is not None and previous.call_id == call.call_id and previous.activity is Activity.ON_CALL:
        # Asterisk has the caller talking to someone else: the agent we had is off this call.
        _agent_off_call(state, previous, now, out)
    was = call.state
    ago = snap.answered_ago if snap.answered_ago is not None else 0.0
    if call.answered is None:
        call.answered = now - ago
    call.agent_id = agent_id
    _force(state, call, CallState.CONNECTED, now)
    agent = state.agents.get(agent_id)
    if agent is not None:
        watch = AgentWatch(agent)
        agent.activity = Activity.ON_CALL
        agent.call_id = call.call_id
        watch.done(state, now, out)
    if was is not CallState.CONNECTED:
        answered(state, call, now, out)


def _after_talk(state: State, call: Call, snap: SnapshotCall, now: float, wall: float, out: list[Command]) -> None:
    """The agent hung up first and the caller is in the survey: answered, the talk over,
    the agent (if we had them on this call) off it."""
    if call.state is CallState.AFTER_TALK:
        return
    release(state, call, now, out, keep=call.agent_id)
    was = call.state
    if call.answered is None:
        call.answered = now - (snap.answered_ago if snap.answered_ago is not None else 0.0)
    call.agent_id = snap.answered_by or call.agent_id
    ago = snap.talk_ended_ago if snap.talk_ended_ago is not None else 0.0
    call.talk_ended = now - ago
    # Only an agent still seated on this very call leaves it: the same agent may be talking
    # to the next caller already.
    agent = state.agents.get(call.agent_id) if call.agent_id else None
    if agent is not None and agent.call_id == call.call_id:
        _agent_off_call(state, agent, now, out)
    _force(state, call, CallState.AFTER_TALK, now)
    if was is not CallState.CONNECTED:
        answered(state, call, now, out)


def _ringing(state: State, call: Call, ringing: frozenset[str], now: float, out: list[Command]) -> None:
    call.ringing = ringing
    call.agent_id = min(ringing)
    for agent_id in sorted(ringing):
        agent = state.agents.get(agent_id)
        if agent is not None:
            watch = AgentWatch(agent)
            agent.activity = Activity.RINGING
            agent.call_id = call.call_id
            watch.done(state, now, out)


def _agent_off_call(state: State, agent: Agent, now: float, out: list[Command]) -> None:
    """The agent's call is not in the snapshot: ringing stops; a conversation that ended
    while we were away starts its wrap-up now."""
    watch = AgentWatch(agent)
    if agent.activity is Activity.ON_CALL:
        q = next((state.queues[x] for x in sorted(agent.queues) if x in state.queues), state.default_queue)
        agent.activity = Activity.WRAP_UP
        agent.wrap_until = now + (agent.wrapup if agent.wrapup is not None else q.wrapup)
    elif agent.activity is Activity.RINGING:
        agent.activity = Activity.IDLE
    agent.call_id = None
    watch.done(state, now, out)
