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
from testbed.audio import check_audio
from testbed.configs import free_tcp_port, write_config
from testbed.ivr_caller import ivr_caller
from testbed.sandbox import Sandbox
from tests.integration.harness import RECORDINGS, RunningEngine, password, with_trunk_port

SOUNDS = Path(__file__).resolve().parents[2] / "asterisk-conf" / "sounds" / "zh"
IVR_ON = {"numbers": {"12345": "intake"}, "survey": {"enabled": True}, "announce_agent": True}
TRUNK_PORT = 5070  # the carrier's side (callbacks dial the citizen through it): a SIPp UAS on 127.0.0.2


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
    folder = with_trunk_port(write_config(tmp_path_factory.mktemp("ivr-dialplan"), agi_port=port, ivr=IVR_ON),
                             TRUNK_PORT)
    sandbox.reinstall(load(folder))
    yield port
    sandbox.reinstall(load(write_config(tmp_path_factory.mktemp("session-dialplan"))))


def running(folder: Path) -> RunningEngine:
    engine = RunningEngine.from_dir(with_trunk_port(folder, TRUNK_PORT))
    engine.wait_ready()
    return engine


@pytest.fixture
def ivr_engine(clean: Sandbox, agi_port: int, tmp_path: Path) -> Iterator[RunningEngine]:
    engine = running(write_config(tmp_path / "config", agi_port=agi_port, ivr=IVR_ON))
    yield engine
    engine.close()


# Callbacks are offered whenever nobody serves the queue (an infinite estimated wait), tried
# twice in all, 30 s apart (the shortest interval allowed), the citizen's phone ringing 5 s.
CALLBACKS = {**IVR_ON, "callback": {"retries": 1, "retry_interval": 30, "ring_timeout": 5}}


@pytest.fixture
def callback_engine(clean: Sandbox, agi_port: int, tmp_path: Path) -> Iterator[RunningEngine]:
    engine = running(write_config(tmp_path / "config", agi_port=agi_port, ivr=CALLBACKS))
    yield engine
    engine.close()


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



def survey_ratings_on_tickets(engine: RunningEngine) -> dict[str, tuple[bool, int | None]]:
    """caller number -> (surveyed, rating) of the call on its draft ticket, after a sweep."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from tickets.models import TicketCallRow, TicketRow

    platform = engine.e.tickets
    assert platform is not None
    platform.drafts.sweep()
    with Session(platform.service.engine) as s:
        rows = s.execute(select(TicketRow.caller_num, TicketCallRow.surveyed, TicketCallRow.rating)
                         .join(TicketCallRow, TicketCallRow.ticket_id == TicketRow.id)).all()
    return {num: (bool(surveyed), rating) for num, surveyed, rating in rows}


def test_survey_ratings_one_to_five_no_key_and_a_hang_up_land_on_the_record_and_the_ticket(
        ivr_engine: RunningEngine) -> None:
    announce = seconds("agent-prefix") + 4 * 0.4 + seconds("agent-suffix")
    talk = announce + 2.5
    ids = [str(1001 + i) for i in range(7)]
    uas = sipp.agent_uas(6202, scenario="agent_hangup.xml", talk_ms=ms(talk))
    sipp.register([agent(a) for a in ids], contact_port=6202)
    ivr_engine.wait_for(lambda e: sum(e.dispatcher.state.agents[a].available() for a in ids) == 7, 10, "7 agents")
    survey_at = QUEUE_BY + talk + 3.0
    runs = {}
    for score in range(1, 6):
        number = f"1380000000{score}"
        runs[number] = ivr_caller([("pause", ms(survey_at)), ("keys", str(score))], stay_ms=20_000,
                                  caller=(f"市民{score}", number))
    runs["13800000006"] = ivr_caller([("pause", ms(survey_at))], stay_ms=60_000, caller=("不按键", "13800000006"))
    runs["13800000007"] = ivr_caller([("pause", ms(survey_at))], stay_ms=1_000, caller=("挂机", "13800000007"))
    for run in runs.values():
        run.check(survey_at + 70)
    rows = {r.caller_num: r for r in ivr_engine.records(wait_for=7)}
    assert {n: (r.outcome, r.surveyed, r.rating) for n, r in rows.items()} == {
        **{f"1380000000{s}": ("answered", True, s) for s in range(1, 6)},
        "13800000006": ("answered", True, None),  # no key after both tries: 未评价
        "13800000007": ("answered", True, None),  # hung up during the survey: 未评价
    }
    assert survey_ratings_on_tickets(ivr_engine) == {n: (r.surveyed, r.rating) for n, r in rows.items()}
    metrics = ivr_engine.metrics()
    assert metrics["hotline_survey_offered_total{queue=main}"] == 7
    assert metrics["hotline_survey_rated_total{queue=main,rating=none}"] == 2
    assert metrics["hotline_survey_rated_total{queue=main,rating=3}"] == 1
    uas.stop()


def test_the_caller_hears_the_agents_job_number_when_the_agent_answers(ivr_engine: RunningEngine) -> None:
    from testbed.rtp_listen import RtpListener

    announce = seconds("agent-prefix") + 4 * 0.4 + seconds("agent-suffix")
    uas = one_agent(ivr_engine, "1001", 6203)
    media = sipp.media_port(sipp.CARRIER_IP)
    with RtpListener(sipp.CARRIER_IP, media) as heard:
        caller = ivr_caller([("pause", ms(QUEUE_BY + announce + 2))], stay_ms=500, media=media)
        caller.check(QUEUE_BY + announce + 30)
    (row,) = ivr_engine.records(wait_for=1)
    assert row.outcome == "answered" and row.answered is not None
    answered = row.answered.timestamp()
    # The caller sends no audio, and the agent only echoes what it gets: what the caller
    # hears right after the pick-up is the announcement, and then silence.
    assert heard.rms(answered + 0.3, answered + announce - 0.3) > 300
    assert heard.rms(answered + announce + 0.8, answered + announce + 1.8) < 100
    uas.stop()


def test_an_invalid_key_and_a_timeout_in_the_ticket_number_end_politely_without_queueing(
        ivr_engine: RunningEngine) -> None:
    # 2: progress; then a number too short (invalid), then nothing (timeout) three times in all.
    ask = seconds("ticket-ask")
    caller = ivr_caller([("pause", ms(MENU_AT)), ("keys", "2"), ("pause", ms(ask + 1)), ("keys", "123#")],
                        stay_ms=90_000)
    caller.check(MENU_AT + 120)
    metrics = ivr_engine.metrics()
    assert metrics["hotline_ivr_sessions_total{end=hangup,flow=intake}"] == 1  # the flow hung up, politely
    assert ivr_engine.records() == []  # never in the queue: not an offered call
    assert ivr_engine.call(lambda: len(ivr_engine.e.dispatcher.state.calls)) == 0



def test_a_caller_keys_a_ticket_number_and_hears_its_state_then_a_wrong_one_three_times_ends_politely(
        ivr_engine: RunningEngine) -> None:
    from datetime import UTC, datetime

    from tests.tickets.helpers import FORM, seed
    from tickets.lifecycle import Action

    platform = ivr_engine.e.tickets
    assert platform is not None
    users = seed(platform.service.engine)
    now = datetime.now(UTC)
    ticket = platform.service.create(users["agent1"], FORM, now)
    platform.service.act(users["agent1"], ticket["number"], Action.DISPATCH, {"department": "housing"}, now)
    assert platform.service.progress(ticket["number"])[0] == "dispatched"  # type: ignore[index]

    ask = seconds("ticket-ask")
    found = ivr_caller([("pause", ms(MENU_AT)), ("keys", "2"), ("pause", ms(ask + 1)),
                        ("keys", ticket["number"] + "#")], stay_ms=60_000, caller=("查进度", "13800000011"))
    wrong = "2000010100001"  # no such ticket
    missed = ask + 1 + seconds("ticket-not-found") + 1
    lost = ivr_caller([("pause", ms(MENU_AT)), ("keys", "2"), ("pause", ms(ask + 1)), ("keys", wrong + "#"),
                       ("pause", ms(missed)), ("keys", wrong + "#"), ("pause", ms(missed)), ("keys", wrong + "#")],
                      stay_ms=60_000, caller=("查错号", "13800000012"))
    found.check(MENU_AT + 90)
    lost.check(MENU_AT + 3 * missed + 90)
    metrics = ivr_engine.metrics()
    assert metrics["hotline_ivr_ticket_lookups_total{result=found}"] == 1
    assert metrics["hotline_ivr_ticket_lookups_total{result=not_found}"] == 3
    assert metrics["hotline_ivr_sessions_total{end=hangup,flow=intake}"] == 2  # both ended by the flow
    assert ivr_engine.records() == []


def test_a_caller_who_hangs_up_mid_flow_leaves_nothing_behind(ivr_engine: RunningEngine) -> None:
    caller = ivr_caller([], stay_ms=ms(seconds("welcome") / 2))  # gone during the greeting
    caller.check(30)
    ivr = ivr_engine.e.ivr
    assert ivr is not None
    ivr_engine.wait_for(lambda e: ivr.server.active == 0, 10, "the AGI session to end")
    metrics = ivr_engine.metrics()
    assert metrics["hotline_ivr_sessions_total{end=hung_up,flow=intake}"] == 1
    assert metrics["hotline_agi_sessions_active{}"] == 0
    assert ivr_engine.call(lambda: len(ivr_engine.e.dispatcher.state.calls)) == 0
    assert ivr_engine.records() == []


def test_the_server_keeps_serving_while_one_flow_raises_and_that_caller_still_reaches_an_agent(
        ivr_engine: RunningEngine) -> None:
    uas = sipp.agent_uas(6204)
    sipp.register([agent("1001"), agent("1002")], contact_port=6204)
    ivr_engine.wait_for(lambda e: sum(e.dispatcher.state.agents[a].available() for a in ("1001", "1002")) == 2,
                        10, "2 agents")
    ivr = ivr_engine.e.ivr
    assert ivr is not None
    real = ivr.estimated_wait
    failures: list[str] = []

    def broken_once(queue: str) -> float:  # the intake's wait check asks for it
        if not failures:
            failures.append(queue)
            raise RuntimeError("estimate exploded")
        return real(queue)

    ivr.estimated_wait = broken_once  # type: ignore[method-assign]
    first = ivr_caller([("pause", ms(QUEUE_BY + 4))], stay_ms=500, caller=("出错", "13800000021"))
    time.sleep(1)
    second = ivr_caller([("pause", ms(QUEUE_BY + 4))], stay_ms=500, caller=("正常", "13800000022"))
    first.check(QUEUE_BY + 40)
    second.check(QUEUE_BY + 40)
    rows = {r.caller_num: r.outcome for r in ivr_engine.records(wait_for=2)}
    assert rows == {"13800000021": "answered", "13800000022": "answered"}
    metrics = ivr_engine.metrics()
    assert metrics["hotline_ivr_sessions_total{end=error,flow=intake}"] == 1
    assert metrics["hotline_ivr_sessions_total{end=enqueue,flow=intake}"] == 1
    uas.stop()


OFFER_AT = QUEUE_BY + 1.0  # the callback offer plays once the menu has timed out


def booked_requests(engine: RunningEngine) -> list[dict[str, object]]:
    status, body = engine.http("GET", "/callbacks?hours=1")
    assert status == 200, body
    return [row["request"] for row in body if row.get("request")]


def test_a_callback_keeps_the_callers_place_rings_a_free_agent_first_then_the_citizen_and_is_recorded(
        callback_engine: RunningEngine) -> None:
    # Nobody serves the queue: the caller is offered a callback, takes it on their own number.
    caller = ivr_caller([("pause", ms(OFFER_AT)), ("keys", "1"), ("pause", ms(seconds("callback-own-number") - 1)),
                         ("keys", "1")], stay_ms=30_000, caller=("回拨我", "13800000031"))
    caller.check(OFFER_AT + 60)
    (booking,) = callback_engine.records(wait_for=1)
    assert (booking.outcome, booking.caller_num) == ("callback", "13800000031")  # offered, not answered
    (request,) = booked_requests(callback_engine)
    assert request["state"] == "pending"

    # The citizen hears the greeting before they are put through; then speaks 3 s and hangs up.
    talk = seconds("callback-greeting") + 3
    citizen = sipp.agent_uas(TRUNK_PORT, scenario="agent_hangup.xml", talk_ms=3000,
                             speak_after_ms=ms(seconds("callback-greeting") + 0.5), host=sipp.CARRIER_IP)
    agent_phone = sipp.agent_uas(6210)
    sipp.register([agent("1001")], contact_port=6210)  # an agent logs in: the callback's turn, at once
    callback_engine.wait_for(lambda e: not booked_requests_now(e), seconds("callback-agent-intro") + talk + 30,
                             "the callback to finish")
    (request,) = booked_requests(callback_engine)
    assert (request["state"], request["outcome"], request["attempts"]) == ("done", "connected", 1)
    assert settle_stats(citizen) == 1  # the citizen's phone was called once, and answered
    time.sleep(1)  # MixMonitor writes the WAV header when it closes the file, just after the hang-up
    recordings = list(RECORDINGS.rglob(f"cb-{booking.call_id}-*.wav"))
    assert recordings and check_audio(recordings[0]).has_audio
    assert callback_engine.call(lambda: callback_engine.e.dispatcher.state.agents["1001"].calls_taken) == 1
    citizen.stop()
    agent_phone.stop()


def test_a_callback_to_a_number_that_does_not_answer_is_retried_once_then_closed_as_failed(
        callback_engine: RunningEngine) -> None:
    keyed = "02988880000"
    caller = ivr_caller([("pause", ms(OFFER_AT)), ("keys", "1"), ("pause", ms(seconds("callback-own-number") - 1)),
                         ("keys", "2"), ("pause", ms(seconds("callback-enter-number") + 0.5)), ("keys", keyed + "#")],
                        stay_ms=30_000, caller=("别的号码", "13800000032"))
    caller.check(OFFER_AT + 70)
    citizen = sipp.agent_uas(TRUNK_PORT, scenario="agent_noanswer.xml", host=sipp.CARRIER_IP)
    agent_phone = sipp.agent_uas(6211)
    sipp.register([agent("1001")], contact_port=6211)
    callback_engine.wait_for(lambda e: not booked_requests_now(e), 2 * (seconds("callback-agent-intro") + 5) + 30 + 30,
                             "the callback to be given up")
    (request,) = booked_requests(callback_engine)
    assert (request["state"], request["attempts"]) == ("failed", 2)  # the first call and one retry: no more
    assert request["number"] == keyed
    assert settle_stats(citizen, attr="created") == 2
    assert callback_engine.call(callback_engine.e.dispatcher.state.agents["1001"].available)
    citizen.stop()
    agent_phone.stop()


def booked_requests_now(engine: object) -> bool:
    """Whether a callback is still open (pending or ringing), from the engine's own store."""
    from cti.callbacks import count_open

    return count_open(engine.outbox.engine) > 0  # type: ignore[attr-defined]


def settle_stats(run: sipp.SippRun, attr: str = "successful", timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    value = int(getattr(run.stats(), attr))
    while time.monotonic() < deadline:
        time.sleep(0.3)
        value = int(getattr(run.stats(), attr))
    return value
