"""Leaving the line (time-out, overflow, closed, callback, forward): decided first, sent only
while routing, and confirmed or retried, so that no caller is stranded (review B1)."""

from __future__ import annotations

import pytest

from acd import next_deadline
from acd.calls import CallState
from acd.events import (
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    LeaveFailed,
    LinkLost,
    Probed,
    SnapshotCall,
    Where,
)
from acd.model import LeaveReason, Outcome, Overflow, QueueSettings, WhenEmpty
from tests.unit.world import World, chan, probes, sendouts

TIMEOUT = [("c1", LeaveReason.TIMEOUT)]


def sent(out: list[object]) -> list[tuple[str, LeaveReason]]:
    return [(c.call_id, c.reason) for c in sendouts(out)]


def timed_out_caller() -> World:
    """c1 waited its 300 s and has just been sent to the time-out message."""
    w = World(agents=())
    w.join("c1", at=1000)
    assert sent(w.run_until(1300)) == TIMEOUT
    return w


def test_a_caller_whose_send_out_is_refused_is_sent_again_after_a_growing_back_off() -> None:
    """B1: the old core had no failure event for SendToTimeout and kept the caller
    `leaving` for good (review: test_a_leaving_caller_is_stranded_when_its_redirect_fails).
    Also fails on a copy of acd/calls.py without the (LEAVING, LEAVE_FAILED) row."""
    w = timed_out_caller()
    assert sent(w.feed(LeaveFailed("c1", sure=True), at=1300.1)) == []
    assert w.call("c1").state is CallState.IN_LINE  # still in the hold loop, as Asterisk said
    assert w.deadline_of("c1") == pytest.approx(1301.1)
    assert sent(w.run_until(1301.0)) == []
    assert sent(w.run_until(1301.1)) == TIMEOUT
    w.feed(LeaveFailed("c1", sure=True), at=1301.2)
    assert w.deadline_of("c1") == pytest.approx(1303.2)  # 1 s, then 2 s, ... up to 30 s
    assert sent(w.run_until(1303.2)) == TIMEOUT
    w.hangup("c1", at=1310)
    assert [r.outcome for r in w.records()] == [Outcome.TIMED_OUT]


@pytest.mark.parametrize(("where", "resent"), [(Where.HOLD, TIMEOUT), (Where.LEAVING, [])])
def test_a_send_out_of_unknown_fate_asks_asterisk_where_the_caller_is(where: Where,
                                                                      resent: list[object]) -> None:
    """B1: a Redirect that timed out may or may not have happened: the core asks, and sends
    again only a caller still in the hold loop."""
    w = timed_out_caller()
    assert probes(w.feed(LeaveFailed("c1", sure=False), at=1305)) == ["c1"]
    assert sent(w.feed(Probed("c1", where), at=1305.1)) == resent
    assert w.call("c1").state is CallState.LEAVING


def test_nobody_is_sent_out_while_routing_is_off() -> None:
    """B1: the old core's MAX_WAIT and OVERFLOW timers sent callers out while the link was
    down, and those Redirects failed for good. Fails on a copy of acd/deadlines.py whose
    `call_due` ignores `routing`."""
    waiting = QueueSettings(name="main", max_wait=60)
    empty = QueueSettings(name="empty", when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(after=600))
    w = World(queues=(waiting, empty), agents={"1001": ({"main"}, {})})
    w.join("c1", at=1000)
    w.feed(LinkLost(), at=1010)
    assert sent(w.join("c2", "empty", at=1020)) == []  # nobody logged in for it: overflows, but not now
    assert next_deadline(w.state) is None
    assert sent(w.tick(1100)) == []  # a stray wake-up: c1 waited past max_wait, still not sent
    half = w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=100, queue="main", joined_ago=100),
                                    SnapshotCall("c2", chan("c2"), Where.HOLD, age=81, queue="empty"))), at=1101)
    assert sent(half) == []  # half the picture: still not routing
    out = w.feed(DevicesSnapshot(()), at=1102)
    assert sorted(sent(out)) == [("c1", LeaveReason.TIMEOUT), ("c2", LeaveReason.OVERFLOW)]


def test_a_snapshot_showing_a_leaving_caller_still_in_the_hold_loop_puts_them_back() -> None:
    """B1: the link dropped before Asterisk answered the time-out Redirect, and the snapshot
    shows the caller still in the hold loop: the send-out is tried again. The old core's
    resync kept `leaving=True` (the caller heard ringback until max_hold); fails on a copy
    of acd/resync.py that leaves a LEAVING call alone when Asterisk shows it in the loop."""
    w = timed_out_caller()
    w.feed(LinkLost(), at=1300.5)
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=302, queue="main"),)), at=1302)
    assert w.call("c1").state is CallState.IN_LINE
    out = w.feed(DevicesSnapshot((DeviceChanged("1001", True, False),)), at=1302)
    assert sent(out) == TIMEOUT


def test_a_caller_whose_send_out_reply_was_lost_is_not_recorded_as_a_sure_abandon() -> None:
    """max_wait passes, the engine Redirects the caller to the time-out message, and the
    Redirect's reply times out under load (LeaveFailed, not sure): the call is CONFIRMING
    and Asterisk is asked where the caller is. The Redirect did happen: the caller hears
    the message and the dialplan hangs up before the probe is answered. The engine writes
    a final live record `abandoned` (a hang-up before an answer), although the caller was
    timed out and Asterisk's account says so (HOTLINE_LEAVE=timeout). With the fate unknown
    the record must either say the planned leave or be left to the account to settle."""
    w = World((QueueSettings(name="main", max_wait=60),), agents=())
    w.join("c1", at=1000)
    w.run_until(1060)
    w.feed(LeaveFailed("c1", sure=False), at=1065)
    w.hangup("c1", at=1068)
    (rec,) = w.records()
    # The planned leave, marked as a guess that Asterisk's account replaces when read.
    assert (rec.outcome, rec.source) == (Outcome.TIMED_OUT, "resync")


def test_a_send_out_of_unknown_fate_whose_probe_finds_the_caller_gone_ends_with_the_planned_leave() -> None:
    """As test_leaving's lost send-out reply, with the events in the other order: the
    probe's answer (no such channel) arrives before the caller's Hangup. ringing.probed
    clears `confirming_leave` before calling finish, so the record says `abandoned` where
    the Hangup-first order says `timed_out`: the same call, two outcomes by event order."""
    from acd.events import LeaveFailed, Probed
    from tests.unit.world import World

    w = World((QueueSettings(name="main", max_wait=60),), agents=())
    w.join("c1", at=1000)
    w.run_until(1060)
    w.feed(LeaveFailed("c1", sure=False), at=1065)
    w.feed(Probed("c1", None, probe=w.call("c1").probe), at=1068)
    (rec,) = w.records()
    assert (rec.outcome, rec.source) == (Outcome.TIMED_OUT, "resync")
