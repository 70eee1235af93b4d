"""Review probes (review1) on the real Asterisk: each fails today; see the review report."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine
from tests.integration.test_acd import acd_config, available
from tests.integration.test_calls import agent


def test_a_caller_overflowed_into_a_queue_added_by_an_engine_reload_survives_an_unanswered_ring(
        clean: Sandbox, tmp_path: Path) -> None:
    """Asterisk runs the dialplan rendered from `main` alone. `hotline reload` (no Asterisk
    reload: README says none is needed for queues) adds `extra`, the overflow target of
    `main` after 2 s, served by 1001 only. The caller overflows (HOTLINE_QUEUE=extra) and 1001
    lets it ring out. The walk back once went to `hotline-hold,extra,back`, a label the running
    dialplan did not have, and Asterisk hung the caller up; it now goes to the shared wait loop."""
    directory = acd_config(tmp_path / "reload", [{"name": "main", "number": "12345", "ring_timeout": 4,
                                                  "max_wait": 120}])
    engine = RunningEngine.from_dir(directory)
    clean.install_conf(engine.settings)
    clean.rx("dialplan reload")
    try:
        engine.wait_ready()
        (directory / "queues.yaml").write_text(yaml.safe_dump({"queues": [
            {"name": "main", "number": "12345", "ring_timeout": 4, "max_wait": 120,
             "overflow": {"after": 2, "to": "queue", "queue": "extra"}},
            {"name": "extra", "ring_timeout": 4, "max_wait": 120}]}), encoding="utf-8")
        roster = yaml.safe_load((directory / "agents.yaml").read_text(encoding="utf-8"))
        for entry in roster["agents"]:
            entry["queues"] = ["extra"]
        (directory / "agents.yaml").write_text(yaml.safe_dump(roster, allow_unicode=True), encoding="utf-8")
        status, answer = engine.http("POST", "/reload")
        assert (status, answer) == (200, {"ok": True, "errors": [], "restart_needed": []})
        silent = sipp.agent_uas(6391, scenario="agent_noanswer.xml")
        sipp.register([agent("1001")], contact_port=6391)
        available(engine, "1001")
        caller = sipp.callers(1, rate=1, names=[("新队列", "13900000191")], talk_ms=500, wait_ms=60_000)
        # join, 2 s in main, overflow to extra, a 4 s ring, the walk back: by 12 s the caller
        # must still be waiting (in the engine and in Asterisk).
        engine.wait_for(lambda e: any(c.queue == "extra" for c in e.dispatcher.state.calls.values()), 10,
                        "the caller in extra")
        time.sleep(10)
        waiting = engine.call(lambda: [c.state.value for c in engine.e.dispatcher.state.calls.values()])
        records = engine.records()
        caller.stop()
        silent.stop()
        assert waiting and not records, f"caller hung up by Asterisk: engine calls {waiting}, records " \
            f"{[(r.outcome, r.queue, r.wait_seconds) for r in records]}"
    finally:
        engine.close()


def test_a_caller_who_hangs_up_while_a_resync_runs_is_recorded_as_abandoned(
        clean: Sandbox, tmp_path: Path) -> None:
    """A waiting caller hangs up; while their hangup handler (hotline-ended) runs, the AMI
    link drops and the engine resyncs. Status shows the channel in hotline-ended, which
    dialplan.where() calls DONE. Such a caller was once taken for one sent to the time-out
    message and recorded `timed_out` (a short abandon then stayed in the answer rate's
    denominator); hanging up with no answer and no reason to leave is an abandon. The handler
    is made to last 5 s here so that the resync lands in it every time; with the shipped
    handler the window is a few milliseconds per call, at every resync."""
    from tests.integration.harness import write_config

    engine = RunningEngine.from_dir(write_config(tmp_path / "handler", agents=["1001"]))
    clean.install_conf(engine.settings)
    clean.rx("dialplan reload")
    # The handler takes 5 s (a slow CEL disk, here a sleep): the resync lands inside it.
    clean.rx('dialplan add extension "s,2,System(sleep 5)" into hotline-ended replace')
    clean.rx("dialplan add extension s,3,Return into hotline-ended")
    try:
        engine.wait_ready()
        caller = sipp.callers(1, rate=1, names=[("挂机", "13900000192")], talk_ms=0, scenario="caller_abandon.xml",
                              hold_ms=2000)
        engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "the caller in line")
        time.sleep(2.5)  # the CANCEL comes 2 s after the INVITE; the handler then runs for 5 s
        engine.call(engine.e.ami.drop)
        (row,) = engine.records(wait_for=1)
        caller.stop()
        assert row.outcome == "abandoned", (row.outcome, row.source, row.wait_seconds)
    finally:
        clean.rx("dialplan reload")
        engine.close()
