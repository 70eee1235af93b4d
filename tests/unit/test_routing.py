"""Issue 3 routing rules: queues, skills, priority, strategies, agent control."""

from __future__ import annotations

import pytest

from acd import decide
from acd.commands import AgentStateChanged, CallRecord, Command, RingAgent, SendToTimeout, StartTimer
from acd.events import (
    AgentControl,
    AgentProfile,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    Event,
    History,
    LinkLost,
    QueuesConfigured,
    Resynced,
    SnapshotChannel,
    TimerFired,
    TimerKind,
)
from acd.model import CallPhase, Outcome, Overflow, QueueSettings, State, Strategy, Widen

SALES = QueueSettings(name="sales")
TAX = QueueSettings(name="tax", skills=(("tax", 50),))


class World:
    def __init__(self, queues: tuple[QueueSettings, ...], agents: dict[str, tuple[set[str], dict[str, int]]]) -> None:
        self.state = State(queues={q.name: q for q in queues}, routing=True)
        self.now = 1000.0
        self.out: list[Command] = []
        profiles = tuple(
            AgentProfile(a, frozenset(qs), tuple(sorted(sk.items()))) for a, (qs, sk) in agents.items()
        )
        self.feed(AgentsConfigured(frozenset(agents), profiles))

    def feed(self, event: Event, at: float | None = None) -> list[Command]:
        if at is not None:
            self.now = at
        _, out = decide(self.state, event, self.now)
        self.out += out
        return out

    def register(self, *agents: str, at: float | None = None) -> None:
        for a in agents:
            self.feed(DeviceChanged(a, True, False), at)

    def join(self, call: str, queue: str, at: float, priority: int = 0,
             skills: tuple[tuple[str, int], ...] = ()) -> list[tuple[str, str]]:
        return rings(self.feed(CallerJoined(call, f"chan-{call}", queue, priority=priority, skills=skills), at))

    def answer_and_finish(self, call: str, agent: str, at: float, talk: float = 10) -> None:
        self.feed(DialEnded(call, agent, "ANSWER"), at)
        self.feed(CallerHungUp(call, f"chan-{call}"), at + talk)


def rings(out: list[Command]) -> list[tuple[str, str]]:
    return [(c.call_id, c.agent_id) for c in out if isinstance(c, RingAgent)]


def test_skills_pick_the_agent_at_or_above_the_level() -> None:
    w = World((TAX,), {"1001": ({"tax"}, {"tax": 40}), "1002": ({"tax"}, {"tax": 60})})
    w.register("1001", at=900)  # longest idle, but below the level
    w.register("1002", at=950)
    assert w.join("c1", "tax", 1000) == [("c1", "1002")]


def test_a_number_can_ask_for_skills_on_top_of_the_queue() -> None:
    w = World((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {"english": 70})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    assert w.join("c1", "sales", 1000, skills=(("english", 60),)) == [("c1", "1002")]


def test_nobody_qualified_the_caller_waits() -> None:
    w = World((TAX,), {"1001": ({"tax"}, {"tax": 10})})
    w.register("1001")
    assert w.join("c1", "tax", 1000) == []


def test_an_agent_is_only_rung_for_queues_it_serves() -> None:
    w = World((SALES, TAX), {"1001": ({"tax"}, {"tax": 90})})
    w.register("1001")
    assert w.join("c1", "sales", 1000) == []
    assert w.join("c2", "tax", 1001) == [("c2", "1001")]


@pytest.mark.parametrize(
    ("later_by", "priority", "overtakes"),
    [(30, 2, True), (59, 2, True), (61, 2, False), (100, 9, True), (121, 9, False)],
)
def test_a_priority_caller_overtakes_only_within_its_bounded_boost(later_by: float, priority: int,
                                                                    overtakes: bool) -> None:
    q = QueueSettings(name="sales", priority_step=30, max_boost=120)
    w = World((q,), {"1001": ({"sales"}, {})})
    w.join("normal", "sales", 1000)
    w.join("vip", "sales", 1000 + later_by, priority=priority)
    assert rings(w.feed(DeviceChanged("1001", True, False), at=1200)) == [("vip" if overtakes else "normal", "1001")]


def test_across_queues_an_agent_takes_the_longest_weighted_wait() -> None:
    w = World((SALES, TAX), {"1001": ({"sales", "tax"}, {"tax": 80})})
    w.join("s1", "sales", 1000)
    w.join("t1", "tax", 990)
    w.join("s2", "sales", 995, priority=1)  # key 965: first in line overall
    assert rings(w.feed(DeviceChanged("1001", True, False), at=1100)) == [("s2", "1001")]


def five_agents(strategy: Strategy) -> World:
    q = QueueSettings(name="sales", strategy=strategy, skills=(("sales", 1),))
    levels = {"1001": 10, "1002": 90, "1003": 50, "1004": 20, "1005": 70}
    w = World((q,), {a: ({"sales"}, {"sales": lvl}) for a, lvl in levels.items()})
    for i, a in enumerate(levels):
        w.register(a, at=900 + i)
    agents = w.state.agents
    agents["1001"].calls_taken, agents["1002"].calls_taken, agents["1003"].calls_taken = 5, 1, 3
    agents["1004"].calls_taken, agents["1005"].calls_taken = 2, 4
    agents["1001"].talk_total, agents["1002"].talk_total, agents["1003"].talk_total = 10, 500, 300
    agents["1004"].talk_total, agents["1005"].talk_total = 5, 400
    agents["1001"].last_offered, agents["1002"].last_offered, agents["1003"].last_offered = 9, 3, 1
    agents["1004"].last_offered, agents["1005"].last_offered = 7, 5
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
    assert five_agents(strategy).join("c1", "sales", 1000) == [("c1", agent)]


def test_round_robin_moves_on_after_each_offer() -> None:
    w = five_agents(Strategy.ROUND_ROBIN)
    first = w.join("c1", "sales", 1000)[0][1]
    second = w.join("c2", "sales", 1001)[0][1]
    assert (first, second) == ("1003", "1002")


def test_a_paused_or_logged_out_agent_is_never_rung_until_back() -> None:
    w = World((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", "1002")
    w.feed(AgentControl("1001", "pause", "05"))
    w.feed(AgentControl("1002", "logout"))
    assert w.join("c1", "sales", 1000) == []
    changes = [c for c in w.out if isinstance(c, AgentStateChanged)]
    assert AgentStateChanged("1001", "available", "paused", "05") in changes
    assert AgentStateChanged("1002", "available", "logged_out", "") in changes
    assert rings(w.feed(AgentControl("1001", "unpause"), at=1010)) == [("c1", "1001")]


def test_ring_no_answer_n_times_in_a_row_pauses_the_agent() -> None:
    q = QueueSettings(name="sales", max_no_answer=2)
    w = World((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    for i, at in enumerate((1000, 1100)):
        call = f"c{i}"
        w.join(call, "sales", at)
        w.feed(DialEnded(call, "1001", "NOANSWER"), at=at + 15)
        w.feed(CallerHungUp(call, f"chan-{call}"), at=at + 16)
    agent = w.state.agents["1001"]
    assert agent.paused == "no answer"
    assert w.join("c9", "sales", 1200) == []


def test_an_answer_resets_the_no_answer_count() -> None:
    q = QueueSettings(name="sales", max_no_answer=2, wrapup=0)
    w = World((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c0", "sales", 1000)
    w.feed(DialEnded("c0", "1001", "NOANSWER"), at=1015)
    w.feed(CallerParked("c0"), at=1015.1)  # rung again: the only agent
    w.answer_and_finish("c0", "1001", at=1016)
    assert w.state.agents["1001"].no_answer_streak == 0
    assert w.state.agents["1001"].paused is None


def test_a_busy_phone_backs_the_agent_off_for_a_while() -> None:
    q = QueueSettings(name="sales", busy_backoff=10)
    w = World((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c1", "sales", 1000)
    out = w.feed(DialEnded("c1", "1001", "BUSY"), at=1001)
    assert any(isinstance(c, StartTimer) and c.kind is TimerKind.BACKOFF and c.at == 1011 for c in out)
    assert rings(w.feed(CallerParked("c1"), at=1001.1)) == []
    assert rings(w.feed(TimerFired(TimerKind.BACKOFF, "1001"), at=1011)) == [("c1", "1001")]


def test_an_agent_can_end_wrap_up_early() -> None:
    q = QueueSettings(name="sales", wrapup=60)
    w = World((q,), {"1001": ({"sales"}, {})})
    w.register("1001")
    w.join("c1", "sales", 1000)
    w.answer_and_finish("c1", "1001", at=1002)
    assert w.join("c2", "sales", 1020) == []
    assert rings(w.feed(AgentControl("1001", "end_wrapup"), at=1021)) == [("c2", "1001")]


def test_an_agents_own_wrap_up_overrides_the_queue() -> None:
    w = World((QueueSettings(name="sales", wrapup=60),), {})
    w.feed(AgentsConfigured(frozenset({"1001"}), (AgentProfile("1001", frozenset({"sales"}), (), wrapup=2),)))
    w.register("1001")
    w.join("c1", "sales", 1000)
    w.answer_and_finish("c1", "1001", at=1001, talk=9)
    assert w.state.agents["1001"].wrap_until == 1012


def test_reload_keeps_every_callers_place_and_applies_to_the_next_decision() -> None:
    q = QueueSettings(name="sales")
    w = World((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    for i in range(5):
        w.join(f"c{i}", "sales", 1000 + i)
    before = [cid for _, _, cid in w.state.lines["sales"]]
    w.feed(QueuesConfigured((QueueSettings(name="sales", strategy=Strategy.FEWEST_CALLS),)), at=1010)
    assert [cid for _, _, cid in w.state.lines["sales"]] == before
    assert w.state.queues["sales"].strategy is Strategy.FEWEST_CALLS


def test_a_changed_strategy_applies_to_the_next_decision() -> None:
    w = World((QueueSettings(name="sales"),), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)  # longest idle
    w.register("1002", at=950)
    w.state.agents["1002"].calls_taken = 7
    assert w.join("c0", "sales", 1000) == [("c0", "1001")]
    w.feed(CallerHungUp("c0", "chan-c0"), at=1001)  # 1001 is free again, idle only since now
    w.feed(QueuesConfigured((QueueSettings(name="sales", strategy=Strategy.FEWEST_CALLS),)), at=1002)
    assert w.join("c1", "sales", 1003) == [("c1", "1001")]  # longest idle would have been 1002
    assert w.state.calls["c1"].phase is CallPhase.RINGING


def test_a_removed_agent_on_a_call_leaves_after_the_call() -> None:
    w = World((SALES,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.join("c1", "sales", 1000)
    w.feed(DialEnded("c1", "1001", "ANSWER"), at=1001)
    w.feed(AgentsConfigured(frozenset({"1002"}), (AgentProfile("1002", frozenset({"sales"})),)), at=1002)
    assert w.state.calls["c1"].phase is CallPhase.CONNECTED
    w.feed(CallerHungUp("c1", "chan-c1"), at=1010)
    w.feed(TimerFired(TimerKind.WRAPUP, "1001"), at=1020)
    assert w.join("c2", "sales", 1021) == []


def test_after_the_widening_time_a_lower_level_is_accepted() -> None:
    q = QueueSettings(name="tax", skills=(("tax", 60),), widen=(Widen(after=20, min_level=30),))
    w = World((q,), {"1001": ({"tax"}, {"tax": 40})})
    w.register("1001")
    assert w.join("c1", "tax", 1000) == []
    out = w.feed(TimerFired(TimerKind.WIDEN, "c1", 0), at=1020)
    assert rings(out) == [("c1", "1001")]


def test_after_the_widening_time_another_queues_agents_may_take_the_caller() -> None:
    tax = QueueSettings(name="tax", widen=(Widen(after=60, add_queues=("sales",)),))
    w = World((tax, SALES), {"1001": ({"sales"}, {})})
    w.register("1001")
    assert w.join("c1", "tax", 1000) == []
    assert rings(w.feed(TimerFired(TimerKind.WIDEN, "c1", 0), at=1059)) == []  # early timer: not yet
    w.feed(CallerHungUp("x", "x"), at=1060)
    assert ("c1", "1001") in rings(w.out)


def test_widening_steps_are_timed_one_after_another() -> None:
    q = QueueSettings(name="tax", widen=(Widen(after=20, min_level=50), Widen(after=60, min_level=10)))
    w = World((q,), {})
    out = w.feed(CallerJoined("c1", "chan-c1", "tax"), at=1000)
    assert [c.at for c in out if isinstance(c, StartTimer) and c.kind is TimerKind.WIDEN] == [1020]
    out = w.feed(TimerFired(TimerKind.WIDEN, "c1", 0), at=1020)
    assert [c.at for c in out if isinstance(c, StartTimer) and c.kind is TimerKind.WIDEN] == [1060]


def test_overflow_moves_the_caller_to_another_queue_keeping_the_arrival() -> None:
    tax = QueueSettings(name="tax", overflow=Overflow(after=120, action="queue", target="sales"))
    w = World((tax, SALES), {"1001": ({"sales"}, {})})
    w.join("c1", "tax", 1000)
    w.join("s1", "sales", 1050)
    w.feed(TimerFired(TimerKind.OVERFLOW, "c1", w.state.calls["c1"].seq), at=1120)
    call = w.state.calls["c1"]
    assert (call.queue, call.overflowed_from, call.arrived) == ("sales", "tax", 1000)
    assert rings(w.feed(DeviceChanged("1001", True, False), at=1121)) == [("c1", "1001")]  # still first in line


def test_overflow_to_the_message_ends_as_overflow() -> None:
    q = QueueSettings(name="tax", overflow=Overflow(after=30))
    w = World((q,), {})
    w.join("c1", "tax", 1000)
    out = w.feed(TimerFired(TimerKind.OVERFLOW, "c1", w.state.calls["c1"].seq), at=1030)
    assert [c for c in out if isinstance(c, SendToTimeout)] == [SendToTimeout("c1", "chan-c1", "overflow")]
    w.feed(CallerHungUp("c1", "chan-c1"), at=1035)
    assert [c.outcome for c in w.out if isinstance(c, CallRecord)] == [Outcome.OVERFLOW]


def test_a_full_queue_overflows_the_next_caller_at_once() -> None:
    q = QueueSettings(name="tax", max_length=2, overflow=Overflow(after=600, action="queue", target="sales"))
    w = World((q, SALES), {})
    for i in range(3):
        w.join(f"c{i}", "tax", 1000 + i)
    assert [w.state.calls[f"c{i}"].queue for i in range(3)] == ["tax", "tax", "sales"]


def test_a_queue_with_nobody_logged_in_can_send_callers_on_at_once() -> None:
    q = QueueSettings(name="tax", when_empty="overflow", overflow=Overflow(after=600))
    w = World((q,), {"1001": ({"tax"}, {})})
    out = w.feed(CallerJoined("c1", "chan-c1", "tax"), at=1000)
    assert [c for c in out if isinstance(c, SendToTimeout)] == [SendToTimeout("c1", "chan-c1", "overflow")]
    w.register("1001")
    assert w.join("c2", "tax", 1001) == [("c2", "1001")]  # somebody is there now


def sticky_world() -> World:
    q = QueueSettings(name="sales", sticky_days=3, sticky_wait=30, wrapup=0)
    w = World((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", at=900)
    w.register("1002", at=950)
    w.feed(CallerJoined("first", "chan-first", "sales", caller_num="13800000001"), at=1000)  # -> 1001
    w.answer_and_finish("first", "1001", at=1001)
    w.feed(TimerFired(TimerKind.WRAPUP, "1001"), at=1011)
    return w


def test_a_caller_ringing_again_is_offered_to_the_agent_who_answered_them_last() -> None:
    w = sticky_world()
    w.feed(DeviceChanged("1001", True, True), at=1100)  # 1001 busy with something else
    out = w.feed(CallerJoined("again", "chan-again", "sales", caller_num="13800000001"), at=1200)
    assert rings(out) == []  # 1002 is free but the caller is kept for 1001
    assert rings(w.feed(DeviceChanged("1001", True, False), at=1210)) == [("again", "1001")]


def test_the_sticky_wait_runs_out_and_anyone_may_answer() -> None:
    w = sticky_world()
    w.feed(DeviceChanged("1001", True, True), at=1100)
    w.feed(CallerJoined("again", "chan-again", "sales", caller_num="13800000001"), at=1200)
    assert rings(w.feed(TimerFired(TimerKind.STICKY, "again"), at=1230)) == [("again", "1002")]


def test_stickiness_ends_after_the_configured_days() -> None:
    w = sticky_world()
    w.feed(DeviceChanged("1001", True, True), at=1100)
    later = 1011 + 3 * 86400 + 1
    assert w.join("again", "sales", later) == [("again", "1002")]  # caller_num differs: nobody to stick to
    out = w.feed(CallerJoined("again2", "chan-again2", "sales", caller_num="13800000001"), at=later + 1)
    assert rings(out) == []  # 1002 is busy now, 1001 too; and no stickiness past 3 days
    assert w.state.calls["again2"].sticky_agent is None


def test_history_from_the_store_makes_callers_sticky_after_a_restart() -> None:
    q = QueueSettings(name="sales", sticky_days=3, sticky_wait=30)
    w = World((q,), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.feed(History((("13800000009", "1002", 900.0),)), at=950)
    w.register("1001", at=960)
    w.register("1002", at=970)
    out = w.feed(CallerJoined("c1", "chan-c1", "sales", caller_num="13800000009"), at=1000)
    assert rings(out) == [("c1", "1002")]  # 1001 is idle longer, but 1002 answered this caller last


def ring_all_world() -> World:
    q = QueueSettings(name="sales", strategy=Strategy.RING_ALL, skills=(("sales", 10),))
    w = World((q,), {"1001": ({"sales"}, {"sales": 50}), "1002": ({"sales"}, {"sales": 50}),
                     "1003": ({"sales"}, {"sales": 5})})
    w.register("1001", "1002", "1003")
    return w


def test_ring_all_rings_every_qualified_free_agent_and_the_first_answer_wins() -> None:
    w = ring_all_world()
    out = w.feed(CallerJoined("c1", "chan-c1", "sales"), at=1000)
    (ring,) = [c for c in out if isinstance(c, RingAgent)]
    assert sorted(ring.agent_ids) == ["1001", "1002"]  # 1003 lacks the level
    w.feed(DialEnded("c1", "1002", "ANSWER"), at=1003)
    w.feed(DialEnded("c1", "1001", "CANCEL"), at=1003)
    agents = w.state.agents
    assert (agents["1002"].phase.value, agents["1001"].phase.value) == ("on_call", "idle")
    assert w.state.calls["c1"].agent_id == "1002"
    assert w.join("c2", "sales", 1004) == [("c2", "1001")]  # 1001 was freed at once


def test_ring_all_goes_on_until_the_last_phone_gives_up() -> None:
    w = ring_all_world()
    w.feed(CallerJoined("c1", "chan-c1", "sales"), at=1000)
    w.feed(DialEnded("c1", "1001", "BUSY"), at=1001)
    assert w.state.calls["c1"].phase is CallPhase.RINGING  # 1002 still rings
    assert w.state.agents["1001"].phase.value == "idle"
    w.feed(DialEnded("c1", "1002", "NOANSWER"), at=1015)
    assert w.state.calls["c1"].phase is CallPhase.WAITING
    assert w.state.calls["c1"].tried == frozenset({"1001", "1002"})


@pytest.mark.parametrize(
    ("rule", "command", "outcome"),
    [
        (Overflow(after=30, action="number", target="057112345"),
         SendToTimeout("c1", "chan-c1", "number", "057112345"), Outcome.FORWARDED),
        (Overflow(after=30, action="callback"), SendToTimeout("c1", "chan-c1", "callback"), Outcome.CALLBACK),
    ],
)
def test_overflow_to_a_number_or_a_callback(rule: Overflow, command: SendToTimeout, outcome: Outcome) -> None:
    w = World((QueueSettings(name="tax", overflow=rule),), {})
    w.join("c1", "tax", 1000)
    out = w.feed(TimerFired(TimerKind.OVERFLOW, "c1", w.state.calls["c1"].seq), at=1030)
    assert [c for c in out if isinstance(c, SendToTimeout)] == [command]
    w.feed(CallerHungUp("c1", "chan-c1"), at=1090)
    assert [c.outcome for c in w.out if isinstance(c, CallRecord)] == [outcome]


def test_callers_move_on_when_the_last_agent_of_the_queue_logs_out() -> None:
    q = QueueSettings(name="tax", when_empty="overflow", overflow=Overflow(after=600, action="queue", target="sales"))
    w = World((q, SALES), {"1001": ({"tax"}, {}), "1002": ({"tax"}, {})})
    w.register("1001", "1002")
    w.feed(AgentControl("1001", "pause"))
    w.feed(AgentControl("1002", "pause"))  # paused is still logged in: callers wait
    w.join("c1", "tax", 1000)
    assert w.state.calls["c1"].queue == "tax"
    w.feed(AgentControl("1001", "logout"), at=1010)
    assert w.state.calls["c1"].queue == "tax"
    w.feed(DeviceChanged("1002", registered=False, busy=False), at=1020)  # the last one's phone goes away
    assert (w.state.calls["c1"].queue, w.state.calls["c1"].overflowed_from) == ("sales", "tax")


def test_after_a_resync_callers_of_a_queue_nobody_is_logged_into_move_on() -> None:
    q = QueueSettings(name="tax", when_empty="overflow", overflow=Overflow(after=600, action="queue", target="sales"))
    w = World((q, SALES), {"1001": ({"tax"}, {})})
    w.register("1001")
    w.join("c1", "tax", 1000)
    w.feed(DialEnded("c1", "1001", "NOANSWER"), at=1015)
    w.feed(CallerParked("c1"), at=1015.1)
    w.feed(LinkLost(), at=1016)
    snap = (SnapshotChannel("c1", "chan-c1", "tax", age=20),)
    w.feed(Resynced(callers=snap, devices=(DeviceChanged("1001", False, False),)), at=1020)
    assert w.state.calls["c1"].queue == "sales"


def test_callers_of_a_removed_queue_move_to_the_first_queue_on_reload() -> None:
    w = World((QueueSettings(name="main"), SALES), {"1001": ({"main"}, {})})
    w.join("c1", "sales", 1000)
    w.feed(QueuesConfigured((QueueSettings(name="main"),)), at=1010)
    assert (w.state.calls["c1"].queue, w.state.calls["c1"].overflowed_from) == ("main", "sales")
    assert rings(w.feed(DeviceChanged("1001", True, False), at=1011)) == [("c1", "1001")]


def test_a_caller_who_rang_every_free_agent_is_offered_again_when_they_have_nobody_else() -> None:
    w = World((SALES, TAX), {"1001": ({"sales"}, {}), "1002": ({"sales"}, {})})
    w.register("1001", "1002")
    w.join("c1", "sales", 1000)
    for agent in ("1001", "1002"):
        ringing = w.state.calls["c1"].agent_id
        w.feed(DialEnded("c1", ringing or agent, "NOANSWER"), at=1010)
        w.feed(CallerParked("c1"), at=1010.1)
    w.join("c2", "tax", 1011)
    w.join("c3", "tax", 1012)  # more callers than free agents, none of them for these agents
    w.feed(DeviceChanged("1001", True, False), at=1013)
    assert w.state.calls["c1"].phase is CallPhase.RINGING
