"""Callbacks in the shell: the store (SQLite and PostgreSQL), the scheduler, the Originate over
the fake AMI, and the control API's list.

Peers' callback bugs are the test list (../shared/reference/ivr-desk-scale-research.md §1.4):
duplicate callbacks from a race (FreePBX #525), a lost place in line (twilio-labs #9),
retries forever (queue_callback_v17), and nothing lost across a kill and restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from acd.commands import CallRecord
from acd.events import AgentProfile, CallbackAgentAnswered, CallbackAgentMissed, CallbackDialed, CallerJoined
from acd.model import Outcome, QueueSettings
from config.loader import load
from cti import decode, http
from cti.ami import AmiClient, AmiSettings
from cti.ami_frame import AmiMessage
from cti.callbacks import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    RINGING,
    BookingRequest,
    Callbacks,
    CallbackSettings,
    get_request,
    mark_attempt,
)
from cti.dispatcher import Dispatcher
from cti.engine import Engine as HotlineEngine
from metrics.exporter import Metrics
from tests.fake_ami import FakeAmi, Fields
from tests.pg import pg_database
from tickets.db import migrate, open_engine

Q = QueueSettings(name="main", ring_timeout=15, wrapup=0, max_wait=300, short_abandon=5)
TOKEN = "Tk" * 22
BOOKING = "1764000000.7"  # the booking call's Linkedid
REQUEST = f"cb-{BOOKING}"


# -- the stores ----------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated store, once per backend."""
    url = f"sqlite:///{tmp_path / 'hotline.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = open_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


# -- the rig: a dispatcher, the fake AMI, the callbacks' service ----------------------------------


class Wall:
    """The scheduler's wall clock, which a test moves on (retry intervals without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Sink:
    records: list[CallRecord] = field(default_factory=list)

    def put(self, rec: CallRecord) -> None:
        self.records.append(rec)


@dataclass
class Rig:
    fake: FakeAmi
    dispatcher: Dispatcher
    callbacks: Callbacks
    sink: Sink
    metrics: Metrics
    wall: Wall
    db: Engine
    tasks: list[asyncio.Task[None]]
    ami: AmiClient

    async def stop(self) -> None:
        """The engine stops (or is killed: nothing here is flushed on the way out)."""
        await self.ami.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.fake.close()

    def row(self, request_id: str = REQUEST):  # type: ignore[no-untyped-def]
        return get_request(self.db, request_id)


async def start(db: Engine, *, settings: CallbackSettings | None = None, wall: Wall | None = None,
                devices: list[Fields] | None = None, channels: list[Fields] | None = None) -> Rig:
    fake = FakeAmi(devices=devices or [], channels=channels or [])
    port = await fake.start()
    metrics = Metrics(CollectorRegistry())
    sink = Sink()
    profiles = tuple(AgentProfile(a, frozenset({"main"})) for a in ("1001", "1002"))
    dispatcher = Dispatcher((Q,), profiles, sink, metrics)
    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, action_timeout=1.0, ping_interval=60,
                                backoff_initial=0.05, backoff_max=0.4),
                    dispatcher.on_ami_event, dispatcher.on_link_up, dispatcher.on_link_down)
    dispatcher.ami = ami
    clock = wall or Wall()
    callbacks = Callbacks(db, dispatcher, settings or CallbackSettings(retries=1, retry_interval=60, ring_timeout=25),
                          caller_ids={"main": "12345"}, poll=0.05, wall=clock)
    tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(ami.run()),
             asyncio.create_task(callbacks.run())]
    rig = Rig(fake, dispatcher, callbacks, sink, metrics, clock, db, tasks, ami)
    await until(lambda: dispatcher.state.routing and callbacks.recovered, what="routing")
    return rig


@pytest.fixture
async def rig(db: Engine) -> AsyncIterator[Rig]:
    r = await start(db)
    yield r
    await r.stop()


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def booking(wall: Wall, waited: float = 120.0, number: str = "13800000001", call_id: str = BOOKING,
            restricted: bool = False, caller: str | None = None) -> BookingRequest:
    """caller: the number the booking call came from (default: the number to call back)."""
    return BookingRequest(call_id=call_id, number=number, queue="main", priority=0, skills=(), language="zh",
                          arrived_wall=wall() - waited, caller_restricted=restricted,
                          caller=number if caller is None else caller)


def device(agent: str, state: str = "NOT_INUSE") -> Fields:
    return {"Event": "DeviceStateChange", "Device": f"PJSIP/agent{agent}", "State": state}


def originates(fake: FakeAmi) -> list[Fields]:
    return fake.actions("Originate")


def verdict(call_id: str, agent: str, ok: bool, reason: str = "4") -> Fields:
    """Asterisk's OriginateResponse (its Channel is the device when no channel was made)."""
    return {"Event": "OriginateResponse", "Response": "Success" if ok else "Failure",
            "Channel": f"PJSIP/agent{agent}-00000001" if ok else f"PJSIP/agent{agent}", "Context": "hotline-callback",
            "Exten": "s", "Reason": reason, "Uniqueid": call_id, "CallerIDNum": "13800000001",
            "CallerIDName": "回拨"}


def dialed(call_id: str, status: str, answered_at: float | None = None) -> Fields:
    return {"Event": "UserEvent", "UserEvent": "HotlineCallback", "Channel": "PJSIP/agent1001-00000001",
            "Uniqueid": call_id, "Linkedid": call_id, "Status": status,
            "AnsweredAt": "" if answered_at is None else f"{answered_at:.3f}"}


def hangup(call_id: str, agent: str = "1001") -> Fields:
    return {"Event": "Hangup", "Channel": f"PJSIP/agent{agent}-00000001", "Uniqueid": call_id, "Linkedid": call_id}


async def first_originate(rig: Rig, count: int = 1) -> Fields:
    await until(lambda: len(originates(rig.fake)) >= count, what=f"Originate #{count}")
    return originates(rig.fake)[count - 1]


# -- booking -----------------------------------------------------------------------------------------


async def test_booking_the_same_call_twice_at_once_is_one_request_and_one_record(rig: Rig) -> None:
    """FreePBX #525: two bookings of one call racing each other (a double key press, a retried
    AGI command) make one request, one record, one count, and so at most one callback."""
    req = booking(rig.wall)
    assert await asyncio.gather(rig.callbacks.book(req), rig.callbacks.book(req)) == [True, True]
    assert await rig.callbacks.book(req) is True
    row = rig.row()
    assert row is not None and row.state == PENDING and row.attempts == 0
    assert [r.call_id for r in rig.sink.records] == [BOOKING]
    assert rig.metrics.callbacks_booked.labels("main")._value.get() == 1
    assert rig.metrics.offered.labels("main")._value.get() == 1


async def test_a_booking_writes_one_record_offered_and_not_answered(rig: Rig) -> None:
    """The honest count: a callback booking is an offered call nobody answered (metrics/kpi.py)."""
    req = booking(rig.wall, waited=95, restricted=True)
    assert await rig.callbacks.book(req)
    (rec,) = rig.sink.records
    assert (rec.outcome, rec.queue, rec.offered_queue, rec.answered, rec.agent_id) == (
        Outcome.CALLBACK, "main", "main", None, None)
    assert rec.wait_seconds == pytest.approx(95, abs=1) and rec.restricted
    assert rig.metrics.offered.labels("main")._value.get() == 1
    assert rig.metrics.answered.labels("main")._value.get() == 0
    assert rig.metrics.ended.labels("main", "callback")._value.get() == 1


async def test_a_booking_the_caller_stops_waiting_for_is_stored_whole(rig: Rig) -> None:
    """The IVR gives up on the hook (its time-out, the caller hung up): the request and its
    record are still stored together, never one without the other."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await rig.callbacks.book(booking(rig.wall))
    await until(lambda: rig.row() is not None and len(rig.sink.records) == 1, what="the request and its record")
    assert rig.metrics.callbacks_booked.labels("main")._value.get() == 1


@pytest.mark.parametrize("number", ["", "12", "1380000000x", "138;System(id)", "1" * 21, "+8613800000000"])
async def test_a_number_that_is_not_plain_digits_is_refused_before_it_reaches_the_dialplan(
        number: str, sqlite_db: Engine) -> None:
    r = await start(sqlite_db)
    try:
        assert await r.callbacks.book(booking(r.wall, number=number)) is False
        assert r.row() is None and r.sink.records == []
    finally:
        await r.stop()


# -- ringing the agent first ---------------------------------------------------------------------


async def test_the_originate_names_the_call_and_carries_the_request_never_a_shell(rig: Rig) -> None:
    assert await rig.callbacks.book(booking(rig.wall))
    rig.fake.push(device("1001"))
    action = await first_originate(rig)
    call_id = f"{REQUEST}-1"
    assert {k: action[k] for k in ("Channel", "Context", "Exten", "Priority", "Timeout", "ChannelId", "Async")} == {
        "Channel": "PJSIP/agent1001", "Context": "hotline-callback", "Exten": "s", "Priority": "1",
        "Timeout": "15000", "ChannelId": call_id, "Async": "true"}
    variables = dict(v.split("=", 1) for v in action["Variable"].split(","))
    assert variables == {"HOTLINE_CALLBACK": REQUEST, "HOTLINE_CB_NUMBER": "13800000001", "HOTLINE_CB_TIMEOUT": "25",
                         "HOTLINE_CB_CLI": "12345", "HOTLINE_LANG": "zh", "HOTLINE_QUEUE": "main"}
    assert action["CallerID"] == '"回拨" <13800000001>'
    for sent in rig.fake.received:  # no application, no shell, anywhere
        assert "Application" not in sent and "Data" not in sent
        assert not any("System" in v or "Exec" in v for v in sent.values())
    assert rig.dispatcher.state.calls[call_id].callback == REQUEST


async def test_a_withheld_number_is_not_shown_on_the_agents_phone(rig: Rig) -> None:
    assert await rig.callbacks.book(booking(rig.wall, restricted=True))
    rig.fake.push(device("1001"))
    assert (await first_originate(rig))["CallerID"] == '"回拨"'


async def test_an_agent_who_misses_it_is_counted_and_another_agent_is_rung_with_the_same_call_id(rig: Rig) -> None:
    assert await rig.callbacks.book(booking(rig.wall))
    rig.fake.push(device("1001"), device("1002"))
    first = await first_originate(rig)
    call_id = first["ChannelId"]
    agent = first["Channel"].removeprefix("PJSIP/agent")
    rig.fake.push(hangup(call_id, agent), verdict(call_id, agent, ok=False, reason="3"))
    second = await first_originate(rig, 2)
    assert second["ChannelId"] == call_id and second["Channel"] != first["Channel"]
    assert rig.dispatcher.state.agents[agent].no_answer_streak == 1
    row = rig.row()
    assert row is not None and (row.state, row.attempts) == (PENDING, 0)  # the citizen was not called yet


# -- then the citizen, retries and the end --------------------------------------------------------


async def talk(rig: Rig, call_id: str, status: str, answered_at: float | None = None) -> None:
    """The agent answers; the dialplan calls the citizen; the agent's leg ends with `status`."""
    rig.fake.push(verdict(call_id, "1001", ok=True))
    await until(lambda: (r := rig.row()) is not None and r.state == RINGING, what="the attempt stored")
    rig.fake.push(dialed(call_id, status, answered_at), hangup(call_id))
    await until(lambda: call_id in rig.callbacks.ended, what="the attempt's end stored")


async def test_a_citizen_who_answers_makes_the_request_done(rig: Rig) -> None:
    assert await rig.callbacks.book(booking(rig.wall))
    rig.fake.push(device("1001"))
    call_id = (await first_originate(rig))["ChannelId"]
    rig.fake.push({"Event": "UserEvent", "UserEvent": "HotlineRecording", "Linkedid": call_id,
                   "Channel": "PJSIP/carrier-0002", "File": f"/var/spool/hotline/{call_id}.wav"})
    await talk(rig, call_id, "ANSWER", answered_at=time.time() - 30)
    row = rig.row()
    assert row is not None
    assert (row.state, row.outcome, row.attempts, row.agent_id) == (DONE, "connected", 1, "1001")
    assert row.talk_seconds == pytest.approx(30, abs=2) and row.recording == f"/var/spool/hotline/{call_id}.wav"
    assert rig.metrics.callbacks_finished.labels("main", "connected")._value.get() == 1
    assert call_id not in rig.dispatcher.state.calls
    assert [r.call_id for r in rig.sink.records] == [BOOKING]  # the callback adds no call record


async def test_an_unanswered_citizen_is_retried_after_the_interval_and_then_fails_for_good(rig: Rig) -> None:
    """queue_callback_v17 re-called "until max retries" and beyond: here one retry (retries 1),
    not in line before its time, then failed with the outcome on the request."""
    assert await rig.callbacks.book(booking(rig.wall))
    rig.fake.push(device("1001"))
    first = (await first_originate(rig))["ChannelId"]
    await talk(rig, first, "NOANSWER")
    row = rig.row()
    assert row is not None and (row.state, row.outcome, row.attempts) == (PENDING, "no_answer", 1)
    assert row.next_attempt == pytest.approx(rig.wall() + 60, abs=2)
    assert not any(c.callback for c in rig.dispatcher.state.calls.values())  # not in line meanwhile
    rig.wall.offset += 30
    await asyncio.sleep(0.3)
    assert len(originates(rig.fake)) == 1
    rig.wall.offset += 31
    second = (await first_originate(rig, 2))["ChannelId"]
    assert second == f"{REQUEST}-2"
    await talk(rig, second, "BUSY")
    row = rig.row()
    assert row is not None and (row.state, row.outcome, row.attempts, row.next_attempt) == (FAILED, "busy", 2, None)
    rig.wall.offset += 10_000
    await asyncio.sleep(0.3)
    assert len(originates(rig.fake)) == 2
    assert rig.metrics.callbacks_finished.labels("main", "busy")._value.get() == 1


async def test_a_retry_keeps_the_citizens_place_ahead_of_later_callers(rig: Rig) -> None:
    """A retry is fed with the citizen's original arrival: it comes before a caller who
    joined after their first call, not behind everyone."""
    assert await rig.callbacks.book(booking(rig.wall, waited=200))
    rig.fake.push(device("1001"))
    first = (await first_originate(rig))["ChannelId"]
    await talk(rig, first, "NOANSWER")
    rig.fake.push({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "main", "Channel": "PJSIP/carrier-c1",
                   "Linkedid": "c1", "Uniqueid": "c1", "CallerIDNum": "13900000000", "Pres": "allowed"})
    await until(lambda: bool(rig.fake.actions("Redirect")), what="c1 rung")  # 1001 is free: c1 rings
    rig.fake.push({"Event": "DialEnd", "Linkedid": "c1", "Channel": "PJSIP/carrier-c1", "Context": "hotline-connect",
                   "Exten": "1001*15*1", "DestChannel": "PJSIP/agent1001-02", "DialStatus": "NOANSWER"})
    rig.wall.offset += 61
    await until(lambda: f"{REQUEST}-2" in rig.dispatcher.state.calls, what="the retry in line")
    retry, live = rig.dispatcher.state.calls[f"{REQUEST}-2"], rig.dispatcher.state.calls["c1"]
    assert retry.key < live.key


# -- kill -9 and restart ---------------------------------------------------------------------------


async def test_a_pending_request_survives_a_restart_and_keeps_its_original_arrival(db: Engine) -> None:
    wall = Wall()
    first = await start(db, wall=wall)
    req = booking(wall, waited=300)
    assert await first.callbacks.book(req)
    await until(lambda: f"{REQUEST}-1" in first.dispatcher.state.calls, what="in line")
    await first.stop()  # killed: no agent ever rang
    again = await start(db, wall=wall)
    try:
        await until(lambda: f"{REQUEST}-1" in again.dispatcher.state.calls, what="fed again after the restart")
        call = again.dispatcher.state.calls[f"{REQUEST}-1"]
        assert call.arrived_wall == pytest.approx(req.arrived_wall, abs=0.01)
        assert again.sink.records == []  # the booking's record was written once, by the first engine
        again.fake.push({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "main",
                         "Channel": "PJSIP/carrier-c1", "Linkedid": "c1", "Uniqueid": "c1", "Pres": "allowed"})
        await until(lambda: "c1" in again.dispatcher.state.calls, what="a live caller")
        again.fake.push(device("1001"))
        await first_originate(again)  # the callback, whose citizen called 300 s ago, goes first
        assert again.fake.actions("Redirect") == []
    finally:
        await again.stop()


async def test_an_attempt_a_killed_engine_left_ringing_counts_as_failed_with_an_unknown_outcome(db: Engine) -> None:
    wall = Wall()
    first = await start(db, wall=wall)
    assert await first.callbacks.book(booking(wall))
    await first.stop()
    assert mark_attempt(db, REQUEST, f"{REQUEST}-1", "1001", wall())  # it was calling the citizen when killed
    again = await start(db, wall=wall)  # Asterisk shows no leg of it: it ended meanwhile
    try:
        await until(lambda: (r := again.row()) is not None and r.state == PENDING, what="the attempt settled")
        row = again.row()
        assert row is not None and (row.outcome, row.attempts) == ("unknown", 1)
        assert row.next_attempt is not None and row.next_attempt > wall()
    finally:
        await again.stop()


async def test_a_restarted_engine_adopts_an_attempt_still_talking_and_stores_its_end(db: Engine) -> None:
    wall = Wall()
    first = await start(db, wall=wall)
    assert await first.callbacks.book(booking(wall))
    await first.stop()
    call_id = f"{REQUEST}-1"
    assert mark_attempt(db, REQUEST, call_id, "1001", wall())
    leg = {"Channel": "PJSIP/agent1001-0000002a", "Uniqueid": call_id, "Linkedid": call_id,
           "Context": "hotline-callback", "Exten": "s", "Application": "Dial", "ChannelState": "6",
           "ChannelStateDesc": "Up", "Seconds": "40", "Variable": "HOTLINE_QUEUE=main"}
    again = await start(db, wall=wall, channels=[leg], devices=[device("1001", "INUSE"), device("1002")])
    try:
        assert again.dispatcher.holds(call_id)
        await asyncio.sleep(0.3)
        assert originates(again.fake) == []  # never a second call to the citizen
        again.fake.push(dialed(call_id, "ANSWER", time.time() - 35), hangup(call_id))
        await until(lambda: (r := again.row()) is not None and r.state == DONE, what="done")
        row = again.row()
        assert row is not None and (row.outcome, row.attempts) == ("connected", 1)
    finally:
        await again.stop()


# -- cancelling ------------------------------------------------------------------------------------


async def test_a_cancelled_request_leaves_the_line_and_is_never_called(rig: Rig) -> None:
    assert await rig.callbacks.book(booking(rig.wall))
    await until(lambda: f"{REQUEST}-1" in rig.dispatcher.state.calls, what="in line")
    assert await rig.callbacks.cancel(REQUEST)
    assert await rig.callbacks.cancel(REQUEST) is False  # once
    await until(lambda: f"{REQUEST}-1" not in rig.dispatcher.state.calls, what="out of line")
    rig.fake.push(device("1001"))
    await asyncio.sleep(0.3)
    assert originates(rig.fake) == []
    row = rig.row()
    assert row is not None and (row.state, row.outcome) == (CANCELLED, "cancelled")


# -- the control API ---------------------------------------------------------------------------------


async def test_the_callback_list_shows_each_request_with_its_state_and_masks_a_withheld_number(
        sqlite_db: Engine, tmp_path: Path) -> None:
    r = await start(sqlite_db)
    try:
        assert await r.callbacks.book(booking(r.wall, call_id="1764000000.8", number="13812345678", restricted=True))
        assert await r.callbacks.book(booking(r.wall, call_id="1764000000.9", number="13900000000"))
        from tickets.db import insert_record  # the booking records, as the outbox writer stores them
        for rec in r.sink.records:
            insert_record(sqlite_db, rec)
        engine = HotlineEngine(load(None), r.dispatcher, None, SimpleNamespace(engine=sqlite_db, spool=tmp_path),  # type: ignore[arg-type]
                               None, TOKEN)  # type: ignore[arg-type]
        engine.callbacks = r.callbacks
        async with TestClient(TestServer(http.control_app(engine))) as client:
            resp = await client.get("/callbacks", headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status == 200
            listed = {row["call_id"]: row for row in await resp.json()}
            # Cancelling needs the token, like every write; then the request is cancelled, once.
            path = "/callbacks/cb-1764000000.9/cancel"
            assert (await client.post(path)).status == 401
            resp = await client.post(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status == 200 and (await resp.json())["state"] == "cancelled"
            assert (await client.post(path, headers={"Authorization": f"Bearer {TOKEN}"})).status == 404
    finally:
        await r.stop()
    withheld, shown = listed["1764000000.8"], listed["1764000000.9"]
    assert (withheld["caller_num"], withheld["request"]["number"]) == ("*******5678", "*******5678")
    assert shown["request"]["number"] == "13900000000"
    for row in (withheld, shown):
        request = row["request"]
        assert (request["state"], request["attempts"], request["next_attempt"], request["outcome"]) == (
            "pending", 0, None, "")


# -- decoding Asterisk's side -----------------------------------------------------------------------


def test_originate_responses_decode_into_the_agents_answer_or_miss() -> None:
    call_id = f"{REQUEST}-1"
    assert decode.decode(verdict(call_id, "1001", ok=True)) == CallbackAgentAnswered(call_id, "1001")
    assert decode.decode(verdict(call_id, "1001", ok=False, reason="5")) == CallbackAgentMissed(call_id, "1001",
                                                                                                 "BUSY")
    assert decode.decode(verdict(call_id, "1001", ok=False, reason="0")) == CallbackAgentMissed(call_id, "1001",
                                                                                                 "CHANUNAVAIL")
    assert decode.decode({**verdict(call_id, "1001", ok=True), "Uniqueid": "1764000000.3"}) is None  # not ours
    with pytest.raises(decode.DecodeError):
        decode.decode({**verdict(call_id, "1001", ok=True), "Channel": "PJSIP/carrier-01"})


def test_the_callback_event_and_the_originates_own_dial_decode() -> None:
    call_id = f"{REQUEST}-2"
    assert decode.decode(dialed(call_id, "noanswer")) == CallbackDialed(call_id, "NOANSWER", None)
    assert decode.decode(dialed(call_id, "ANSWER", 1764000100.25)) == CallbackDialed(call_id, "ANSWER", 1764000100.25)
    assert decode.decode(dialed(call_id, "")) == CallbackDialed(call_id, "", None)
    # The Originate's own ring of the agent has no caller (no Linkedid): not a decode error.
    assert decode.decode({"Event": "DialBegin", "DestChannel": "PJSIP/agent1001-01", "DestLinkedid": call_id,
                          "DestUniqueid": call_id, "DialString": "agent1001"}) is None
    # The agent's call to the citizen is no ring of an agent.
    assert decode.decode({"Event": "DialEnd", "Channel": "PJSIP/agent1001-01", "Linkedid": call_id,
                          "DestChannel": "PJSIP/carrier-02", "DialStatus": "ANSWER"}) is None


def test_a_callback_leg_in_the_snapshot_is_a_call_of_its_own() -> None:
    call_id = f"{REQUEST}-1"
    rows = [AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/agent1001-0a", "Uniqueid": call_id,
                              "Linkedid": call_id, "ChannelStateDesc": "Up", "Seconds": "12",
                              "Variable": "HOTLINE_QUEUE=main"}.items())),
            AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/carrier-0b", "Uniqueid": "x.2",
                              "Linkedid": call_id, "Context": "macro", "Seconds": "5"}.items()))]
    (snap,) = decode.snapshot(rows, 1764000200.0).callers
    assert (snap.call_id, snap.callback, snap.queue, snap.answered_by) == (call_id, REQUEST, "main", "1001")
    assert snap.legs[0].bridged



async def test_the_booking_record_names_the_caller_not_the_number_keyed_for_the_callback(rig: Rig) -> None:
    assert await rig.callbacks.book(booking(rig.wall, number="02988880000", caller="13800000099"))
    (rec,) = rig.sink.records
    assert (rec.caller_num, rec.outcome) == ("13800000099", Outcome.CALLBACK)


async def test_a_booking_the_ivr_stopped_waiting_for_is_cancelled_and_leaves_no_record(rig: Rig) -> None:
    """The store was slow, the IVR gave up and queued the caller (whose own record is to come):
    a booking that lands afterwards is cancelled, with no booking record to count twice."""
    task = asyncio.ensure_future(rig.callbacks.book(booking(rig.wall)))
    await asyncio.sleep(0)  # the store is under way
    rig.callbacks.withdraw(BOOKING)
    assert await task is False
    assert rig.sink.records == []
    row = rig.row()
    assert row is not None and row.state == "cancelled"


async def test_a_booking_record_is_not_written_for_a_caller_who_is_in_a_queue(rig: Rig) -> None:
    rig.dispatcher.submit(CallerJoined(BOOKING, "PJSIP/carrier-1", "main", caller_num="13800000001"))
    await until(lambda: BOOKING in rig.dispatcher.state.calls, what="the caller in line")
    assert await rig.callbacks.book(booking(rig.wall))
    assert rig.sink.records == []  # the caller's own record comes when their call ends


@pytest.mark.parametrize("status", ["CANCEL", ""])
async def test_an_agent_who_hangs_up_before_the_citizen_answers_costs_the_citizen_no_attempt(
        rig: Rig, status: str) -> None:
    """The agent hung up during the intro, or while the citizen's phone rang: not the citizen's
    doing, so no retry of theirs is used up and they are back in line at once."""
    assert await rig.callbacks.book(booking(rig.wall))
    rig.fake.push(device("1001"))
    first = (await first_originate(rig))["ChannelId"]
    await talk(rig, first, status)
    row = rig.row()
    assert row is not None and (row.state, row.outcome, row.attempts, row.agent_hangups) == (
        PENDING, "agent_hung_up", 1, 1)
    assert row.next_attempt is not None and row.next_attempt <= rig.wall() + 1
