"""Rebuilding the picture from Asterisk's snapshots (delivered in AMI stream order)."""

from __future__ import annotations

import pytest

from acd.agents import Activity
from acd.calls import CallState
from acd.commands import CallAnswered, CallOffered
from acd.deadlines import PARK_GRACE
from acd.events import (
    AgentHungUp,
    AgentLeg,
    CallerParked,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    DialEnded,
    LinkLost,
    Probed,
    SnapshotCall,
    Where,
)
from acd.model import LeaveReason, Outcome, Overflow, OverflowTo, QueueSettings, WhenClosed, WhenEmpty
from metrics import kpi
from tests.unit.test_edge_cases import NEVER_OPEN
from tests.unit.world import World, chan, of_type, probes, rings, sendouts


def resync(w: World, *callers: SnapshotCall, devices: tuple[DeviceChanged, ...] = (), at: float) -> list[object]:
    """The link drops and comes back: both halves of the snapshot, in stream order."""
    return [*w.feed(LinkLost(), at), *w.feed(ChannelsSnapshot(callers), at), *w.feed(DevicesSnapshot(devices), at)]


def test_an_adopted_caller_in_the_hold_loop_is_rung_by_a_free_agent() -> None:
    """Found while porting: `_reconcile` put a caller in its line only when its state
    changed, and a freshly adopted call is already IN_LINE, so it was never in the line:
    free agents were never offered it, and it only ever left at max_wait."""
    w = World(agents=("1001",))
    out = resync(w, SnapshotCall("c9", chan("c9"), Where.HOLD, age=3, queue="main"),
                 devices=(DeviceChanged("1001", True, False),), at=1000)
    assert rings(out) == [("c9", "1001")]


def test_a_dial_end_or_park_older_than_the_snapshot_changes_nothing() -> None:
    """B5a: the snapshot shows attempt 2 ringing; a DialEnd and a HotlineParked of attempt 1
    that come after it are older than it and change nothing (the old core let them end the
    ring and charged the agent a second no-answer; review: test_stale_snapshot_...). Fails
    on a copy of acd/ringing.py whose dial_ended does not compare the attempt."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.no_answer("c1", at=1015)
    w.park("c1", at=1015.1)  # attempt 2 rings 1001 again
    ringing = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=17, queue="main", attempt=2,
                           legs=(AgentLeg("1001", False),))
    resync(w, ringing, devices=(DeviceChanged("1001", True, True),), at=1017)
    w.feed(DialEnded("c1", "1001", "NOANSWER", attempt=1), at=1017.1)
    w.feed(CallerParked("c1"), at=1017.2)
    call, agent = w.call("c1"), w.agent("1001")
    assert (call.state, call.attempt, call.ringing) == (CallState.DIALING, 2, frozenset({"1001"}))
    assert (agent.activity, agent.no_answer_streak) == (Activity.RINGING, 1)
    assert w.deadline_of("c1") == 1017 + 20  # the ring the snapshot showed runs its course


def test_an_adopted_caller_keeps_queue_priority_skills_path_and_masking() -> None:
    """B5c: everything the dialplan and the engine stored on the channel comes back with
    the adopted caller (the old snapshot had none of it: a restricted number was logged in
    clear, priority 4 became 0, every caller landed in the default queue). Fails on a copy
    of acd/resync.py whose _adopt drops restricted, priority and skills."""
    queues = (QueueSettings(name="sales"), QueueSettings(name="tax", priority_step=30, service_level=20))
    w = World(queues, {"1001": ({"tax"}, {}), "1002": ({"tax"}, {"english": 70})})
    vip = SnapshotCall("c1", chan("c1"), Where.HOLD, age=40, queue="tax", offered_queue="sales",
                       path=("sales", "tax"), caller_num="13800000000", caller_name="王小明", restricted=True,
                       priority=2, skills=(("english", 60),), joined_ago=30)
    plain = SnapshotCall("c0", chan("c0"), Where.HOLD, age=50, queue="tax", joined_ago=50)
    out = resync(w, plain, vip, devices=(DeviceChanged("1001", True, False), DeviceChanged("1002", True, False)),
                 at=1000)
    call = w.call("c1")
    assert (call.queue, call.path, call.offered_queue) == ("tax", ("sales", "tax"), "sales")
    assert (call.priority, call.restricted, call.caller_num) == (2, True, "13800000000")
    assert call.key == 1000 - 30 - 60  # joined 30 s ago, 2 x 30 s ahead: before c0 (joined 50 s ago)
    assert rings(out) == [("c1", "1002"), ("c0", "1001")]  # only 1002 speaks English
    w.hangup("c1", at=1010)
    (rec,) = w.records()
    assert (rec.restricted, rec.priority, rec.offered_queue, rec.path, rec.queue) == (
        True, 2, "sales", ("sales", "tax"), "tax")
    assert rec.arrived == 970


def test_a_dial_that_begins_after_a_snapshot_showing_no_agent_leg_is_followed_to_its_answer() -> None:
    """Found by the liveness simulation: the snapshot caught the caller in hotline-connect
    after the Redirect and before the Dial (no agent leg), which the core takes for the walk
    back. The Dial that then begins and its ANSWER (attempt 1, the current one) were refused
    by the call table, so the core later timed out a caller who was talking and Redirected
    them out of the conversation."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.tick(1003)  # no DialBegin in time: probe
    w.feed(Probed("c1", Where.CONNECT, attempt=1), at=1003.1)  # redirected: taken for dialing
    before_dial = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=4, queue="main", attempt=1)
    resync(w, before_dial, devices=(DeviceChanged("1001", True, False),), at=1004)
    w.dial_begin("c1", "1001", at=1006)
    assert (w.call("c1").state, w.agent("1001").activity) == (CallState.DIALING, Activity.RINGING)
    w.answer("c1", at=1008)
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1001")
    assert (rings(w.run_until(1400)), sendouts(w.out)) == ([], [])


def test_a_snapshot_between_the_redirect_and_a_late_dial_asks_before_moving_the_caller() -> None:
    """Found by the liveness simulation: the snapshot shows c1 in hotline-connect for the
    current ring with no agent leg, which is before its Dial or after it. The core assumed
    the walk back and, after the park grace, Redirected the caller (rung again, or sent to
    the time-out) while Asterisk was about to begin the Dial. It now treats the ring as not
    yet confirmed: after dial_confirm it asks where the caller is."""
    w = World((QueueSettings(max_wait=10),), ("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.tick(1003)
    w.feed(Probed("c1", Where.CONNECT, attempt=1, probe=w.call("c1").probe), at=1003.1)  # taken for dialing
    before_dial = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=4, queue="main", attempt=1)
    resync(w, before_dial, devices=(DeviceChanged("1001", True, False),), at=1004)
    out = w.run_until(1007)
    assert (rings(out), sendouts(out), probes(out)) == ([], [], ["c1"])  # asked at 1004 + dial_confirm
    w.feed(Probed("c1", Where.CONNECT, attempt=1, probe=w.call("c1").probe), at=1007.1)
    assert (rings(w.run_until(1011)), sendouts(w.out)) == ([], [])  # the Dial is late, not over
    w.dial_begin("c1", "1001", at=1011)
    w.answer("c1", at=1013)
    assert w.call("c1").state is CallState.CONNECTED


def rung_by_1001(w: World) -> World:
    """c1 joined at 1000 and rings 1001 (attempt 1); the link then drops."""
    w.register("1001", at=900)
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    return w


def test_a_snapshot_showing_the_caller_talking_connects_them_from_the_answer_time_it_shows() -> None:
    """The dialplan stores when and by whom the caller was answered: the core connects the
    call once (one CallAnswered, with the wait up to that answer), the agent is on the call,
    and the record counts the talk from the answer Asterisk saw, not from the resync."""
    w = rung_by_1001(World(agents=("1001", "1002")))
    talking = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=10, queue="main", attempt=1, answered_ago=4,
                           legs=(AgentLeg("1001", True),))
    out = resync(w, talking, devices=(DeviceChanged("1001", True, True),), at=1010)
    assert of_type(out, CallAnswered) == [CallAnswered("c1", "main", "1001", 6.0, 15.0, "main")]
    call, agent = w.call("c1"), w.agent("1001")
    assert (call.state, call.agent_id, call.answered) == (CallState.CONNECTED, "1001", 1006)
    assert (agent.activity, agent.call_id) == (Activity.ON_CALL, "c1")
    again = resync(w, talking, devices=(DeviceChanged("1001", True, True),), at=1020)
    assert of_type(again, CallAnswered) == []  # the same conversation is not answered twice
    w.hangup("c1", at=1030)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.answered, rec.talk_seconds) == (Outcome.ANSWERED, "1001", 1006, 24)
    assert (agent.activity, agent.wrap_until) == (Activity.WRAP_UP, 1030 + w.state.queues["main"].wrapup)


def test_a_snapshot_naming_who_answered_a_caller_being_hung_up_connects_them_to_that_agent() -> None:
    """No agent leg any more (the conversation is over, the channel hangs up), but the dialplan
    recorded who answered: the call is answered by that agent, not abandoned."""
    w = rung_by_1001(World(agents=("1001",)))
    done = SnapshotCall("c1", chan("c1"), Where.DONE, age=40, queue="main", attempt=1, answered_by="1001",
                        answered_ago=30)
    out = resync(w, done, devices=(DeviceChanged("1001", True, True),), at=1040)
    assert of_type(out, CallAnswered) == [CallAnswered("c1", "main", "1001", 10.0, 15.0, "main")]
    w.hangup("c1", at=1041)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.talk_seconds) == (Outcome.ANSWERED, "1001", 31)


def test_a_snapshot_showing_an_older_rings_dial_over_walks_the_caller_back() -> None:
    """The caller is still in hotline-connect but for no ring of ours now (no attempt, no
    agent leg): that Dial is over, the agent is free, and the caller is assumed back in the
    hold loop after the park grace if HotlineParked never comes."""
    w = rung_by_1001(World(agents=("1001",)))
    over = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=20, queue="main")
    resync(w, over, devices=(DeviceChanged("1001", True, False),), at=1020)
    call = w.call("c1")
    assert (call.state, call.agent_id, call.ringing) == (CallState.WALKING_BACK, None, frozenset())
    assert (w.agent("1001").activity, w.agent("1001").call_id) == (Activity.IDLE, None)
    assert w.deadline_of("c1") == 1020 + PARK_GRACE
    assert rings(w.run_until(1025)) == [("c1", "1001")]  # back in line at the grace, and rung


def test_a_snapshot_showing_the_dialplan_fallback_ringing_leaves_the_ring_to_asterisk() -> None:
    """The hold loop's own fallback rings the agents (no engine was routing): the core rings
    nobody, sets no deadline, and the answer that follows is recorded as served by the fallback."""
    w = World(agents=("1001", "1002"))
    w.join("c1", at=1000)
    fallback = SnapshotCall("c1", chan("c1"), Where.FALLBACK, age=30, queue="main",
                            legs=(AgentLeg("1001", False), AgentLeg("1002", False)))
    out = resync(w, fallback, devices=(DeviceChanged("1001", True, True), DeviceChanged("1002", True, True)),
                 at=1030)
    call = w.call("c1")
    assert (call.state, call.ringing, call.served_by_fallback) == (CallState.FALLBACK, frozenset({"1001", "1002"}),
                                                                  True)
    assert (rings(out), w.deadline_of("c1")) == ([], None)
    w.feed(DialEnded("c1", "1002", "ANSWER", attempt=None), at=1035)
    w.hangup("c1", at=1095)
    (rec,) = w.records()
    assert (rec.outcome, rec.agent_id, rec.served_by) == (Outcome.ANSWERED, "1002", "fallback")


@pytest.mark.parametrize(
    ("where", "reason", "outcome"),
    [
        (Where.LEAVING, LeaveReason.OVERFLOW, Outcome.OVERFLOW),  # the reason stored on the channel
        (Where.LEAVING, LeaveReason.CALLBACK, Outcome.CALLBACK),
        (Where.DONE, None, Outcome.ABANDONED),  # hanging up with no answer and no reason to leave: a hang-up
    ],
)
def test_a_snapshot_showing_the_caller_sent_out_records_the_reason_it_shows(where: Where, reason: LeaveReason | None,
                                                                          outcome: Outcome) -> None:
    w = rung_by_1001(World(agents=("1001",)))
    leaving = SnapshotCall("c1", chan("c1"), where, age=60, queue="main", leave_reason=reason)
    out = resync(w, leaving, devices=(DeviceChanged("1001", True, False),), at=1060)
    assert (w.call("c1").state, w.agent("1001").activity) == (CallState.LEAVING, Activity.IDLE)
    assert (rings(out), sendouts(out), w.deadline_of("c1")) == ([], [], None)  # Asterisk ends it on its own
    w.hangup("c1", at=1070)
    (rec,) = w.records()
    assert rec.outcome is outcome


def test_an_agent_whose_caller_ended_while_away_starts_wrap_up_at_the_resync() -> None:
    """A snapshot showed c1 talking to 1002 rather than to 1001, who answered it as far as the
    core knew: 1001's conversation is over then, 1002's when c1 has ended by the next snapshot.
    Each starts its wrap-up at the snapshot that shows its conversation over."""
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002", at=900)
    w.join("c1", at=1000)
    w.answer("c1", "1001", at=1002)
    moved = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=10, queue="main", legs=(AgentLeg("1002", True),))
    resync(w, moved, devices=(DeviceChanged("1001", True, True), DeviceChanged("1002", True, True)), at=1010)
    assert (w.agent("1001").activity, w.agent("1001").wrap_until) == (Activity.WRAP_UP, 1015)
    resync(w, devices=(DeviceChanged("1001", True, False), DeviceChanged("1002", True, False)), at=1050)
    agent = w.agent("1002")
    assert (agent.activity, agent.call_id, agent.wrap_until) == (Activity.WRAP_UP, None, 1055)
    assert w.agent("1001").activity is Activity.IDLE  # its wrap-up ended at 1015
    assert w.agent_deadline("1002") == 1055


def test_an_adopted_caller_is_counted_in_the_queue_it_was_offered_in_and_timed_from_its_queue_entry() -> None:
    """The snapshot's offered queue gives the service level and the short-abandon threshold
    (an unknown one falls back to the first queue of the path). Overflow counts from the join
    for a caller still in its first queue, and from the resync after an overflow, since when
    the caller entered the later queue was not kept."""
    queues = (QueueSettings(name="sales", service_level=20, short_abandon=8),
              QueueSettings(name="tax", overflow=Overflow(after=30)))
    w = World(queues, {"1001": ({"sales"}, {})})
    first = SnapshotCall("c1", chan("c1"), Where.HOLD, age=20, queue="tax", joined_ago=20)
    moved = SnapshotCall("c2", chan("c2"), Where.HOLD, age=20, queue="tax", offered_queue="gone",
                         path=("sales", "tax"), joined_ago=20)
    out = resync(w, first, moved, at=1000)
    assert of_type(out, CallOffered) == [CallOffered("c1", "tax"), CallOffered("c2", "sales")]
    assert (w.call("c2").service_level, w.call("c2").short_abandon) == (20, 8)
    assert (w.deadline_of("c1"), w.deadline_of("c2")) == (1010, 1030)


def test_an_agent_the_snapshot_shows_off_the_call_is_released_into_wrap_up() -> None:
    """The core had c1 talking to 1001; Asterisk's snapshot shows 1002 on it (a transfer, a
    fallback answer the engine missed). 1001 must not stay on a call it is not on."""
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.answer("c1", "1001", at=1002)
    w.feed(LinkLost(), at=1010)
    snap = SnapshotCall("c1", chan("c1"), Where.CONNECT, age=10, queue="main", legs=(AgentLeg("1002", True),))
    resync(w, snap, devices=(DeviceChanged("1001", True, False), DeviceChanged("1002", True, True)), at=1011)
    assert (w.call("c1").agent_id, w.agent("1002").activity) == ("1002", Activity.ON_CALL)
    assert (w.agent("1001").activity, w.agent("1001").call_id) == (Activity.WRAP_UP, None)


def test_a_caller_adopted_while_hearing_the_closed_message_is_recorded_closed_and_not_offered() -> None:
    """The engine restarts while a caller who met closed hours hears the closed message
    (the dialplan set HOTLINE_OFFERED to the dialled queue at the inbound number, as for
    every caller). The adopted call must end as `closed` and never count as offered: the
    same call seen live, or read from Asterisk's account, is `closed` and not offered."""
    w = World(agents=("1001",))
    snap = SnapshotCall("c1", chan("c1"), Where.LEAVING, age=4, queue="main", offered_queue="main",
                        path=("main",), joined_ago=3, leave_reason=LeaveReason.CLOSED)
    w.feed(LinkLost(), 1000)
    out = w.feed(ChannelsSnapshot((snap,)), 1000) + w.feed(DevicesSnapshot(()), 1000)
    w.hangup("c1", at=1010)
    (rec,) = w.records()
    assert rec.outcome is Outcome.CLOSED
    assert not kpi.classify(rec).offered
    assert of_type(out, CallOffered) == []


def test_a_phone_going_away_during_a_resync_does_not_empty_queues_whose_phones_are_not_known_yet() -> None:
    """The engine restarts. The channels half of the resync adopts a caller waiting in
    `tax` (when_empty: overflow); before the devices half arrives, a DeviceStateChange says
    some phone went unavailable. `leave_empty_queues` runs on that event with no routing
    check: no phone is known to be registered yet in this fresh process, so `tax` looks
    unstaffed and the waiting caller is overflowed (to the message), although agent 1001
    is logged in and free, as the devices half shows a moment later. join and the walk
    back wait for routing before judging emptiness (`not state.routing`); this path must too."""
    tax = QueueSettings(name="tax", when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(after=600))
    w = World((tax,), agents=("1001", "1002"), routing=False)
    w.feed(LinkLost(), 1000)
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=20, queue="tax", joined_ago=20),)), 1000)
    w.feed(DeviceChanged("1002", registered=False, busy=False), 1000.1)
    out = w.feed(DevicesSnapshot((DeviceChanged("1001", True, False), DeviceChanged("1002", False, False))), 1000.2)
    assert sendouts(w.out) == []
    assert rings(out) == [("c1", "1001")]


def test_a_never_offered_caller_the_snapshot_shows_talking_is_offered_at_the_answer() -> None:
    """Review 4: a caller tagged never offered (closed hours) whom the dialplan's fallback
    put through while the engine was away: offered at the answer, in the queue that
    answered, so that no queue answers more than it offers."""
    w = World((QueueSettings(name="main", hours=NEVER_OPEN, service_level=30),), agents=("1001",))
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.FALLBACK, age=40, queue="main", offered_queue="-",
                                 path=("main",), joined_ago=40, legs=(AgentLeg("1001", True),), answered_ago=10),
                 devices=(DeviceChanged("1001", True, True),), at=1000)
    assert of_type(out, CallOffered) == [CallOffered("c1", "main")]
    assert [(a.queue, a.service_level) for a in of_type(out, CallAnswered)] == [("main", 30)]


def test_a_caller_tagged_never_offered_adopted_in_the_hold_loop_of_a_closed_queue_is_sent_out_not_rung() -> None:
    """The engine met c1 at closed hours, tagged HOTLINE_OFFERED=- and planned the closed
    send-out; it restarted before the Redirect went out, so Asterisk shows c1 in the hold
    loop. The tag says the caller was never offered (closed hours), but `_adopt` only uses
    it for counting: the caller is put in the line of the closed queue and a free agent is
    rung at night, while a caller who joins the same queue now hears the closed message."""
    w = World((QueueSettings(name="main", hours=NEVER_OPEN),), agents=("1001",))
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.HOLD, age=5, queue="main", offered_queue="-",
                                 path=("main",), joined_ago=4),
                 devices=(DeviceChanged("1001", True, False),), at=1000)
    out += w.run_until(1010)
    assert rings(out) == []
    assert [s.reason.value for s in sendouts(out)] == ["closed"]


def test_a_caller_tagged_never_offered_found_waiting_once_the_queue_has_opened_is_offered_there() -> None:
    """The other side of the restart above: by the resync the queue is open (the hours began
    while the engine was away). The caller is offered now, with the queue's own thresholds,
    and rung."""
    w = World((QueueSettings(name="main", service_level=30, short_abandon=8),), agents=("1001",))
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.HOLD, age=5, queue="main", offered_queue="-",
                                 path=("main",), joined_ago=4),
                 devices=(DeviceChanged("1001", True, False),), at=1000)
    assert of_type(out, CallOffered) == [CallOffered("c1", "main")]
    assert rings(out) == [("c1", "1001")]
    w.hangup("c1", at=1003)
    (rec,) = w.records()
    assert (rec.outcome, rec.offered_queue, rec.service_level, rec.short_abandon) == (
        Outcome.ABANDONED, "main", 30, 8)


def test_a_caller_tagged_never_offered_found_waiting_at_closed_hours_follows_the_closed_rule() -> None:
    """when_closed: overflow to the night queue, which is open: the caller moves there and is
    offered there."""
    main = QueueSettings(name="main", hours=NEVER_OPEN, when_closed=WhenClosed.OVERFLOW,
                         overflow=Overflow(after=600, to=OverflowTo.QUEUE, target="night"))
    w = World((main, QueueSettings(name="night")), {"1001": ({"night"}, {})})
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.HOLD, age=5, queue="main", offered_queue="-",
                                 path=("main",), joined_ago=4),
                 devices=(DeviceChanged("1001", True, False),), at=1000)
    assert of_type(out, CallOffered) == [CallOffered("c1", "night")]
    assert (w.call("c1").queue, w.call("c1").path) == ("night", ("main", "night"))
    assert rings(out) == [("c1", "1001")]



def test_an_agent_the_snapshot_shows_on_another_call_stays_on_it_when_the_old_call_is_recorded() -> None:
    """While the link was down c1 (answered by 1001) ended and the fallback put c2 through to
    1001. The resync records c1 and must leave 1001 on c2, not send them into wrap-up
    (mutation review)."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", "1001", at=1002)
    resync(w, SnapshotCall("c2", chan("c2"), Where.FALLBACK, age=20, queue="main", joined_ago=20,
                           legs=(AgentLeg("1001", True),), answered_ago=5),
           devices=(DeviceChanged("1001", True, True),), at=1100)
    assert [r.call_id for r in w.records()] == ["c1"]
    agent = w.state.agents["1001"]
    assert (agent.activity, agent.call_id) == (Activity.ON_CALL, "c2")


# -- counting across a restart: once, by the engine that saw it happen -------------------------


def restarted(agents: tuple[str, ...] = ("1001", "1002", "1003"), **kw: object) -> World:
    """A World whose engine process began counting at wall time 1000 (an engine ran before it)."""
    w = World(agents=agents, **kw)  # type: ignore[arg-type]
    w.state.counted_until = 1000
    return w


def test_a_restarted_engine_counts_only_the_offers_and_answers_that_happened_since_it_began_counting() -> None:
    """The engine before the restart counted every offer at the join and every answer it saw;
    the new one (counting since 1000) adopts the callers at 1010. c1 joined before: not offered
    again. c2 was answered before: neither offered nor answered again (the ticket platform is
    still told, uncounted). c3 was answered at 1005, after the new process started but before
    its link came up: nobody counted that answer yet. c4 joined at 1005: nobody counted it yet.
    c5 shows no answer time: its answer is taken to be as old as its join, like the offer."""
    w = restarted()
    out = resync(w,
                 SnapshotCall("c1", chan("c1"), Where.HOLD, age=40, queue="main", joined_ago=30),
                 SnapshotCall("c2", chan("c2"), Where.CONNECT, age=40, queue="main", joined_ago=30, answered_ago=20,
                              legs=(AgentLeg("1001", True),)),
                 SnapshotCall("c3", chan("c3"), Where.CONNECT, age=40, queue="main", joined_ago=30, answered_ago=5,
                              legs=(AgentLeg("1002", True),)),
                 SnapshotCall("c4", chan("c4"), Where.HOLD, age=6, queue="main", joined_ago=5),
                 SnapshotCall("c5", chan("c5"), Where.CONNECT, age=40, queue="main", joined_ago=30,
                              legs=(AgentLeg("1003", True),)),
                 devices=tuple(DeviceChanged(a, True, True) for a in ("1001", "1002", "1003")), at=1010)
    assert of_type(out, CallOffered) == [CallOffered("c4", "main")]
    assert [(a.call_id, a.counted) for a in of_type(out, CallAnswered)] == [("c2", False), ("c3", True),
                                                                            ("c5", False)]


def test_an_adopted_caller_waiting_at_the_restart_is_counted_answered_when_answered_afterwards() -> None:
    w = restarted(agents=("1001",))
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.HOLD, age=40, queue="main", joined_ago=30),
                 devices=(DeviceChanged("1001", True, False),), at=1010)
    assert rings(out) == [("c1", "1001")]
    w.dial_begin("c1", at=1011)
    answered = of_type(w.answer("c1", "1001", at=1012), CallAnswered)
    assert [(a.call_id, a.counted, a.wait) for a in answered] == [("c1", True, 32.0)]
    assert of_type(w.out, CallOffered) == []


def test_a_never_offered_caller_the_fallback_put_through_before_the_restart_is_not_offered_again() -> None:
    """Closed hours, tagged HOTLINE_OFFERED=-; the fallback put the caller through at 990 and the
    engine before the restart, seeing that answer, offered the call there (lifecycle.answered)."""
    w = restarted(queues=(QueueSettings(name="main", hours=NEVER_OPEN),), agents=("1001",))
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.FALLBACK, age=40, queue="main", offered_queue="-",
                                 path=("main",), joined_ago=40, legs=(AgentLeg("1001", True),), answered_ago=20),
                 devices=(DeviceChanged("1001", True, True),), at=1010)
    assert of_type(out, CallOffered) == []
    assert [a.counted for a in of_type(out, CallAnswered)] == [False]
    w.hangup("c1", at=1020)
    (rec,) = w.records()
    assert kpi.classify(rec).offered and rec.outcome is Outcome.ANSWERED  # the record still counts it, once


def test_an_answer_a_snapshot_shows_again_is_never_counted_twice() -> None:
    """c1 was answered live and the agent hung up first (the survey); a snapshot then shows the
    caller bridged to that agent once more. Whatever the picture does, the counters already
    have this call's answer."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    assert [a.counted for a in of_type(w.answer("c1", "1001", at=1002), CallAnswered)] == [True]
    w.feed(AgentHungUp("c1", "1001"), at=1030)
    out = resync(w, SnapshotCall("c1", chan("c1"), Where.CONNECT, age=40, queue="main", joined_ago=40,
                                 answered_ago=38, legs=(AgentLeg("1001", True),)),
                 devices=(DeviceChanged("1001", True, True),), at=1040)
    assert [a.counted for a in of_type(out, CallAnswered)] == [False]
