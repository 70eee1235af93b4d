"""The recording rules on a real Prometheus give the reports' figures: Prometheus (1 s scrapes
and rule evaluations, metrics/rules.yml loaded) scrapes the engine while SIPp callers are
answered, abandon, and abandon short; once every record is stored, the month-to-date and the
rolling-24h 接通率 and 15秒接通率 equal what the store says for the same windows
(`reports.calls.totals_by_queue` over the month and over the 24 hours, the month report's own
figures, and the range report of the days holding those 24 hours' calls). Then the engine
restarts on the same store with a call in progress: its live counters start again from 0 and do
not count the adopted call's offer or answer again, the month-to-date and 24-hour figures do not
move until that call ends, and then hold it once."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from acd.calls import CallState
from cti.engine import Engine
from cti.month_to_date import month_window
from reports import periods, report
from reports.calls import totals_by_queue
from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, write_config
from tests.integration.test_calls import agent
from tests.integration.test_prometheus import free_port, query

RULES = Path(__file__).resolve().parents[2] / "metrics" / "rules.yml"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], int]]:
    """Start Prometheus scraping the engine's metrics port, with the shipped recording rules."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make test-deps` installs it")
    procs: list[subprocess.Popen[bytes]] = []

    def start(metrics_port: int) -> int:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "hotline",
                                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
        procs.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb")))  # noqa: SIM115
        return port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def value(port: int, expr: str) -> float | None:
    try:
        rows = query(port, expr)
    except OSError:  # Prometheus still starting
        return None
    return float(rows[0]["value"][1]) if len(rows) == 1 else None  # type: ignore[index]


def wait_value(port: int, expr: str, predicate: Callable[[float], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = value(port, expr)
        if got is not None and predicate(got):
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: {expr} = {got}")


def month_samples(engine: RunningEngine) -> dict[str, float]:
    """The store-derived figures: the month's and the last 24 hours'."""
    return {k: v for k, v in engine.metrics().items()
            if k.startswith(("hotline_month_calls", "hotline_month_info", "hotline_rolling_24h_calls"))}


def in_conversation(e: Engine) -> bool:
    return any(c.state is CallState.CONNECTED for c in e.dispatcher.state.calls.values())


def test_recorded_rates_equal_the_stores_figures_and_the_month_survives_a_restart(
    clean: Sandbox, tmp_path: Path, prometheus: Callable[[int], int]
) -> None:
    metrics_port = free_port()  # fixed across the restart: Prometheus keeps one target
    directory = write_config(tmp_path / "config", metrics_port=metrics_port,
                             queue={"service_level": 2, "short_abandon": 3, "wrapup": 0})
    engine_yaml = directory / "engine.yaml"
    settings = yaml.safe_load(engine_yaml.read_text(encoding="utf-8"))
    settings["metrics"]["month_to_date_interval"] = 1
    engine_yaml.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    started = datetime.now(UTC)
    engine = RunningEngine.from_dir(directory)
    prom = prometheus(metrics_port)
    uas = None
    try:
        engine.wait_ready()
        # The counters' first sample must be their 0: increase() then counts every call exactly.
        wait_value(prom, 'sum(hotline_calls_offered_total{job="hotline"})', lambda v: v == 0, 20, "first scrape")

        # Nobody logged in: a short abandon (1 s < 3 s), a long one (4 s), and a caller who waits
        # until an agent registers (past the 2 s service level).
        short = sipp.callers(1, rate=1, names=[("速挂", "13900000301")], talk_ms=0, scenario="caller_abandon.xml",
                             hold_ms=1000)
        long = sipp.callers(1, rate=1, names=[("放弃", "13900000302")], talk_ms=0, scenario="caller_abandon.xml",
                            hold_ms=4000)
        late = sipp.callers(1, rate=1, names=[("久等", "13900000303")], talk_ms=500)
        short.check(30)
        long.check(30)
        uas = sipp.agent_uas(6901, answer_ms=100)
        sipp.register([agent("1001"), agent("1002")], contact_port=6901)
        assert late.check(60).successful == 1
        engine.wait_for(lambda e: all(e.dispatcher.state.agents[a].available() for a in ("1001", "1002")), 10,
                        "agents free")
        assert sipp.callers(2, rate=2, names=[("来电", "13900000304"), ("来电", "13900000305")],
                            talk_ms=500).check(60).successful == 2
        assert len(engine.records(wait_for=5)) == 5

        db = engine.e.outbox.engine
        now = datetime.now(UTC)
        month, month_start, month_end = month_window(now)
        by_queue = totals_by_queue(db, month_start, month_end)
        # The 24 hours the rules look at hold every call of this test, and nothing else.
        assert totals_by_queue(db, started - timedelta(minutes=1), now) == by_queue
        assert totals_by_queue(db, now - timedelta(hours=24), now) == by_queue
        main = by_queue["main"]
        # The test means something: answered and unanswered, a short abandon, inside and outside the level.
        assert (main.offered, main.answered, main.abandoned, main.short_abandoned) == (5, 3, 2, 1)
        assert 0 < main.answered_within_sl < main.answered
        assert main.answer_rate is not None and main.sl_rate is not None

        def close(expected: float) -> Callable[[float], bool]:
            return lambda got: math.isclose(got, expected, rel_tol=1e-9)

        for rule, expected in (("answer_rate", main.answer_rate), ("sl_rate", main.sl_rate)):
            for window in ("month_to_date", "rolling_24h"):
                wait_value(prom, f"hotline:{rule}:{window}", close(expected), 20, f"hotline:{rule}:{window}")
                wait_value(prom, f'hotline_queue:{rule}:{window}{{queue="main"}}', close(expected), 5,
                           f"hotline_queue:{rule}:{window}")
        # ... and they are the reports' figures: the month report, and the report of the Beijing
        # days that hold the 24 hours (the same calls: the store has no other).
        y, m = (int(part) for part in month.split("-"))
        day = report.build(db, periods.days((now - timedelta(hours=24)).astimezone(periods.SHANGHAI).date(),
                                            now.astimezone(periods.SHANGHAI).date()),
                           report.ReportOptions(compare=False), now).figures()
        figures = report.build(db, periods.month(y, m), report.ReportOptions(compare=False), now).figures()
        for reported in (figures, day):
            assert reported["calls.answer_rate"].value == pytest.approx(main.answer_rate, rel=1e-12)
            assert reported["calls.sl_rate"].value == pytest.approx(main.sl_rate, rel=1e-12)

        # Restart on the same store while a call is in conversation: the live counters start
        # from 0 and do not count the adopted call again; the store's figures do not move, the
        # call has no record yet.
        long_call = sipp.callers(1, rate=1, names=[("长通话", "13900000306")], talk_ms=25_000)
        engine.wait_for(in_conversation, 20, "the long call answered")
        old_counters = engine.metrics()
        assert (old_counters["hotline_calls_offered_total{queue=main}"],
                old_counters["hotline_calls_answered_total{queue=main}"]) == (6, 4)
        before = month_samples(engine)
        assert before[f"hotline_month_info{{month={month}}}"] == 1
        assert before["hotline_month_calls{kind=offered,queue=main}"] == 5
        assert before["hotline_rolling_24h_calls{kind=offered,queue=main}"] == 5
        engine.close()
        restarted_at = time.time()
        engine = RunningEngine.from_dir(directory)
        engine.wait_ready()
        engine.wait_for(in_conversation, 10, "the call in progress adopted")
        engine.wait_for(lambda e: e.month is not None and e.month.figures is not None, 10, "month figures")
        after = engine.metrics()
        assert (after["hotline_calls_offered_total{queue=main}"], after["hotline_calls_answered_total{queue=main}"]
                ) == (0, 0)  # counted by the old process
        assert month_samples(engine) == before
        wait_value(prom, "hotline_month_refreshed_timestamp_seconds", lambda t: t > restarted_at, 20,
                   "a scrape of the restarted engine")
        for window in ("month_to_date", "rolling_24h"):
            wait_value(prom, f"hotline:answer_rate:{window}", close(main.answer_rate), 5,
                       f"the {window} rate after the restart")

        # The call ends: the new process stores it and counts its end, once; the figures hold it.
        assert long_call.check(60).successful == 1
        assert len(engine.records(wait_for=6)) == 6
        db = engine.e.outbox.engine
        engine.wait_for(lambda e: e.dispatcher.state.calls == {}, 10, "the call's end")
        ended = engine.metrics()
        assert (ended["hotline_calls_offered_total{queue=main}"], ended["hotline_calls_answered_total{queue=main}"],
                ended["hotline_calls_ended_total{outcome=answered,queue=main}"]) == (0, 0, 1)
        now = datetime.now(UTC)
        with_call = totals_by_queue(db, now - timedelta(hours=24), now)["main"]
        assert (with_call.offered, with_call.answered) == (6, 4)
        assert with_call.answer_rate is not None and with_call.answer_rate != main.answer_rate
        for window in ("month_to_date", "rolling_24h"):
            wait_value(prom, f"hotline:answer_rate:{window}", close(with_call.answer_rate), 20,
                       f"the {window} rate with the adopted call")
        # The live counters of both processes together are the store's figures, once each.
        for kind, name in (("offered", "offered"), ("answered", "answered")):
            assert old_counters[f"hotline_calls_{name}_total{{queue=main}}"] + \
                ended[f"hotline_calls_{name}_total{{queue=main}}"] == getattr(with_call, kind)
    finally:
        if uas is not None:
            uas.stop()
        engine.close()
