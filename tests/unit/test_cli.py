"""The `hotline` command: complete help, and bad configuration stops `run` at once."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from config.control_token import load_or_create_token
from cti.cli import main
from cti.logs import mask_number


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cti.cli", *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("command", ["run", "reload", "config", "sandbox", "asterisk-conf", "quarantine", "demo",
                                     "user", "dept", "ticket", "export", "import"])
def test_every_command_has_its_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A removed sub-command would make argparse exit 2 here, whatever the top-level epilog says.
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"usage: hotline {command}" in capsys.readouterr().out


def test_quarantined_records_are_listed_and_put_back_in_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from acd.commands import CallRecord
    from acd.model import Outcome
    from tickets.spool import quarantine, spool_record

    spool = tmp_path / "spool"
    spool.mkdir()
    config = config_folder(tmp_path / "cfg", f"ami: {{secret: own-ami-secret}}\nstore: {{spool: {spool}}}\n"
                                             f"http: {{token_file: {tmp_path / 'no.token'}}}\n")
    rec = CallRecord("1795.7", "main", "1" * 70, "", 0, None, 1, None, Outcome.ABANDONED, 1, 0, None)
    quarantine(spool, spool_record(spool, rec), rec.call_id, "value too long for type character varying(64)", 1,
               "fix the cause, then: hotline quarantine retry 1795.7")
    assert main(["quarantine", "list", "--config", str(config)]) == 0
    assert "1795.7" in capsys.readouterr().out
    assert main(["quarantine", "retry", "1795.7", "--config", str(config)]) == 0  # no engine: moved back
    assert "next start" in capsys.readouterr().out
    assert main(["quarantine", "retry", "1795.7", "--config", str(config)]) == 1  # nothing left to retry
    assert (spool / "1795.7.json").exists()


def test_quarantine_retry_leaves_the_file_alone_when_something_listens_but_does_not_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Only a refused connection proves no engine runs here; an engine that hangs or drops the
    # request may still be running, and moving the file under it could write the record twice.
    from acd.commands import CallRecord
    from acd.model import Outcome
    from tickets.spool import quarantine, spool_record

    spool = tmp_path / "spool"
    spool.mkdir()
    rude = socket.create_server(("127.0.0.1", 0))
    port = rude.getsockname()[1]

    def drop_every_request() -> None:
        while True:
            try:
                conn, _ = rude.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=drop_every_request, daemon=True).start()
    config = config_folder(tmp_path / "cfg", f"ami: {{secret: own-ami-secret}}\nstore: {{spool: {spool}}}\n"
                                             f"http: {{port: {port}, token_file: {tmp_path / 'no.token'}}}\n")
    rec = CallRecord("1795.8", "main", "12345", "", 0, None, 1, None, Outcome.ABANDONED, 1, 0, None)
    quarantine(spool, spool_record(spool, rec), rec.call_id, "refused", 1, "fix it")
    try:
        assert main(["quarantine", "retry", "1795.8", "--config", str(config)]) == 1
    finally:
        rude.close()
    assert "stays in quarantine" in capsys.readouterr().err
    assert not (spool / "1795.8.json").exists()
    assert (spool / "quarantine" / "1795.8.json").exists()


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
    for secret in ("agents.yaml", "engine.yaml"):  # as an operator keeps them (a warning otherwise)
        (folder / secret).chmod(0o640)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- --config means what it says ----------------------------------------------------------

@pytest.mark.parametrize("command", [["run"], ["config", "check"], ["reload"],
                                     ["asterisk-conf", "render", "--out", "OUT"]])
def test_a_config_folder_that_does_not_exist_stops_every_command_naming_it(tmp_path: Path,
                                                                           command: list[str]) -> None:
    missing = tmp_path / "nonexistent-dir"
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    proc = hotline(*argv, "--config", str(missing))
    assert proc.returncode == 2
    assert f"  {missing}: no such folder;" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_config_check_says_which_files_came_from_the_embedded_defaults(tmp_path: Path) -> None:
    folder = config_folder(tmp_path)
    (folder / "engine.yaml").unlink()
    proc = hotline("config", "check", "--config", str(folder))
    assert proc.returncode == 0
    assert f"  not in {folder}, taken from the embedded defaults: engine.yaml, calendar.yaml" in proc.stdout


def test_config_check_lists_warnings_and_still_exits_0(tmp_path: Path) -> None:
    folder = config_folder(tmp_path, engine="sip: {bind: 127.0.0.1}\n")
    proc = hotline("config", "check", "--config", str(folder))
    assert proc.returncode == 0
    assert f"  warning: {folder / 'engine.yaml'}:1: ami.secret is the published default" in proc.stdout


def test_the_help_states_the_exit_status_config_check_really_uses(tmp_path: Path) -> None:
    promised = re.findall(r"exit (\d) if any", hotline("--help").stdout)
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: main\n    wrapup: lots\n", encoding="utf-8")
    (tmp_path / "agents.yaml").write_text(AGENTS, encoding="utf-8")
    assert promised == [str(hotline("config", "check", "--config", str(tmp_path)).returncode)] == ["2"]


@pytest.mark.parametrize("command", [["run"], ["reload"], ["config", "check"], ["asterisk-conf", "render"]])
def test_config_help_states_what_a_config_folder_needs(command: list[str]) -> None:
    text = " ".join(hotline(*command, "--help").stdout.split())
    assert "it must exist and hold agents.yaml and queues.yaml" in text
    assert "engine.yaml and calendar.yaml may be left out" in text


# --- hotline run ----------------------------------------------------------------------------

@pytest.fixture
def quiet_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cmd_run in-process, without touching the process's logging; restores the umask."""
    from cti import logs

    monkeypatch.setattr(logs, "setup", lambda *a, **k: None)
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


def test_run_creates_nothing_world_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            quiet_run: None) -> None:
    from cti import engine

    async def fake_run(settings: object, config_dir: object) -> int:
        (tmp_path / "made-by-the-engine").write_text("caller numbers", encoding="utf-8")
        return 0

    monkeypatch.setattr(engine, "run", fake_run)
    os.umask(0o022)
    assert main(["run", "--config", str(config_folder(tmp_path / "cfg"))]) == 0
    assert stat.S_IMODE((tmp_path / "made-by-the-engine").stat().st_mode) == 0o640


def test_run_prints_its_warnings_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], quiet_run: None) -> None:
    from cti import engine

    async def fake_run(settings: object, config_dir: object) -> int:
        print("engine started", file=sys.stderr)
        return 0

    monkeypatch.setattr(engine, "run", fake_run)
    folder = config_folder(tmp_path, engine="log: {level: info}\n")
    assert main(["run", "--config", str(folder)]) == 0
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith(f"hotline run: warning: {folder / 'engine.yaml'}:1: ami.secret is the published default")
    assert second == "engine started"


def test_run_with_a_listener_port_taken_prints_one_line_and_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        quiet_run: None) -> None:
    from cti import engine

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        async def fake_run(settings: object, config_dir: object) -> int:  # binds as aiohttp's site.start does
            await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", port)
            return 0

        monkeypatch.setattr(engine, "run", fake_run)
        assert main(["run", "--config", str(config_folder(tmp_path))]) == 2
    assert capsys.readouterr().err == (
        f"hotline run: cannot listen on 127.0.0.1:{port}: address already in use; is another hotline running? "
        "change metrics.port / http.port in engine.yaml\n")


def test_the_engine_with_its_port_taken_stops_with_one_line_and_no_world_readable_database(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        folder = config_folder(tmp_path / "cfg", engine=(
            f"ami: {{port: {free_port()}, secret: own-ami-secret}}\n"  # nothing answers there: no Asterisk
            f"http: {{port: {port}, token_file: {tmp_path / 'control.token'}}}\n"
            f"metrics: {{port: {free_port()}}}\n"
            f"store: {{url: 'sqlite:///{tmp_path / 'hotline.db'}', spool: {tmp_path / 'spool'}}}\n"
            f"recordings: {{dir: {tmp_path / 'rec'}}}\n"))
        proc = subprocess.run([sys.executable, "-m", "cti.cli", "run", "--config", str(folder)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    *logged, last = proc.stderr.splitlines()
    assert last == (f"hotline run: cannot listen on 127.0.0.1:{port}: address already in use; "
                    "is another hotline running? change metrics.port / http.port in engine.yaml")
    assert all(json.loads(line) for line in logged)
    assert stat.S_IMODE((tmp_path / "hotline.db").stat().st_mode) & 0o007 == 0


# --- asterisk-conf render -------------------------------------------------------------------

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


# --- hotline reload -------------------------------------------------------------------------

class Engine(http.server.BaseHTTPRequestHandler):
    """A stand-in for the engine's control API: POST /reload needs the bearer token."""

    token = ""
    answer: tuple[int, dict[str, object]] | None = None  # forced answer once the token is right
    seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        Engine.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            status, body = 401, {"error": "missing or wrong bearer token"}
        else:
            status, body = self.answer or (200, {"ok": True, "errors": []})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine_stub(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A config folder pointing at a running stub, and the token file the 'engine' created."""
    token_file = tmp_path / "lib" / "control.token"
    Engine.token, Engine.answer, Engine.seen = load_or_create_token(token_file), None, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    folder = config_folder(tmp_path / "cfg", engine=(
        f"ami: {{secret: own-ami-secret}}\nhttp: {{port: {server.server_address[1]}, token_file: {token_file}}}\n"))
    yield folder, token_file
    server.shutdown()
    server.server_close()


def test_reload_sends_the_control_token_as_a_bearer_header(engine_stub: tuple[Path, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = engine_stub
    assert main(["reload", "--config", str(folder)]) == 0
    assert Engine.seen == [f"Bearer {Engine.token}"]
    assert capsys.readouterr().out == "reloaded: the new configuration applies to the next decision\n"


def test_reload_with_a_token_the_engine_does_not_accept_says_so_in_one_line(
        engine_stub: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = engine_stub
    other = tmp_path / "other.token"
    load_or_create_token(other)
    assert main(["reload", "--config", str(folder), "--token-file", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"did not accept the token in {other} (missing or wrong bearer token)" in err


def test_reload_forbidden_by_the_engine_says_so_in_one_line(engine_stub: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = engine_stub
    Engine.answer = (403, {"error": "cross-origin writes are refused"})
    assert main(["reload", "--config", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "refused the request (403 Forbidden) (cross-origin writes are refused)" in err


def test_reload_without_the_token_file_says_why_and_sends_nothing(engine_stub: tuple[Path, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder, token_file = engine_stub
    token_file.unlink()
    assert main(["reload", "--config", str(folder)]) == 1
    assert capsys.readouterr().err == (f"hotline reload: no control token at {token_file}; is the engine running "
                                       "on this host, and are you root?\n")
    assert Engine.seen == []


def test_reload_refused_by_the_engine_lists_its_errors(engine_stub: tuple[Path, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = engine_stub
    Engine.answer = (422, {"ok": False, "errors": ["queues.yaml:3: queues.0.wrapup: bad"]})
    assert main(["reload", "--config", str(folder)]) == 1
    assert "  queues.yaml:3: queues.0.wrapup: bad" in capsys.readouterr().err


def test_run_exits_1_when_a_part_of_the_engine_dies_so_that_its_supervisor_restarts_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_run: None) -> None:
    # README: "a part of the engine (dispatcher, store writer, AMI link) dies | the engine stops
    # with exit 1 ... so that its supervisor restarts it". serve() returns 1; `hotline run`
    # must pass it on (systemd's Restart=on-failure does nothing on exit 0).
    from cti import engine

    async def part_died(settings: object, config_dir: object) -> int:
        return 1

    monkeypatch.setattr(engine, "run", part_died)
    assert main(["run", "--config", str(config_folder(tmp_path / "cfg"))]) == 1
    assert "Exits 1 when a part of the engine" in " ".join(hotline("run", "--help").stdout.split())


def test_config_check_with_a_non_scalar_key_exits_2_with_one_message_and_no_traceback(tmp_path: Path) -> None:
    from tests.unit.test_cli import hotline

    folder = config_folder(tmp_path / "cfg")
    (folder / "engine.yaml").write_text("ami: {secret: own-ami-secret}\n? [x]\n: 1\n", encoding="utf-8")
    proc = hotline("config", "check", "--config", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr


def test_render_into_a_path_that_is_a_file_says_so_in_one_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Review 3: `--out` naming an existing file printed a raw traceback."""
    taken = tmp_path / "not-a-folder"
    taken.write_text("x", encoding="utf-8")
    assert main(["asterisk-conf", "render", "--out", str(taken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hotline asterisk-conf render: cannot write") and str(taken) in err
    assert "Traceback" not in err and err.count("\n") == 1
