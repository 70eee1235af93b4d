"""The HTTP listeners: a control API that needs its token and refuses other origins, a
metrics listener that can change nothing, and clear refusals of bad requests (no Asterisk
needed: AMI points at a port nobody listens on)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from acd.commands import CallRecord
from acd.model import Outcome
from tests.integration.harness import RunningEngine, write_config


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[RunningEngine]:
    engine = RunningEngine.from_dir(write_config(tmp_path, ami_port=1))  # nothing listens on port 1
    yield engine
    engine.close()


def raw(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def paused(engine: RunningEngine) -> str | None:
    return engine.call(lambda: engine.e.dispatcher.state.agents["1001"].pause_reason)


def test_a_post_without_the_token_is_refused_and_changes_nothing(offline: RunningEngine) -> None:
    url = f"http://127.0.0.1:{offline.e.http_port}/agents/1001/logout"
    assert raw(url, "POST") == 401
    assert offline.http("POST", "/agents/1001/pause", b'{"reason": "05"}', token="not-the-token")[0] == 401
    assert offline.http("GET", "/callbacks", token="")[0] == 401
    assert paused(offline) is None
    assert offline.call(lambda: offline.e.dispatcher.state.agents["1001"].presence.value) == "ready"


def test_a_cross_origin_post_is_refused_even_with_the_token(offline: RunningEngine) -> None:
    # What a web page open on the operator's machine sends with a form post or fetch(no-cors).
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}):
        status, answer = offline.http("POST", "/agents/1001/logout", headers=headers)
        assert status == 403, headers
        assert "cross-origin" in answer["error"]
    assert offline.http("POST", "/reload", headers={"Origin": "http://evil.example"})[0] == 403
    assert offline.call(lambda: offline.e.dispatcher.state.agents["1001"].presence.value) == "ready"
    # The same origin (a page the engine itself would serve) is let through.
    same = {"Origin": f"http://127.0.0.1:{offline.e.http_port}"}
    assert offline.http("POST", "/agents/1001/pause", b'{"reason": "05"}', headers=same)[0] == 200


def test_the_metrics_listener_serves_no_control_path(offline: RunningEngine) -> None:
    base = f"http://127.0.0.1:{offline.e.metrics_port}"
    token = {"Authorization": f"Bearer {offline.e.token}"}
    assert raw(f"{base}/metrics") == 200
    for method, path in (("GET", "/agents"), ("POST", "/agents/1001/logout"), ("POST", "/reload"),
                         ("GET", "/callbacks"), ("GET", "/quarantine")):
        assert raw(f"{base}{path}", method, headers=token) in (404, 405), path
    assert offline.call(lambda: offline.e.dispatcher.state.agents["1001"].presence.value) == "ready"
    # ...and the control listener serves no metrics: the two are apart.
    assert raw(f"http://127.0.0.1:{offline.e.http_port}/metrics", headers=token) == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/agents/9999/pause", None, 404, "no agent"),
        ("/agents/1001/reboot", None, 404, "unknown action"),
        ("/agents/1001/pause", b"{not json", 400, "must be JSON"),
        ("/agents/1001/pause", b'["05"]', 400, "object"),
        ("/agents/1001/pause", b'{"reason": "x; DROP TABLE"}', 400, "reason"),
        ("/agents/1001/pause", b'{"reason": "05\\n"}', 400, "reason"),  # field test defect 9
        ("/agents/1001/pause", b'{"reason": "05", "agent": "1002"}', 400, "only"),
        ("/reload", b"{}", 400, "no body"),
    ],
)
def test_bad_requests_get_a_clear_error(offline: RunningEngine, path: str, body: bytes | None, status: int,
                                        words: str) -> None:
    code, answer = offline.http("POST", path, body)
    assert code == status
    assert words in str(answer["error"])


def test_a_reload_with_a_chunked_body_is_refused_like_any_other_body(offline: RunningEngine) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", offline.e.http_port, timeout=5)
    try:
        conn.request("POST", "/reload", body=iter([b'{"queues":', b' []}']), encode_chunked=True,
                     headers={"Authorization": f"Bearer {offline.e.token}", "Transfer-Encoding": "chunked",
                              "Content-Type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 400
        assert "no body" in answer.read().decode()
    finally:
        conn.close()


def test_a_request_is_answered_with_its_outcome(offline: RunningEngine) -> None:
    assert offline.http("POST", "/agents/1001/pause", b'{"reason": "05"}') == (
        200, {"ok": True, "agent": "1001", "action": "pause", "state": "logged_out"})  # no phone: not registered
    assert paused(offline) == "05"
    assert offline.http("POST", "/agents/1001/logout")[0] == 200
    status, answer = offline.http("POST", "/agents/1001/unpause")
    assert (status, answer["error"]) == (409, "not logged in: log in first (*21)")
    status, answer = offline.http("POST", "/agents/1001/end_wrapup")
    assert status == 409 and "not in wrap-up" in answer["error"]


def test_healthz_says_503_while_the_engine_is_not_routing(offline: RunningEngine) -> None:
    assert raw(f"http://127.0.0.1:{offline.e.metrics_port}/healthz") == 503


def test_a_withheld_number_is_masked_in_the_callback_list(offline: RunningEngine) -> None:
    now = __import__("time").time()
    for call, num, restricted in (("c1", "13812345678", True), ("c2", "13900000000", False)):
        offline.e.outbox.put(CallRecord(call, "main", num, "王小明", now - 60, None, now - 10, None, Outcome.CALLBACK,
                                        50.0, 0.0, None, restricted=restricted))
    offline.wait_for(lambda e: e.outbox.pending() == 0, 10, "records stored")
    status, listed = offline.http("GET", "/callbacks")
    assert status == 200
    shown = {c["call_id"]: (c["caller_num"], c["caller_name"], c["restricted"]) for c in listed}
    assert shown == {"c1": ("*******5678", "", True), "c2": ("13900000000", "王小明", False)}


def test_sighup_reloads_and_a_broken_file_keeps_the_old_configuration(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.test_prometheus import free_port

    port = free_port()
    config = write_config(tmp_path, ami_port=1, metrics_port=port)
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


def test_an_oversized_header_is_refused_and_the_log_stays_one_json_object_per_line(tmp_path: Path) -> None:
    """Field test defect 10: a 100 KB header made aiohttp print a raw traceback into the JSON log."""
    import json
    import socket
    import subprocess
    import sys
    import time

    from tests.integration.test_prometheus import free_port

    control, metrics = free_port(), free_port()
    config = write_config(tmp_path, ami_port=1, http_port=control, metrics_port=metrics)
    log = open(tmp_path / "engine.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log)

    def status_line(port: int, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            answer = b""
            while b"\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"\r\n", 1)[0]

    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                raw(f"http://127.0.0.1:{metrics}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the engine did not start") from None
                time.sleep(0.2)
        huge = b"X-Big: " + b"a" * 100_000 + b"\r\n"
        for port in (control, metrics):
            line = status_line(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + huge + b"\r\n")
            assert line.split(b" ")[1:2] in ([b"400"], [b"431"]), ("control" if port == control else "metrics", line)
        assert raw(f"http://127.0.0.1:{metrics}/metrics") == 200  # still serving
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    lines = (tmp_path / "engine.log").read_bytes().decode("utf-8").splitlines()
    assert lines
    for entry in lines:
        json.loads(entry)  # every line of the log is one JSON object, tracebacks included
    assert any("LineTooLong" in entry for entry in lines)  # aiohttp's error was logged, as one of them


def test_a_reload_names_the_engine_yaml_sections_that_only_a_restart_applies(offline: RunningEngine) -> None:
    """Review 3: engine.yaml is read at start only; a reload used to drop its changes without
    a word and answer "reloaded"."""
    import yaml

    assert offline.config_dir is not None
    path = offline.config_dir / "engine.yaml"
    engine = yaml.safe_load(path.read_text(encoding="utf-8"))
    engine["ami"]["ping_interval"] = 7
    path.write_text(yaml.safe_dump(engine, allow_unicode=True), encoding="utf-8")
    status, answer = offline.http("POST", "/reload")
    assert (status, answer["ok"], answer["restart_needed"]) == (200, True, ["ami"])
    assert offline.call(lambda: offline.e.settings.engine.ami.ping_interval) == 2  # still the running value
