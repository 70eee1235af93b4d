"""三方通话 and transfers on the real Asterisk 22: a SIPp citizen answered by a SIPp agent, a
SIPp "department" reached through the carrier trunk (a UAS on 127.0.0.2), a second SIPp agent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from acd.calls import CallState
from config.loader import load
from cti import dialplan
from cti.ami_frame import AmiMessage
from cti.conference import Conference, PartyChange
from testbed import sipp
from testbed.audio import check_audio
from testbed.sandbox import Sandbox
from tests.integration.conftest import channels
from tests.integration.harness import RECORDINGS, RunningEngine, password, with_trunk_port, write_config

T = TypeVar("T")
TRUNK_PORT = 5071  # the department's phone: a SIPp UAS on the carrier's address
DEPARTMENT = "02988880000"


@pytest.fixture(scope="module")
def trunk(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = with_trunk_port(write_config(tmp_path_factory.mktemp("conf-dialplan")), TRUNK_PORT)
    sandbox.reinstall(load(folder))
    yield folder
    sandbox.reinstall(load(write_config(tmp_path_factory.mktemp("session-dialplan"))))


class Rig:
    """The engine with a Conference wired beside its dispatcher, as cti/engine.py would."""

    def __init__(self, engine: RunningEngine) -> None:
        self.engine = engine
        self.changes: list[PartyChange] = []
        self.conf = engine.call(lambda: Conference(engine.e.dispatcher, caller_ids={"main": "12345"}))
        self.conf.on_change = self.changes.append
        ami, dispatcher, conf = engine.e.ami, engine.e.dispatcher, self.conf

        def on_event(message: AmiMessage) -> None:
            dispatcher.on_ami_event(message)
            conf.on_ami_event(message)

        def wire() -> None:
            ami.on_event = on_event

        engine.call(wire)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.engine.loop).result(timeout)

    def wait_change(self, kind: str, party: str, timeout: float = 15) -> PartyChange:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in list(self.changes):
                if (c.kind, c.party) == (kind, party):
                    return c
            time.sleep(0.05)
        raise AssertionError(f"no {kind} of {party} within {timeout} s: {self.changes}")

    def talking_call(self, timeout: float = 20) -> str:
        self.engine.wait_for(lambda e: any(c.state is CallState.CONNECTED for c in e.dispatcher.state.calls.values()),
                             timeout, "the agent to answer")
        time.sleep(3)  # some talk before the conference (the recording must keep it)
        (call_id,) = self.engine.call(lambda: list(self.engine.e.dispatcher.state.calls))
        return call_id


@pytest.fixture
def rig(clean: Sandbox, trunk: Path, tmp_path: Path) -> Iterator[Rig]:
    engine = RunningEngine.from_dir(with_trunk_port(write_config(tmp_path / "config"), TRUNK_PORT))
    engine.wait_ready()
    yield Rig(engine)
    engine.close()


def members(box: Sandbox, call_id: str) -> list[str]:
    """The channels in the call's ConfBridge (`confbridge list <name>`)."""
    out = box.rx(f"confbridge list {dialplan.conference_name(call_id)}")
    return sorted(line.split()[0] for line in out.splitlines()
                  if line.startswith(("PJSIP/", "Local/")))


def wait_members(box: Sandbox, call_id: str, n: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    found = members(box, call_id)
    while len(found) != n and time.monotonic() < deadline:
        time.sleep(0.2)
        found = members(box, call_id)
    return found


def all_hung_up(box: Sandbox, timeout: float = 5) -> bool:
    """Once the caller hangs up, the dialplan puts everybody else out of the conference."""
    deadline = time.monotonic() + timeout
    while channels(box) and time.monotonic() < deadline:
        time.sleep(0.1)
    return channels(box) == 0


def recording(call_id: str, timeout: float = 5) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(RECORDINGS.rglob(f"{call_id}.wav"))
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no recording of {call_id}")


def test_a_department_joins_the_agent_leaves_and_the_caller_and_department_talk_on(
        rig: Rig, clean: Sandbox) -> None:
    sipp.register([("agent1001", password("1001"))], contact_port=6301)
    agent = sipp.agent_uas(6301)
    department = sipp.agent_uas(TRUNK_PORT, host=sipp.CARRIER_IP)
    caller = sipp.callers(1, rate=1, names=[("王小明", "13800000001")], talk_ms=16_000)
    try:
        call_id = rig.talking_call()
        started = time.time()
        rig.run(rig.conf.add_party(call_id, DEPARTMENT, who="1001"))
        rig.wait_change("joined", f"number:{DEPARTMENT}")
        three = wait_members(clean, call_id, 3)
        assert len(three) == 3, three
        assert sum(m.startswith("PJSIP/agent1001-") for m in three) == 1
        assert sum(m.startswith("PJSIP/carrier-") for m in three) == 2  # the citizen and the department
        # One recording, appended by the caller's leg: it grows while the three talk.
        path = recording(call_id)
        size = path.stat().st_size
        time.sleep(2)
        grown = path.stat().st_size - size
        assert grown > 2 * 8000 * 2 * 0.8, grown  # 16-bit 8 kHz: about 32 kB in 2 s

        rig.run(rig.conf.leave(call_id, "1001"))
        rig.engine.wait_for(lambda e: e.dispatcher.state.calls[call_id].state is CallState.AFTER_TALK, 5,
                            "the core to see the agent go")
        assert rig.engine.call(lambda: rig.engine.e.dispatcher.state.agents["1001"].call_id) is None
        two = wait_members(clean, call_id, 2)
        assert len(two) == 2 and not any(m.startswith("PJSIP/agent") for m in two), two
        time.sleep(2)
        assert call_id in rig.engine.call(lambda: list(rig.engine.e.dispatcher.state.calls))  # still talking
        assert caller.wait(40) == 0
        assert all_hung_up(clean)  # the department too
        (row,) = rig.engine.records(wait_for=1)
        assert (row.call_id, row.outcome, row.agent_id) == (call_id, "answered", "1001")
        assert row.answered is not None and row.ended is not None
        time.sleep(1)  # MixMonitor writes the WAV header when it closes the file
        audio = check_audio(path)
        # The whole conversation, from the answer to the caller's hang-up: the agent leg's part
        # before the conference was kept, and the caller's leg appended the rest.
        whole = (row.ended - row.answered).total_seconds()
        assert audio.has_audio and audio.seconds >= whole - 1.0, (audio, whole)
        conference_part = row.ended.timestamp() - started
        assert audio.seconds > conference_part + 1.5, (audio, conference_part)  # ~3 s of talk came before
        kinds = [(c.kind, c.party) for c in rig.changes]
        assert ("joined", "caller") in kinds and ("left", "agent:1001") in kinds
    finally:
        caller.stop()
        agent.stop()
        department.stop()


def test_an_attended_transfer_to_a_second_agent(rig: Rig, clean: Sandbox) -> None:
    sipp.register([("agent1001", password("1001"))], contact_port=6302)
    first = sipp.agent_uas(6302)
    caller = sipp.callers(1, rate=1, names=[("李四", "13800000002")], talk_ms=14_000)
    second = None
    try:
        call_id = rig.talking_call()
        sipp.register([("agent1002", password("1002"))], contact_port=6303)
        second = sipp.agent_uas(6303)
        rig.engine.wait_for(lambda e: e.dispatcher.state.agents["1002"].available(), 5, "1002 free")
        rig.run(rig.conf.transfer_attended(call_id, "1002", who="1001"))
        rig.wait_change("joined", "agent:1002")
        three = wait_members(clean, call_id, 3)
        assert len(three) == 3 and any(m.startswith("Local/1002*") for m in three), three
        rig.run(rig.conf.leave(call_id, "1001"))
        two = wait_members(clean, call_id, 2)
        assert len(two) == 2 and not any(m.startswith("PJSIP/agent1001") for m in two), two
        rig.engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].call_id is None, 5, "1001 freed")
        assert caller.wait(40) == 0
        assert all_hung_up(clean)  # the second agent too
        (row,) = rig.engine.records(wait_for=1)
        assert (row.call_id, row.outcome, row.agent_id) == (call_id, "answered", "1001")
        time.sleep(1)
        assert check_audio(recording(call_id)).has_audio
    finally:
        caller.stop()
        first.stop()
        if second is not None:
            second.stop()
