"""Deadlines derived from state: re-timed by a reload, never early, never left behind, and
never acting on a caller who is ringing or walking back (review B6, B7, B8, M1, M12)."""

from __future__ import annotations

import pytest

from acd import next_deadline
from acd.agents import Activity
from acd.commands import TagCaller, Unexpected
from acd.deadlines import Deadlines, agent_due
from acd.events import History, QueuesConfigured
from acd.model import LeaveReason, Overflow, OverflowTo, QueueSettings, Widen
from tests.unit.world import World, of_type, rings, sendouts


def reload(w: World, *queues: QueueSettings, at: float) -> list[object]:
    return list(w.feed(QueuesConfigured(queues), at))


# -- B6: a reload re-times the callers already waiting --------------------------------------


def test_raising_max_wait_by_reload_moves_the_deadline_of_callers_already_waiting() -> None:
    """B6: the old core's armed MAX_WAIT timer still sent the caller out at 300 s (review:
    test_max_wait_raised_by_reload_is_ignored_by_the_armed_timer). Fails on a copy of
    acd/roster.py whose configure_queues does not re-time the calls."""
    w = World(queues=(QueueSettings(max_wait=300),), agents=())
    w.join("c1", at=1000)
    assert w.deadline_of("c1") == 1300
    reload(w, QueueSettings(max_wait=900), at=1100)
    assert w.deadline_of("c1") == 1900
    assert sendouts(w.run_until(1899)) == []
    assert [c.reason for c in sendouts(w.run_until(1900))] == [LeaveReason.TIMEOUT]


def test_lowering_max_wait_below_the_wait_sends_the_caller_out_at_the_reload() -> None:
    w = World(queues=(QueueSettings(max_wait=300),), agents=())
    w.join("c1", at=1000)
    assert [c.reason for c in sendouts(reload(w, QueueSettings(max_wait=60), at=1100))] == [LeaveReason.TIMEOUT]


def test_lengthening_or_adding_an_overflow_by_reload_moves_the_overflow() -> None:
    """B6: the old core's OVERFLOW timer fired at the old time, found nothing due and was
    never armed again, so the caller overflowed only if a ring happened to end."""
    w = World(queues=(QueueSettings(overflow=Overflow(after=60)),), agents=())
    w.join("c1", at=1000)
    w.join("c2", at=1000)
    assert w.deadline_of("c1") == 1060
    reload(w, QueueSettings(overflow=Overflow(after=120)), at=1030)
    assert (w.deadline_of("c1"), sendouts(w.run_until(1119))) == (1120, [])
    assert [c.reason for c in sendouts(w.run_until(1120))] == [LeaveReason.OVERFLOW] * 2
    w.join("c3", at=1130)
    reload(w, QueueSettings(), at=1140)  # the overflow removed
    assert w.deadline_of("c3") == 1430
    reload(w, QueueSettings(overflow=Overflow(after=20, to=OverflowTo.CALLBACK)), at=1145)  # and added again
    assert [c.reason for c in sendouts(w.run_until(1150))] == [LeaveReason.CALLBACK]


def test_an_overflow_into_a_queue_with_another_max_wait_takes_that_queues_max_wait() -> None:
    """B6: the old core kept the first queue's MAX_WAIT timer after a queue overflow."""
    tax = QueueSettings(name="tax", max_wait=300, overflow=Overflow(after=60, to=OverflowTo.QUEUE, target="sales"))
    w = World(queues=(tax, QueueSettings(name="sales", max_wait=100)), agents=())
    w.join("c1", "tax", at=1000)
    w.run_until(1060)
    assert (w.call("c1").queue, w.deadline_of("c1")) == ("sales", 1100)  # counted from the arrival
    assert [c.reason for c in sendouts(w.run_until(1100))] == [LeaveReason.TIMEOUT]


# -- B7: `now` is monotonic, `wall` only labels -------------------------------------------------

WALL = 1_795_579_200.0  # 2026-11-25 12:00 in Shanghai


def test_an_early_wake_up_finds_nothing_due_and_wrap_up_still_ends_at_its_deadline() -> None:
    """B7: NTP steps the wall clock back an hour while 1001 is in wrap-up, and the shell's
    wake-up comes a little early. The old core compared the wall clock with a deadline on
    another clock and left the agent in wrap-up for good (review: test_a_backwards_clock_
    step_strands_the_agent_in_wrap_up). Fails on a copy of acd/lifecycle.py that counts
    wrap_until from `wall`."""
    w = World(agents=("1001",), wall_offset=WALL - 1000)
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1004)
    w.hangup("c1", at=1030)
    assert w.agent_deadline("1001") == 1035
    w.wall_offset -= 3600
    assert w.tick(1034.9) == []  # early: nothing is due
    assert (w.agent("1001").activity, next_deadline(w.state)) == (Activity.WRAP_UP, 1035)
    assert rings(w.join("c2", at=1034.95)) == []
    assert rings(w.tick(1035)) == [("c2", "1001")]


def test_a_wall_clock_step_during_a_call_leaves_its_durations_and_the_order_of_its_times() -> None:
    """B7: wait and talk are measured on the monotonic clock; the record's arrival is the
    wall clock at the join and its answer and end follow by those durations, so a step back
    during the call cannot put the end before the answer (review 3)."""
    w = World(agents=("1001",), wall_offset=WALL - 1000)
    w.register("1001")
    w.join("c1", at=1000)
    w.answer("c1", at=1004)
    w.wall_offset -= 3600  # stepped back during the call
    w.hangup("c1", at=1064)
    (rec,) = w.records()
    assert (rec.wait_seconds, rec.talk_seconds) == (4.0, 60.0)
    assert (rec.arrived, rec.answered, rec.ended) == (WALL, WALL + 4, WALL + 64)


# -- B8: nothing grows without bound ------------------------------------------------------------

DAY = 86400.0


def answer_one_caller_a_day(w: World, days: int) -> None:
    for d in range(days):
        t = 1000 + d * DAY
        w.join(f"c{d}", "a", at=t, caller_num=f"1380000000{d}")
        w.answer_and_finish(f"c{d}", "1001", at=t + 1, talk=10)
        w.run_until(t + 20)


def test_sticky_history_keeps_only_what_the_longest_sticky_days_can_use() -> None:
    """B8: the old core kept every caller who was ever answered. Fails on a copy of
    acd/rules.py whose remember_answer does not prune."""
    queues = (QueueSettings(name="a", sticky_days=1), QueueSettings(name="b", sticky_days=3))
    w = World(queues, {"1001": ({"a", "b"}, {})})
    w.register("1001")
    answer_one_caller_a_day(w, 10)
    assert sorted(w.state.last_agent) == [f"1380000000{d}" for d in (6, 7, 8, 9)]  # within 3 days of the last


def test_no_history_is_kept_when_sticky_routing_is_off() -> None:
    """B8: fails on a copy of acd/rules.py that keeps answers with no sticky queue."""
    w = World((QueueSettings(name="a"),), {"1001": ({"a"}, {})})
    w.register("1001")
    answer_one_caller_a_day(w, 3)
    w.feed(History((("13800000009", "1001", 900.0),)))
    assert w.state.last_agent == {}


def test_a_finished_call_leaves_no_deadline_behind() -> None:
    """B8: the old core's timers of a finished call stayed armed until they fired (review:
    test_timers_of_a_finished_call_stay_armed). Callers with max_wait, widening, overflow
    and stickiness, some answered, some hanging up, some timed out: once they are gone,
    only the agents' own deadlines (wrap-up, back-off) are left. Fails on a copy of
    acd/lifecycle.py whose finish does not drop the call's deadline."""
    q = QueueSettings(name="a", sticky_days=1, wrapup=30, max_wait=60, busy_backoff=10,
                      widen=(Widen(after=20, min_level=1),), overflow=Overflow(after=40, to=OverflowTo.CALLBACK))
    w = World((q,), {a: ({"a"}, {}) for a in ("1001", "1002")})
    w.register("1001", "1002")
    for i in range(20):
        w.join(f"c{i}", "a", at=1000 + i, caller_num=f"1390000000{i % 3}")
    w.answer("c0", at=1021)
    w.no_answer("c1", at=1022, status="BUSY")
    w.run_until(1050)
    for i in range(20):
        if f"c{i}" in w.state.calls:
            w.hangup(f"c{i}", at=1051 + i / 100)
    assert not w.state.calls
    agents_own = sum(agent_due(a, w.now) is not None for a in w.state.agents.values())
    assert agents_own == 1  # 1001 in wrap-up after c0
    assert len(w.state.deadlines) == agents_own
    w.run_until(1200)
    assert (len(w.state.deadlines), next_deadline(w.state)) == (0, None)


# -- M1, M12: nothing acts on a caller who is ringing or walking back ------------------------------


def test_a_time_out_falling_due_during_the_walk_back_waits_for_the_hold_loop() -> None:
    """M1 (time-out Redirect sent while the caller walks back, the race the dialplan warns
    about). Fails on a copy of acd/ringing.py and acd/deadlines.py that also time out a
    caller who is walking back."""
    w = World(queues=(QueueSettings(max_wait=20, ring_timeout=15),), agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.no_answer("c1", at=1015.1)  # walking back until HotlineParked (or 1020.1)
    assert sendouts(w.run_until(1020.05)) == []  # max_wait (1020) passed
    assert [c.reason for c in sendouts(w.park("c1", at=1020.08))] == [LeaveReason.TIMEOUT]


@pytest.mark.parametrize("parked_at", [1041.0, 1045.5])  # HotlineParked, or the park grace (1045.0)
def test_overflow_never_fires_while_the_caller_is_ringing_or_walking_back(parked_at: float) -> None:
    """M12 (overflow fires while ringing or walking back). Fails on a copy of
    acd/ringing.py and acd/deadlines.py that also overflow a caller who is dialing."""
    tax = QueueSettings(name="tax", overflow=Overflow(after=30, to=OverflowTo.QUEUE, target="sales"))
    w = World((tax, QueueSettings(name="sales")), {"1001": ({"tax"}, {})})
    w.join("c1", "tax", at=1000)
    w.register("1001", at=1025)  # rung at 1025, overflow due at 1030
    w.dial_begin("c1", at=1025.1)
    w.run_until(1039.9)
    w.no_answer("c1", at=1040)
    w.run_until(min(parked_at, 1045.0) - 0.01)
    assert (w.call("c1").queue, of_type(w.out, TagCaller)) == ("tax", [])
    out = w.park("c1", at=parked_at) if parked_at < 1045 else w.run_until(parked_at)
    assert w.call("c1").queue == "sales"
    assert [c.queue for c in of_type(out, TagCaller)] == ["sales"]


@pytest.mark.parametrize(
    ("queue", "does"),
    [
        (QueueSettings(skills=(("tax", 60),), max_wait=30), "time out"),
        (QueueSettings(skills=(("tax", 60),), overflow=Overflow(after=30)), "overflow"),
        (QueueSettings(skills=(("tax", 60),), widen=(Widen(after=30, min_level=10),)), "widen"),
    ],
)
def test_a_deadline_is_acted_on_at_the_wake_up_it_asked_for(queue: QueueSettings, does: str) -> None:
    """Found by the liveness simulation: a deadline is `start + length`, but the rules
    asked `now - start >= length`, which floats can round the other way (23.005 + 30 is
    53.004999999999995, and 53.004999999999995 - 23.005 < 30): at its own wake-up the
    rule was not due, the core reported a stuck deadline and acted a second late (a
    widening step was not applied at all until the next event)."""
    w = World((queue,), {"1001": ({"main"}, {"tax": 20})})  # below the level until widened
    w.register("1001")
    w.join("c1", at=23.005)
    due = next_deadline(w.state)
    assert due == 23.005 + 30
    out = w.tick(due)  # type: ignore[arg-type]
    assert [c for c in out if isinstance(c, Unexpected)] == []
    expected = {"time out": [LeaveReason.TIMEOUT], "overflow": [LeaveReason.OVERFLOW], "widen": []}[does]
    assert [c.reason for c in sendouts(out)] == expected
    assert rings(out) == ([("c1", "1001")] if does == "widen" else [])


def test_a_deadline_moved_thousands_of_times_is_still_found_once_and_on_time() -> None:
    """Every move leaves a stale heap entry behind; past a bound the heap is rebuilt from the
    live deadlines, and the soonest one is still the right one."""
    deadlines = Deadlines()
    deadlines.set(("agent", "1001"), 5000.0)
    for i in range(3000):
        deadlines.set(("call", "c1"), 1000.0 + i)
    assert (deadlines.next(), len(deadlines)) == (3999.0, 2)
    assert deadlines.pop_due(4000.0) == [("call", "c1")]
    assert (deadlines.next(), deadlines.pop_due(5000.0)) == (5000.0, [("agent", "1001")])
