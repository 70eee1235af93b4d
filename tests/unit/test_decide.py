"""Rules of the first ACD, one table row or test per rule."""

from __future__ import annotations

import pytest

from acd import agent_state, decide
from acd.commands import CallAnswered, CallOffered, CallRecord, Command, RingAgent, SendToTimeout, StartTimer
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
from acd.model import AgentPhase, CallPhase, Outcome, QueueSettings, State

Q = QueueSettings(ring_timeout=15, wrapup=5, max_wait=300, short_abandon=5, ring_grace=5)


def chan(call: str) -> str:
    return f"PJSIP/carrier-{call}"


class World:
    """A state plus a clock, feeding events one at a time and keeping the commands."""

    def __init__(self, agents: tuple[str, ...] = ("1001", "1002", "1003"), queue: QueueSettings = Q) -> None:
        self.state = State(queues={queue.name: queue}, routing=True)
        self.now = 1000.0
        self.commands: list[Command] = []
        self.feed(AgentsConfigured(frozenset(agents)))

    def feed(self, event: Event, at: float | None = None) -> list[Command]:
        if at is not None:
            self.now = at
        _, out = decide(self.state, event, self.now)
        self.commands.extend(out)
        return out

    def register(self, *agents: str, at: float | None = None) -> None:
        for agent in agents:
            self.feed(DeviceChanged(agent, registered=True, busy=False), at)

    def join(self, call: str, at: float | None = None) -> list[Command]:
        return self.feed(CallerJoined(call, chan(call), "main", "13800000000", "王小明"), at)

    def rings(self, out: list[Command]) -> list[tuple[str, str]]:
        return [(c.call_id, c.agent_id) for c in out if isinstance(c, RingAgent)]

    def records(self) -> list[CallRecord]:
        return [c for c in self.commands if isinstance(c, CallRecord)]


def timeouts(out: list[Command]) -> list[Command]:
    return [c for c in out if isinstance(c, SendToTimeout)]


def test_a_joining_caller_is_offered_and_rung_to_the_longest_idle_agent() -> None:
    w = World()
    w.register("1002", at=900)
    w.register("1001", at=950)
    w.register("1003", at=990)
    out = w.join("c1", at=1000)
    assert any(isinstance(c, CallOffered) for c in out)
    assert w.rings(out) == [("c1", "1002")]
    assert any(isinstance(c, StartTimer) and c.kind is TimerKind.MAX_WAIT and c.at == 1300 for c in out)


def test_an_agent_becomes_idle_longest_from_the_end_of_wrap_up() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)  # -> 1001
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1002)
    w.feed(CallerHungUp("c1", chan("c1")), at=1030)
    w.feed(TimerFired(TimerKind.WRAPUP, "1001"), at=1035)
    # 1002 has been idle since 950, 1001 only since 1035.
    assert w.rings(w.join("c2", at=1040)) == [("c2", "1002")]


@pytest.mark.parametrize(
    ("registered", "busy", "expected"),
    [
        (False, False, []),  # softphone not registered: never rung
        (True, True, []),  # phone busy with another call: never rung
        (True, False, [("c1", "1001")]),
    ],
)
def test_only_a_registered_idle_phone_is_rung(registered: bool, busy: bool, expected: list[tuple[str, str]]) -> None:
    w = World(agents=("1001",))
    w.feed(DeviceChanged("1001", registered=registered, busy=busy))
    assert w.rings(w.join("c1")) == expected


def test_an_unconfigured_phone_is_never_rung() -> None:
    w = World(agents=("1001",))
    w.feed(DeviceChanged("9999", registered=True, busy=False))
    assert w.rings(w.join("c1")) == []


def test_ring_no_answer_moves_the_caller_to_the_next_agent() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    w.feed(DeviceChanged("1001", registered=True, busy=True), at=1000.1)  # its phone rings
    assert w.rings(w.feed(DialEnded("c1", "1001", "NOANSWER"), at=1015)) == []  # still walking back
    assert w.state.agents["1001"].phase is AgentPhase.IDLE
    assert w.rings(w.feed(CallerParked("c1"), at=1015.001)) == [("c1", "1002")]


def test_a_lone_agent_who_did_not_answer_is_tried_again_once_the_phone_is_free() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(DeviceChanged("1001", registered=True, busy=True))
    w.feed(DialEnded("c1", "1001", "NOANSWER"), at=1015)
    assert w.rings(w.feed(CallerParked("c1"), at=1015.001)) == []  # the phone still rings
    assert w.rings(w.feed(DeviceChanged("1001", registered=True, busy=False), at=1015.2)) == [("c1", "1001")]


def test_the_ring_timer_frees_a_ring_whose_dial_end_never_came() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    attempt = w.state.calls["c1"].attempt
    out = w.feed(TimerFired(TimerKind.RING, "c1", attempt), at=1020)
    assert w.rings(out) == [("c1", "1002")]


def test_a_stale_ring_timer_is_ignored() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "NOANSWER"), at=1015)
    w.feed(CallerParked("c1"), at=1015.001)  # now ringing 1002, attempt 2
    assert w.feed(TimerFired(TimerKind.RING, "c1", 1), at=1020) == []
    assert w.state.calls["c1"].agent_id == "1002"


def test_a_late_dial_end_for_an_abandoned_ring_changes_nothing() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    w.feed(TimerFired(TimerKind.RING, "c1", 1), at=1020)  # gave up on 1001, ringing 1002
    assert w.feed(DialEnded("c1", "1001", "ANSWER"), at=1020.5) == []
    assert w.state.calls["c1"].phase is CallPhase.RINGING
    assert w.state.calls["c1"].agent_id == "1002"


def test_a_failed_redirect_puts_the_caller_back_and_tries_another_agent() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    out = w.feed(RingFailed("c1", "1001", 1), at=1000.1)
    assert w.rings(out) == [("c1", "1002")]


def test_wrap_up_keeps_the_agent_from_the_next_caller_until_it_ends() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1003)
    out = w.feed(CallerHungUp("c1", chan("c1")), at=1030)
    assert any(isinstance(c, StartTimer) and c.kind is TimerKind.WRAPUP and c.at == 1035 for c in out)
    assert w.rings(w.join("c2", at=1031)) == []
    assert agent_state(w.state.agents["1001"]) == "wrap_up"
    assert w.rings(w.feed(TimerFired(TimerKind.WRAPUP, "1001"), at=1035)) == [("c2", "1001")]


def test_the_oldest_waiting_caller_gets_the_agent_who_frees_up() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1001)
    w.join("c3", at=1010)
    w.join("c2", at=1005)  # event order is not arrival order: arrival wins
    w.state.calls["c2"].arrived = 1005
    w.state.calls["c3"].arrived = 1010
    w.feed(CallerHungUp("c1", chan("c1")), at=1020)
    assert w.rings(w.feed(TimerFired(TimerKind.WRAPUP, "1001"), at=1025)) == [("c2", "1001")]


@pytest.mark.parametrize(
    ("hangup_after", "outcome"),
    [(2.0, Outcome.SHORT_ABANDON), (4.999, Outcome.SHORT_ABANDON), (5.0, Outcome.ABANDONED), (40, Outcome.ABANDONED)],
)
def test_a_waiting_caller_who_hangs_up_is_removed_at_once(hangup_after: float, outcome: Outcome) -> None:
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    w.feed(CallerHungUp("c1", chan("c1")), at=1000 + hangup_after)
    assert "c1" not in w.state.calls
    (rec,) = w.records()
    assert rec.outcome is outcome
    assert rec.wait_seconds == pytest.approx(hangup_after)
    # An agent arriving afterwards is not rung for the departed caller.
    assert w.rings(w.feed(DeviceChanged("1001", registered=True, busy=False))) == []


def test_a_caller_who_hangs_up_while_ringing_frees_the_agent() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(CallerHungUp("c1", chan("c1")), at=1008)
    assert w.state.agents["1001"].phase is AgentPhase.IDLE
    assert w.records()[0].outcome is Outcome.ABANDONED
    assert w.records()[0].agent_id is None


def test_the_agent_legs_hangup_does_not_end_the_call() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1002)
    assert w.feed(CallerHungUp("c1", "PJSIP/agent1001-00000002"), at=1010) == []
    assert w.state.calls["c1"].phase is CallPhase.CONNECTED


def test_an_answered_call_record_has_wait_talk_agent_and_recording() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    out = w.feed(DialEnded("c1", "1001", "ANSWER"), at=1004)
    assert [c for c in out if isinstance(c, CallAnswered)] == [CallAnswered("c1", "main", "1001", 4.0)]
    w.feed(RecordingStarted("c1", "/rec/2026/11/25/c1.wav"), at=1004.1)
    w.feed(CallerHungUp("c1", chan("c1")), at=1064)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.wait_seconds, rec.talk_seconds) == (Outcome.ANSWERED, "1001", 4.0, 60.0)
    assert (rec.arrived, rec.answered, rec.ended) == (1000, 1004, 1064)
    assert rec.recording == "/rec/2026/11/25/c1.wav"
    assert (rec.caller_num, rec.caller_name) == ("13800000000", "王小明")


def test_a_caller_past_max_wait_is_sent_to_the_timeout_message() -> None:
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    out = w.feed(TimerFired(TimerKind.MAX_WAIT, "c1"), at=1300)
    assert timeouts(out) == [SendToTimeout("c1", chan("c1"))]
    w.register("1001", at=1301)
    assert w.rings(w.commands) == []  # leaving callers are not routed
    w.feed(CallerHungUp("c1", chan("c1")), at=1310)
    assert w.records()[0].outcome is Outcome.TIMED_OUT


def test_a_caller_ringing_at_max_wait_gets_that_ring_then_times_out() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    assert w.feed(TimerFired(TimerKind.MAX_WAIT, "c1"), at=1300) == []
    assert not timeouts(w.feed(DialEnded("c1", "1001", "NOANSWER"), at=1301))
    assert timeouts(w.feed(CallerParked("c1"), at=1301.001)) == [SendToTimeout("c1", chan("c1"))]


def test_no_routing_while_the_link_is_down() -> None:
    w = World(agents=("1001",))
    w.feed(LinkLost())
    w.register("1001")
    assert w.rings(w.join("c1")) == []


def test_no_agent_registered_the_caller_waits_then_connects_when_one_registers() -> None:
    w = World(agents=("1001",))
    assert w.rings(w.join("c1", at=1000)) == []
    assert w.rings(w.feed(DeviceChanged("1001", registered=True, busy=False), at=1030)) == [("c1", "1001")]


def test_resync_keeps_connected_calls_and_routes_waiting_callers() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1002)
    w.feed(LinkLost(), at=1005)
    w.join("c2", at=1006)  # seen before the link went down in reality; no agent rung while down
    assert w.rings(w.commands[-3:]) == []
    snap = Resynced(
        callers=(
            SnapshotChannel("c1", chan("c1"), "main", age=10, agent_id="1001", bridged=True),
            SnapshotChannel("c2", chan("c2"), "main", age=4),
            SnapshotChannel("c9", chan("c9"), "main", age=3),  # arrived while we were away
        ),
        devices=(DeviceChanged("1001", True, True), DeviceChanged("1002", True, False)),
    )
    out = w.feed(snap, at=1010)
    assert w.state.calls["c1"].phase is CallPhase.CONNECTED
    assert w.rings(out) == [("c2", "1002")]
    assert w.state.calls["c9"].arrived == 1007
    assert any(isinstance(c, CallOffered) and c.call_id == "c9" for c in out)


def test_resync_writes_the_record_of_a_call_that_ended_while_away() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1002)
    w.feed(LinkLost(), at=1005)
    w.feed(Resynced(callers=(), devices=(DeviceChanged("1001", True, False),)), at=1020)
    (rec,) = w.records()
    assert rec.outcome is Outcome.ANSWERED
    assert w.state.agents["1001"].phase is AgentPhase.WRAP_UP


def test_resync_adopts_a_ring_in_progress() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.feed(LinkLost())
    out = w.feed(Resynced(callers=(SnapshotChannel("c5", chan("c5"), "main", age=3, agent_id="1001"),)))
    assert w.state.calls["c5"].phase is CallPhase.RINGING
    assert w.state.agents["1001"].phase is AgentPhase.RINGING
    assert w.rings(out) == []
    assert any(isinstance(c, StartTimer) and c.kind is TimerKind.RING for c in out)


def test_a_caller_answered_by_the_dialplan_fallback_is_recorded_as_answered() -> None:
    w = World(agents=("1001",))
    w.join("c1", at=1000)  # nobody registered: the engine rang nobody
    out = w.feed(DialEnded("c1", "1001", "ANSWER"), at=1030)
    assert [c for c in out if isinstance(c, CallAnswered)] == [CallAnswered("c1", "main", "1001", 30.0)]
    w.feed(CallerHungUp("c1", chan("c1")), at=1090)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.talk_seconds) == (Outcome.ANSWERED, "1001", 60.0)


def test_a_duplicate_join_is_ignored() -> None:
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    assert w.join("c1", at=1001) == []
    assert w.state.calls["c1"].arrived == 1000


def test_a_removed_agent_finishes_the_call_and_is_not_rung_again() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.join("c1", at=1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1001)
    w.feed(AgentsConfigured(frozenset({"1002"})), at=1002)
    assert w.state.calls["c1"].phase is CallPhase.CONNECTED
    w.feed(CallerHungUp("c1", chan("c1")), at=1010)
    w.feed(TimerFired(TimerKind.WRAPUP, "1001"), at=1015)
    assert w.rings(w.join("c2", at=1016)) == []
    assert w.records()[0].agent_id == "1001"


def test_a_redirect_that_never_became_a_dial_is_retried_without_blaming_the_agent() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    out = w.feed(TimerFired(TimerKind.DIAL_CONFIRM, "c1", 1), at=1003)
    assert w.rings(out) == [("c1", "1001")]
    assert "1001" not in w.state.calls["c1"].tried


def test_a_confirmed_dial_is_left_to_ring() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(DialStarted("c1", "1001"), at=1000.01)
    assert w.feed(TimerFired(TimerKind.DIAL_CONFIRM, "c1", 1), at=1003) == []
    assert w.state.calls["c1"].phase is CallPhase.RINGING


def test_after_an_unanswered_ring_the_caller_is_not_redirected_until_parked_again() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)
    assert w.rings(w.feed(DialEnded("c1", "1001", "BUSY"), at=1001)) == []
    assert not w.state.calls["c1"].parked
    assert w.rings(w.feed(DeviceChanged("1003", True, False), at=1001.5)) == []
    assert w.rings(w.feed(CallerParked("c1"), at=1001.6)) == [("c1", "1002")]


def test_a_caller_who_joined_after_the_snapshot_is_not_taken_for_gone() -> None:
    w = World(agents=("1001",))
    w.feed(LinkLost(), at=1000)
    w.join("c1", at=1001)  # arrives while the (older) snapshot is being taken
    w.feed(Resynced(callers=(), joined=frozenset({"c1"})), at=1002)
    assert "c1" in w.state.calls
    assert w.records() == []


def test_resync_never_downgrades_a_call_answered_meanwhile() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(LinkLost(), at=1001)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1002)
    w.feed(Resynced(callers=(SnapshotChannel("c1", chan("c1"), "main", age=2, agent_id="1001"),)), at=1003)
    assert w.state.calls["c1"].phase is CallPhase.CONNECTED
    assert w.feed(TimerFired(TimerKind.RING, "c1", w.state.calls["c1"].attempt), at=1030) == []


def test_resync_finding_a_caller_bridged_elsewhere_never_sends_them_to_the_timeout() -> None:
    w = World(agents=("1001", "1002"), queue=QueueSettings(max_wait=60, ring_timeout=15, wrapup=5))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)  # rings 1001
    w.feed(LinkLost(), at=1001)
    out = w.feed(Resynced(callers=(SnapshotChannel("c1", chan("c1"), "main", age=70, agent_id="1002",
                                                   bridged=True),)), at=1070)
    assert timeouts(out) == []
    assert (w.state.calls["c1"].phase, w.state.calls["c1"].agent_id) == (CallPhase.CONNECTED, "1002")
    assert w.state.agents["1001"].phase is AgentPhase.IDLE


def test_an_answer_from_an_agent_the_fallback_rang_connects_the_call() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.join("c1", at=1000)  # the engine rings 1001; the dialplan fallback rang 1002 too
    w.feed(DialEnded("c1", "1002", "ANSWER"), at=1002)
    assert (w.state.calls["c1"].phase, w.state.calls["c1"].agent_id) == (CallPhase.CONNECTED, "1002")
    assert w.state.agents["1001"].phase is AgentPhase.IDLE
