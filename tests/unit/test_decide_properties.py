"""Invariants of `decide` under arbitrary event sequences (Hypothesis)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from acd import decide
from acd.commands import CallRecord, RingAgent
from acd.events import (
    AgentControl,
    AgentProfile,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    DialStarted,
    Event,
    LinkLost,
    QueuesConfigured,
    Resynced,
    RingFailed,
    SnapshotChannel,
    TimerFired,
    TimerKind,
)
from acd.model import AgentPhase, CallPhase, QueueSettings, State, Strategy

AGENTS = ("1001", "1002", "1003")
CALLS = tuple(f"c{i}" for i in range(6))

step = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(CALLS)),
    st.tuples(st.just("hangup"), st.sampled_from(CALLS)),
    st.tuples(st.just("dial"), st.sampled_from(CALLS), st.sampled_from(["ANSWER", "NOANSWER", "BUSY", "CANCEL"])),
    st.tuples(st.just("dial_started"), st.sampled_from(CALLS)),
    st.tuples(st.just("parked"), st.sampled_from(CALLS)),
    st.tuples(st.just("dial_other"), st.sampled_from(CALLS), st.sampled_from(AGENTS)),
    st.tuples(st.just("device"), st.sampled_from(AGENTS), st.booleans(), st.booleans()),
    st.tuples(st.just("ring_failed"), st.sampled_from(CALLS)),
    st.tuples(st.just("timer"), st.sampled_from(list(TimerKind)), st.sampled_from(CALLS + AGENTS)),
    st.tuples(st.just("relink"), st.booleans()),
    st.tuples(st.just("reconfigure"), st.sets(st.sampled_from(AGENTS))),
)


def _event(state: State, s: tuple[object, ...], hung: set[str]) -> list[Event]:
    kind = s[0]
    if kind == "join":
        call = str(s[1])
        if call in hung:
            return []  # a Linkedid is never reused
        return [CallerJoined(call, f"chan-{call}", "main")]
    if kind == "hangup":
        call = str(s[1])
        hung.add(call)
        return [CallerHungUp(call, f"chan-{call}")]
    if kind == "dial":
        call = state.calls.get(str(s[1]))
        if call is None or call.agent_id is None:
            return []
        return [DialEnded(call.call_id, call.agent_id, str(s[2]))]
    if kind == "parked":
        return [CallerParked(str(s[1]))]
    if kind == "dial_started":
        call = state.calls.get(str(s[1]))
        if call is None or call.agent_id is None:
            return []
        return [DialStarted(call.call_id, call.agent_id)]
    if kind == "dial_other":
        return [DialEnded(str(s[1]), str(s[2]), "ANSWER")]
    if kind == "device":
        return [DeviceChanged(str(s[1]), bool(s[2]), bool(s[3]))]
    if kind == "ring_failed":
        call = state.calls.get(str(s[1]))
        if call is None or call.agent_id is None:
            return []
        return [RingFailed(call.call_id, call.agent_id, call.attempt)]
    if kind == "timer":
        key = str(s[2])
        call = state.calls.get(key)
        return [TimerFired(TimerKind(s[1]), key, call.attempt if call else 0)]
    if kind == "relink":
        # Asterisk's truth equals ours, or it lost the rings in progress.
        snap = tuple(
            SnapshotChannel(
                c.call_id,
                c.channel,
                c.queue,
                age=1.0,
                agent_id=c.agent_id if (c.phase is CallPhase.CONNECTED or s[1]) else None,
                bridged=c.phase is CallPhase.CONNECTED,
            )
            for c in state.calls.values()
        )
        return [LinkLost(), Resynced(callers=snap)]
    if kind == "reconfigure":
        return [AgentsConfigured(frozenset(s[1]))]  # type: ignore[arg-type]
    return []


def _check(state: State) -> None:
    # Each agent is tied to at most one call, and the tie is the same seen from both sides.
    for agent in state.agents.values():
        if agent.phase in (AgentPhase.RINGING, AgentPhase.ON_CALL):
            assert agent.call_id is not None
            call = state.calls[agent.call_id]
            assert call.agent_id == agent.agent_id or agent.agent_id in call.ringing
        else:
            assert agent.call_id is None
    for call in state.calls.values():
        if call.phase is CallPhase.WAITING:
            assert call.agent_id is None
        else:
            assert call.agent_id is not None


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=60))
def test_invariants_hold_for_any_sequence_of_events(steps: list[tuple[object, ...]]) -> None:
    state = State(queues={"main": QueueSettings()}, routing=True)
    now = 1000.0
    decide(state, AgentsConfigured(frozenset(AGENTS)), now)
    hung: set[str] = set()
    joined: set[str] = set()
    records: list[CallRecord] = []
    for s in steps:
        now += 1.0
        for ev in _event(state, s, hung):
            if isinstance(ev, CallerJoined):
                joined.add(ev.call_id)
            _, out = decide(state, ev, now)
            for cmd in out:
                if isinstance(cmd, RingAgent):
                    agent = state.agents[cmd.agent_id]
                    # Never rung for a second caller: the agent is reserved for exactly this one.
                    assert agent.call_id == cmd.call_id
                    assert agent.configured
                if isinstance(cmd, CallRecord):
                    records.append(cmd)
            _check(state)
        # No waiting caller is lost: everyone who joined and has not hung up is still known.
        assert {c for c in joined if c not in hung} <= set(state.calls) | {r.call_id for r in records}
    # Everyone hangs up at the end: every call that entered has exactly one record.
    for call in list(state.calls):
        _, out = decide(state, CallerHungUp(call, f"chan-{call}"), now + 1)
        records.extend(c for c in out if isinstance(c, CallRecord))
    ids = [r.call_id for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == joined
    assert not state.calls


QUEUES = (
    QueueSettings(name="a", priority_step=30, max_boost=60, strategy=Strategy.RING_ALL),
    QueueSettings(name="b", skills=(("tax", 50),), priority_step=30, max_boost=60),
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
    st.tuples(st.just("control"), st.sampled_from(AGENTS),
              st.sampled_from(["login", "logout", "pause", "unpause", "end_wrapup"])),
    st.tuples(st.just("timer"), st.sampled_from(list(TimerKind)), st.sampled_from(CALLS + AGENTS)),
    st.tuples(st.just("wait"), st.floats(1, 90)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(rich_step, max_size=80))
@example([("join", "c0", "a", 0), ("wait", 90.0), ("join", "c1", "a", 3), ("device", "1001", True, False)])
@example([("device", "1002", True, False), ("control", "1002", "pause"), ("join", "c0", "b", 0),
          ("control", "1002", "logout"), ("control", "1002", "unpause"), ("control", "1002", "login")])
def test_paused_or_logged_out_agents_are_never_rung_and_priority_never_starves(
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
        elif kind == "control":
            events = [AgentControl(str(s[1]), str(s[2]))]
        elif kind == "dial_any":
            events = [DialEnded(str(s[1]), str(s[2]), str(s[3]))]
        else:
            events = _event(state, s, hung)
        for ev in events:
            waiting_before = {
                c.call_id: (c.queue, c.arrived, c.skills)
                for c in state.calls.values()
                if c.phase is CallPhase.WAITING and c.parked and not c.leaving
            }
            _, out = decide(state, ev, now)
            for cmd in out:
                if not isinstance(cmd, RingAgent):
                    continue
                agent = state.agents[cmd.agent_id]
                assert agent.logged_in and agent.paused is None and agent.registered
                call = state.calls[cmd.call_id]
                assert call.queue in agent.queues
                assert all(agent.skills.get(k, 0) >= v for k, v in call.skills)
                # Nobody in the same queue who waited more than max_boost longer is passed over.
                boost = state.settings(call.queue).max_boost
                for other, (queue, arrived, skills) in waiting_before.items():
                    if other == call.call_id or queue != call.queue or other in {
                        c.call_id for c in out if isinstance(c, RingAgent)
                    }:
                        continue
                    if cmd.agent_id in state.calls[other].tried if other in state.calls else True:
                        continue
                    if all(agent.skills.get(k, 0) >= v for k, v in skills):
                        assert arrived + boost >= call.arrived, (other, call.call_id)
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
    for strategy, step, boost in reloads:
        now += 1
        queues = tuple(QueueSettings(name=q.name, skills=q.skills, strategy=strategy, priority_step=step,
                                     max_boost=boost) for q in QUEUES)
        decide(state, QueuesConfigured(queues), now)
        assert {q: [cid for _, _, cid in line] for q, line in state.lines.items() if line} == {
            q: ids for q, ids in before.items() if ids
        }
