"""Rebuilding the picture from Asterisk's snapshots (delivered in AMI stream order)."""

from __future__ import annotations

from acd.agents import Activity
from acd.calls import CallState
from acd.events import (
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
from acd.model import QueueSettings
from tests.unit.world import World, chan, probes, rings, sendouts


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
