"""Callbacks (virtual hold) in the pure core: a place in line kept from the citizen's own
arrival, never counted again, one agent rung at a time, and an outcome at the end.

Peers' callback bugs these guard against (../shared/reference/ivr-desk-scale-research.md
§1.4): the lost place in line (twilio-labs plugin #9), the callback put ahead of everyone
(FreePBX #621), and two agents calling the same citizen (FreePBX #525).
"""

from __future__ import annotations

import itertools

import pytest

from acd import State, decide
from acd.agents import Activity, Presence
from acd.calls import CallState
from acd.commands import (
    CallAnswered,
    CallbackAttempt,
    CallbackOutcome,
    CallOffered,
    CallRecord,
    Command,
    ProbeCall,
    RingAgent,
    SendOut,
    TagCaller,
)
from acd.events import (
    AgentHungUp,
    AgentLeg,
    AgentsConfigured,
    CallbackAgentAnswered,
    CallbackAgentMissed,
    CallbackCancelled,
    CallbackDialed,
    CallbackQueued,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    LinkLost,
    RingFailed,
    SnapshotCall,
    Where,
)
from acd.model import QueueSettings, Strategy
from tests.unit.world import Q, World, of_type, rings


def callback(w: World, call_id: str, arrived: float, at: float, priority: int = 0,
             request: str | None = None, queue: str = "main") -> list[Command]:
    """The scheduler feeds a callback whose citizen's call arrived at `arrived` (engine clock)."""
    return w.feed(CallbackQueued(call_id, request or f"req-{call_id}", queue, priority=priority,
                                 arrived_wall=arrived + w.wall_offset, waited=at - arrived,
                                 caller_num="13800000000"), at)


def originated(out: list[Command]) -> list[tuple[str, str, str | None]]:
    return [(c.call_id, c.agent_id, c.callback) for c in of_type(out, RingAgent)]


def counted(out: list[Command]) -> list[Command]:
    """What the KPI counters and the call records see."""
    return [c for c in out if isinstance(c, CallOffered | CallAnswered | CallRecord)]


def nothing_on_a_channel(out: list[Command]) -> list[Command]:
    """Commands that would act on a caller's channel, which a callback has none of."""
    return [c for c in out if isinstance(c, SendOut | ProbeCall | TagCaller)]


def talking(w: World, call_id: str, agent: str, at: float) -> list[Command]:
    return w.feed(CallbackAgentAnswered(call_id, agent), at)


# -- the place in line ------------------------------------------------------------------------


def test_an_earlier_callback_is_rung_before_a_later_live_caller() -> None:
    """Lost place in line (twilio #9): the callback's citizen called at 900, the live caller
    at 1000; the first free agent rings the callback."""
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    callback(w, "cb-a-1", arrived=900, at=1010)
    out = w.register("1001", at=1020)
    assert originated(out) == [("cb-a-1", "1001", "req-cb-a-1")]
    assert w.call("c1").state is CallState.IN_LINE


def test_a_later_callback_waits_behind_the_callers_who_came_before_it() -> None:
    """Not ahead of everyone (FreePBX #621): a callback whose citizen called at 1005 comes
    after the caller of 1000 and before the caller of 1010."""
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    callback(w, "cb-b-1", arrived=1005, at=1008)
    w.join("c2", at=1010)
    assert rings(w.register("1001", at=1020)) == [("c1", "1001")]
    w.answer("c1", at=1021)
    w.hangup("c1", at=1030)
    out = w.run_until(1036)  # wrap-up of 5 s
    assert originated(out) == [("cb-b-1", "1001", "req-cb-b-1")]
    assert w.call("c2").state is CallState.IN_LINE


def test_a_callback_gets_the_usual_priority_boost_and_no_more() -> None:
    """Priority 1 is 30 s of boost in this queue: it overtakes a caller 20 s ahead of it, not one 40 s ahead."""
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    w.join("c2", at=1020)
    callback(w, "cb-p-1", arrived=1040, at=1041, priority=1)
    key = w.call("cb-p-1").key
    assert w.call("c1").key < key < w.call("c2").key


def test_a_restarted_core_fed_the_same_arrivals_keeps_the_order() -> None:
    """Kill and restart: a new State, the callbacks fed again (in any order) with their
    citizens' original arrivals, rings them in the order of those arrivals."""
    first = World(agents=("1001",))
    callback(first, "cb-x-1", arrived=900, at=950)
    callback(first, "cb-y-1", arrived=920, at=950)
    again = World(agents=("1001",), now=5000, wall_offset=0)
    callback(again, "cb-y-1", arrived=920, at=5000)  # the scheduler's order is not the line's
    callback(again, "cb-x-1", arrived=900, at=5000)
    again.join("c1", at=5001)  # a live caller now: long after both
    assert originated(again.register("1001", at=5002)) == [("cb-x-1", "1001", "req-cb-x-1")]
    order = sorted(again.state.calls.values(), key=lambda c: (c.key, c.seq))
    assert [c.call_id for c in order] == ["cb-x-1", "cb-y-1", "c1"]


def test_a_callback_queued_again_for_a_call_id_the_core_holds_is_ignored() -> None:
    """The duplicate of FreePBX #525 at the core: a second feed of the same attempt (a
    scheduler restarted, a call a resync adopted) changes nothing and rings nobody twice."""
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002", at=900)
    assert originated(callback(w, "cb-d-1", arrived=800, at=1000)) == [("cb-d-1", "1001", "req-cb-d-1")]
    again = callback(w, "cb-d-1", arrived=800, at=1001)
    assert again == []
    assert w.call("cb-d-1").state is CallState.REDIRECTING
    assert w.agent("1002").activity is Activity.IDLE


# -- never counted again -------------------------------------------------------------------------


def test_a_callback_is_not_offered_answered_or_recorded_again() -> None:
    """Its booking call was counted (offered, not answered): the callback itself adds nothing
    to the KPIs, from its place in line to its end."""
    w = World(agents=("1001",))
    w.register("1001", at=900)
    out = callback(w, "cb-k-1", arrived=900, at=1000)
    out += talking(w, "cb-k-1", "1001", at=1005)
    out += w.feed(CallbackDialed("cb-k-1", "ANSWER", answered_at=1010), at=1040)
    out += w.feed(AgentHungUp("cb-k-1", "1001"), at=1040.1)
    assert counted(out) == []
    assert nothing_on_a_channel(out) == []
    assert len(of_type(out, CallbackOutcome)) == 1


def test_no_time_out_or_overflow_applies_while_a_callback_waits() -> None:
    """The citizen is not on hold: a callback whose citizen called long ago is not sent to the
    time-out message (a callback has no channel to send anywhere)."""
    w = World(agents=())
    out = callback(w, "cb-t-1", arrived=0, at=1000)  # 1,000 s ago; max_wait is 300
    out += w.run_until(5000)
    assert nothing_on_a_channel(out) == []
    assert w.call("cb-t-1").state is CallState.IN_LINE


# -- the agent's ring ------------------------------------------------------------------------------


def test_a_callback_rings_one_agent_even_in_a_ring_all_queue() -> None:
    q = QueueSettings(name="main", strategy=Strategy.RING_ALL, ring_timeout=15, wrapup=5)
    w = World(queues=(q,), agents=("1001", "1002", "1003"))
    w.register("1001", "1002", "1003", at=900)
    out = callback(w, "cb-r-1", arrived=900, at=1000)
    (ring,) = of_type(out, RingAgent)
    assert ring.also == () and ring.channel == "" and ring.callback == "req-cb-r-1"
    assert [a for a in ("1001", "1002", "1003") if w.agent(a).activity is Activity.RINGING] == [ring.agent_id]


def test_a_missed_agent_ring_puts_the_callback_back_at_its_place_and_counts_the_no_answer() -> None:
    q = QueueSettings(name="main", ring_timeout=15, wrapup=5, max_no_answer=1)
    w = World(queues=(q,), agents=("1001", "1002"))
    w.register("1001", at=900)
    w.join("c1", at=1000)  # rung to 1001 at once (nobody else in line yet)
    w.answer("c1", at=1001)
    callback(w, "cb-m-1", arrived=950, at=1010)
    w.join("c2", at=1020)
    w.hangup("c1", at=1030)
    assert originated(w.run_until(1035)) == [("cb-m-1", "1001", "req-cb-m-1")]
    key = w.call("cb-m-1").key
    w.register("1002", at=1040)  # free now, but the callback is ringing 1001; c2 is rung to 1002
    out = w.feed(CallbackAgentMissed("cb-m-1", "1001", "NOANSWER"), at=1050)
    call = w.call("cb-m-1")
    assert call.state is CallState.IN_LINE and call.key == key  # its place: ahead of c2
    agent = w.agent("1001")
    assert agent.no_answer_streak == 1 and agent.presence is Presence.PAUSED  # max_no_answer 1
    assert originated(out) == []  # 1002 is ringing c2; 1001 is paused
    w.hangup("c2", at=1052)  # c2 gives up: 1002 is free, and the callback is next
    assert w.call("cb-m-1").state is CallState.REDIRECTING
    assert w.call("cb-m-1").agent_id == "1002"


def test_a_busy_agent_is_backed_off_and_a_cancelled_ring_blames_nobody() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-b-1", arrived=900, at=1000)
    w.feed(CallbackAgentMissed("cb-b-1", "1001", "BUSY"), at=1002)
    assert w.agent("1001").backoff_until == pytest.approx(1012)
    assert "1001" in w.call("cb-b-1").tried
    w.run_until(1012)
    assert w.call("cb-b-1").agent_id == "1001"  # the only agent, tried again after the back-off
    w.feed(CallbackAgentMissed("cb-b-1", "1001", "CANCEL"), at=1013)
    assert w.agent("1001").no_answer_streak == 0


def test_a_ring_with_no_verdict_is_given_up_and_a_late_answer_is_still_the_truth() -> None:
    """Asterisk says nothing within the ring time and its grace (an event lost): the ring is
    over for the core. If that agent answered after all, Asterisk has them calling the
    citizen (it refuses a second leg with the same call id), and the core follows."""
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002", at=900)
    callback(w, "cb-l-1", arrived=900, at=1000)
    assert w.deadline_of("cb-l-1") == pytest.approx(1020)  # ring_timeout 15 + ring_grace 5
    assert originated(w.run_until(1020)) == [("cb-l-1", "1002", "req-cb-l-1")]  # the next agent
    assert w.agent("1001").no_answer_streak == 1 and w.call("cb-l-1").tried == {"1001"}
    out = talking(w, "cb-l-1", "1001", at=1021)  # 1001's verdict, late
    assert of_type(out, CallbackAttempt) == [CallbackAttempt("req-cb-l-1", "cb-l-1", "1001")]
    assert w.call("cb-l-1").state is CallState.CONNECTED
    assert w.agent("1001").activity is Activity.ON_CALL
    assert w.agent("1002").activity is Activity.IDLE  # its Originate fails: the call id is in use


def test_a_refused_originate_is_retried_after_a_back_off_and_an_unanswered_one_waits_for_the_verdict() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-o-1", arrived=900, at=1000)
    out = w.feed(RingFailed("cb-o-1", 1, sure=False), at=1001)
    assert of_type(out, ProbeCall) == []  # no channel to ask about: the verdict or the deadline says
    assert w.call("cb-o-1").state is CallState.REDIRECTING
    w.feed(RingFailed("cb-o-1", 1, sure=True), at=1002)
    assert w.call("cb-o-1").state is CallState.IN_LINE
    assert w.call("cb-o-1").retry_after == pytest.approx(1003)
    assert originated(w.run_until(1003)) == [("cb-o-1", "1001", "req-cb-o-1")]


# -- the end ------------------------------------------------------------------------------------------


def test_the_agents_hangup_ends_the_callback_with_its_outcome_and_wrap_up() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-e-1", arrived=900, at=1000)
    assert of_type(talking(w, "cb-e-1", "1001", at=1005), CallbackAttempt) == [
        CallbackAttempt("req-cb-e-1", "cb-e-1", "1001")]
    w.feed(DeviceChanged("1001", True, True), at=1005.1)
    w.feed(CallbackDialed("cb-e-1", "ANSWER", answered_at=1012.0), at=1072)
    out = w.feed(AgentHungUp("cb-e-1", "1001"), at=1072.1)
    assert of_type(out, CallbackOutcome) == [CallbackOutcome(
        "req-cb-e-1", "cb-e-1", "1001", "ANSWER", 1012.0, 1072.1, pytest.approx(60.1), None)]  # type: ignore[arg-type]
    agent = w.agent("1001")
    assert "cb-e-1" not in w.state.calls
    assert agent.activity is Activity.WRAP_UP and agent.talk_total == pytest.approx(60.1)
    assert agent.calls_taken == 1


def test_an_unanswered_citizen_ends_the_attempt_with_no_talk() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-n-1", arrived=900, at=1000)
    talking(w, "cb-n-1", "1001", at=1005)
    w.feed(CallbackDialed("cb-n-1", "NOANSWER"), at=1040)
    (outcome,) = of_type(w.feed(AgentHungUp("cb-n-1", "1001"), at=1040.1), CallbackOutcome)
    assert (outcome.status, outcome.answered_at, outcome.talk_seconds) == ("NOANSWER", None, 0.0)


def test_a_leg_that_hung_up_before_the_answer_verdict_came_ends_the_attempt_at_once() -> None:
    """AMI does not promise the agent leg's Hangup comes after the Originate's verdict."""
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-g-1", arrived=900, at=1000)
    w.feed(CallbackDialed("cb-g-1", ""), at=1004)
    assert w.feed(AgentHungUp("cb-g-1", "1001"), at=1004.1) == []
    out = talking(w, "cb-g-1", "1001", at=1004.2)
    assert [type(c).__name__ for c in out if isinstance(c, CallbackAttempt | CallbackOutcome)] == [
        "CallbackAttempt", "CallbackOutcome"]
    assert "cb-g-1" not in w.state.calls
    assert w.agent("1001").activity is Activity.WRAP_UP


def test_the_hangup_of_another_agents_leg_does_not_end_the_callback() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    callback(w, "cb-h-1", arrived=900, at=1000)
    talking(w, "cb-h-1", "1001", at=1005)
    assert w.feed(AgentHungUp("cb-h-1", "1002"), at=1006) == []
    assert w.call("cb-h-1").state is CallState.CONNECTED


def test_a_cancelled_callback_leaves_the_line_and_one_that_talks_runs_on() -> None:
    w = World(agents=("1001",))
    callback(w, "cb-c-1", arrived=900, at=1000)
    callback(w, "cb-c-2", arrived=901, at=1000)
    w.feed(CallbackCancelled("cb-c-1"), at=1001)
    assert "cb-c-1" not in w.state.calls
    assert originated(w.register("1001", at=1002)) == [("cb-c-2", "1001", "req-cb-c-2")]
    talking(w, "cb-c-2", "1001", at=1003)
    w.feed(CallbackCancelled("cb-c-2"), at=1004)
    assert w.call("cb-c-2").state is CallState.CONNECTED


# -- resync -------------------------------------------------------------------------------------------


def resync(w: World, *callers: SnapshotCall, at: float, devices: tuple[DeviceChanged, ...] = ()) -> list[Command]:
    return [*w.feed(LinkLost(), at), *w.feed(ChannelsSnapshot(callers), at), *w.feed(DevicesSnapshot(devices), at)]


def leg(call_id: str, agent: str, answered: bool, queue: str = "main", age: float = 30) -> SnapshotCall:
    return SnapshotCall(call_id, f"PJSIP/agent{agent}-0001", Where.CONNECT, age=age, queue=queue,
                        legs=(AgentLeg(agent, answered),), answered_by=agent if answered else None,
                        callback=call_id.rsplit("-", 1)[0])


def test_a_resync_keeps_a_waiting_callback_that_asterisk_has_no_channel_for() -> None:
    """Asterisk's snapshot is the truth for callers, and a caller it does not show has gone:
    not so a callback, which has no channel while it waits. No record, no outcome."""
    w = World(agents=("1001",))
    callback(w, "cb-w-1", arrived=900, at=1000)
    out = resync(w, at=1010, devices=(DeviceChanged("1001", True, False),))
    assert counted(out) == [] and of_type(out, CallbackOutcome) == []
    assert originated(out) == [("cb-w-1", "1001", "req-cb-w-1")]


def test_a_resync_that_no_longer_shows_the_agent_ring_puts_the_callback_back_blaming_nobody() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-s-1", arrived=900, at=1000)
    out = resync(w, at=1010, devices=(DeviceChanged("1001", True, False),))
    call = w.call("cb-s-1")
    assert not call.tried and w.agent("1001").no_answer_streak == 0
    assert originated(out) == [("cb-s-1", "1001", "req-cb-s-1")] and call.attempt == 2  # rung afresh


def test_a_talking_callback_whose_end_the_engine_missed_reports_an_unknown_outcome() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    callback(w, "cb-u-1", arrived=900, at=1000)
    talking(w, "cb-u-1", "1001", at=1005)
    out = resync(w, at=1100, devices=(DeviceChanged("1001", True, False),))
    (outcome,) = of_type(out, CallbackOutcome)
    assert outcome.status == "UNKNOWN" and outcome.agent_id == "1001"
    assert counted(out) == []


def test_a_restarted_engine_adopts_a_callback_leg_in_conversation_and_reports_its_end() -> None:
    """The engine died while the agent was talking to the citizen: the new engine finds the
    agent's leg in Asterisk's snapshot, holds the call, and its end reports the outcome."""
    w = World(agents=("1001",), routing=False)
    out = [*w.feed(ChannelsSnapshot((leg("cb-r9-2", "1001", answered=True),)), 2000),
           *w.feed(DevicesSnapshot((DeviceChanged("1001", True, True),)), 2000)]
    assert of_type(out, CallbackAttempt) == [CallbackAttempt("cb-r9", "cb-r9-2", "1001")]
    assert w.agent("1001").activity is Activity.ON_CALL
    assert callback(w, "cb-r9-2", arrived=1000, at=2001, request="cb-r9") == []  # the scheduler's feed: known
    w.feed(CallbackDialed("cb-r9-2", "ANSWER", answered_at=1990), at=2030)
    (outcome,) = of_type(w.feed(AgentHungUp("cb-r9-2", "1001"), at=2030), CallbackOutcome)
    assert (outcome.request_id, outcome.status, outcome.talk_seconds) == ("cb-r9", "ANSWER", 40.0)


def test_a_restarted_engine_adopts_a_ringing_callback_leg_and_takes_its_verdict() -> None:
    w = World(agents=("1001", "1002"), routing=False)
    w.feed(ChannelsSnapshot((leg("cb-q-1", "1001", answered=False),)), 2000)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, True), DeviceChanged("1002", True, False))), 2000)
    call = w.call("cb-q-1")
    assert call.state is CallState.REDIRECTING and call.agent_id == "1001"
    assert w.agent("1002").activity is Activity.IDLE  # never a second agent for the same attempt
    w.feed(CallbackAgentMissed("cb-q-1", "1001", "NOANSWER"), at=2005)
    assert w.call("cb-q-1").agent_id == "1002"


def test_the_core_never_decides_a_callback_into_a_call_record_whatever_the_order() -> None:
    """A property over the shuffles of one attempt's events: no record, one outcome at most."""
    events = [CallbackAgentAnswered("cb-z-1", "1001"), CallbackDialed("cb-z-1", "ANSWER", 1003.0),
              AgentHungUp("cb-z-1", "1001")]
    for order in itertools.permutations(events):
        state = State(queues={"main": Q}, routing=True)
        out: list[Command] = []
        decide(state, AgentsConfigured(frozenset({"1001"})), 900)
        decide(state, DeviceChanged("1001", True, False), 900)
        out += decide(state, CallbackQueued("cb-z-1", "req", "main", waited=100), 1000)[1]
        for i, ev in enumerate(order):
            out += decide(state, ev, 1001 + i)[1]
        assert counted(out) == []
        assert len(of_type(out, CallbackOutcome)) <= 1
