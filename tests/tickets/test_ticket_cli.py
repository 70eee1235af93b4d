"""`hotline ticket ...` for scripts: sign in to a running ticket API, register from a JSON body
on stdin, step the lifecycle, read the history; refusals exit 1 with the API's words.
`hotline ticket serve` runs the platform as its own process and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import Engine

from cti.cli import main
from testbed.configs import write_config
from tests.tickets.helpers import FORM, PASSWORD, seed, service
from tests.unit.test_cli import free_port
from tickets.api import ApiSettings, TicketApi
from tickets.lifecycle import Action
from tickets.ticket_cli import ACTIONS


@pytest.fixture
def api_url(db: Engine) -> Iterator[str]:
    seed(db)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(TicketApi(db, service(db), ApiSettings()).app())
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(site.start(), loop).result()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def hotline(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(args))


def test_the_cli_knows_every_action_a_person_may_take() -> None:
    assert set(ACTIONS) == {a.value for a in Action} - {"open_draft"}


def test_a_script_signs_in_registers_dispatches_and_reads_the_history(
        api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "agent.token"
    assert hotline(monkeypatch, "ticket", "login", "agent1", "--url", api_url, "--token-file", str(token),
                   "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    capsys.readouterr()
    common = ["--url", api_url, "--token-file", str(token)]
    assert hotline(monkeypatch, "ticket", "create", *common, "--body", "-", stdin=json.dumps(FORM)) == 0
    number = json.loads(capsys.readouterr().out)["number"]
    assert hotline(monkeypatch, "ticket", "act", number, "dispatch", *common, "--body", "-",
                   stdin='{"department": "housing"}') == 0
    capsys.readouterr()
    assert hotline(monkeypatch, "ticket", "act", number, "archive", *common) == 1
    err = capsys.readouterr().err
    assert "403" in err  # an agent may not archive
    assert hotline(monkeypatch, "ticket", "act", number, "register", *common) == 1
    assert "409" in capsys.readouterr().err
    assert hotline(monkeypatch, "ticket", "history", number, *common) == 0
    assert [e["action"] for e in json.loads(capsys.readouterr().out)] == ["register", "dispatch"]


def test_without_a_token_the_cli_says_how_to_sign_in(api_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("HOTLINE_TICKET_TOKEN", raising=False)
    assert hotline(monkeypatch, "ticket", "overdue", "--url", api_url) == 2
    assert "hotline ticket login" in capsys.readouterr().err


def test_a_bad_body_is_refused_before_sending(api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOTLINE_TICKET_TOKEN", "x")
    assert hotline(monkeypatch, "ticket", "create", "--url", api_url, "--body", "-", stdin="[1]") == 2
    assert "JSON object" in capsys.readouterr().err


def test_ticket_serve_runs_the_platform_alone_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path / "cfg", db_url=f"sqlite:///{tmp_path / 'hotline.db'}", account=False,
                       tickets={"http": {"port": port}})
    proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "ticket", "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=1) as r:
                    assert json.load(r)["info"]["title"].startswith("hotline")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
