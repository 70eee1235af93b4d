"""No record lost when the engine dies: a steady load on the real Asterisk with SIPp, the
engine killed with SIGKILL and restarted once after 5 s and once after 35 s (past the
dialplan fallback's start at 20 s). Every call SIPp placed has exactly one record; the
calls the fallback served are marked so. On PostgreSQL the same, with one caller number
of 70 digits: every other record is stored and that one is quarantined."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from config.loader import load
from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import AGENT_IDS, password, write_config
from tests.integration.test_resilience import pg_url  # noqa: F401  (a fixture)
from tickets.store import list_quarantine, open_engine, read_records

RATE = 1.2  # calls per second; 10 agents with 5 s calls stay ahead of it
TALK_MS = 5000
KILL_1, BACK_1 = 15.0, 20.0  # seconds into the load: a 5 s gap
KILL_2, BACK_2 = 45.0, 80.0  # a 35 s gap: the dialplan's fallback answers from KILL_2 + 20 s
CALLS = 120  # 100 s of load


@dataclass
class EngineProcess:
    """`hotline run` as its own process, as in production, so that it can be killed."""

    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(self.config)],
                                         stdout=out, stderr=out, start_new_session=True)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def healthy(self, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the engine did not route within {timeout} s; see {self.log}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agents(clean: Sandbox, request: pytest.FixtureRequest) -> Iterator[None]:
    uas = sipp.agent_uas(6601, answer_ms=200)
    sipp.register([(f"agent{a}", password(a)) for a in AGENT_IDS], contact_port=6601)
    failed_before = request.session.testsfailed
    try:
        yield
    finally:
        # The test judges calls by their records; the agents' own SIPp keeps its files only
        # when the test failed (the kills cross CANCELs with 200 OKs, which SIPp counts failed).
        if request.session.testsfailed == failed_before:
            uas.discard()
        else:
            uas.stop()


def run_with_kills(config: Path, names: list[tuple[str, str]], tmp: Path) -> tuple[float, float, float]:
    """Place the calls, kill and restart the engine twice; the wall times of the second gap."""
    settings = load(config)
    engine = EngineProcess(config, tmp / "engine.log")
    engine.start()
    port = settings.engine.metrics.port
    try:
        engine.healthy(port)
        started = time.monotonic()
        run = sipp.callers(len(names), rate=RATE, names=names, talk_ms=TALK_MS, wait_ms=90_000, limit=200)

        def at(offset: float) -> None:
            time.sleep(max(0.0, started + offset - time.monotonic()))

        at(KILL_1)
        engine.kill()
        at(BACK_1)
        engine.start()
        at(KILL_2)
        engine.kill()
        killed_2 = time.time()
        at(BACK_2)
        back_2 = time.time()
        engine.start()
        engine.healthy(port)
        stats = run.check(240)
        assert (stats.successful, stats.failed) == (len(names), 0)
        # The calls that ended while the engine was away are recorded from Asterisk's account
        # right after the resync; the rest as they end. Give the last ones time to be stored.
        time.sleep(3)
        return killed_2, back_2, time.time()
    finally:
        engine.stop()


def fault_config(tmp: Path, db_url: str | None = None) -> Path:
    config = write_config(tmp / "config", db_url=db_url, metrics_port=free_port(),
                          queue={"ring_timeout": 8, "wrapup": 0, "max_wait": 300, "short_abandon": 3})
    engine = yaml.safe_load((config / "engine.yaml").read_text(encoding="utf-8"))
    engine["account"]["first_days"] = 0  # read Asterisk's account from this run's start only
    (config / "engine.yaml").write_text(yaml.safe_dump(engine), encoding="utf-8")
    return config


def check_exactly_once(rows: list[object], placed: list[str], gap: tuple[float, float]) -> None:
    numbers = [r.caller_num for r in rows]  # type: ignore[attr-defined]
    assert sorted(numbers) == sorted(placed), (
        f"missing {sorted(set(placed) - set(numbers))}, extra {sorted(set(numbers) - set(placed))}")
    assert len(set(numbers)) == len(numbers)  # none twice
    assert {r.outcome for r in rows} == {"answered"}  # type: ignore[attr-defined]
    killed, back = gap
    in_gap = [r for r in rows if killed + 1 <= r.arrived.timestamp() <= back - 3]  # type: ignore[attr-defined]
    assert len(in_gap) >= 20, f"only {len(in_gap)} calls arrived while the engine was away"
    assert {r.served_by for r in in_gap} == {"fallback"}  # type: ignore[attr-defined]
    sources = {r.source for r in rows}  # type: ignore[attr-defined]
    assert "asterisk" in sources  # calls that ended while the engine was away came from Asterisk's account


def test_a_killed_engine_loses_no_record_and_writes_none_twice(agents: None, tmp_path: Path) -> None:
    config = fault_config(tmp_path)
    names = [(f"市民{i}", f"1391000{i:04d}") for i in range(CALLS)]
    killed, back, _ = run_with_kills(config, names, tmp_path)
    rows = read_records(open_engine(load(config).engine.store.url))
    check_exactly_once(rows, [n for _, n in names], (killed, back))


def test_on_postgresql_a_record_the_store_refuses_is_quarantined_and_blocks_nothing(
    agents: None, tmp_path: Path, pg_url: str  # noqa: F811
) -> None:
    config = fault_config(tmp_path, db_url=pg_url)
    long_number = "1" * 70
    names = [(f"市民{i}", f"1392000{i:04d}") for i in range(CALLS)]
    names[10] = ("超长号码", long_number)
    killed, back, _ = run_with_kills(config, names, tmp_path)
    settings = load(config)
    rows = read_records(open_engine(settings.engine.store.url))
    placed = [n for _, n in names if n != long_number]
    check_exactly_once(rows, placed, (killed, back))
    (held,) = list_quarantine(settings.engine.store.spool)
    assert "value too long" in held.error or "StringDataRightTruncation" in held.error
    assert long_number in held.file.read_text(encoding="utf-8")
