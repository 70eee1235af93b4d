"""The `hotline` command: complete help, and bad configuration stops `run` at once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from cti.cli import main
from cti.logs import mask_number


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cti.cli", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_help_lists_every_command() -> None:
    out = hotline("--help").stdout
    for command in ("run", "config", "sandbox", "asterisk-conf", "demo"):
        assert command in out


def test_a_malformed_config_stops_run_at_start_with_file_line_and_reason(tmp_path: Path) -> None:
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: main\n    wrapup: lots\n", encoding="utf-8")
    proc = hotline("run", "--config", str(tmp_path))
    assert proc.returncode == 2
    assert f"{tmp_path / 'queues.yaml'}:3: queues.0.wrapup" in proc.stderr
    assert "valid number" in proc.stderr


def test_config_check_accepts_the_defaults() -> None:
    proc = hotline("config", "check")
    assert proc.returncode == 0
    assert "configuration OK" in proc.stdout


def test_a_withheld_number_is_masked_in_logs() -> None:
    assert mask_number("13812345678", restricted=True) == "*******5678"
    assert mask_number("13812345678", restricted=False) == "13812345678"
    assert mask_number("110", restricted=True) == "***"


AGENTS = 'agents:\n  - {id: "2001", password: own-secret-2001}\n'
QUEUES = "queues:\n  - {name: main, number: '12345'}\n"


def config_folder(folder: Path, engine: str = "ami: {secret: own-ami-secret}\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agents.yaml").write_text(AGENTS, encoding="utf-8")
    (folder / "queues.yaml").write_text(QUEUES, encoding="utf-8")
    (folder / "engine.yaml").write_text(engine, encoding="utf-8")
    return folder


def test_rendered_asterisk_files_are_0640_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manager.conf").write_text("old", encoding="utf-8")
    os.chmod(out / "manager.conf", 0o644)
    umask = os.umask(0o022)
    try:
        assert main(["asterisk-conf", "render", "--out", str(out), "--config", str(config_folder(tmp_path))]) == 0
    finally:
        os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert "pjsip.conf" in modes and set(modes.values()) == {0o640}
    assert "own-ami-secret" in (out / "manager.conf").read_text(encoding="utf-8")
