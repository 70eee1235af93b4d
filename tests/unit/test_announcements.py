"""Position announcements (位置播报): when they fall due, what they say, and that they never
stand in the way of a ring."""

from __future__ import annotations

import dataclasses

from acd.agents import Control
from acd.commands import Announce
from acd.model import Announce as AnnounceSettings
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
