"""Position announcements driven by the engine, on the real Asterisk: two citizens wait half a minute
in a queue that announces (`announce: {first: 5, every: 20}`) with nobody to take them. Each
hears the queue's music and, every 20 s from 5 s on, their own place in line in Mandarin (the
first 您是下一位, the second 您前面还有一位来电者); no wait is promised, since no call has
finished to take a handle time from. Checked in what each caller received (testbed/rtp_listen.py):
a prompt by its own A-law bytes, the music by its loudness between the prompts.
"""

from __future__ import annotations

import time
from pathlib import Path

from ivr import announce
from testbed import sipp
from testbed.rtp_listen import RtpListener
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, write_config
from tests.integration.test_waiting_music import MUSIC_RMS, heard_prompts

WAIT_MS = 32_000  # two announcements each: at 5 s and 25 s


def waiting_caller(media: int, name: str, number: str) -> sipp.SippRun:
    """One citizen who waits WAIT_MS for an answer that does not come, then hangs up (CANCEL)."""
    args = [*sipp.endpoint(sipp.CARRIER_IP, media=media), "-m", "1", "-r", "1", "-s", "12345",
            *sipp.scenario_params("caller_abandon.xml", {"hold_ms": WAIT_MS})]
    return sipp.SippRun("caller_abandon.xml", args, inf_rows=[(name, number)])


def announcements(heard: RtpListener, name: str) -> list[float]:
    """When each announcement that said `name` began (frames of it more than 3 s apart)."""
    starts: list[float] = []
    for at, said, _ in heard_prompts(heard, frozenset({name})):
        if said == name and (not starts or at - starts[-1] > 3):
            starts.append(at)
    return starts


def test_a_waiting_caller_hears_music_and_their_place_in_line_every_twenty_seconds(
        clean: Sandbox, tmp_path: Path) -> None:
    config = write_config(tmp_path / "announcing", queue={"announce": {"first": 5, "every": 20}})
    engine = RunningEngine.from_dir(config)
    try:
        engine.wait_ready()
        first_port, second_port = sipp.media_port(sipp.CARRIER_IP), sipp.media_port(sipp.CARRIER_IP)
        with RtpListener(sipp.CARRIER_IP, first_port) as first, RtpListener(sipp.CARRIER_IP, second_port) as second:
            start = time.time()
            a = waiting_caller(first_port, "先到", "13900000201")
            engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 1, 10, "the first caller in line")
            b = waiting_caller(second_port, "后到", "13900000202")
            engine.wait_for(lambda e: len(e.dispatcher.state.calls) == 2, 10, "the second caller in line")
            a.check(WAIT_MS / 1000 + 30)
            b.check(WAIT_MS / 1000 + 30)
        rows = engine.records(wait_for=2)
    finally:
        engine.close()
    assert {r.outcome for r in rows} == {"abandoned"}
    # Music before the first announcement (due 5 s after the join).
    assert first.rms(start + 1.5, start + 4.5) > MUSIC_RMS
    assert second.rms(start + 2.5, start + 5.5) > MUSIC_RMS
    # 5 s and 25 s after each join, the caller's own place.
    told_first = announcements(first, "queue-next")
    told_second = announcements(second, "queue-ahead-1")
    assert len(told_first) >= 2 and told_first[0] - start < 10, told_first
    assert len(told_second) >= 2 and told_second[0] - start < 12, told_second
    assert 17 < told_first[1] - told_first[0] < 23  # every 20 s
    # Neither was told the other's place, nor a wait the engine cannot stand by.
    assert not announcements(first, "queue-ahead-1") and not announcements(second, "queue-next")
    waits = frozenset(n for n in announce.names() if n.startswith("queue-wait"))
    assert not heard_prompts(first, waits) and not heard_prompts(second, waits)
    # Between the announcements, music again.
    assert first.rms(told_first[0] + 8, told_first[0] + 14) > MUSIC_RMS
