"""End to end on the real Asterisk 22 with SIPp callers and agents."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from testbed import sipp
from testbed.audio import check_audio, world_readable
from tests.integration.harness import RECORDINGS, RunningEngine, password

T = TypeVar("T")


def agent(agent_id: str) -> tuple[str, str]:
    return (f"agent{agent_id}", password(agent_id))


def settle(read: Callable[[], T], expected: T, timeout: float = 5.0) -> T:
    """SIPp rewrites its statistics once a second: poll until they show `expected`."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def counter(engine: RunningEngine, name: str, **labels: str) -> float:
    key = ",".join(f"{k}={v}" for k, v in sorted({"queue": "main", **labels}.items()))
    return engine.metrics().get(f"hotline_calls_{name}_total{{{key}}}", 0.0)


def test_twenty_callers_five_agents_all_answered_recorded_and_counted(engine: RunningEngine) -> None:
    ids = ["1001", "1002", "1003", "1004", "1005"]
    uas = sipp.agent_uas(6100, answer_ms=300)
    sipp.register([agent(a) for a in ids], contact_port=6100)
    engine.wait_for(lambda e: sum(a.available() for a in e.dispatcher.state.agents.values()) == 5, 10, "5 agents")
    names = [(f"市民{i}", f"1380000{i:04d}") for i in range(20)]
    stats = sipp.callers(20, rate=5, names=names, talk_ms=2000).check(180)
    assert (stats.successful, stats.failed) == (20, 0)

    rows = engine.records(wait_for=20)
    assert len(rows) == 20
    assert {r.outcome for r in rows} == {"answered"}
    assert {r.agent_id for r in rows} == set(ids)  # every agent took calls
    assert sorted(r.caller_name for r in rows) == sorted(n for n, _ in names)
    for row in rows:
        assert row.answered is not None and row.ended is not None
        assert row.talk_seconds > 1.5
        assert row.recording and row.recording.startswith(str(RECORDINGS))
        path = Path(row.recording)
        audio = check_audio(path)
        assert audio.has_audio, (path, audio)
        assert not world_readable(path)
        assert not world_readable(path.parent)
    assert counter(engine, "offered") == 20
    assert counter(engine, "answered") == 20
    assert counter(engine, "abandoned") == 0
    assert settle(lambda: uas.stats().successful, 20) == 20
    uas.stop()


def test_an_agent_who_never_answers_is_passed_over_after_the_ring_timeout(engine: RunningEngine) -> None:
    silent = sipp.agent_uas(6111, scenario="agent_noanswer.xml")
    sipp.register([agent("1001")], contact_port=6111)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
    time.sleep(0.2)  # 1001 has now been idle longest
    answering = sipp.agent_uas(6112)
    sipp.register([agent("1002")], contact_port=6112)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1002"].available(), 10, "agent 1002")

    stats = sipp.callers(1, rate=1, names=[("张伟", "13900000001")], talk_ms=1000).check(60)
    assert stats.successful == 1
    (row,) = engine.records(wait_for=1)
    assert (row.outcome, row.agent_id) == ("answered", "1002")
    ring_timeout = engine.settings.queue.ring_timeout
    assert ring_timeout <= row.wait_seconds < 2 * ring_timeout  # one ring timeout, not two
    assert settle(lambda: silent.stats().successful, 1) == 1  # it was rung, then got the CANCEL
    silent.stop()
    answering.stop()


def test_a_caller_who_hangs_up_while_waiting_is_abandoned_and_never_offered(engine: RunningEngine) -> None:
    run = sipp.callers(1, rate=1, names=[("李娜", "13900000002")], talk_ms=0,
                       scenario="caller_abandon.xml", hold_ms=4000)
    assert run.check(30).successful == 1
    (row,) = engine.records(wait_for=1)
    assert row.outcome == "abandoned"
    # SIPp's 4 s run from its 100 Trying; the wait from the queue join, which comes a few ms
    # later (after the hold music starts): 3.999 s has been seen.
    assert 3.8 <= row.wait_seconds < 9
    assert engine.call(lambda: len(engine.e.dispatcher.state.calls)) == 0
    uas = sipp.agent_uas(6121)
    sipp.register([agent("1001")], contact_port=6121)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
    time.sleep(2)
    assert uas.stats().created == 0  # nobody was rung for the caller who left
    assert counter(engine, "abandoned") == 1
    assert counter(engine, "offered") == 1
    uas.stop()


def test_a_caller_waits_with_no_agent_and_connects_when_one_registers(engine: RunningEngine) -> None:
    run = sipp.callers(1, rate=1, names=[("王芳", "13900000003")], talk_ms=1000)
    engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "the caller in line")
    time.sleep(3)
    assert engine.call(lambda: next(iter(engine.e.dispatcher.state.calls.values())).state.value) == "in_line"
    uas = sipp.agent_uas(6131)
    sipp.register([agent("1001")], contact_port=6131)
    assert run.check(60).successful == 1
    (row,) = engine.records(wait_for=1)
    assert (row.outcome, row.agent_id) == ("answered", "1001")
    assert row.wait_seconds >= 3
    uas.stop()
