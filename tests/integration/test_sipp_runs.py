"""SIPp run directories: gone once a run succeeded and its counts were read, kept and named
when it failed (field test defect 14: they piled up inside the sandbox)."""

from __future__ import annotations

import shutil

import pytest

from testbed import sipp
from testbed.sandbox import SIPP_DIR, Sandbox
from tests.integration.harness import RunningEngine, password
from tests.integration.test_calls import agent, settle


def test_a_successful_run_leaves_no_directory_but_keeps_its_counts(clean: Sandbox) -> None:
    uas = sipp.agent_uas(6401)
    assert uas.workdir.is_dir()
    assert uas.stop() == 0
    assert not uas.workdir.exists()
    assert uas.stats() == sipp.SippStats(created=0, current=0, successful=0, failed=0)
    run = sipp.callers(1, rate=1, names=[("目录", "13900000401")], talk_ms=0, scenario="caller_abandon.xml",
                       hold_ms=500)
    stats = run.check(30)
    assert stats.successful == 1 and run.stats() == stats
    assert not run.workdir.exists()


def test_an_agent_stopped_right_after_its_call_leaves_no_directory(engine: RunningEngine) -> None:
    uas = sipp.agent_uas(6403)
    sipp.register([agent("1001")], contact_port=6403)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
    assert sipp.callers(1, rate=1, names=[("收尾", "13900000403")], talk_ms=500).check(30).successful == 1
    uas.stop()  # inside the scenario's closing 2 s timewait, which SIPp counts as an aborted call
    assert not uas.workdir.exists()
    assert uas.stats().created == 1


def test_a_failed_run_keeps_its_directory_and_the_error_names_it(clean: Sandbox) -> None:
    with pytest.raises(sipp.SippError) as failed:
        sipp.register([("agent1001", "wrong-" + password("1001"))], contact_port=6402)
    kept = failed.value.workdir
    assert kept is not None and f"see {kept}" in str(failed.value)
    try:
        assert kept.parent == clean.root / SIPP_DIR and kept.name.startswith("register-")
        assert (kept / "errors.log").is_file()
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_a_caller_whose_agent_hangs_up_first_answers_the_bye_and_the_call_counts_successful(
        engine: RunningEngine) -> None:
    # The agent hangs up after 1 s; the caller would talk for a minute: it must take the
    # hotline's BYE in the middle of its talk pause, answer it and end the call as a success.
    uas = sipp.agent_uas(6404, scenario="agent_hangup.xml", talk_ms=1000)
    sipp.register([agent("1001")], contact_port=6404)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
    stats = sipp.callers(1, rate=1, names=[("坐席先挂", "13900000404")], talk_ms=60_000).check(30)
    assert (stats.successful, stats.failed) == (1, 0)
    (row,) = engine.records(wait_for=1)
    assert (row.outcome, row.agent_id) == ("answered", "1001")
    assert settle(lambda: uas.stats().successful, 1) == 1  # past its closing timewait: stop() aborts nothing
    assert uas.stop() == 0
