"""The IVR on the real Asterisk: the default flows of ivr.yaml over the engine's FastAGI
server, with SIPp citizens pressing RFC 2833 keys (play_dtmf) and SIPp agents.

The module installs a dialplan with the IVR on 12345 (one `core reload`), and puts the
session's back when it is done. Timings come from the shipped prompts' lengths, so a
re-recorded prompt does not break the tests.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load
from testbed import sipp
from testbed.configs import free_tcp_port, write_config
from testbed.ivr_caller import ivr_caller
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, password

SOUNDS = Path(__file__).resolve().parents[2] / "asterisk-conf" / "sounds" / "zh"
IVR_ON = {"numbers": {"12345": "intake"}, "survey": {"enabled": True}, "announce_agent": True}


def seconds(name: str) -> float:
    with wave.open(str(SOUNDS / f"{name}.wav"), "rb") as w:
        return w.getnframes() / w.getframerate()


def ms(value: float) -> int:
    return int(value * 1000)


# When the intake menu is playing (keys interrupt it) and when the flow has moved on.
MENU_AT = seconds("welcome") + 1.5
QUEUE_BY = seconds("welcome") + seconds("intake-menu") + 3 + 2


def agent(agent_id: str) -> tuple[str, str]:
    return (f"agent{agent_id}", password(agent_id))


@pytest.fixture(scope="module")
def agi_port(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_tcp_port()
    sandbox.reinstall(load(write_config(tmp_path_factory.mktemp("ivr-dialplan"), agi_port=port, ivr=IVR_ON)))
    yield port
    sandbox.reinstall(load(write_config(tmp_path_factory.mktemp("session-dialplan"))))


@pytest.fixture
def ivr_engine(clean: Sandbox, agi_port: int, tmp_path: Path) -> Iterator[RunningEngine]:
    running = RunningEngine.from_dir(write_config(tmp_path / "config", agi_port=agi_port, ivr=IVR_ON))
    running.wait_ready()
    yield running
    running.close()


def one_agent(engine: RunningEngine, agent_id: str, port: int, **uas: object) -> sipp.SippRun:
    run = sipp.agent_uas(port, **uas)  # type: ignore[arg-type]
    sipp.register([agent(agent_id)], contact_port=port)
    engine.wait_for(lambda e: e.dispatcher.state.agents[agent_id].available(), 10, f"agent {agent_id}")
    return run


def test_no_key_goes_to_the_queue_and_the_survey_rating_lands_on_the_record(ivr_engine: RunningEngine) -> None:
    announce = seconds("agent-prefix") + 4 * 0.4 + seconds("agent-suffix")
    uas = one_agent(ivr_engine, "1001", 6201, scenario="agent_hangup.xml", talk_ms=ms(announce + 2.5))
    survey_at = QUEUE_BY + announce + 2.5 + 2.0
    caller = ivr_caller([("pause", ms(survey_at)), ("keys", "2")], stay_ms=20_000)
    caller.check(survey_at + 40)
    (row,) = ivr_engine.records(wait_for=1)
    assert (row.outcome, row.agent_id) == ("answered", "1001")
    assert (row.surveyed, row.rating) == (True, 2)
    assert 1.5 < row.talk_seconds < 2.0 + announce + 2  # the talk, not the survey after it
    assert row.wait_seconds < 1.5  # the agent picked up at once: the job number is not waiting
    uas.stop()

