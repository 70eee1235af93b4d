"""SIPp run directories: gone once a run succeeded and its counts were read, kept and named
when it failed (field test defect 14: they piled up inside the sandbox)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from testbed import sipp
from testbed.sandbox import SIPP_DIR, Sandbox
from tests.integration.harness import password


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


def test_a_failed_run_keeps_its_directory_and_the_error_names_it(clean: Sandbox) -> None:
    with pytest.raises(sipp.SippError) as failed:
        sipp.register([("agent1001", "wrong-" + password("1001"))], contact_port=6402)
    named = re.search(r"see (\S+)", str(failed.value))
    assert named, str(failed.value)
    kept = Path(named.group(1))
    try:
        assert kept.parent == clean.root / SIPP_DIR and kept.name.startswith("register-")
        assert (kept / "errors.log").is_file()
    finally:
        shutil.rmtree(kept, ignore_errors=True)
