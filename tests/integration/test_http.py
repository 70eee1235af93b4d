"""The HTTP API refuses bad requests clearly and keeps serving (no Asterisk needed)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import RunningEngine, write_config


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[RunningEngine]:
    engine = RunningEngine.from_dir(write_config(tmp_path, ami_port=1))  # nothing listens on port 1
    yield engine
    engine.close()


def post(engine: RunningEngine, path: str, body: bytes | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{engine.e.http_port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/agents/9999/pause", None, 404, "no agent"),
        ("/agents/1001/reboot", None, 404, "unknown action"),
        ("/agents/1001/pause", b"{not json", 400, "must be JSON"),
        ("/agents/1001/pause", b'["05"]', 400, "object"),
        ("/agents/1001/pause", b'{"reason": "x; DROP TABLE"}', 400, "reason"),
    ],
)
def test_bad_agent_requests_get_a_clear_error(offline: RunningEngine, path: str, body: bytes | None, status: int,
                                              words: str) -> None:
    code, answer = post(offline, path, body)
    assert code == status
    assert words in str(answer["error"])


def test_a_good_request_is_accepted_and_applied(offline: RunningEngine) -> None:
    assert post(offline, "/agents/1001/pause", b'{"reason": "05"}')[0] == 202
    offline.wait_for(lambda e: e.dispatcher.state.agents["1001"].paused == "05", 5, "paused over HTTP")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{offline.e.http_port}/healthz", timeout=5)
    assert err.value.code == 503  # AMI is down, and /healthz says so


def test_sighup_reloads_and_a_broken_file_keeps_the_old_configuration(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.test_prometheus import free_port

    port = free_port()
    config = write_config(tmp_path, ami_port=1, http_port=port)
    log = open(tmp_path / "engine.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log)

    def gauges() -> str:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            return ""

    def wait_for(text: str, present: bool = True) -> bool:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if (text in gauges()) is present:
                return True
            time.sleep(0.2)
        return False

    try:
        assert wait_for('hotline_queue_waiting_callers{queue="main"}')
        queues = (config / "queues.yaml").read_text(encoding="utf-8")
        (config / "queues.yaml").write_text(queues + "- name: extra\n  number: '12399'\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        assert wait_for('hotline_queue_waiting_callers{queue="extra"}')
        (config / "queues.yaml").write_text("queues: [{name: main, ring_timeout: nope}]\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert proc.poll() is None  # still serving
        assert 'hotline_queue_waiting_callers{queue="extra"}' in gauges()  # the old configuration
        assert b"reload_refused" in (tmp_path / "engine.log").read_bytes()
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
