"""Invariants of `decide` under arbitrary event sequences (Hypothesis).

The events here need not be ones Asterisk would send in that order (a stale DialEnd, a
Probed nobody asked for, an ANSWER from an agent nobody rang): whatever comes, the
picture must stay consistent. That every caller eventually leaves the line, with a
faithful Asterisk, is the liveness property in test_liveness.py.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from acd import decide
from acd.agents import Activity, Control, Presence
from acd.calls import Call, CallState
from acd.commands import CallAnswered, CallOffered, CallRecord, Command, RingAgent
from acd.events import (
    AgentControl,
    AgentLeg,
    AgentProfile,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    DialEnded,
    DialStarted,
    Event,
    LeaveFailed,
    LinkLost,
    Probed,
    QueuesConfigured,
    RingFailed,
    SnapshotCall,
    Tick,
    Where,
)
from acd.model import QueueSettings, Strategy
from acd.state import State
from metrics import kpi
from metrics.exporter import Metrics

AGENTS = ("1001", "1002", "1003")
CALLS = tuple(f"c{i}" for i in range(6))
STATUSES = ["ANSWER", "NOANSWER", "BUSY", "CANCEL"]

step = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(CALLS)),
    st.tuples(st.just("hangup"), st.sampled_from(CALLS)),
    st.tuples(st.just("dial"), st.sampled_from(CALLS), st.sampled_from(STATUSES)),
    st.tuples(st.just("dial_stale"), st.sampled_from(CALLS), st.sampled_from(STATUSES)),
    st.tuples(st.just("dial_started"), st.sampled_from(CALLS)),
    st.tuples(st.just("parked"), st.sampled_from(CALLS)),
    st.tuples(st.just("dial_other"), st.sampled_from(CALLS), st.sampled_from(AGENTS)),
    st.tuples(st.just("device"), st.sampled_from(AGENTS), st.booleans(), st.booleans()),
    st.tuples(st.just("ring_failed"), st.sampled_from(CALLS), st.booleans()),
    st.tuples(st.just("leave_failed"), st.sampled_from(CALLS), st.booleans()),
    st.tuples(st.just("probed"), st.sampled_from(CALLS), st.sampled_from([None, *Where])),
    st.tuples(st.just("wait"), st.floats(0.5, 400)),
    st.tuples(st.just("relink"), st.booleans(), st.sampled_from(CALLS)),
    st.tuples(st.just("reconfigure"), st.sets(st.sampled_from(AGENTS))),
)


def _where(call: Call, keep_rings: bool) -> SnapshotCall:
    """The caller as Asterisk would show it: our own picture, or one that lost the rings in progress."""
    legs: tuple[AgentLeg, ...] = ()
    where = Where.HOLD
    if call.state is CallState.CONNECTED:
        where, legs = Where.CONNECT, (AgentLeg(call.agent_id or "", True),)
    elif call.state is CallState.LEAVING:
        where = Where.LEAVING
    elif call.state is CallState.FALLBACK:
        where, legs = Where.FALLBACK, tuple(AgentLeg(a, False) for a in sorted(call.ringing))
    elif keep_rings and call.state is CallState.DIALING:
        where, legs = Where.CONNECT, tuple(AgentLeg(a, False) for a in sorted(call.ringing))
    elif keep_rings and call.state is CallState.WALKING_BACK:
        where = Where.CONNECT
    return SnapshotCall(call.call_id, call.channel, where, age=1.0, queue=call.queue, path=call.path,
                        attempt=call.attempt, legs=legs, leave_reason=call.leave_reason)


def _event(state: State, s: tuple[object, ...], hung: set[str]) -> list[Event]:
    kind = s[0]
    call = state.calls.get(str(s[1])) if len(s) > 1 and isinstance(s[1], str) else None
    if kind == "join":
        cid = str(s[1])
        return [] if cid in hung else [CallerJoined(cid, f"chan-{cid}", "main")]  # a Linkedid is never reused
    if kind == "hangup":
        hung.add(str(s[1]))
        return [CallerHungUp(str(s[1]), f"chan-{s[1]}")]
    if kind == "parked":
        return [CallerParked(str(s[1]))]
    if kind == "dial_other":
        return [DialEnded(str(s[1]), str(s[2]), "ANSWER", attempt=None)]
    if kind == "device":
        return [DeviceChanged(str(s[1]), bool(s[2]), bool(s[3]))]
    if kind == "wait":
        return [Tick()]
    if kind == "relink":
        callers = tuple(_where(c, bool(s[1])) for c in state.calls.values())
        new = str(s[2])
        if new not in state.calls and new not in hung:  # joined while the engine was away: adopted
            callers += (SnapshotCall(new, f"chan-{new}", Where.HOLD, age=5.0, queue="main"),)
        devices = tuple(DeviceChanged(a.agent_id, a.registered, a.device_busy) for a in state.agents.values())
        return [LinkLost(), ChannelsSnapshot(callers), DevicesSnapshot(devices)]
    if kind == "reconfigure":
        return [AgentsConfigured(frozenset(s[1]))]  # type: ignore[arg-type]
    if call is None:
        return []
    if kind == "leave_failed":
        return [LeaveFailed(call.call_id, sure=bool(s[2]))]
    if kind == "probed":
        return [Probed(call.call_id, s[2], call.attempt)]  # type: ignore[arg-type]
    if kind == "ring_failed":
        return [RingFailed(call.call_id, call.attempt, sure=bool(s[2]))]
    if call.agent_id is None:
        return []
    if kind == "dial":
        return [DialEnded(call.call_id, call.agent_id, str(s[2]), call.attempt)]
    if kind == "dial_stale":
        return [DialEnded(call.call_id, call.agent_id, str(s[2]), call.attempt - 1)]
    if kind == "dial_started":
        return [DialStarted(call.call_id, call.agent_id, call.attempt)]
    return []


def _live(out: list[Command]) -> dict[str, kpi.Totals]:
    """The live counters after these commands, as the dispatcher ticks them (metrics/exporter.py)."""
    registry = CollectorRegistry()
    m = Metrics(registry)
    queues: set[str] = set()
    for cmd in out:
        if isinstance(cmd, CallOffered):
            m.offered_call(cmd)
        elif isinstance(cmd, CallAnswered) and cmd.counted:
            m.answered_call(cmd)
        elif isinstance(cmd, CallRecord):
            m.ended_call(cmd)
            queues.add(kpi.classify(cmd).queue)
        else:
            continue
        queues.add(cmd.queue)

    def get(name: str, queue: str, **labels: str) -> int:
        return int(registry.get_sample_value(name, {"queue": queue, **labels}) or 0)

    return {q: kpi.Totals(get("hotline_calls_offered_total", q), get("hotline_calls_answered_total", q),
                          get("hotline_calls_answered_within_service_level_total", q),
                          get("hotline_calls_abandoned_total", q), get("hotline_calls_short_abandoned_total", q),
                          get("hotline_calls_ended_total", q, outcome="closed")) for q in sorted(queues)}


def _check(state: State) -> None:
    # Each agent is tied to at most one call, and the tie is the same seen from both sides.
    for agent in state.agents.values():
        if agent.activity in (Activity.RINGING, Activity.ON_CALL):
            assert agent.call_id is not None
            call = state.calls[agent.call_id]
            assert call.agent_id == agent.agent_id or agent.agent_id in call.ringing
        else:
            assert agent.call_id is None
    in_lines = {cid for line in state.lines.values() for _, _, cid in line}
    for call in state.calls.values():
        if call.state is CallState.IN_LINE:
            assert call.agent_id is None and not call.ringing
        elif call.state in (CallState.REDIRECTING, CallState.DIALING, CallState.CONNECTED):
            assert call.agent_id is not None
        # Nobody is forgotten (mended, review 2.2: the old "no caller is lost" held by
        # construction): a caller who may be rung is in its queue's line, nobody else is,
        # and while routing every caller the engine must still act for has a deadline.
        waits = call.state is CallState.IN_LINE and call.leave_reason is None
        assert (call.call_id in in_lines) is waits, call
        if state.routing and call.state not in (CallState.CONNECTED, CallState.LEAVING, CallState.FALLBACK):
            assert state.deadlines.get(("call", call.call_id)) is not None, call
    assert in_lines <= set(state.calls)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=60))
def test_invariants_hold_for_any_sequence_of_events(steps: list[tuple[object, ...]]) -> None:
    state = State(queues={"main": QueueSettings(max_wait=600)}, routing=True)
    now = 1000.0
    decide(state, AgentsConfigured(frozenset(AGENTS)), now)
    hung: set[str] = set()
    joined: set[str] = set()
    records: list[CallRecord] = []
    counted: list[Command] = []  # what the live counters see
    for s in steps:
        now += float(s[1]) if s[0] == "wait" else 1.0  # type: ignore[arg-type]
        for ev in _event(state, s, hung):
            if isinstance(ev, CallerJoined):
                joined.add(ev.call_id)
            if isinstance(ev, ChannelsSnapshot):
                joined.update(c.call_id for c in ev.callers)
            _, out = decide(state, ev, now)
            counted += out
            for cmd in out:
                if isinstance(cmd, RingAgent):
                    agent = state.agents[cmd.agent_id]
                    # Never rung for a second caller: the agent is reserved for exactly this one.
                    assert agent.call_id == cmd.call_id
                    assert agent.configured
                if isinstance(cmd, CallRecord):
                    records.append(cmd)
            _check(state)
    # Everyone hangs up at the end: every call that entered has exactly one record.
    for call in list(state.calls):
        _, out = decide(state, CallerHungUp(call, f"chan-{call}"), now + 1)
        counted += out
        records.extend(c for c in out if isinstance(c, CallRecord))
    ids = [r.call_id for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == joined
    assert not state.calls
    # Every call counted once, whatever the resyncs showed: the live counters equal the KPIs
    # of the records (one process: no engine counted before it).
    assert _live(counted) == kpi.by_queue(records)


QUEUES = (
    QueueSettings(name="a", priority_step=30, max_boost=60, strategy=Strategy.RING_ALL, max_wait=900),
    QueueSettings(name="b", skills=(("tax", 50),), priority_step=30, max_boost=60, max_wait=900),
)
PROFILES = (
    AgentProfile("1001", frozenset({"a"})),
    AgentProfile("1002", frozenset({"a", "b"}), (("tax", 70),)),
    AgentProfile("1003", frozenset({"b"}), (("tax", 40),)),
)

rich_step = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(CALLS), st.sampled_from(["a", "b"]), st.integers(0, 3)),
    st.tuples(st.just("hangup"), st.sampled_from(CALLS)),
    st.tuples(st.just("dial"), st.sampled_from(CALLS), st.sampled_from(["ANSWER", "NOANSWER", "BUSY"])),
    st.tuples(st.just("dial_any"), st.sampled_from(CALLS), st.sampled_from(AGENTS),
              st.sampled_from(["ANSWER", "NOANSWER", "CANCEL"])),
    st.tuples(st.just("parked"), st.sampled_from(CALLS)),
    st.tuples(st.just("device"), st.sampled_from(AGENTS), st.booleans(), st.booleans()),
    st.tuples(st.just("control"), st.sampled_from(AGENTS), st.sampled_from(list(Control))),
    st.tuples(st.just("ring_failed"), st.sampled_from(CALLS), st.booleans()),
    st.tuples(st.just("wait"), st.floats(1, 90)),
)


def _waiting(state: State, now: float) -> dict[str, Call]:
    """Callers who could be rung right now (in line, not leaving, not backing off)."""
    return {c.call_id: c for c in state.calls.values()
            if c.state is CallState.IN_LINE and c.leave_reason is None and now >= c.retry_after}


@settings(max_examples=400, deadline=None)
@given(st.lists(rich_step, max_size=80))
@example([("join", "c0", "a", 0), ("wait", 90.0), ("join", "c1", "a", 3), ("device", "1001", True, False)])
@example([("device", "1002", True, False), ("control", "1002", Control.PAUSE), ("join", "c0", "b", 0),
          ("control", "1002", Control.LOGOUT), ("control", "1002", Control.UNPAUSE),
          ("control", "1002", Control.LOGIN)])
def test_only_ready_registered_idle_agents_are_rung_and_priority_never_starves(
    steps: list[tuple[object, ...]],
) -> None:
    state = State(queues={q.name: q for q in QUEUES}, routing=True)
    now = 1000.0
    decide(state, AgentsConfigured(frozenset(AGENTS), PROFILES), now)
    hung: set[str] = set()
    for s in steps:
        now += 1.0
        kind = s[0]
        events: list[Event] = []
        if kind == "join" and s[1] not in hung:
            events = [CallerJoined(str(s[1]), f"chan-{s[1]}", str(s[2]), priority=int(s[3]))]  # type: ignore[call-overload]
        elif kind == "wait":
            now += float(s[1])  # type: ignore[arg-type]
            events = [Tick()]
        elif kind == "control":
            events = [AgentControl(str(s[1]), s[2])]  # type: ignore[arg-type]
        elif kind == "dial_any":
            call = state.calls.get(str(s[1]))
            events = [DialEnded(str(s[1]), str(s[2]), str(s[3]), call.attempt if call else None)]
        elif kind != "join":
            events = _event(state, s, hung)
        for ev in events:
            waiting_before = _waiting(state, now)
            _, out = decide(state, ev, now)
            rung = {c.call_id for c in out if isinstance(c, RingAgent)}
            for cmd in out:
                if not isinstance(cmd, RingAgent):
                    continue
                call = state.calls[cmd.call_id]
                for agent_id in cmd.agent_ids:
                    agent = state.agents[agent_id]
                    # Reserved for this caller alone: no other call still claims the agent.
                    assert agent.call_id == call.call_id
                    assert not [c.call_id for c in state.calls.values() if c is not call
                                and agent_id in (c.ringing | {c.agent_id}) and c.state is not CallState.IN_LINE]
                    assert agent.presence is Presence.READY and agent.registered and agent.configured
                    assert not agent.device_busy and now >= agent.backoff_until
                    assert call.queue in agent.queues
                    assert all(agent.skills.get(k, 0) >= v for k, v in call.skills)
                # Nobody in the same queue who waited more than max_boost longer is passed over.
                boost = state.queues[call.queue].max_boost
                for other in waiting_before.values():
                    if other.call_id in rung or other.queue != call.queue or cmd.agent_id in other.tried:
                        continue
                    agent = state.agents[cmd.agent_id]
                    if all(agent.skills.get(k, 0) >= v for k, v in other.skills):
                        assert other.arrived + boost >= call.arrived, (other.call_id, call.call_id)
            _check(state)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3)), min_size=1, max_size=30),
    st.lists(st.tuples(st.sampled_from(list(Strategy)), st.floats(0, 120), st.floats(0, 300)), min_size=1, max_size=5),
)
def test_a_reload_never_costs_a_caller_their_place(joins: list[tuple[str, int]],
                                                   reloads: list[tuple[Strategy, float, float]]) -> None:
    state = State(queues={q.name: q for q in QUEUES}, routing=True)
    now = 1000.0
    for i, (queue, priority) in enumerate(joins):
        now += 1
        decide(state, CallerJoined(f"c{i}", f"chan-c{i}", queue, priority=priority), now)
    before = {q: [cid for _, _, cid in line] for q, line in state.lines.items()}
    for strategy, step_, boost in reloads:
        now += 1
        queues = tuple(QueueSettings(name=q.name, skills=q.skills, strategy=strategy, priority_step=step_,
                                     max_boost=boost, max_wait=900) for q in QUEUES)
        decide(state, QueuesConfigured(queues), now)
        assert {q: [cid for _, _, cid in line] for q, line in state.lines.items() if line} == {
            q: ids for q, ids in before.items() if ids
        }
