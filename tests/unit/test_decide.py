"""Rules of the first ACD, one table row or test per rule."""

from __future__ import annotations

import pytest

from acd import agent_state
from acd.agents import Activity
from acd.calls import CallState
from acd.commands import CallAnswered, CallOffered, SendOut, TagCaller, Unexpected
from acd.events import (
    AgentLeg,
    CallerHungUp,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    DialEnded,
    DialStarted,
    LinkLost,
    Probed,
    RecordingStarted,
    RingFailed,
    SnapshotCall,
    Where,
)
from acd.model import LeaveReason, Outcome, QueueSettings
from tests.unit.world import Q, World, chan, of_type, probes, rings, sendouts


def three_agents(*order: str) -> World:
    """Agents registered in this order, 50 s apart, from 900 s: the first is idle longest."""
    w = World(agents=("1001", "1002", "1003"))
    for i, agent in enumerate(order):
        w.register(agent, at=900 + 50 * i)
    return w


def test_a_joining_caller_is_offered_and_rung_to_the_longest_idle_agent() -> None:
    w = three_agents("1002", "1001", "1003")
    out = w.join("c1", at=1000)
    assert of_type(out, CallOffered) == [CallOffered("c1", "main")]
    assert rings(out) == [("c1", "1002")]


def test_a_caller_in_line_is_due_at_max_wait() -> None:
    w = World()
    w.join("c1", at=1000)
    assert w.deadline_of("c1") == 1300


def test_an_agent_becomes_idle_longest_from_the_end_of_wrap_up() -> None:
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)  # -> 1001
    w.answer("c1", at=1002)
    w.hangup("c1", at=1030)
    w.tick(1035)
    # 1002 has been idle since 950, 1001 only since 1035.
    assert rings(w.join("c2", at=1040)) == [("c2", "1002")]


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
    assert rings(w.join("c1")) == expected


def test_an_unconfigured_phone_is_never_rung() -> None:
    w = World(agents=("1001",))
    w.feed(DeviceChanged("9999", registered=True, busy=False))
    assert rings(w.join("c1")) == []


def test_ring_no_answer_moves_the_caller_to_the_next_agent() -> None:
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.05)
    w.register("1001", busy=True, at=1000.1)  # its phone rings
    assert rings(w.no_answer("c1", at=1015)) == []  # still walking back
    assert w.agent("1001").activity is Activity.IDLE
    assert rings(w.park("c1", at=1015.001)) == [("c1", "1002")]


def test_a_lone_agent_who_did_not_answer_is_tried_again_once_the_phone_is_free() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.register("1001", busy=True, at=1000.1)
    w.no_answer("c1", at=1015)
    assert rings(w.park("c1", at=1015.001)) == []  # the phone still rings
    assert rings(w.register("1001", at=1015.2)) == [("c1", "1001")]


def test_the_ring_deadline_ends_a_ring_whose_dial_end_never_came() -> None:
    """Changed on purpose: the ring's end is followed by the walk back to the hold loop
    (HotlineParked, or the park grace), and only then is the next agent rung."""
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.01)
    assert w.deadline_of("c1") == pytest.approx(1020.01)  # ring_timeout + ring_grace
    assert rings(w.tick(1020.01)) == []
    assert w.call("c1").state is CallState.WALKING_BACK
    assert w.agent("1001").activity is Activity.IDLE
    assert rings(w.park("c1", at=1020.5)) == [("c1", "1002")]


def test_a_ring_deadline_of_an_earlier_ring_does_not_end_the_current_one() -> None:
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.01)
    w.no_answer("c1", at=1015)
    w.park("c1", at=1015.001)  # now ringing 1002, attempt 2
    w.dial_begin("c1", at=1015.1)
    assert w.tick(1020.01) == []  # when the first ring would have been due
    assert (w.call("c1").state, w.call("c1").agent_id, w.call("c1").attempt) == (CallState.DIALING, "1002", 2)


def test_a_late_dial_end_without_answer_for_an_abandoned_ring_changes_nothing() -> None:
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.01)
    w.tick(1020.01)  # gave up on 1001 (attempt 1)
    w.park("c1", at=1020.1)  # ringing 1002 (attempt 2)
    late = w.feed(DialEnded("c1", "1001", "NOANSWER", attempt=1), at=1020.5)
    assert [c.trigger for c in of_type(late, Unexpected)] == ["dial_end_stale"]
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.REDIRECTING, "1002")
    assert w.agent("1002").activity is Activity.RINGING


def test_a_refused_redirect_puts_the_caller_back_and_tries_another_agent_after_a_back_off() -> None:
    """Changed on purpose (B4): the caller is rung again only after a back-off (1 s first)."""
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    assert rings(w.feed(RingFailed("c1", attempt=1, sure=True), at=1000.1)) == []
    assert w.call("c1").tried == frozenset({"1001"})
    assert w.deadline_of("c1") == pytest.approx(1001.1)
    assert rings(w.tick(1001.1)) == [("c1", "1002")]


def test_wrap_up_keeps_the_agent_from_the_next_caller_until_it_ends() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1003)
    w.hangup("c1", at=1030)
    assert w.agent_deadline("1001") == 1035
    assert rings(w.join("c2", at=1031)) == []
    assert agent_state(w.agent("1001")) == "wrap_up"
    assert rings(w.tick(1035)) == [("c2", "1001")]


def test_the_caller_who_waited_longest_gets_the_agent_who_frees_up_even_if_reported_later() -> None:
    """Mended (review §2.2): the old test set `arrived` by hand after the join on a clock
    that ran backwards. Here Asterisk reports c2 (waiting since 1005) only in the snapshot,
    after c3 (since 1010) joined live: arrival, not the order of the reports, wins."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1001)
    w.join("c3", at=1010)
    w.feed(LinkLost(), at=1011)
    w.feed(ChannelsSnapshot((
        SnapshotCall("c1", chan("c1"), Where.CONNECT, age=12, queue="main", legs=(AgentLeg("1001", True),),
                     answered_by="1001"),
        SnapshotCall("c3", chan("c3"), Where.HOLD, age=2, queue="main", joined_ago=2),
        SnapshotCall("c2", chan("c2"), Where.HOLD, age=7, queue="main", joined_ago=7),
    )), at=1012)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, True),)), at=1012)
    w.hangup("c1", at=1020)
    w.register("1001", at=1020)
    assert rings(w.tick(1025)) == [("c2", "1001")]


@pytest.mark.parametrize("hangup_after", [2.0, 4.999, 5.0, 40])
def test_a_waiting_caller_who_hangs_up_is_removed_at_once(hangup_after: float) -> None:
    """Changed on purpose: every hang-up before an answer is ABANDONED; the record carries
    the short-abandon threshold in force, and the KPI module classifies short abandons."""
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    w.hangup("c1", at=1000 + hangup_after)
    assert "c1" not in w.state.calls
    (rec,) = w.records()
    assert (rec.outcome, rec.short_abandon) == (Outcome.ABANDONED, 5.0)
    assert rec.wait_seconds == pytest.approx(hangup_after)
    # An agent arriving afterwards is not rung for the departed caller.
    assert rings(w.register("1001")) == []


def test_a_caller_who_hangs_up_while_ringing_frees_the_agent() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.hangup("c1", at=1008)
    assert w.agent("1001").activity is Activity.IDLE
    assert (w.records()[0].outcome, w.records()[0].agent_id) == (Outcome.ABANDONED, None)


def test_the_agent_legs_hangup_does_not_end_the_call() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1002)
    assert w.feed(CallerHungUp("c1", "PJSIP/agent1001-00000002"), at=1010) == []
    assert w.call("c1").state is CallState.CONNECTED


def test_an_answered_call_record_has_wait_talk_agent_and_recording() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000, caller_num="13800000000", caller_name="王小明")
    out = w.answer("c1", at=1004)
    assert of_type(out, CallAnswered) == [CallAnswered("c1", "main", "1001", 4.0, 15.0, "main")]
    w.feed(RecordingStarted("c1", "/rec/2026/11/25/c1.wav"), at=1004.1)
    w.hangup("c1", at=1064)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.wait_seconds, rec.talk_seconds) == (Outcome.ANSWERED, "1001", 4.0, 60.0)
    assert (rec.arrived, rec.answered, rec.ended) == (1000, 1004, 1064)
    assert rec.recording == "/rec/2026/11/25/c1.wav"
    assert (rec.caller_num, rec.caller_name) == ("13800000000", "王小明")
    assert (rec.offered_queue, rec.path, rec.served_by, rec.source) == ("main", ("main",), "engine", "live")


def test_a_caller_past_max_wait_is_sent_to_the_timeout_message() -> None:
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    assert sendouts(w.tick(1300)) == [SendOut("c1", chan("c1"), LeaveReason.TIMEOUT)]
    assert w.call("c1").state is CallState.LEAVING
    w.register("1001", at=1301)
    assert rings(w.out) == []  # leaving callers are not routed
    w.hangup("c1", at=1310)
    assert w.records()[0].outcome is Outcome.TIMED_OUT


def test_a_caller_ringing_at_max_wait_gets_that_ring_then_times_out() -> None:
    w = World(queues=(QueueSettings(max_wait=30, ring_timeout=15),), agents=("1001", "1002"))
    w.join("c1", at=1000)
    w.register("1001", at=1020)  # rung at 1020
    w.dial_begin("c1", at=1020.1)
    assert sendouts(w.run_until(1034.9)) == []  # max_wait (1030) passes during the ring
    assert sendouts(w.no_answer("c1", at=1035)) == []  # walking back: never Redirected now
    w.register("1002", at=1035.0)
    out = w.park("c1", at=1035.5)
    assert sendouts(out) == [SendOut("c1", chan("c1"), LeaveReason.TIMEOUT)]
    assert rings(out) == []


def test_no_routing_while_the_link_is_down() -> None:
    w = World(agents=("1001",))
    w.feed(LinkLost())
    w.register("1001")
    assert rings(w.join("c1")) == []


def test_no_agent_registered_the_caller_waits_then_connects_when_one_registers() -> None:
    w = World(agents=("1001",))
    assert rings(w.join("c1", at=1000)) == []
    assert rings(w.register("1001", at=1030)) == [("c1", "1001")]


def test_resync_keeps_connected_calls_and_routes_waiting_callers() -> None:
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    w.answer("c1", at=1002)
    w.feed(LinkLost(), at=1005)
    # Mended (review §2.2): the old test read an arbitrary window of the commands.
    assert rings(w.join("c2", at=1006)) == []  # no agent rung while the link is down
    out = w.feed(ChannelsSnapshot((
        SnapshotCall("c1", chan("c1"), Where.CONNECT, age=10, queue="main", legs=(AgentLeg("1001", True),)),
        SnapshotCall("c2", chan("c2"), Where.HOLD, age=4, queue="main"),
        SnapshotCall("c9", chan("c9"), Where.HOLD, age=3, queue="main"),  # arrived while we were away
    )), at=1010)
    assert rings(out) == []  # half the picture: still not routing
    out += w.feed(DevicesSnapshot((DeviceChanged("1001", True, True), DeviceChanged("1002", True, False))), at=1010)
    assert w.call("c1").state is CallState.CONNECTED
    assert rings(out) == [("c2", "1002")]
    assert w.call("c9").arrived == 1007
    assert [c.call_id for c in of_type(out, CallOffered)] == ["c9"]


def test_resync_writes_the_record_of_a_call_that_ended_while_away() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1002)
    w.feed(LinkLost(), at=1005)
    w.feed(ChannelsSnapshot(()), at=1020)
    (rec,) = w.records()
    assert (rec.outcome, rec.source) == (Outcome.ANSWERED, "resync")
    assert w.agent("1001").activity is Activity.WRAP_UP


def test_resync_adopts_a_ring_in_progress() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.feed(LinkLost(), at=1000)
    out = w.feed(ChannelsSnapshot((SnapshotCall("c5", chan("c5"), Where.CONNECT, age=3, queue="main", attempt=4,
                                                legs=(AgentLeg("1001", False),)),)), at=1000)
    out += w.feed(DevicesSnapshot((DeviceChanged("1001", True, True),)), at=1000)
    assert (w.call("c5").state, w.call("c5").attempt) == (CallState.DIALING, 4)
    assert w.agent("1001").activity is Activity.RINGING
    assert rings(out) == []
    assert w.deadline_of("c5") == 1000 + Q.ring_timeout + Q.ring_grace


def test_a_caller_answered_by_the_dialplan_fallback_is_recorded_as_answered() -> None:
    w = World(agents=("1001",))
    w.join("c1", at=1000)  # nobody registered: the engine rang nobody
    out = w.feed(DialEnded("c1", "1001", "ANSWER", attempt=None), at=1030)
    assert of_type(out, CallAnswered) == [CallAnswered("c1", "main", "1001", 30.0, 15.0, "main")]
    w.hangup("c1", at=1090)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.talk_seconds, rec.served_by) == (Outcome.ANSWERED, "1001", 60.0,
                                                                            "fallback")


def test_a_duplicate_join_is_reported_and_changes_nothing() -> None:
    """Changed on purpose: the duplicate is counted as an unexpected event."""
    w = World(agents=("1001",))
    w.join("c1", at=1000)
    out = w.join("c1", at=1001)
    assert [c.trigger for c in of_type(out, Unexpected)] == ["join"]
    assert of_type(out, CallOffered) == []
    assert w.call("c1").arrived == 1000


def test_a_removed_agent_finishes_the_call_and_is_not_rung_again() -> None:
    w = three_agents("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1001)
    w.configure(("1002",), at=1002)
    assert w.call("c1").state is CallState.CONNECTED
    w.hangup("c1", at=1010)
    w.run_until(1015)
    assert rings(w.join("c2", at=1016)) == []
    assert w.records()[0].agent_id == "1001"


def test_a_redirect_that_never_became_a_dial_is_probed_then_retried_without_blaming_the_agent() -> None:
    """Changed on purpose (B11): the dial_confirm expiry asks Asterisk where the caller is
    instead of ringing again blindly."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    out = w.tick(1003)
    assert (rings(out), probes(out)) == ([], ["c1"])
    out = w.feed(Probed("c1", Where.HOLD), at=1003.2)
    assert rings(out) == [("c1", "1001")]
    assert "1001" not in w.call("c1").tried


def test_a_confirmed_dial_is_left_to_ring() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.01)
    assert w.tick(1003) == []
    assert w.call("c1").state is CallState.DIALING


def test_after_an_unanswered_ring_the_caller_is_not_redirected_until_parked_again() -> None:
    w = three_agents("1001", "1002")
    w.join("c1", at=1000)
    assert rings(w.no_answer("c1", at=1001, status="BUSY")) == []
    assert w.call("c1").state is CallState.WALKING_BACK
    assert rings(w.register("1003", at=1001.5)) == []
    assert rings(w.park("c1", at=1001.6)) == [("c1", "1002")]


def test_a_caller_who_joins_after_the_channels_snapshot_is_applied_on_top_of_it() -> None:
    """Rewritten: the snapshot is delivered in stream order, so a join after it is newer
    than it and is kept; a caller known before it and absent from it is gone."""
    w = World(agents=("1001",))
    w.join("gone", at=999)
    w.feed(LinkLost(), at=1000)
    w.feed(ChannelsSnapshot(()), at=1001)
    w.join("c1", at=1001.5)
    out = w.feed(DevicesSnapshot((DeviceChanged("1001", True, False),)), at=1002)
    assert [r.call_id for r in w.records()] == ["gone"]
    assert rings(out) == [("c1", "1001")]


def test_an_answer_after_the_snapshot_is_applied_on_top_of_the_ring_it_shows() -> None:
    """Rewritten: the snapshot shows the ring in progress (attempt 1); the ANSWER that comes
    after it in the stream connects the call, and the ring's deadline is gone."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.feed(LinkLost(), at=1001)
    ringing = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=2, queue="main", attempt=1,
                           legs=(AgentLeg("1001", False),))
    w.feed(ChannelsSnapshot((ringing,)), at=1002)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, True),)), at=1002)
    w.answer("c1", at=1003)
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1001")
    assert w.deadline_of("c1") is None
    assert w.run_until(1030) == []


def test_resync_finding_a_caller_bridged_elsewhere_never_sends_them_to_the_timeout() -> None:
    w = World(queues=(QueueSettings(max_wait=60, ring_timeout=15, wrapup=5),), agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("c1", at=1000)  # rings 1001
    w.feed(LinkLost(), at=1001)
    bridged = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=70, queue="main", joined_ago=70,
                           legs=(AgentLeg("1002", True),))
    out = w.feed(ChannelsSnapshot((bridged,)), at=1070)
    out += w.feed(DevicesSnapshot((DeviceChanged("1001", True, False), DeviceChanged("1002", True, True))), at=1070)
    assert sendouts(out) == []
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1002")
    assert w.agent("1001").activity is Activity.IDLE


def test_an_answer_from_an_agent_the_fallback_rang_connects_the_call() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.join("c1", at=1000)  # the engine rings 1001; the dialplan fallback rang 1002 too
    w.feed(DialEnded("c1", "1002", "ANSWER", attempt=None), at=1002)
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1002")
    assert w.agent("1001").activity is Activity.IDLE


def test_a_move_the_call_table_does_not_allow_is_reported_and_changes_nothing() -> None:
    """acd/calls.py: a (state, trigger) pair missing from the table is an unexpected event,
    reported as Unexpected(machine, state, trigger, call) for the shell to count; the call
    and its agent stay as they were. Here a HotlineParked for a caller who is talking."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1002)
    out = w.park("c1", at=1003)
    assert of_type(out, Unexpected) == [Unexpected("call", "connected", "parked", "c1")]
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1001")
    assert w.agent("1001").activity is Activity.ON_CALL


def test_a_caller_of_a_queue_the_configuration_does_not_know_is_served_by_the_first_queue() -> None:
    """The dialplan may name a queue a reload removed before Asterisk's files were rendered
    again: the caller joins the first queue, and the unknown name (cut to 32 characters) is
    reported."""
    w = World((QueueSettings(name="sales"), QueueSettings(name="tax")), {"1001": ({"sales"}, {})})
    w.register("1001")
    out = w.join("c1", "x" * 40, at=1000)
    assert of_type(out, Unexpected) == [Unexpected("call", "joining", "unknown_queue:" + "x" * 32, "c1")]
    assert (w.call("c1").queue, w.call("c1").path) == ("sales", ("sales",))
    assert of_type(out, CallOffered) == [CallOffered("c1", "sales")]
    assert rings(out) == [("c1", "1001")]
    # The channel learns the queue that serves it: Asterisk's account then names "sales" too.
    assert of_type(out, TagCaller) == [TagCaller("c1", w.call("c1").channel, "sales", "sales", ("sales",))]


def test_the_dialplan_fallback_ringing_every_agent_is_followed_until_the_last_phone_gives_up() -> None:
    """Dials the engine did not ask for (no attempt) are the hold loop's fallback: the caller
    is with the fallback (no deadline of ours), each phone that gives up leaves the others
    ringing, and when the last one does the caller walks back to the loop and is ours again."""
    w = World(agents=("1001", "1002"))
    w.join("c1", at=1000)  # nobody registered: the engine rings nobody
    w.feed(DialStarted("c1", "1001", None), at=1030)
    w.feed(DialStarted("c1", "1002", None), at=1030)
    call = w.call("c1")
    assert (call.state, call.ringing, call.served_by_fallback) == (CallState.FALLBACK, frozenset({"1001", "1002"}),
                                                                  True)
    assert w.deadline_of("c1") is None
    w.feed(DialEnded("c1", "1001", "NOANSWER", attempt=None), at=1045)
    assert (call.state, call.ringing) == (CallState.FALLBACK, frozenset({"1002"}))
    w.feed(DialEnded("c1", "1002", "NOANSWER", attempt=None), at=1046)
    assert call.state is CallState.WALKING_BACK
    w.park("c1", at=1047)
    assert call.state is CallState.IN_LINE
    w.hangup("c1", at=1050)
    (rec,) = w.records()
    assert (rec.outcome, rec.served_by) == (Outcome.ABANDONED, "fallback")
