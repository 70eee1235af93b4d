"""One user of the sandbox at a time, and nobody takes over an Asterisk they did not start.

No Asterisk needed: the sandbox is a temporary directory, "Asterisk" a sleeping process
whose pid is in its pid file, and the other users are child processes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load
from testbed import commands
from testbed.errors import SandboxBusy, SandboxError
from testbed.lock import OWNER_NAME, Owner, SandboxLock
from testbed.sandbox import MANUAL, Sandbox

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys
from pathlib import Path
from testbed.lock import SandboxLock
lock = SandboxLock(Path(sys.argv[1]))
lock.acquire(sys.argv[2])
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "rootfs", say=lambda msg: print(f"[sandbox] {msg}", file=sys.stderr))


@pytest.fixture
def holder(box: Sandbox) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the sandbox, as a test session would."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(box.lock_dir), "integration tests"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    if proc.stdin:
        proc.stdin.close()
    proc.wait(10)


@pytest.fixture
def asterisk(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A live process in the sandbox's Asterisk pid file, as if Asterisk were running there."""
    proc = subprocess.Popen(["sleep", "60"])
    monkeypatch.setattr(Sandbox, "in_sandbox", lambda self, pid: pid == proc.pid)
    pid_file = box.root / "run/asterisk/asterisk.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{proc.pid}\n")
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_owner(box: Sandbox, purpose: str, pid: int) -> None:
    record = {"purpose": purpose, "pid": pid, "cmdline": "python3 -m cti.cli sandbox up", "started": time.time(),
              "proc_start": None}
    box.lock_dir.mkdir(parents=True, exist_ok=True)
    (box.lock_dir / OWNER_NAME).write_text(json.dumps(record), encoding="utf-8")


def test_a_second_process_is_refused_naming_the_holder_and_how_to_stop_it(
    box: Sandbox, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(SandboxBusy) as refused:
        SandboxLock(box.lock_dir).acquire("bench dispatch_latency")
    message = str(refused.value)
    assert f"integration tests (pid {holder.pid}: `" in message
    assert "testbed.lock import SandboxLock" in message  # its command line
    assert "`hotline sandbox down --force`" in message
    assert "\n" not in message


def test_the_lock_is_free_once_its_holder_has_gone_however_it_ended(
    box: Sandbox, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)  # no release, no clean-up
    holder.wait(10)
    lock = SandboxLock(box.lock_dir)
    lock.acquire("integration tests")
    assert lock.previous is not None and lock.previous.pid == holder.pid and not lock.previous.alive()
    lock.release()


def test_a_stale_owner_file_from_a_dead_pid_does_not_block(box: Sandbox) -> None:
    pid = dead_pid()
    write_owner(box, "integration tests", pid)
    with box.claim("bench free_to_dial") as claim:
        assert claim.lock.previous is not None and claim.lock.previous.pid == pid
        assert "no longer running" in claim.lock.previous.describe()
    assert not (box.lock_dir / OWNER_NAME).exists()  # nothing left running: nothing to describe


def test_a_recycled_pid_is_not_taken_for_the_process_that_wrote_the_record() -> None:
    me = Owner.this_process("integration tests")
    assert me.alive()
    recycled = Owner(me.purpose, me.pid, me.cmdline, me.started, proc_start=(me.proc_start or 0) + 1)
    assert not recycled.alive()


def test_a_running_asterisk_we_did_not_start_is_refused_and_its_starter_stays_named(
    box: Sandbox, asterisk: int
) -> None:
    write_owner(box, MANUAL, dead_pid())
    with pytest.raises(SandboxBusy) as refused:
        box.claim("integration tests")
    message = str(refused.value)
    assert f"Asterisk is already running in the sandbox (pid {asterisk}), started by {MANUAL}" in message
    assert "`hotline sandbox down`" in message
    owner = SandboxLock(box.lock_dir).read_owner()
    assert owner is not None and owner.purpose == MANUAL  # the refused run did not overwrite it
    assert not SandboxLock(box.lock_dir).locked()  # nor did it keep the lock


def test_a_running_asterisk_nobody_claimed_is_refused_too(box: Sandbox, asterisk: int) -> None:
    with pytest.raises(SandboxBusy, match="nobody has claimed it"):
        box.claim("hotline demo")


def test_only_a_manual_up_adopts_the_asterisk_an_earlier_manual_up_started(box: Sandbox, asterisk: int) -> None:
    write_owner(box, MANUAL, dead_pid())
    with box.claim(MANUAL, adopt=MANUAL) as claim:
        assert claim.lock.owner is not None and claim.lock.owner.pid == os.getpid()
    write_owner(box, "hotline demo", dead_pid())
    with pytest.raises(SandboxBusy, match="started by hotline demo"):
        box.claim(MANUAL, adopt=MANUAL)


def test_whoever_leaves_asterisk_running_stays_named_as_its_starter(box: Sandbox,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Sandbox, "in_sandbox", lambda self, pid: pid == os.getpid())
    with box.claim("hotline demo"):
        pid_file = box.root / "run/asterisk/asterisk.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{os.getpid()}\n")  # "Asterisk" is up and stays up (the demo's --keep)
    owner = SandboxLock(box.lock_dir).read_owner()
    assert owner is not None and (owner.purpose, owner.pid) == ("hotline demo", os.getpid())


def test_building_or_starting_the_sandbox_without_a_claim_is_refused(box: Sandbox) -> None:
    with pytest.raises(SandboxError, match="claim"):
        box.build()
    with pytest.raises(SandboxError, match="claim"):
        box.start(load(None))


def down_args(*, force: bool) -> argparse.Namespace:
    return argparse.Namespace(action="down", rest=[], root=None, force=force)


def test_down_refuses_while_another_run_holds_the_sandbox(
    box: Sandbox, holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped: list[bool] = []
    monkeypatch.setattr(Sandbox, "stop", lambda self: stopped.append(True))
    assert commands.sandbox(down_args(force=False), lambda: pytest.fail("no settings needed"), box) == 1
    err = capsys.readouterr().err
    assert f"in use by integration tests (pid {holder.pid}" in err and "--force" in err
    assert stopped == []


def test_down_force_stops_it_and_says_whose_run_it_breaks(
    box: Sandbox, holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped: list[bool] = []
    monkeypatch.setattr(Sandbox, "stop", lambda self: stopped.append(True))
    assert commands.sandbox(down_args(force=True), lambda: pytest.fail("no settings needed"), box) == 0
    err = capsys.readouterr().err
    assert "--force" in err and f"integration tests (pid {holder.pid}" in err and "will fail" in err
    assert stopped == [True]
