"""Routing rules: queues, skills, priority, strategies, agent control."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from acd.agents import Activity, Control, Presence
from acd.calendar import Hours
from acd.calls import PENDING_RING, CallState
from acd.commands import AgentStateChanged, ControlDone, RingAgent, SendOut, TagCaller, Unexpected
from acd.events import (
    AgentProfile,
    AgentsConfigured,
    CallerJoined,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    History,
    LinkLost,
    QueuesConfigured,
    SnapshotCall,
    Where,
)
from acd.model import (
    LeaveReason,
    Outcome,
    Overflow,
    OverflowTo,
    QueueSettings,
    Strategy,
    WhenClosed,
    WhenEmpty,
    Widen,
)
from tests.unit.world import Profiles, World, chan, of_type, rings, sendouts

SALES = QueueSettings(name="sales")
TAX = QueueSettings(name="tax", skills=(("tax", 50),))


def world(queues: tuple[QueueSettings, ...], agents: Profiles) -> World:
    return World(queues, agents)


def test_skills_pick_the_agent_at_or_above_the_level() -> None:
    w = world((TAX,), {"1001": ({"tax"}, {"tax": 40}), "1002": ({"tax"}, {"tax": 60})})
    w.register("1001", at=900)  # longest idle, but below the level
    w.register("1002", at=950)
    assert rings(w.join("c1", "tax", 1000)) == [("c1", "1002")]


def test_a_number_can_ask_for_skills_on_top_of_the_queue() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {"english": 70})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    assert rings(w.join("c1", "sales", 1000, skills=(("english", 60),))) == [("c1", "1002")]


def test_nobody_qualified_the_caller_waits() -> None:
    w = world((TAX,), {"1001": ({"tax"}, {"tax": 10})})
    w.register("1001")
    assert rings(w.join("c1", "tax", 1000)) == []


def test_an_agent_is_only_rung_for_queues_it_serves() -> None:
    w = world((SALES, TAX), {"1001": ({"tax"}, {"tax": 90})})
    w.register("1001")
    assert rings(w.join("c1", "sales", 1000)) == []
    assert rings(w.join("c2", "tax", 1001)) == [("c2", "1001")]


@pytest.mark.parametrize(
    ("later_by", "priority", "overtakes"),
    [(30, 2, True), (59, 2, True), (61, 2, False), (100, 9, True), (121, 9, False)],
)
def test_a_priority_caller_overtakes_only_within_its_bounded_boost(later_by: float, priority: int,
                                                                    overtakes: bool) -> None:
    q = QueueSettings(name="sales", priority_step=30, max_boost=120)
    w = world((q,), {"1001": ({"sales"}, {})})
    w.join("normal", "sales", 1000)
    w.join("vip", "sales", 1000 + later_by, priority=priority)
    assert rings(w.register("1001", at=1200)) == [("vip" if overtakes else "normal", "1001")]


def test_across_queues_an_agent_takes_the_longest_weighted_wait() -> None:
    """Mended: the old test joined on a clock that ran backwards."""
    w = world((SALES, TAX), {"1001": ({"sales", "tax"}, {"tax": 80})})
    w.join("t1", "tax", 990)
    w.join("s2", "sales", 995, priority=1)  # key 965: first in line overall
    w.join("s1", "sales", 1000)
    assert rings(w.register("1001", at=1100)) == [("s2", "1001")]


def five_agents(strategy: Strategy) -> World:
    q = QueueSettings(name="sales", strategy=strategy, skills=(("sales", 1),))
    levels = {"1001": 10, "1002": 90, "1003": 50, "1004": 20, "1005": 70}
    w = world((q,), {a: ({"sales"}, {"sales": lvl}) for a, lvl in levels.items()})
    for i, a in enumerate(levels):
        w.register(a, at=900 + i)
    for a, calls, talk, offered in (("1001", 5, 10, 9), ("1002", 1, 500, 3), ("1003", 3, 300, 1),
                                    ("1004", 2, 5, 7), ("1005", 4, 400, 5)):
        agent = w.agent(a)
        agent.calls_taken, agent.talk_total, agent.last_offered = calls, talk, offered
    return w


@pytest.mark.parametrize(
    ("strategy", "agent"),
    [
        (Strategy.LONGEST_IDLE, "1001"),
        (Strategy.FEWEST_CALLS, "1002"),
        (Strategy.LEAST_TALK_TIME, "1004"),
        (Strategy.ROUND_ROBIN, "1003"),
        (Strategy.BEST_SKILL, "1002"),
    ],
)
def test_each_strategy_picks_its_agent(strategy: Strategy, agent: str) -> None:
    assert rings(five_agents(strategy).join("c1", "sales", 1000)) == [("c1", agent)]


def test_round_robin_moves_on_after_each_offer() -> None:
    w = five_agents(Strategy.ROUND_ROBIN)
    first = rings(w.join("c1", "sales", 1000))[0][1]
    second = rings(w.join("c2", "sales", 1001))[0][1]
    assert (first, second) == ("1003", "1002")


def test_a_paused_or_logged_out_agent_is_never_rung_until_back() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", "1002")
    assert of_type(w.control("1001", Control.PAUSE, "05"), ControlDone) == [ControlDone("1001", Control.PAUSE, True)]
    w.control("1002", Control.LOGOUT)
    assert rings(w.join("c1", "sales", 1000)) == []
    changes = of_type(w.out, AgentStateChanged)
    assert AgentStateChanged("1001", "available", "paused", "05") in changes
    assert AgentStateChanged("1002", "available", "logged_out", "") in changes
    assert rings(w.control("1001", Control.UNPAUSE, at=1010)) == [("c1", "1001")]


def test_pause_or_unpause_while_logged_out_is_refused_with_a_reason() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.control("1001", Control.LOGOUT)
    for action in (Control.PAUSE, Control.UNPAUSE):
        (done,) = of_type(w.control("1001", action), ControlDone)
        assert (done.ok, done.reason) == (False, "not logged in: log in first (*21)")
    assert w.agent("1001").presence is Presence.LOGGED_OUT


def test_ring_no_answer_n_times_in_a_row_pauses_the_agent() -> None:
    q = QueueSettings(name="sales", max_no_answer=2)
    w = world((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    for i, at in enumerate((1000, 1100)):
        call = f"c{i}"
        w.join(call, "sales", at)
        w.no_answer(call, at=at + 15)
        w.hangup(call, at=at + 16)
    agent = w.agent("1001")
    assert (agent.presence, agent.pause_reason) == (Presence.PAUSED, "no answer")
    assert rings(w.join("c9", "sales", 1200)) == []


def test_an_answer_resets_the_no_answer_count() -> None:
    q = QueueSettings(name="sales", max_no_answer=2, wrapup=0)
    w = world((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c0", "sales", 1000)
    w.no_answer("c0", at=1015)
    assert w.agent("1001").no_answer_streak == 1
    w.park("c0", at=1015.1)  # rung again: the only agent
    w.answer_and_finish("c0", "1001", at=1016)
    assert (w.agent("1001").no_answer_streak, w.agent("1001").pause_reason) == (0, None)


def test_a_busy_phone_backs_the_agent_off_for_a_while() -> None:
    q = QueueSettings(name="sales", busy_backoff=10)
    w = world((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c1", "sales", 1000)
    w.no_answer("c1", at=1001, status="BUSY")
    assert w.agent_deadline("1001") == 1011
    assert rings(w.park("c1", at=1001.1)) == []
    assert rings(w.tick(1011)) == [("c1", "1001")]


def test_an_agent_can_end_wrap_up_early() -> None:
    q = QueueSettings(name="sales", wrapup=60)
    w = world((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c1", "sales", 1000)
    w.answer_and_finish("c1", "1001", at=1002)
    assert rings(w.join("c2", "sales", 1020)) == []
    assert rings(w.control("1001", Control.END_WRAPUP, at=1021)) == [("c2", "1001")]


def test_ending_wrap_up_outside_wrap_up_is_refused() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {})})
    w.register("1001")
    (done,) = of_type(w.control("1001", Control.END_WRAPUP), ControlDone)
    assert (done.ok, done.reason) == (False, "not in wrap-up (now idle)")


def test_an_agents_own_wrap_up_overrides_the_queue() -> None:
    w = world((QueueSettings(name="sales", wrapup=60),), {})
    w.feed(AgentsConfigured(frozenset({"1001"}), (AgentProfile("1001", frozenset({"sales"}), (), wrapup=2),)))
    w.register("1001")
    w.join("c1", "sales", 1000)
    w.answer_and_finish("c1", "1001", at=1001, talk=9)
    assert w.agent("1001").wrap_until == 1012


def test_reload_keeps_every_callers_place_and_applies_to_the_next_decision() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    for i in range(5):
        w.join(f"c{i}", "sales", 1000 + i)
    before = [cid for _, _, cid in w.state.lines["sales"]]
    w.feed(QueuesConfigured((QueueSettings(name="sales", strategy=Strategy.FEWEST_CALLS),)), at=1010)
    assert [cid for _, _, cid in w.state.lines["sales"]] == before
    assert w.state.queues["sales"].strategy is Strategy.FEWEST_CALLS


def test_a_reload_changing_the_priority_boost_keeps_every_callers_place() -> None:
    """Found while porting the reload property: the new core recomputed every caller's
    line key on reload, so a priority caller lost the place it had (README: "Places
    survive a reload"). The new boost applies to callers who join afterwards."""
    w = world((QueueSettings(name="sales", priority_step=30),), {"1001": ({"sales"}, {})})
    w.join("c0", "sales", 1000)
    w.join("vip", "sales", 1010, priority=1)  # key 980: ahead of c0
    w.feed(QueuesConfigured((QueueSettings(name="sales", priority_step=0),)), at=1020)
    assert [cid for _, _, cid in w.state.lines["sales"]] == ["vip", "c0"]
    w.join("vip2", "sales", 1030, priority=1)  # no boost any more: behind c0
    assert [cid for _, _, cid in w.state.lines["sales"]] == ["vip", "c0", "vip2"]


def test_a_changed_strategy_applies_to_the_next_decision() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)  # longest idle
    w.register("1002", at=950)
    w.agent("1002").calls_taken = 7
    assert rings(w.join("c0", "sales", 1000)) == [("c0", "1001")]
    w.hangup("c0", at=1001)  # 1001 is free again, idle only since now
    w.feed(QueuesConfigured((QueueSettings(name="sales", strategy=Strategy.FEWEST_CALLS),)), at=1002)
    assert rings(w.join("c1", "sales", 1003)) == [("c1", "1001")]  # longest idle would have been 1002


def test_a_reload_keeps_who_has_been_idle_longest() -> None:
    """M3: resetting idle_since on every agent change (a reload, a repeated unpause or
    device state) would make 1001 and 1002 tie and the agent id would decide."""
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1002", at=900)
    w.register("1001", at=950)
    w.configure({"1001": ({"sales"}, {}), "1002": ({"sales"}, {})}, at=990)
    w.control("1002", Control.UNPAUSE, at=991)
    w.register("1002", at=992)
    assert rings(w.join("c1", "sales", 1000)) == [("c1", "1002")]


def test_a_removed_agent_on_a_call_leaves_after_the_call() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.join("c1", "sales", 1000)
    w.answer("c1", at=1001)
    w.feed(AgentsConfigured(frozenset({"1002"}), (AgentProfile("1002", frozenset({"sales"})),)), at=1002)
    assert w.call("c1").state is CallState.CONNECTED
    w.hangup("c1", at=1010)
    w.run_until(1020)
    assert rings(w.join("c2", "sales", 1021)) == []


def test_after_the_widening_time_a_lower_level_is_accepted() -> None:
    q = QueueSettings(name="tax", skills=(("tax", 60),), widen=(Widen(after=20, min_level=30),))
    w = world((q,), {"1001": ({"tax"}, {"tax": 40})})
    w.register("1001")
    assert rings(w.join("c1", "tax", 1000)) == []
    assert w.deadline_of("c1") == 1020
    assert rings(w.tick(1020)) == [("c1", "1001")]


def test_after_the_widening_time_another_queues_agents_may_take_the_caller() -> None:
    tax = QueueSettings(name="tax", widen=(Widen(after=60, add_queues=("sales",)),))
    w = world((tax, SALES), {"1001": ({"sales"}, {})})
    w.register("1001")
    assert rings(w.join("c1", "tax", 1000)) == []
    assert rings(w.tick(1059)) == []  # an early wake-up: not yet
    assert rings(w.tick(1060)) == [("c1", "1001")]


def test_widening_steps_are_timed_one_after_another() -> None:
    q = QueueSettings(name="tax", widen=(Widen(after=20, min_level=50), Widen(after=60, min_level=10)))
    w = world((q,), {})
    w.join("c1", "tax", 1000)
    assert w.deadline_of("c1") == 1020
    w.tick(1020)
    assert w.deadline_of("c1") == 1060
    w.tick(1060)
    assert w.deadline_of("c1") == 1300  # max_wait


def test_overflow_moves_the_caller_to_another_queue_keeping_the_arrival() -> None:
    tax = QueueSettings(name="tax", overflow=Overflow(after=120, to=OverflowTo.QUEUE, target="sales"))
    w = world((tax, SALES), {"1001": ({"sales"}, {})})
    w.join("c1", "tax", 1000)
    w.join("s1", "sales", 1050)
    w.run_until(1120)
    call = w.call("c1")
    assert (call.queue, call.path, call.arrived) == ("sales", ("tax", "sales"), 1000)
    assert rings(w.register("1001", at=1121)) == [("c1", "1001")]  # still first in line


def test_overflow_to_the_message_ends_as_overflow() -> None:
    w = world((QueueSettings(name="tax", overflow=Overflow(after=30)),), {})
    w.join("c1", "tax", 1000)
    assert sendouts(w.run_until(1030)) == [SendOut("c1", chan("c1"), LeaveReason.OVERFLOW)]
    w.hangup("c1", at=1035)
    assert [r.outcome for r in w.records()] == [Outcome.OVERFLOW]


def test_a_full_queue_overflows_the_next_caller_at_once() -> None:
    q = QueueSettings(name="tax", max_length=2, overflow=Overflow(after=600, to=OverflowTo.QUEUE, target="sales"))
    w = world((q, SALES), {})
    for i in range(3):
        w.join(f"c{i}", "tax", 1000 + i)
    assert [w.call(f"c{i}").queue for i in range(3)] == ["tax", "tax", "sales"]


def test_a_queue_with_nobody_logged_in_can_send_callers_on_at_once() -> None:
    q = QueueSettings(name="tax", when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(after=600))
    w = world((q,), {"1001": ({"tax"}, {})})
    assert sendouts(w.join("c1", "tax", 1000)) == [SendOut("c1", chan("c1"), LeaveReason.OVERFLOW)]
    w.register("1001")
    assert rings(w.join("c2", "tax", 1001)) == [("c2", "1001")]  # somebody is there now


def sticky_world() -> World:
    q = QueueSettings(name="sales", sticky_days=3, sticky_wait=30, wrapup=0)
    w = world((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.join("first", "sales", 1000, caller_num="13800000001")  # -> 1001
    w.answer_and_finish("first", "1001", at=1001)
    w.run_until(1011)
    return w


def test_a_caller_ringing_again_is_offered_to_the_agent_who_answered_them_last() -> None:
    w = sticky_world()
    w.register("1001", busy=True, at=1100)  # 1001 busy with something else
    assert rings(w.join("again", "sales", 1200, caller_num="13800000001")) == []  # kept for 1001
    assert rings(w.register("1001", at=1210)) == [("again", "1001")]


def test_a_caller_is_not_kept_for_a_last_agent_who_is_paused_or_whose_phone_is_gone() -> None:
    """Stickiness waits only for an agent who can come: paused or unregistered, the caller
    goes to whoever is free at once (mutation review)."""
    w = sticky_world()
    w.control("1001", Control.PAUSE, at=1100)
    assert rings(w.join("again", "sales", 1200, caller_num="13800000001")) == [("again", "1002")]
    w = sticky_world()
    w.feed(DeviceChanged("1001", registered=False, busy=False), at=1100)
    assert rings(w.join("again", "sales", 1200, caller_num="13800000001")) == [("again", "1002")]


def test_the_sticky_wait_runs_out_and_anyone_may_answer() -> None:
    w = sticky_world()
    w.register("1001", busy=True, at=1100)
    w.join("again", "sales", 1200, caller_num="13800000001")
    assert w.deadline_of("again") == 1230
    assert rings(w.tick(1230)) == [("again", "1002")]


def test_stickiness_ends_after_the_configured_days() -> None:
    w = sticky_world()
    w.register("1001", busy=True, at=1100)
    later = 1011 + 3 * 86400 + 1
    assert rings(w.join("other", "sales", later)) == [("other", "1002")]
    assert rings(w.join("again", "sales", later + 1, caller_num="13800000001")) == []  # 1001 and 1002 busy
    assert w.call("again").sticky_agent is None


def test_history_from_the_store_makes_callers_sticky_after_a_restart() -> None:
    q = QueueSettings(name="sales", sticky_days=3, sticky_wait=30)
    w = world((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.feed(History((("13800000009", "1002", 900.0),)), at=950)
    w.register("1001", at=960)
    w.register("1002", at=970)
    out = w.join("c1", "sales", 1000, caller_num="13800000009")
    assert rings(out) == [("c1", "1002")]  # 1001 is idle longer, but 1002 answered this caller last


def ring_all_world() -> World:
    q = QueueSettings(name="sales", strategy=Strategy.RING_ALL, skills=(("sales", 10),))
    w = world((q,), {"1001": ({"sales"}, {"sales": 50}), "1002": ({"sales"}, {"sales": 50}),
                     "1003": ({"sales"}, {"sales": 5})})
    w.register("1001", "1002", "1003")
    return w


def test_ring_all_rings_every_qualified_free_agent_and_the_first_answer_wins() -> None:
    w = ring_all_world()
    (ring,) = of_type(w.join("c1", "sales", 1000), RingAgent)
    assert sorted(ring.agent_ids) == ["1001", "1002"]  # 1003 lacks the level
    w.dial_begin("c1", at=1000.1)
    w.answer("c1", "1002", at=1003)
    w.no_answer("c1", "1001", at=1003, status="CANCEL")
    assert (w.agent("1002").activity, w.agent("1001").activity) == (Activity.ON_CALL, Activity.IDLE)
    assert w.call("c1").agent_id == "1002"
    assert rings(w.join("c2", "sales", 1004)) == [("c2", "1001")]  # 1001 was freed at once


def test_ring_all_goes_on_until_the_last_phone_gives_up() -> None:
    w = ring_all_world()
    w.join("c1", "sales", 1000)
    w.dial_begin("c1", at=1000.1)
    w.no_answer("c1", "1001", at=1001, status="BUSY")
    assert w.call("c1").state is CallState.DIALING  # 1002 still rings
    assert w.agent("1001").activity is Activity.IDLE
    w.no_answer("c1", "1002", at=1015)
    assert w.call("c1").state is CallState.WALKING_BACK
    assert w.call("c1").tried == frozenset({"1001", "1002"})


@pytest.mark.parametrize(
    ("rule", "command", "outcome"),
    [
        (Overflow(after=30, to=OverflowTo.NUMBER, target="057112345"),
         SendOut("c1", chan("c1"), LeaveReason.FORWARD, "057112345"), Outcome.FORWARDED),
        (Overflow(after=30, to=OverflowTo.CALLBACK), SendOut("c1", chan("c1"), LeaveReason.CALLBACK),
         Outcome.CALLBACK),
    ],
)
def test_overflow_to_a_number_or_a_callback(rule: Overflow, command: SendOut, outcome: Outcome) -> None:
    w = world((QueueSettings(name="tax", overflow=rule),), {})
    w.join("c1", "tax", 1000)
    assert sendouts(w.run_until(1030)) == [command]
    w.hangup("c1", at=1090)
    assert [r.outcome for r in w.records()] == [outcome]


def test_callers_move_on_when_the_last_agent_of_the_queue_logs_out() -> None:
    q = QueueSettings(name="tax", when_empty=WhenEmpty.OVERFLOW,
                      overflow=Overflow(after=600, to=OverflowTo.QUEUE, target="sales"))
    w = world((q, SALES), {"1001": ({"tax"}, {}), "1002": ({"tax"}, {})})
    w.register("1001", "1002")
    w.control("1001", Control.PAUSE)
    w.control("1002", Control.PAUSE)  # paused is still logged in: callers wait
    w.join("c1", "tax", 1000)
    assert w.call("c1").queue == "tax"
    w.control("1001", Control.LOGOUT, at=1010)
    assert w.call("c1").queue == "tax"
    w.feed(DeviceChanged("1002", registered=False, busy=False), at=1020)  # the last one's phone goes away
    assert (w.call("c1").queue, w.call("c1").path) == ("sales", ("tax", "sales"))


def test_after_a_resync_callers_of_a_queue_nobody_is_logged_into_move_on() -> None:
    q = QueueSettings(name="tax", when_empty=WhenEmpty.OVERFLOW,
                      overflow=Overflow(after=600, to=OverflowTo.QUEUE, target="sales"))
    w = world((q, SALES), {"1001": ({"tax"}, {})})
    w.register("1001")
    w.join("c1", "tax", 1000)
    w.no_answer("c1", at=1015)
    w.park("c1", at=1015.1)
    w.feed(LinkLost(), at=1016)
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=20, queue="tax"),)), at=1020)
    w.feed(DevicesSnapshot((DeviceChanged("1001", False, False),)), at=1020)
    assert w.call("c1").queue == "sales"


def test_callers_of_a_removed_queue_move_to_the_first_queue_on_reload() -> None:
    w = world((QueueSettings(name="main"), SALES), {"1001": ({"main"}, {})})
    w.join("c1", "sales", 1000)
    w.feed(QueuesConfigured((QueueSettings(name="main"),)), at=1010)
    assert (w.call("c1").queue, w.call("c1").path) == ("main", ("sales", "main"))
    assert rings(w.register("1001", at=1011)) == [("c1", "1001")]


def test_a_caller_who_rang_every_free_agent_is_offered_again_when_they_have_nobody_else() -> None:
    w = world((SALES, TAX), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", "1002")
    w.join("c1", "sales", 1000)
    w.no_answer("c1", at=1010)
    w.park("c1", at=1010.1)  # rings the other agent
    w.join("c2", "tax", 1011)
    w.join("c3", "tax", 1012)  # more callers than free agents, none of them for these agents
    w.no_answer("c1", at=1013)
    out = w.park("c1", at=1013.1)
    assert w.call("c1").tried == frozenset({"1001", "1002"})
    assert rings(out) == [("c1", w.call("c1").agent_id)]
    assert w.call("c1").state in PENDING_RING


def test_an_agent_a_caller_rang_out_is_offered_that_caller_only_when_nobody_else_can_take_it() -> None:
    """M5 (offer a tried agent only when nobody else can): 1001 has taken the fewest calls,
    but let c1 ring out; the caller goes to 1002 while 1002 is free."""
    q = QueueSettings(name="sales", strategy=Strategy.FEWEST_CALLS)
    w = world((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", "1002")
    w.agent("1002").calls_taken = 9
    assert rings(w.join("c1", "sales", 1000)) == [("c1", "1001")]
    w.no_answer("c1", at=1015)
    assert rings(w.park("c1", at=1015.1)) == [("c1", "1002")]


def test_a_free_agent_takes_the_next_caller_rather_than_ring_again_one_who_rang_them_out() -> None:
    """M5, the other half: untried pairs are matched first, across the callers in line."""
    w = world((SALES,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c1", "sales", 1000)
    w.register("1001", busy=True, at=1000.1)  # the phone rings
    w.join("c2", "sales", 1001)
    w.no_answer("c1", at=1015)
    w.park("c1", at=1015.1)  # c1 is first in line again, c2 behind
    assert rings(w.register("1001", at=1015.2)) == [("c2", "1001")]


def test_ring_all_leaves_an_agent_for_each_caller_behind_in_the_same_queue() -> None:
    q = QueueSettings(name="sales", strategy=Strategy.RING_ALL)
    w = world((q,), {a: ({"sales"}, {}) for a in ("1001", "1002", "1003")})
    w.feed(LinkLost(), at=999)
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=2, queue="sales"),
                             SnapshotCall("c2", chan("c2"), Where.HOLD, age=1, queue="sales"))), at=1000)
    # Routing resumes with three free agents and two callers.
    out = w.feed(DevicesSnapshot(tuple(DeviceChanged(a, True, False) for a in ("1001", "1002", "1003"))), at=1000)
    assert {c.call_id: len(c.agent_ids) for c in of_type(out, RingAgent)} == {"c1": 2, "c2": 1}


def test_ring_all_rings_every_free_agent_while_another_queue_is_congested() -> None:
    """B10 (M4): the old core chose between caller-picks and agent-picks by comparing all
    free agents with all waiting callers, so a congested queue turned this queue's ring_all
    into longest-idle (review: test_ring_all_degrades_to_longest_idle_...). Fails on a
    broken copy of acd/match.py that restores that global switch, and on one that counts
    the callers behind in every queue instead of this one."""
    ring_all = QueueSettings(name="sales", strategy=Strategy.RING_ALL)
    w = world((ring_all, TAX), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {}), "1003": ({"sales"}, {}),
                                "2001": ({"tax"}, {"tax": 90})})
    for i in range(5):
        w.join(f"t{i}", "tax", 990 + i)  # nobody free for tax: congested
    w.register("1001", "1002", "1003", at=999)
    (ring,) = of_type(w.join("s1", "sales", 1000), RingAgent)
    assert sorted(ring.agent_ids) == ["1001", "1002", "1003"]


def test_best_skill_picks_the_best_agent_while_another_queue_is_congested() -> None:
    """B10: as above, for best_skill (the old core, and a copy of acd/match.py with the
    global switch restored, ring the longest idle agent instead)."""
    best = QueueSettings(name="sales", strategy=Strategy.BEST_SKILL, skills=(("sales", 10),))
    w = world((best, TAX), {"1001": ({"sales"}, {"sales": 20}), "1002": ({"sales"}, {"sales": 90}),
                            "2001": ({"tax"}, {"tax": 90})})
    for i in range(5):
        w.join(f"t{i}", "tax", 990 + i)
    w.register("1001", at=995)  # idle longest
    w.register("1002", at=996)
    assert rings(w.join("s1", "sales", 1000)) == [("s1", "1002")]


def test_a_join_while_the_link_is_down_is_not_rung_until_both_snapshots_came() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {})})
    w.feed(LinkLost(), at=999)
    assert rings(w.feed(CallerJoined("c1", chan("c1"), "sales"), at=1000)) == []
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=1, queue="sales"),)), at=1001)
    assert not w.state.routing
    assert rings(w.feed(DevicesSnapshot((DeviceChanged("1001", True, False),)), at=1002)) == [("c1", "1001")]


@pytest.mark.parametrize(
    ("queue", "profiles", "rung"),
    [
        # An agent exactly at the queue's level qualifies.
        (TAX, {"1001": ({"tax"}, {"tax": 49}), "1002": ({"tax"}, {"tax": 50})}, "1002"),
        # An agent without the skill has level 0, below even level 1.
        (QueueSettings(name="tax", skills=(("tax", 1),)), {"1001": ({"tax"}, {}), "1002": ({"tax"}, {"tax": 1})},
         "1002"),
    ],
)
def test_an_agent_qualifies_from_exactly_the_level_and_lacking_a_skill_is_level_zero(
        queue: QueueSettings, profiles: Profiles, rung: str) -> None:
    w = world((queue,), profiles)
    w.register("1001", at=900)  # longest idle, but not qualified
    w.register("1002", at=950)
    assert rings(w.join("c1", "tax", 1000)) == [("c1", rung)]


def test_a_number_asking_a_lower_level_of_a_queue_skill_keeps_the_queues_level() -> None:
    w = world((TAX,), {"1001": ({"tax"}, {"tax": 40}), "1002": ({"tax"}, {"tax": 50})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    assert rings(w.join("c1", "tax", 1000, skills=(("tax", 30),))) == [("c1", "1002")]  # the higher level wins


def test_a_request_from_an_agent_not_in_agents_yaml_is_refused_by_name() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {})})
    w.register("2001")  # a phone registered with no agent configured for it
    for agent_id in ("2001", "9999"):
        assert of_type(w.control(agent_id, Control.LOGIN), ControlDone) == [
            ControlDone(agent_id, Control.LOGIN, False, "no such agent in agents.yaml")]


def test_ending_wrap_up_answers_the_request_and_the_agent_is_idle_from_then() -> None:
    q = QueueSettings(name="sales", wrapup=60)
    w = world((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.join("c1", "sales", 1000)
    w.answer_and_finish("c1", "1001", at=1001)  # in wrap-up from 1011 to 1071
    w.register("1002", at=1015)
    assert of_type(w.control("1001", Control.END_WRAPUP, at=1020), ControlDone) == [
        ControlDone("1001", Control.END_WRAPUP, True)]
    assert of_type(w.control("1002", Control.END_WRAPUP, at=1021), ControlDone) == [
        ControlDone("1002", Control.END_WRAPUP, False, "not in wrap-up (now idle)")]
    assert rings(w.join("c2", "sales", 1030)) == [("c2", "1002")]  # idle since 1015, 1001 only since 1020


def test_a_pause_without_a_reason_reads_break_and_unpausing_clears_it() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.control("1001", Control.PAUSE)
    assert w.agent("1001").pause_reason == "break"
    w.control("1001", Control.UNPAUSE)
    assert w.agent("1001").pause_reason is None  # the /agents API shows no reason
    assert of_type(w.out, AgentStateChanged) == [AgentStateChanged("1001", "logged_out", "available", ""),
                                                 AgentStateChanged("1001", "available", "paused", "break"),
                                                 AgentStateChanged("1001", "paused", "available", "")]


def test_unpausing_starts_the_no_answer_count_again() -> None:
    q = QueueSettings(name="sales", max_no_answer=2)
    w = world((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    for call, at in (("c0", 1000), ("c1", 1100)):
        w.join(call, "sales", at)
        w.no_answer(call, at=at + 15)
        w.hangup(call, at=at + 16)
    assert w.agent("1001").presence is Presence.PAUSED
    w.control("1001", Control.UNPAUSE, at=1200)
    w.join("c2", "sales", 1300)
    w.no_answer("c2", at=1315)
    assert (w.agent("1001").presence, w.agent("1001").no_answer_streak) == (Presence.READY, 1)


def test_an_unpaused_agent_counts_as_idle_from_the_unpause() -> None:
    w = world((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.control("1001", Control.PAUSE, "05", at=960)
    w.control("1001", Control.UNPAUSE, at=1000)
    assert rings(w.join("c1", "sales", 1010)) == [("c1", "1002")]


def test_least_talk_time_adds_up_the_talk_of_every_call() -> None:
    q = QueueSettings(name="sales", strategy=Strategy.LEAST_TALK_TIME, wrapup=0)
    w = world((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    for call, at, agent, talk in (("c1", 1000, "1001", 30), ("c2", 1100, "1002", 50), ("c3", 1200, "1001", 30)):
        assert rings(w.join(call, "sales", at)) == [(call, agent)]
        w.answer_and_finish(call, agent, at=at + 1, talk=talk)
    assert rings(w.join("c4", "sales", 1300)) == [("c4", "1002")]  # 50 s against 1001's 60 s


def test_every_answered_call_counts_once_for_the_agent() -> None:
    q = QueueSettings(name="sales", strategy=Strategy.FEWEST_CALLS, wrapup=0)
    w = world((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    for call, at, agent in (("c1", 1000, "1001"), ("c2", 1100, "1002"), ("c3", 1200, "1001")):
        assert rings(w.join(call, "sales", at)) == [(call, agent)]
        w.answer_and_finish(call, agent, at=at + 1)
    assert (w.agent("1001").calls_taken, w.agent("1002").calls_taken) == (2, 1)  # shown by /agents


def test_ring_all_when_the_first_phone_gives_up_the_call_follows_the_one_still_ringing() -> None:
    w = ring_all_world()
    w.join("c1", "sales", 1000)
    w.dial_begin("c1", at=1000.1)
    assert w.call("c1").agent_id == "1001"  # the first of the ring
    w.no_answer("c1", "1001", at=1010)
    call = w.call("c1")
    assert (call.agent_id, call.ringing, call.tried) == ("1002", frozenset({"1002"}), frozenset({"1001"}))
    assert (w.agent("1001").activity, w.agent("1001").call_id) == (Activity.IDLE, None)


def test_ring_all_the_other_phones_cancelled_by_the_answer_are_neither_unexpected_nor_missed() -> None:
    w = ring_all_world()
    w.join("c1", "sales", 1000)
    w.dial_begin("c1", at=1000.1)
    w.answer("c1", "1002", at=1003)
    out = w.no_answer("c1", "1001", at=1003, status="CANCEL")
    assert of_type(out, Unexpected) == []
    assert w.agent("1001").no_answer_streak == 0


def test_overflow_between_queues_that_send_callers_to_each_other_ends_at_the_overflow_message() -> None:
    """Overflow hops at most once per queue: a caller whose queues overflow into each other
    (nobody logged in anywhere) visits each, then hears the overflow message; every queue
    change is stored on the channel."""
    a = QueueSettings(name="a", when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(60, OverflowTo.QUEUE, "b"))
    b = QueueSettings(name="b", when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(60, OverflowTo.QUEUE, "a"))
    w = world((a, b), {})
    out = w.join("c1", "a", 1000)
    assert w.call("c1").path == ("a", "b", "a")
    assert of_type(out, TagCaller) == [TagCaller("c1", chan("c1"), "b", "a", ("a", "b")),
                                       TagCaller("c1", chan("c1"), "a", "a", ("a", "b", "a"))]
    assert sendouts(out) == [SendOut("c1", chan("c1"), LeaveReason.OVERFLOW)]


@pytest.mark.parametrize("target", ["nosuch", "tax"])
def test_overflow_to_an_unknown_queue_or_to_its_own_queue_is_the_overflow_message(target: str) -> None:
    w = world((QueueSettings(name="tax", overflow=Overflow(30, OverflowTo.QUEUE, target)),), {})
    w.join("c1", "tax", 1000)
    assert sendouts(w.run_until(1030)) == [SendOut("c1", chan("c1"), LeaveReason.OVERFLOW)]
    assert w.call("c1").path == ("tax",)


def test_a_full_queue_with_no_overflow_rule_sends_the_next_caller_to_the_overflow_message() -> None:
    w = world((QueueSettings(name="tax", max_length=1),), {})
    w.join("c1", "tax", 1000)
    assert sendouts(w.join("c2", "tax", 1001)) == [SendOut("c2", chan("c2"), LeaveReason.OVERFLOW)]


def test_a_closed_queue_set_to_overflow_but_with_no_overflow_rule_plays_the_closed_message() -> None:
    weekdays_only = Hours(weekly=(((time(9), time(17)),),) * 5 + ((), ()))
    q = QueueSettings(name="tax", hours=weekdays_only, when_closed=WhenClosed.OVERFLOW)
    w = world((q,), {})
    saturday_noon = datetime(2026, 11, 28, 12, tzinfo=timezone(timedelta(hours=8))).timestamp()
    w.wall_offset = saturday_noon - 1000
    assert sendouts(w.join("c1", "tax", 1000)) == [SendOut("c1", chan("c1"), LeaveReason.CLOSED)]


def test_callers_who_joined_at_the_same_instant_are_served_in_the_order_they_joined() -> None:
    """Equal arrival and priority: the join order breaks the tie, not the call ids (mutation
    review: the sequence number was never checked)."""
    w = world((QueueSettings(name="sales"),), {"1001": ({"sales"}, {})})
    w.join("z-first", "sales", 1000)
    w.join("a-second", "sales", 1000)
    assert rings(w.register("1001", at=1001)) == [("z-first", "1001")]
