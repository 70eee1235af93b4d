"""What a waiting citizen hears, on the real Asterisk: the queue's hold music over early media
(183 with SDP: the call is never answered before an agent answers), the position announcement
the engine asks for (HOTLINE_ANNOUNCE, set here by AMI Setvar as the engine does), cut off at
once when an agent frees up, and music instead of silence while an agent holds the caller.

The session's queue `main` has the shipped default, `music: default` (Debian's
asterisk-moh-opsound-wav in the sandbox). What the caller hears is captured off the loopback
(testbed/rtp_listen.py); a prompt is recognised by its own A-law bytes, which Asterisk sends
unchanged to an A-law caller.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from ivr import announce
from testbed import sipp
from testbed.blocking_ami import BlockingAmi
from testbed.ivr_caller import ivr_caller
from testbed.rtp_listen import RtpListener
from tests.integration.harness import RunningEngine, password

SOUNDS = Path(__file__).resolve().parents[2] / "asterisk-conf" / "sounds" / "zh"
FRAME = 160  # 20 ms of A-law
MUSIC_RMS = 300  # the packaged music, in any 2.5 s (its quietest second is near 0: a track's end)
SILENCE_RMS = 100


def agent(agent_id: str) -> tuple[str, str]:
    return (f"agent{agent_id}", password(agent_id))


def one_agent(engine: RunningEngine, agent_id: str, port: int) -> sipp.SippRun:
    run = sipp.agent_uas(port)
    sipp.register([agent(agent_id)], contact_port=port)
    engine.wait_for(lambda e: e.dispatcher.state.agents[agent_id].available(), 10, f"agent {agent_id}")
    return run


def waiting_channel(engine: RunningEngine) -> str:
    engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "the caller in line")
    return engine.call(lambda: next(iter(engine.e.dispatcher.state.calls.values())).channel)


@dataclass
class AmiWatch:
    """A second AMI session (the engine's user and filters): setting a channel variable as the
    engine does, and the time each DialBegin arrived."""

    engine: RunningEngine
    dials: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        a = self.engine.settings.engine.ami
        self.ami = BlockingAmi(a.host, a.port, a.username, a.secret)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name="ami-watch")
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                messages = self.ami.read(0.05)
            if messages is None:
                return
            self.dials += [time.time() for m in messages if m.get("Event") == "DialBegin"]
            time.sleep(0.005)

    def setvar(self, channel: str, name: str, value: str) -> None:
        with self._lock:
            self.ami.sock.sendall(f"Action: Setvar\r\nChannel: {channel}\r\nVariable: {name}\r\n"
                                  f"Value: {value}\r\n\r\n".encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.ami.close()


@pytest.fixture
def watch(engine: RunningEngine) -> Iterator[AmiWatch]:
    w = AmiWatch(engine)
    yield w
    w.close()


def sip_lines(run: sipp.SippRun) -> list[tuple[float, str]]:
    """(time, first line) of each SIP message the caller received, from SIPp's -trace_msg log
    (read while the call lasts: a successful run's folder is removed when it ends)."""
    text = (run.workdir / "messages.log").read_text(encoding="utf-8", errors="replace")
    out = []
    # Each message: "----- 2026-11-27T05:05:04.573262Z", "UDP message received [290] bytes:", "", the message.
    for block in re.split(r"^-{10,} ", text, flags=re.MULTILINE)[1:]:
        stamp, _, rest = block.partition("\n")
        if not rest.startswith("UDP message received"):
            continue
        first = next((ln.strip() for ln in rest.splitlines()[1:] if ln.strip()), "")
        out.append((datetime.fromisoformat(stamp.strip()).timestamp(), first))
    return out


def prompt_frames(names: frozenset[str]) -> dict[bytes, tuple[str, int]]:
    """Every 20 ms frame with sound of these zh prompts -> (name, index)."""
    out: dict[bytes, tuple[str, int]] = {}
    for name in sorted(names):
        data = (SOUNDS / f"{name}.alaw").read_bytes()
        for i in range(0, len(data) - FRAME + 1, FRAME):
            frame = data[i:i + FRAME]
            if len(set(frame)) > 16:  # not one of the silences all prompts share
                out.setdefault(frame, (name, i // FRAME))
    return out


def heard_prompts(heard: RtpListener, names: frozenset[str]) -> list[tuple[float, str, int]]:
    frames = prompt_frames(names)
    return [(at, *frames[payload]) for at, payload, _ in list(heard.packets) if payload in frames]


def seconds(name: str) -> float:
    return (SOUNDS / f"{name}.alaw").stat().st_size / 8000


def test_a_waiting_caller_hears_music_over_early_media_and_is_answered_only_by_the_agent(
        engine: RunningEngine) -> None:
    media = sipp.media_port(sipp.CARRIER_IP)
    with RtpListener(sipp.CARRIER_IP, media) as heard:
        start = time.time()
        caller = ivr_caller([("pause", 3000)], stay_ms=500, media=media, trace_msg=True)
        waiting_channel(engine)
        time.sleep(4.5)
        waiting = heard.rms(start + 1.5, start + 4.5)
        early = list(heard.packets)
        uas = one_agent(engine, "1001", 6301)
        engine.wait_for(lambda e: not e.dispatcher.state.calls or all(
            c.answered is not None for c in e.dispatcher.state.calls.values()), 10, "the answer")
        time.sleep(0.5)
        lines = sip_lines(caller)
        caller.check(30)
    uas.stop()
    assert waiting > MUSIC_RMS, f"the waiting caller heard RMS {waiting:.0f}: no music"
    statuses = [line for _, line in lines if line.startswith("SIP/2.0 ")]
    assert "SIP/2.0 183 Session Progress" in statuses
    assert "SIP/2.0 180 Ringing" not in statuses  # the music, not the phone's own ringback
    answer = next(at for at, line in lines if line.startswith("SIP/2.0 200"))
    # All the waiting was early media: the music came long before the only 200 OK, which the
    # agent's answer brought (the caller does not pay for the wait).
    assert early and early[0][0] < start + 1.5 < answer
    assert answer > start + 4.5
    (row,) = engine.records(wait_for=1)
    assert row.outcome == "answered" and row.agent_id == "1001"
    assert row.answered is not None and abs(row.answered.timestamp() - answer) < 1.0
    assert row.wait_seconds > 4  # counted from the queue join, as ever


def test_the_announcement_is_heard_without_an_answer_and_a_free_agent_cuts_it_off_at_once(
        engine: RunningEngine, watch: AmiWatch) -> None:
    names = announce.prompt_names(3, 5)  # 您前面还有三位来电者。预计等待约五分钟。感谢您的耐心等待...
    length = sum(seconds(n) for n in names)
    media = sipp.media_port(sipp.CARRIER_IP)
    with RtpListener(sipp.CARRIER_IP, media) as heard:
        caller = ivr_caller([("pause", 2000)], stay_ms=500, media=media, trace_msg=True)
        channel = waiting_channel(engine)
        time.sleep(2)
        watch.setvar(channel, "HOTLINE_ANNOUNCE", announce.value(3, 5))
        deadline = time.time() + 3
        while time.time() < deadline and {n for _, n, _ in heard_prompts(heard, frozenset(names))} < {
                "queue-ahead", "d-3", "queue-callers"}:
            time.sleep(0.05)
        # The caller's place is said (the first three parts) and the wait is being said: now an
        # agent frees up, and the engine rings them with a Redirect in the middle of the prompt.
        uas = one_agent(engine, "1001", 6302)
        engine.wait_for(lambda e: bool(watch.dials), 10, "the agent's ring")
        time.sleep(1.5)
        lines = sip_lines(caller)
        caller.check(30)
    uas.stop()
    prompt = heard_prompts(heard, frozenset(names))
    assert prompt, "the caller heard none of the announcement"
    started = prompt[0][0]
    said = list(dict.fromkeys(n for _, n, _ in prompt))
    assert said[:3] == ["queue-ahead", "d-3", "queue-callers"]  # in order, in Mandarin
    # Cut off: the ring began with seconds of the prompt still to come, and not one frame of it
    # came later than the next frame after the Dial began.
    (dial,) = watch.dials
    assert started + length - dial > 2.0
    assert prompt[-1][0] < dial + 0.05
    assert "queue-thanks" not in said
    answer = next(at for at, line in lines if line.startswith("SIP/2.0 200"))
    assert answer > dial > started  # the prompt was early media too
    assert "SIP/2.0 183 Session Progress" in [line for _, line in lines]


def test_an_agents_hold_gives_the_caller_music_instead_of_silence(engine: RunningEngine) -> None:
    port = 6303
    # testbed/sipp_scenarios/agent_hold.xml: answers, and 1.5 s later puts the caller on hold
    # (a re-INVITE with a=sendonly, as phones do).
    uas = sipp.agent_uas(port, scenario="agent_hold.xml")
    sipp.register([agent("1001")], contact_port=port)
    engine.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "agent 1001")
    media = sipp.media_port(sipp.CARRIER_IP)
    with RtpListener(sipp.CARRIER_IP, media) as heard:
        caller = ivr_caller([("pause", 7000)], stay_ms=500, media=media)
        caller.check(30)
    uas.stop()
    (row,) = engine.records(wait_for=1)
    assert row.outcome == "answered" and row.answered is not None
    answered = row.answered.timestamp()
    # The caller says nothing and the agent only echoes: silence until the hold (1.5 s after the
    # answer), then the queue's music while the agent holds.
    assert heard.rms(answered + 0.3, answered + 1.2) < SILENCE_RMS
    held = heard.rms(answered + 2.5, answered + 6.5)
    assert held > MUSIC_RMS, f"the held caller heard RMS {held:.0f}: silence, no music on hold"
