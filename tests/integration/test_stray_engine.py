"""Review probe (needs the sandbox): the sandbox lock guards Asterisk, not the engines that
log into it. Every test, benchmark and demo configuration uses AMI on 127.0.0.1:5038 with the
same published secret, and their engines are separate processes (the demo's and
test_faults' in a session of their own), so an engine left behind by an interrupted run
(SIGKILL, a closed terminal) logs into the next run's freshly started Asterisk and routes
its callers too: offers, rings and records the same calls in parallel with the run's own
engine. Seen by hand: a stray engine rang agent 1003 for both callers of
test_a_priority_caller_overtakes_an_earlier_one and stored their records in its own DB."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from testbed.configs import write_config
from testbed.sandbox import Sandbox


def test_an_engine_this_run_did_not_start_cannot_log_into_its_asterisk(clean: Sandbox, tmp_path: Path) -> None:
    # Written by another run (a killed `hotline demo`, an interrupted test session): its secret
    # is not this run's. The published default stands for any of them.
    stray_config = write_config(tmp_path / "stray", account=False, ami_secret="change-me-hotline")
    log = tmp_path / "stray.log"
    with log.open("wb") as out:
        stray = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(stray_config)],
                                 stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and '"ami_connected"' not in log.read_text():
            time.sleep(0.2)
        assert '"ami_connected"' not in log.read_text(), "a stray engine logged into this run's Asterisk"
    finally:
        stray.terminate()
        stray.wait(15)
