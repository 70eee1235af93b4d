"""Issue 3 on the real Asterisk: skills, priority, feature codes, ring-no-answer, reload."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, with_trunk_port, write_config
from tests.integration.test_calls import agent, settle

QUEUES: list[dict[str, Any]] = [
    {"name": "main", "number": "12345", "ring_timeout": 6, "wrapup": 1, "max_wait": 120, "short_abandon": 3,
     "numbers": [{"number": "12346", "priority": 4}]},
    {"name": "tax", "number": "12366", "skills": {"tax": 50}, "ring_timeout": 6, "wrapup": 1, "max_no_answer": 1},
]
AGENT_PROFILES = {"1001": {"skills": {"tax": 30}}, "1002": {"skills": {"tax": 80}}}


def acd_config(directory: Path, queues: list[dict[str, Any]] | None = None) -> Path:
    write_config(directory)
    (directory / "queues.yaml").write_text(yaml.safe_dump({"queues": queues or QUEUES}), encoding="utf-8")
    roster = yaml.safe_load((directory / "agents.yaml").read_text(encoding="utf-8"))
    for entry in roster["agents"]:
        entry.update(AGENT_PROFILES.get(entry["id"], {}))
    (directory / "agents.yaml").write_text(yaml.safe_dump(roster, allow_unicode=True), encoding="utf-8")
    return directory


@pytest.fixture
def acd(clean: Sandbox, tmp_path: Path) -> Iterator[RunningEngine]:
    directory = acd_config(tmp_path / "acd")
    engine = RunningEngine.from_dir(directory)
    clean.install_conf(engine.settings)
    clean.rx("dialplan reload")
    try:
        engine.wait_ready()
        yield engine
    finally:
        engine.close()


def available(engine: RunningEngine, *ids: str) -> None:
    engine.wait_for(lambda e: all(e.dispatcher.state.agents[a].available() for a in ids), 10, f"agents {ids}")


def test_skills_routing_rings_the_agent_with_the_level(acd: RunningEngine) -> None:
    uas = sipp.agent_uas(6301)
    sipp.register([agent("1001"), agent("1002")], contact_port=6301)
    available(acd, "1001", "1002")
    acd.call(lambda: setattr(acd.e.dispatcher.state.agents["1001"], "idle_since", 0.0))  # 1001 idle longest
    assert sipp.callers(1, rate=1, names=[("税务咨询", "13900000061")], talk_ms=500,
                        number="12366").check(30).successful == 1
    (row,) = acd.records(wait_for=1)
    assert (row.queue, row.agent_id) == ("tax", "1002")  # 1001's tax level 30 is below the queue's 50
    uas.stop()


def test_a_priority_caller_overtakes_an_earlier_one(acd: RunningEngine) -> None:
    first = sipp.callers(1, rate=1, names=[("普通来电", "13900000071")], talk_ms=500)
    acd.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "first caller waiting")
    time.sleep(1)
    vip = sipp.callers(1, rate=1, names=[("优先来电", "13900000072")], talk_ms=500, number="12346")
    acd.wait_for(lambda e: len(e.dispatcher.state.calls) == 2, 10, "priority caller waiting")
    uas = sipp.agent_uas(6311)
    sipp.register([agent("1003")], contact_port=6311)
    assert vip.check(30).successful == 1
    assert first.check(30).successful == 1
    rows = sorted(acd.records(wait_for=2), key=lambda r: (r.answered is None, r.answered))
    assert [r.caller_num for r in rows] == ["13900000072", "13900000071"]
    uas.stop()


def test_an_agent_logs_out_pauses_and_unpauses_from_the_softphone(acd: RunningEngine) -> None:
    uas = sipp.agent_uas(6321)
    sipp.register([agent("1004")], contact_port=6321)
    available(acd, "1004")
    user, pw = agent("1004")

    def state() -> tuple[str, str | None]:
        a = acd.e.dispatcher.state.agents["1004"]
        return (a.presence.value, a.pause_reason)

    sipp.agent_dial(user, pw, "*22")
    acd.wait_for(lambda e: e.dispatcher.state.agents["1004"].presence == "logged_out", 10, "logged out")
    sipp.agent_dial(user, pw, "*21")
    acd.wait_for(lambda e: e.dispatcher.state.agents["1004"].presence == "ready", 10, "logged in")
    sipp.agent_dial(user, pw, "*2305")
    acd.wait_for(lambda e: e.dispatcher.state.agents["1004"].pause_reason == "05", 10, "paused with reason 05")
    assert acd.call(state) == ("paused", "05")

    waiting = sipp.callers(1, rate=1, names=[("等待来电", "13900000081")], talk_ms=500)
    acd.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "caller waiting")
    time.sleep(2)
    assert uas.stats().created == 0  # a paused agent is not rung
    sipp.agent_dial(user, pw, "*24")
    assert waiting.check(30).successful == 1
    (row,) = acd.records(wait_for=1)
    assert row.agent_id == "1004"
    metrics = acd.metrics()
    assert metrics['hotline_agent_state_changes_total{state=paused}'] >= 1
    uas.stop()


def test_ring_no_answer_pauses_the_agent(acd: RunningEngine) -> None:
    silent = sipp.agent_uas(6331, scenario="agent_noanswer.xml")
    sipp.register([agent("1002")], contact_port=6331)
    available(acd, "1002")
    run = sipp.callers(1, rate=1, names=[("无人接听", "13900000091")], talk_ms=500, number="12366",
                       scenario="caller_abandon.xml", hold_ms=9000)
    acd.wait_for(lambda e: e.dispatcher.state.agents["1002"].pause_reason == "no answer", 20,
                 "paused for no answer")
    run.check(30)
    assert settle(lambda: silent.stats().successful, 1) == 1
    _, agents = acd.http("GET", "/agents")
    listed = {a["id"]: a for a in agents}
    assert (listed["1002"]["state"], listed["1002"]["reason"]) == ("paused", "no answer")
    status, answer = acd.http("POST", "/agents/1002/unpause")
    assert (status, answer["state"]) == (200, "available")  # applied when the answer comes
    silent.stop()


def test_a_reload_during_steady_load_drops_no_call(acd: RunningEngine) -> None:
    uas = sipp.agent_uas(6341, answer_ms=200)
    sipp.register([agent(a) for a in ("1005", "1006", "1007")], contact_port=6341)
    available(acd, "1005", "1006", "1007")
    run = sipp.callers(30, rate=3, names=None, talk_ms=1500)
    config = acd.config_dir
    assert config is not None
    changed = [dict(QUEUES[0], strategy="fewest_calls", wrapup=0), QUEUES[1]]
    for i in range(4):
        time.sleep(2)
        queues = changed if i % 2 == 0 else QUEUES
        (config / "queues.yaml").write_text(yaml.safe_dump({"queues": queues}), encoding="utf-8")
        assert acd.http("POST", "/reload") == (200, {"ok": True, "errors": [], "restart_needed": []})
    # A broken file is refused and the running configuration keeps serving.
    (config / "queues.yaml").write_text("queues:\n  - name: main\n    ring_timeout: -1\n", encoding="utf-8")
    status, answer = acd.http("POST", "/reload")
    assert status == 422
    assert "queues.yaml:3" in answer["errors"][0]
    stats = run.check(120)
    assert (stats.successful, stats.failed) == (30, 0)
    rows = acd.records(wait_for=30)
    assert len(rows) == 30
    assert [(r.caller_num, r.outcome) for r in rows if r.outcome != "answered"] == []
    assert acd.e.dispatcher.state.queues["main"].ring_timeout == 6  # the old configuration still serves
    assert settle(lambda: uas.stats().successful, 30) == 30  # nobody was rung twice
    uas.stop()


def test_feature_code_from_an_unknown_phone_changes_nothing(acd: RunningEngine) -> None:
    with pytest.raises(sipp.SippError) as refused:
        sipp.agent_dial("agent1001", "wrong-password", "*22")
    assert refused.value.workdir is not None
    shutil.rmtree(refused.value.workdir)  # the failure was expected: nothing to look at
    assert acd.call(lambda: acd.e.dispatcher.state.agents["1001"].presence.value) == "ready"


def widened_queues() -> list[dict[str, Any]]:
    main = dict(QUEUES[0])
    tax = dict(QUEUES[1], widen=[{"after": 4, "min_level": 20}])
    return [main, tax]


def overflowing_queues() -> list[dict[str, Any]]:
    main = dict(QUEUES[0])
    tax = dict(QUEUES[1], overflow={"after": 4, "to": "queue", "queue": "main"})
    return [main, tax]


def start(box: Sandbox, directory: Path) -> RunningEngine:
    engine = RunningEngine.from_dir(directory)
    box.install_conf(engine.settings)
    box.rx("dialplan reload")
    engine.wait_ready()
    return engine


def test_widening_happens_at_the_configured_time(clean: Sandbox, tmp_path: Path) -> None:
    engine = start(clean, acd_config(tmp_path / "widen", widened_queues()))
    try:
        uas = sipp.agent_uas(6351)
        sipp.register([agent("1001")], contact_port=6351)  # tax level 30: below 50 until the widening at 4 s
        available(engine, "1001")
        assert sipp.callers(1, rate=1, names=[("加宽", "13900000101")], talk_ms=500,
                            number="12366").check(30).successful == 1
        (row,) = engine.records(wait_for=1)
        assert (row.queue, row.agent_id) == ("tax", "1001")
        assert 4 <= row.wait_seconds < 9, row.wait_seconds  # at 4 s, not at the next unrelated event
        uas.stop()
    finally:
        engine.close()


def test_overflow_to_another_queue_happens_at_the_configured_time(clean: Sandbox, tmp_path: Path) -> None:
    engine = start(clean, acd_config(tmp_path / "overflow", overflowing_queues()))
    try:
        uas = sipp.agent_uas(6361)
        # 1003 has no tax skill: the caller waits 4 s in tax, then overflows to main.
        sipp.register([agent("1003")], contact_port=6361)
        available(engine, "1003")
        assert sipp.callers(1, rate=1, names=[("溢出", "13900000111")], talk_ms=500,
                            number="12366").check(30).successful == 1
        (row,) = engine.records(wait_for=1)
        assert (row.queue, row.agent_id) == ("main", "1003")
        assert 4 <= row.wait_seconds < 9, row.wait_seconds  # at 4 s, not at the next unrelated event
        uas.stop()
    finally:
        engine.close()


def test_ring_all_connects_to_whoever_answers_first(clean: Sandbox, tmp_path: Path) -> None:
    queues = [dict(QUEUES[0], strategy="ring_all"), QUEUES[1]]
    engine = start(clean, acd_config(tmp_path / "ringall", queues))
    try:
        silent = sipp.agent_uas(6371, scenario="agent_noanswer.xml")
        sipp.register([agent("1008")], contact_port=6371)  # registered first: idle longest
        available(engine, "1008")
        answering = sipp.agent_uas(6372)
        sipp.register([agent("1009")], contact_port=6372)
        available(engine, "1009")
        assert sipp.callers(1, rate=1, names=[("同振", "13900000121")], talk_ms=500).check(30).successful == 1
        (row,) = engine.records(wait_for=1)
        assert row.agent_id == "1009"
        assert row.wait_seconds < 5.5  # not the 6 s a one-by-one ring of 1008 would have cost
        assert settle(lambda: silent.stats().successful, 1) == 1  # 1008 rang too, then got the CANCEL
        silent.stop()
        answering.stop()
    finally:
        engine.close()


def test_overflow_forwards_to_an_external_number_on_the_carrier(clean: Sandbox, tmp_path: Path) -> None:
    queues = [QUEUES[0], dict(QUEUES[1], overflow={"after": 2, "to": "number", "number": "057188880000"})]
    directory = with_trunk_port(acd_config(tmp_path / "forward", queues), 5070)
    engine = RunningEngine.from_dir(directory)
    clean.install_conf(engine.settings)
    clean.rx("module reload res_pjsip.so")
    clean.rx("dialplan reload")
    try:
        engine.wait_ready()
        far_end = sipp.agent_uas(5070, host="127.0.0.2")  # the carrier side that takes the forwarded call
        assert sipp.callers(1, rate=1, names=[("转外线", "13900000131")], talk_ms=500,
                            number="12366").check(30).successful == 1
        (row,) = engine.records(wait_for=1)
        assert (row.outcome, row.agent_id) == ("forwarded", None)
        assert 2 <= row.wait_seconds < 7
        assert settle(lambda: far_end.stats().successful, 1) == 1
        far_end.stop()
    finally:
        engine.close()


def test_overflow_to_a_callback_is_listed_for_the_agents(clean: Sandbox, tmp_path: Path) -> None:
    queues = [QUEUES[0], dict(QUEUES[1], overflow={"after": 2, "to": "callback"})]
    engine = start(clean, acd_config(tmp_path / "callback", queues))
    try:
        assert sipp.callers(1, rate=1, names=[("请回电", "13900000141")], talk_ms=300,
                            number="12366").check(30).successful == 1
        (row,) = engine.records(wait_for=1)
        assert row.outcome == "callback"
        status, listed = engine.http("GET", "/callbacks")
        assert status == 200
        assert [(c["caller_num"], c["queue"]) for c in listed] == [("13900000141", "tax")]
    finally:
        engine.close()


def test_an_agent_ends_wrap_up_early_with_star_25(clean: Sandbox, tmp_path: Path) -> None:
    engine = start(clean, acd_config(tmp_path / "wrapup", [dict(QUEUES[0], wrapup=60), QUEUES[1]]))
    try:
        uas = sipp.agent_uas(6381)
        sipp.register([agent("1006")], contact_port=6381)
        available(engine, "1006")
        assert sipp.callers(1, rate=1, names=[("第一通", "13900000151")], talk_ms=300).check(30).successful == 1
        engine.wait_for(lambda e: e.dispatcher.state.agents["1006"].activity == "wrap_up", 10, "in wrap-up")
        waiting = sipp.callers(1, rate=1, names=[("第二通", "13900000152")], talk_ms=300)
        engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "the next caller waiting")
        sipp.agent_dial(*agent("1006"), "*25")  # 57 s of wrap-up still to go
        assert waiting.check(30).successful == 1
        rows = sorted(engine.records(wait_for=2), key=lambda r: r.arrived)
        assert rows[1].agent_id == "1006" and rows[1].wait_seconds < 15
        uas.stop()
    finally:
        engine.close()
