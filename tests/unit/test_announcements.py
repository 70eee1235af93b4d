"""Position announcements (位置播报): when they fall due, what they say, and that they never
stand in the way of a ring."""

from __future__ import annotations

import dataclasses

from acd.agents import Control
from acd.commands import Announce
from acd.events import PhoneReach
from acd.model import Announce as AnnounceSettings
from acd.model import Widen
from tests.unit.world import Q, World, of_type, rings

ANNOUNCING = dataclasses.replace(Q, max_wait=3600, announce=AnnounceSettings(first=30, every=60))


def told(out: list[object]) -> list[tuple[str, int | None, int | None]]:
    return [(a.call_id, a.ahead, a.wait_minutes) for a in of_type(out, Announce)]


def busy_world(queue=ANNOUNCING, agents=("1001",)) -> World:  # type: ignore[no-untyped-def]
    w = World(queues=(queue,), agents=agents)
    w.register(*agents, at=0)
    for agent in agents:
        w.control(agent, Control.PAUSE, at=0)
    return w


def test_a_queue_without_announcements_says_nothing() -> None:
    w = busy_world(queue=Q)
    w.join("c1", at=1)
    assert told(w.run_until(1000)) == []


def test_the_first_announcement_comes_after_first_then_every_every() -> None:
    w = busy_world()
    w.join("c1", at=100)
    w.join("c2", at=105)
    out = w.run_until(129.9)
    assert told(out) == []
    out = w.run_until(130)
    assert told(out) == [("c1", 0, None)]  # next in line; no finished calls: no wait promised
    out = w.run_until(135)
    assert told(out) == [("c2", 1, None)]
    out = w.run_until(250)
    assert [t[0] for t in told(out)] == ["c1", "c2", "c1"]  # 190, 195, 250 (c2 next at 255)
    assert [a.call_id for a in of_type(w.out, Announce)].count("c1") == 3  # 130, 190, 250


def test_announcements_go_to_the_callers_channel() -> None:
    w = busy_world()
    w.join("c1", at=0)
    (a,) = of_type(w.run_until(30), Announce)
    assert a.channel == w.call("c1").channel


def test_an_agent_freeing_up_at_the_announcement_rings_the_caller_and_tells_nothing() -> None:
    w = busy_world()
    w.join("c1", at=0)
    w.run_until(29)
    # The agent comes back in the very event in which the announcement falls due.
    out = w.control("1001", Control.UNPAUSE, at=30)
    assert rings(out) == [("c1", "1001")]
    assert told(out) == []


def test_a_slot_missed_while_ringing_is_told_when_the_caller_is_back_in_line() -> None:
    w = busy_world()
    w.join("c1", at=0)
    w.control("1001", Control.UNPAUSE, at=25)
    w.dial_begin("c1", at=25.1)
    out = w.no_answer("c1", at=40)  # rang through the 30 s slot
    assert told(out) == []
    w.control("1001", Control.PAUSE, at=40.5)
    out = w.park("c1", at=41)
    assert told(out) == [("c1", 0, None)]
    assert told(w.run_until(89)) == []  # the rhythm keeps to the join: next at 90
    assert told(w.run_until(90)) == [("c1", 0, None)]


def test_the_wait_is_announced_only_from_enough_finished_calls() -> None:
    w = World(queues=(ANNOUNCING,), agents=("1001",))
    w.register("1001", at=0)
    t = 0.0
    for i in range(5):  # five finished calls of 110 s talk + 5 s wrap-up: 115 s handle time
        w.join(f"d{i}", at=t)
        w.dial_begin(f"d{i}", at=t + 0.1)
        w.answer(f"d{i}", at=t + 1)
        w.hangup(f"d{i}", at=t + 111)
        t += 120
    w.run_until(t)
    w.control("1001", Control.PAUSE, at=t)
    w.join("x1", at=t + 1)
    w.join("x2", at=t + 2)
    w.control("1001", Control.UNPAUSE, at=t + 3)  # rings x1: x2 is next
    out = w.run_until(t + 32)
    # x2: nobody ahead; one agent, 115 s handle: (0 + 1) * 115 / 1 = 115 s -> "about 2 minutes".
    assert told(out) == [("x2", 0, 2)]


def test_a_wait_only_queue_says_nothing_without_a_figure() -> None:
    quiet = dataclasses.replace(ANNOUNCING, announce=AnnounceSettings(first=30, every=60, position=False))
    w = busy_world(queue=quiet)
    w.join("c1", at=0)
    assert told(w.run_until(200)) == []


def test_a_caller_sent_out_hears_no_announcement() -> None:
    short = dataclasses.replace(ANNOUNCING, max_wait=30)
    w = busy_world(queue=short)
    w.join("c1", at=0)
    assert told(w.run_until(31)) == []


def test_a_reload_that_turns_announcements_on_times_them_from_the_join() -> None:
    from acd.events import QueuesConfigured

    w = busy_world(queue=dataclasses.replace(ANNOUNCING, announce=None))
    w.join("c1", at=0)
    w.run_until(100)
    out = w.feed(QueuesConfigured((ANNOUNCING,)), at=100)
    assert told(out) == [("c1", 0, None)]  # the 30 s and 90 s slots have passed: told once, now
    assert told(w.run_until(149)) == []
    assert told(w.run_until(150)) == [("c1", 0, None)]


def test_a_slot_that_falls_due_in_the_event_that_rings_the_caller_is_told_when_they_are_back() -> None:
    w = busy_world()
    w.join("c1", at=0)
    w.run_until(29)
    assert rings(w.control("1001", Control.UNPAUSE, at=30)) == [("c1", "1001")]  # the 30 s slot's event
    w.dial_begin("c1", at=30.1)
    w.no_answer("c1", at=45)
    w.control("1001", Control.PAUSE, at=45.5)
    assert told(w.park("c1", at=46)) == [("c1", 0, None)]


def test_callers_of_a_queue_sharing_the_agents_count_in_the_place() -> None:
    other = dataclasses.replace(ANNOUNCING, name="other", announce=None)
    w = World(queues=(ANNOUNCING, other), agents={"1001": (("main", "other"), {})})
    w.register("1001", at=0)
    w.control("1001", Control.PAUSE, at=0)
    for i in range(3):
        w.join(f"o{i}", queue="other", at=1 + i)  # they came first: the shared agent takes them first
    w.join("m1", queue="main", at=10)
    assert told(w.run_until(40)) == [("m1", 3, None)]


def test_callers_who_came_later_in_a_sharing_queue_do_not_count() -> None:
    other = dataclasses.replace(ANNOUNCING, name="other", announce=None)
    w = World(queues=(ANNOUNCING, other), agents={"1001": (("main", "other"), {})})
    w.register("1001", at=0)
    w.control("1001", Control.PAUSE, at=0)
    w.join("m1", queue="main", at=1)
    w.join("o1", queue="other", at=2)
    assert told(w.run_until(31)) == [("m1", 0, None)]


def test_a_queue_with_its_own_agents_ignores_other_lines() -> None:
    other = dataclasses.replace(ANNOUNCING, name="other", announce=None)
    w = World(queues=(ANNOUNCING, other), agents={"1001": (("main",), {}), "1002": (("other",), {})})
    w.register("1001", "1002", at=0)
    w.control("1001", Control.PAUSE, at=0)
    w.control("1002", Control.PAUSE, at=0)
    w.join("o1", queue="other", at=1)
    w.join("m1", queue="main", at=2)
    assert ("m1", 0, None) in told(w.run_until(32))


def finished_calls(w: World, agent: str, n: int, talk: float = 110) -> float:
    t = w.now
    for i in range(n):
        w.join(f"d{agent}-{i}", at=t)
        w.dial_begin(f"d{agent}-{i}", at=t + 0.1)
        w.answer(f"d{agent}-{i}", agent, at=t + 1)
        w.hangup(f"d{agent}-{i}", at=t + 1 + talk)
        t += talk + 10
    w.run_until(t)
    return t


def test_no_wait_is_promised_below_five_finished_calls_even_with_agents_serving() -> None:
    w = World(queues=(ANNOUNCING,), agents=("1001",))
    w.register("1001", at=0)
    t = finished_calls(w, "1001", 4)
    w.join("x1", at=t + 1)  # rung at once: 1001 is free
    w.join("x2", at=t + 2)
    assert told(w.run_until(t + 33)) == [("x2", 0, None)]


def test_the_wait_counts_only_agents_who_can_take_the_caller() -> None:
    w = World(queues=(ANNOUNCING,), agents=("1001", "1002", "1003"))
    w.register("1001", at=0)
    t = finished_calls(w, "1001", 5)  # 115 s handle time
    w.register("1002", "1003", at=t)
    w.control("1002", Control.PAUSE, at=t)  # paused: not serving
    w.feed(PhoneReach("1003", reachable=False), at=t)  # dead phone: not serving
    w.join("x1", at=t + 1)  # 1001 takes it
    w.dial_begin("x1", at=t + 1.1)
    w.answer("x1", at=t + 2)
    w.join("x2", at=t + 3)
    # One agent serving, not three: (0 + 1) * 115 s / 1 -> 2 minutes (not 1).
    assert told(w.run_until(t + 34)) == [("x2", 0, 2)]


def test_an_announcement_never_comes_early_with_another_deadline() -> None:
    widening = dataclasses.replace(ANNOUNCING, widen=(Widen(after=12, min_level=1),))
    w = busy_world(queue=widening)
    w.join("c1", at=0)
    assert told(w.run_until(29.9)) == []  # the widening step at 12 s says nothing
