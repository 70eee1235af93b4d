"""A real Prometheus scrapes the engine and sees the call it answered."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from testbed import sipp
from tests.integration.harness import RunningEngine
from tests.integration.test_calls import agent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(port: int, expr: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return list(json.load(resp)["data"]["result"])


def test_prometheus_scrapes_offered_and_answered(engine: RunningEngine, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make test-deps` installs it")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hotline\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{engine.e.metrics_port}']\n"
    )
    prom = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115
    )
    try:
        uas = sipp.agent_uas(6241)
        sipp.register([agent("1001")], contact_port=6241)
        engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
        assert sipp.callers(1, rate=1, names=[("刘洋", "13900000051")], talk_ms=500).check(30).successful == 1
        deadline = time.monotonic() + 30
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                for name in ("hotline_calls_offered_total", "hotline_calls_answered_total", "hotline_ami_connected"):
                    for row in query(port, name):
                        seen[name] = float(row["value"][1])  # type: ignore[index]
            except OSError:
                pass
            if seen.get("hotline_calls_answered_total") == 1:
                break
            time.sleep(0.5)
        assert seen == {"hotline_calls_offered_total": 1, "hotline_calls_answered_total": 1,
                        "hotline_ami_connected": 1}
        uas.stop()
    finally:
        prom.terminate()
        prom.wait(10)
