"""The `hotline` command: complete help, and bad configuration stops `run` at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
