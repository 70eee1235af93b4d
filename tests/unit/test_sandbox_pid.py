"""A pid file left behind by an Asterisk that died (SIGKILL, a crash) does not make the
sandbox look busy once the pid belongs to an unrelated host process, and `hotline sandbox
down` clears it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import testbed.sandbox as sandbox_module
from testbed.sandbox import Sandbox


def test_a_stale_pid_file_naming_an_unrelated_process_is_not_a_running_asterisk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Sandbox(tmp_path / "rootfs", say=lambda _: None)
    unrelated = subprocess.Popen(["sleep", "60"])  # a host process that got the recycled pid
    try:
        pid_file = box.root / "run/asterisk/asterisk.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{unrelated.pid}\n")
        assert box.pid() is None, "a host process outside the chroot is taken for the sandbox's Asterisk"
    finally:
        unrelated.kill()
        unrelated.wait()


def test_sandbox_down_clears_a_stale_pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Sandbox(tmp_path / "rootfs", say=lambda _: None)
    monkeypatch.setattr(sandbox_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sandbox_module.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = box.root / "run/asterisk/asterisk.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{unrelated.pid}\n")
        box.stop()
        assert box.pid() is None, "after `sandbox down` the sandbox still reports an Asterisk running"
        assert unrelated.poll() is None  # and the unrelated process is left alone
    finally:
        unrelated.kill()
        unrelated.wait()
