"""Issue 11 with a real softphone: baresip 1.0.0 as the agents' phones on the sandbox Asterisk,
SIPp as the carrier's callers.

These tests run with the shipped sip: defaults (OPTIONS pings every `qualify` seconds,
registrations capped at `max_expiry`), installed into the sandbox for each test and taken back
afterwards: the rest of the suite runs without pings, since SIPp's agents take each OPTIONS for
a new call. The detection times printed here are what an operator gets out of the box.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import load
from config.settings import SipSection
from testbed import sipp
from testbed.baresip import Phone
from testbed.blocking_ami import BlockingAmi
from testbed.configs import SESSION_AMI_SECRET
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, password, write_config
from tests.integration.test_faults import EngineProcess, free_port

SHIPPED = SipSection()
SIP = {"qualify": SHIPPED.qualify, "max_expiry": SHIPPED.max_expiry}
# A dead phone is found within one ping interval plus the reply timeout; the rest is slack
# for a busy machine (a generous wait, not a measurement).
FOUND_WITHIN = SHIPPED.qualify + SHIPPED.qualify_timeout() + 10


def reload_pjsip(box: Sandbox, directory: Path) -> None:
    box.install_conf(load(directory))
    box.rx("module reload res_pjsip.so")  # pjsip.conf only: no dialplan reload, no manager subscriber


@pytest.fixture
def pinged(clean: Sandbox, tmp_path: Path) -> Iterator[Sandbox]:
    """The sandbox with the shipped sip: defaults for this test, the session's afterwards."""
    reload_pjsip(clean, write_config(tmp_path / "pinged", sip=SIP))
    aor = clean.rx("pjsip show aor agent1001")
    assert f"qualify_frequency    : {SHIPPED.qualify}" in aor, aor
    try:
        yield clean
    finally:
        reload_pjsip(clean, write_config(tmp_path / "unpinged"))


def softphone_config(directory: Path, **queue: Any) -> Path:
    return write_config(directory, sip=SIP, queue=queue or None)


@pytest.fixture
def phone_engine(pinged: Sandbox, tmp_path: Path) -> Iterator[RunningEngine]:
    running = RunningEngine.from_dir(softphone_config(tmp_path / "engine", busy_backoff=30))
    try:
        running.wait_ready()
        yield running
    finally:
        running.close()


def until(check: Callable[[], bool], timeout: float, what: str, describe: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}: {describe()}")
        time.sleep(0.05)


def agents(engine: RunningEngine) -> dict[str, dict[str, Any]]:
    status, body = engine.http("GET", "/agents")
    assert status == 200, body
    return {a["id"]: a for a in body}


def wait_state(engine: RunningEngine, agent_id: str, state: str, timeout: float = 10) -> dict[str, Any]:
    until(lambda: agents(engine)[agent_id]["state"] == state, timeout, f"agent {agent_id} {state}",
          lambda: agents(engine)[agent_id])
    return agents(engine)[agent_id]


def phone(agent_id: str, **options: Any) -> Phone:
    p = Phone(agent_id, password(agent_id), **options)
    try:
        p.wait_registered()
    except BaseException:
        p.stop()
        raise
    return p


def longest_idle(engine: RunningEngine, agent_id: str) -> None:
    """Make `agent_id` the one the next caller is offered to (longest_idle)."""
    engine.call(lambda: setattr(engine.e.dispatcher.state.agents[agent_id], "idle_since", 0.0))


# -- the harness itself --------------------------------------------------------------------


def test_a_phone_lives_in_a_private_folder_answers_commands_and_leaves_nothing_behind() -> None:
    p = Phone("1001", password("1001"), register=False)  # no Asterisk needed
    try:
        assert p.folder.stat().st_mode & 0o777 == 0o700
        assert "User Agents (0)" in p.command("reginfo")
        p.kill()
        assert not p.running()
    finally:
        p.stop()
    assert not p.folder.exists()


# -- the agent hangs up first ----------------------------------------------------------------


def test_a_softphone_agent_answers_talks_and_hangs_up_first_and_the_callers_run_succeeds(
        phone_engine: RunningEngine) -> None:
    with phone("1001") as agent:
        wait_state(phone_engine, "1001", "available")
        caller = sipp.callers(1, rate=1, names=[("坐席先挂", "13900001101")], talk_ms=60_000)
        agent.wait_event("CALL_ESTABLISHED", 30)
        agent.wait_event("CALL_RTPESTAB", 10)  # the caller's voice reaches the phone
        time.sleep(2)  # they talk
        agent.hangup()
        agent.wait_event("CALL_CLOSED", 10)
        stats = caller.check(30)  # long before its 60 s of talk: it took the hotline's BYE
    assert (stats.successful, stats.failed) == (1, 0)
    (row,) = phone_engine.records(wait_for=1)
    assert (row.outcome, row.agent_id, row.caller_num) == ("answered", "1001", "13900001101")
    assert row.talk_seconds is not None and row.talk_seconds > 1.5


# -- the agent rejects ----------------------------------------------------------------------


def test_a_softphone_agent_who_rejects_a_call_is_backed_off_and_the_caller_goes_to_the_other_agent(
        phone_engine: RunningEngine) -> None:
    with phone("1001", answermode="manual") as rejecting, phone("1002") as other:
        wait_state(phone_engine, "1001", "available")
        wait_state(phone_engine, "1002", "available")
        longest_idle(phone_engine, "1001")
        caller = sipp.callers(1, rate=1, names=[("拒接", "13900001102")], talk_ms=4000)
        rejecting.wait_event("CALL_INCOMING", 20)
        rejecting.hangup()  # 486 Busy Here
        other.wait_event("CALL_ESTABLISHED", 20)
        shown = agents(phone_engine)["1001"]
        assert shown["state"] == "backed_off", shown
        assert shown["backoff_left"] > 0, shown
        assert caller.check(30).successful == 1
    (row,) = phone_engine.records(wait_for=1)
    assert (row.outcome, row.agent_id) == ("answered", "1002")


# -- a phone dies while idle ------------------------------------------------------------------


class AmiWatch:
    """ContactStatus and DeviceStateChange as the engine's AMI user receives them (its read
    classes and event filters), with the time each arrived."""

    def __init__(self) -> None:
        self.ami = BlockingAmi("127.0.0.1", 5038, "hotline", SESSION_AMI_SECRET)
        self.seen: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="ami-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self.ami.read(0.2)
            except OSError:
                return
            if messages is None:
                return
            for m in messages:
                if m.get("Event") in ("ContactStatus", "DeviceStateChange"):
                    with self._lock:
                        self.seen.append((time.monotonic(), {str(k): str(v) for k, v in dict(m).items()}))

    def first(self, since: float, **headers: str) -> tuple[float, dict[str, str]] | None:
        with self._lock:
            for at, m in self.seen:
                if at >= since and all(m.get(k) == v for k, v in headers.items()):
                    return at, m
        return None

    def wait(self, since: float, timeout: float, **headers: str) -> tuple[float, dict[str, str]]:
        until(lambda: self.first(since, **headers) is not None, timeout, f"AMI {headers}", lambda: self.seen[-6:])
        found = self.first(since, **headers)
        assert found is not None
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.ami.close()


@pytest.fixture
def ami_watch(pinged: Sandbox) -> Iterator[AmiWatch]:
    watch = AmiWatch()
    try:
        yield watch
    finally:
        watch.close()


def test_asterisk_reports_a_killed_phone_unreachable_and_its_return_reachable_to_the_engines_ami_user(
        ami_watch: AmiWatch) -> None:
    aor = {"AOR": "agent1001", "EndpointName": "agent1001"}
    device = {"Event": "DeviceStateChange", "Device": "PJSIP/agent1001"}
    start = time.monotonic()
    first = phone("1001")
    try:
        ami_watch.wait(start, FOUND_WITHIN, Event="ContactStatus", ContactStatus="Reachable", **aor)
        ami_watch.wait(start, 10, State="NOT_INUSE", **device)
        killed = time.monotonic()
        first.kill()
        unreachable_at, unreachable = ami_watch.wait(killed, FOUND_WITHIN, Event="ContactStatus",
                                                     ContactStatus="Unreachable", **aor)
        unavailable_at, _ = ami_watch.wait(killed, 10, State="UNAVAILABLE", **device)
    finally:
        first.stop()
    back = time.monotonic()
    with phone("1001"):
        reachable_at, _ = ami_watch.wait(back, FOUND_WITHIN, Event="ContactStatus", ContactStatus="Reachable", **aor)
        ami_watch.wait(back, 10, State="NOT_INUSE", **device)
    print(f"\n[softphone] qualify {SHIPPED.qualify} s: ContactStatus Unreachable {unreachable_at - killed:.1f} s "
          f"after SIGKILL, DeviceStateChange UNAVAILABLE {unavailable_at - killed:.1f} s; Reachable "
          f"{reachable_at - back:.1f} s after the new phone started")
    for at, m in ami_watch.seen:
        print(f"[softphone] +{at - start:6.2f} s {json.dumps(m, ensure_ascii=False)}")
    assert unreachable["URI"].startswith("sip:agent1001")


def test_a_softphone_that_dies_while_idle_is_unreachable_after_the_ping_interval_and_back_when_it_registers_again(
        phone_engine: RunningEngine) -> None:
    with phone("1001") as dying, phone("1002") as other:
        wait_state(phone_engine, "1001", "available")
        wait_state(phone_engine, "1002", "available")
        longest_idle(phone_engine, "1001")  # the dead phone would be offered the next caller first
        killed = time.monotonic()
        dying.kill()
        shown = wait_state(phone_engine, "1001", "unreachable", FOUND_WITHIN)
        found = time.monotonic() - killed
        print(f"\n[softphone] qualify {SHIPPED.qualify} s: the engine showed agent 1001 unreachable "
              f"{found:.1f} s after its phone was killed (SIGKILL)")
        assert shown["reason"], shown
        mark = other.mark()
        assert sipp.callers(2, rate=1, names=[("死机", "13900001103")], talk_ms=1000).check(40).successful == 2
        other.wait_event("CALL_ESTABLISHED", 5, after=mark)
        rows = phone_engine.records(wait_for=2)
        assert [r.agent_id for r in rows] == ["1002", "1002"]
        with phone("1001"):
            wait_state(phone_engine, "1001", "available", FOUND_WITHIN)


# -- the engine restarts with agents paused and logged out ------------------------------------


def agents_over_http(port: int, token: str) -> dict[str, dict[str, Any]]:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/agents", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return {a["id"]: a for a in json.load(resp)}


def agent_states(log: Path, agent_id: str, since: int) -> list[str]:
    """The states the engine logged for `agent_id` (agent_state lines) after byte `since`."""
    with log.open("rb") as fh:
        fh.seek(since)
        lines = fh.read().decode(errors="replace").splitlines()
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "agent_state" and entry.get("agent_id") == agent_id:
            out.append(str(entry.get("new")))
    return out


def test_agents_paused_and_logged_out_from_softphones_keep_their_states_across_an_engine_kill(
        pinged: Sandbox, tmp_path: Path) -> None:
    directory = softphone_config(tmp_path / "engine")
    engine_yaml = yaml.safe_load((directory / "engine.yaml").read_text(encoding="utf-8"))
    http_port, metrics_port = free_port(), free_port()
    engine_yaml["http"]["port"], engine_yaml["metrics"]["port"] = http_port, metrics_port
    (directory / "engine.yaml").write_text(yaml.safe_dump(engine_yaml), encoding="utf-8")
    log = tmp_path / "engine.log"
    engine = EngineProcess(directory, log)
    engine.start()
    try:
        engine.healthy(metrics_port)
        token = (directory / "control.token").read_text(encoding="utf-8").strip()

        def shown(agent_id: str) -> dict[str, Any]:
            return agents_over_http(http_port, token)[agent_id]

        def wait(agent_id: str, state: str, reason: str | None = None) -> None:
            until(lambda: (shown(agent_id)["state"], shown(agent_id)["reason"]) == (state, reason), 10,
                  f"agent {agent_id} {state} {reason}", lambda: shown(agent_id))

        with phone("1001") as pausing, phone("1002") as leaving:
            wait("1001", "available")
            wait("1002", "available")
            pausing.dial("*2305")
            pausing.wait_event("CALL_CLOSED", 15)
            wait("1001", "paused", "05")
            leaving.dial("*22")
            leaving.wait_event("CALL_CLOSED", 15)
            wait("1002", "logged_out")
            before = {a: (shown(a)["state"], shown(a)["reason"]) for a in ("1001", "1002")}

            engine.kill()
            engine.start()
            engine.healthy(metrics_port)
            after = {a: (shown(a)["state"], shown(a)["reason"]) for a in ("1001", "1002")}
            assert after == before == {"1001": ("paused", "05"), "1002": ("logged_out", None)}

            since = log.stat().st_size
            mark = pausing.mark()
            pausing.dial("*24")
            pausing.wait_event("CALL_CLOSED", 15, after=mark)
            wait("1001", "available")
            states = agent_states(log, "1001", since)
            assert "busy_other" not in states, states
            assert states[-1:] == ["available"], states
    finally:
        engine.stop()
