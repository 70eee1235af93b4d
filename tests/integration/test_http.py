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
