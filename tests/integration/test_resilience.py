"""The AMI link breaks, events are odd, the store is PostgreSQL: calls still come through."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from acd.calls import CallState
from config.loader import load
from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, password, write_config
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_calls import agent


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    p = TcpProxy(("127.0.0.1", 5038))
    yield p
    p.close()


def phases(engine: RunningEngine) -> dict[str, str]:
    return engine.call(lambda: {c.caller_num: c.state.value for c in engine.e.dispatcher.state.calls.values()})


def test_ami_cut_keeps_connected_call_and_routes_the_waiting_caller_after_reconnect(
    clean: Sandbox, tmp_path: Path, proxy: TcpProxy
) -> None:
    engine = RunningEngine.from_dir(write_config(tmp_path, ami_port=proxy.port))
    try:
        engine.wait_ready()
        uas = sipp.agent_uas(6201)
        sipp.register([agent("1001")], contact_port=6201)
        engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
        talking = sipp.callers(1, rate=1, names=[("赵敏", "13900000011")], talk_ms=12000)
        engine.wait_for(lambda e: any(c.state is CallState.CONNECTED for c in e.dispatcher.state.calls.values()),
                        15, "first call connected")
        waiting = sipp.callers(1, rate=1, names=[("周杰", "13900000012")], talk_ms=2000)
        engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 2, 10, "second caller in line")
        assert phases(engine)["13900000012"] == "in_line"

        proxy.cut(hold_down=3)  # the link drops and stays down for 3 s
        engine.wait_for(lambda e: not e.ami.connected, 5, "the engine to see the cut")
        # While the engine is blind, a second agent's softphone registers (that event is lost).
        uas2 = sipp.agent_uas(6202)
        sipp.register([agent("1002")], contact_port=6202)
        engine.wait_for(lambda e: e.ami.connected and e.dispatcher.resyncs >= 2, 20, "reconnect and resync")

        # The waiting caller is routed to the agent learned from the resync, the talk goes on.
        assert waiting.check(30).successful == 1
        assert talking.check(30).successful == 1
        rows = {r.caller_num: r for r in engine.records(wait_for=2)}
        first, second = rows["13900000011"], rows["13900000012"]
        assert (first.outcome, first.agent_id) == ("answered", "1001")
        assert first.talk_seconds > 11  # one whole conversation, not cut by the AMI outage
        assert (second.outcome, second.agent_id) == ("answered", "1002")
        assert first.recording and second.recording
        assert proxy.accepted >= 2
        uas.stop()
        uas2.stop()
    finally:
        engine.close()


def test_a_chinese_caller_name_split_across_tcp_reads_reaches_the_record(
    clean: Sandbox, tmp_path: Path
) -> None:
    # Every byte from Asterisk arrives in its own TCP segment: each name is split in the middle of a character.
    proxy = TcpProxy(("127.0.0.1", 5038), chunk=1)
    engine = RunningEngine.from_dir(write_config(tmp_path, ami_port=proxy.port))
    try:
        engine.wait_ready()
        uas = sipp.agent_uas(6211)
        sipp.register([agent("1001")], contact_port=6211)
        engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
        names = [("王小明", "13900000021"), ("欧阳娜娜", "13900000022")]
        assert sipp.callers(2, rate=1, names=names, talk_ms=500).check(60).successful == 2
        rows = engine.records(wait_for=2)
        assert sorted(r.caller_name for r in rows) == sorted(n for n, _ in names)
        assert engine.call(lambda: engine.e.ami.framer.bad_utf8 if engine.e.ami.framer else -1) == 0
        uas.stop()
    finally:
        engine.close()
        proxy.close()


def test_an_exception_handling_one_event_is_counted_and_routing_goes_on(
    engine: RunningEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cti.decode as decode_module

    real = decode_module.decode

    def faulty(msg: Any) -> Any:
        if msg.get("Event") == "DialBegin":
            raise RuntimeError("injected fault")
        return real(msg)

    monkeypatch.setattr(decode_module, "decode", faulty)
    uas = sipp.agent_uas(6221)
    sipp.register([agent("1001")], contact_port=6221)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
    for i in range(2):
        assert sipp.callers(1, rate=1, names=[(f"市民{i}", f"1390000003{i}")], talk_ms=500).check(30).successful == 1
    assert [r.outcome for r in engine.records(wait_for=2)] == ["answered", "answered"]
    samples = engine.metrics()
    assert samples["hotline_event_errors_total{}"] >= 2  # one per DialBegin
    assert engine.call(lambda: (engine.e.ami.connected, engine.e.ami.reconnects)) == (True, 0)
    uas.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"hotline_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _scenario(config: Path) -> list[tuple[Any, ...]]:
    """Two answered calls and a short abandon; the records as comparable tuples."""
    engine = RunningEngine(load(config))
    try:
        engine.wait_ready()
        uas = sipp.agent_uas(6231)
        sipp.register([agent("1001")], contact_port=6231)
        engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
        names = [("孙悟空", "13900000041"), ("猪八戒", "13900000042")]
        assert sipp.callers(2, rate=2, names=names, talk_ms=500).check(60).successful == 2
        sipp.register([agent("1001")], contact_port=6231, expires=0)
        engine.wait_for(lambda e: not e.dispatcher.state.agents["1001"].registered, 10, "agent gone")
        sipp.callers(1, rate=1, names=[("沙僧", "13900000043")], talk_ms=0,
                     scenario="caller_abandon.xml", hold_ms=1000).check(30)
        rows = engine.records(wait_for=3)
        uas.stop()
        time.sleep(0.5)
        return sorted(
            (r.caller_num, r.caller_name, r.outcome, r.agent_id, r.recording is not None, r.answered is not None)
            for r in rows
        )
    finally:
        engine.close()


def test_the_same_call_records_on_sqlite_and_postgresql(clean: Sandbox, tmp_path: Path, pg_url: str) -> None:
    on_sqlite = _scenario(write_config(tmp_path / "sqlite"))
    sipp.register([("agent1001", password("1001"))], contact_port=6231, expires=0)
    on_pg = _scenario(write_config(tmp_path / "pg", db_url=pg_url))
    assert on_sqlite == on_pg
    assert [row[2] for row in on_pg] == ["answered", "answered", "abandoned"]  # short by wait < short_abandon


def test_recent_answers_come_back_from_both_stores(tmp_path: Path, pg_url: str) -> None:
    from acd.commands import CallRecord
    from acd.model import Outcome
    from tickets.store import insert_record, migrate, open_engine, recent_answers

    for url in (f"sqlite:///{tmp_path / 'h.db'}", pg_url):
        db = open_engine(url)
        migrate(db)
        calls = [("138", "1001", Outcome.ANSWERED), ("139", None, Outcome.ABANDONED), ("138", "1002", Outcome.ANSWERED)]
        for i, (num, agent_id, outcome) in enumerate(calls):
            insert_record(db, CallRecord(f"c{i}", "main", num, "", 1000.0 + i, 1001.0 + i if agent_id else None,
                                         1010.0 + i, agent_id, outcome, 1.0, 9.0, None))
        assert recent_answers(db, 1005.0) == [("138", "1001", 1010.0), ("138", "1002", 1012.0)]
        assert recent_answers(db, 1011.0) == [("138", "1002", 1012.0)]
        db.dispose()
