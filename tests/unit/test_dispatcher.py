"""The engine's shell against a fake AMI: the dispatcher, the AMI client, their order and faults.

Each test names the finding of the engine review (B1-B12) it proves fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

import acd.lifecycle
from acd.calls import CallState
from acd.commands import CallRecord
from acd.events import AgentProfile, ChannelsSnapshot, DevicesSnapshot
from acd.model import QueueSettings
from cti.ami import AmiClient, AmiError, AmiSettings
from cti.dispatcher import Dispatcher, LinkDown, Snapshot, SnapshotFailed
from metrics.exporter import Metrics
from tests.fake_ami import FakeAmi, Fields, error, success

Q = QueueSettings(name="main", ring_timeout=15, wrapup=0, max_wait=300, short_abandon=5)


@dataclass
class Sink:
    records: list[CallRecord] = field(default_factory=list)

    def put(self, rec: CallRecord) -> None:
        self.records.append(rec)


@dataclass
class Rig:
    fake: FakeAmi
    dispatcher: Dispatcher
    ami: AmiClient
    sink: Sink
    metrics: Metrics

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.dispatcher.state


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def join(call: str, queue: str = "main", num: str = "13800000000") -> Fields:
    return {"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": queue, "Channel": f"PJSIP/carrier-{call}",
            "Linkedid": call, "Uniqueid": call, "CallerIDNum": num, "CallerIDName": "王小明", "Pres": "allowed"}


def hold_row(call: str, queue: str = "main") -> Fields:
    return {"Channel": f"PJSIP/carrier-{call}", "Uniqueid": call, "Linkedid": call, "Context": "hotline-hold",
            "Exten": queue, "Application": "Wait", "Seconds": "3", "CallerIDNum": "13800000000"}


def device(agent: str, state: str = "NOT_INUSE") -> Fields:
    return {"Device": f"PJSIP/agent{agent}", "State": state}


def redirects(fake: FakeAmi, context: str | None = None) -> list[Fields]:
    return [a for a in fake.actions("Redirect") if context is None or a.get("Context") == context]


@pytest.fixture
def queue() -> QueueSettings:
    return Q


@pytest.fixture
async def rig(queue: QueueSettings) -> AsyncIterator[Rig]:
    fake = FakeAmi()
    port = await fake.start()
    metrics = Metrics(CollectorRegistry())
    sink = Sink()
    profiles = tuple(AgentProfile(a, frozenset({queue.name})) for a in ("1001", "1002"))
    dispatcher = Dispatcher((queue,), profiles, sink, metrics)
    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, action_timeout=1.0, ping_interval=60,
                                backoff_initial=0.05, backoff_max=0.4),
                    dispatcher.on_ami_event, dispatcher.on_link_up, dispatcher.on_link_down)
    dispatcher.ami = ami
    tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(ami.run()),
             asyncio.create_task(dispatcher.heartbeat(0.1))]
    yield Rig(fake, dispatcher, ami, sink, metrics)
    await ami.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await fake.close()


async def routing(rig: Rig) -> None:
    await until(lambda: rig.state.routing, what="routing after the resync")


# -- B5: resync snapshots at their place in the stream ---------------------------------------


async def test_events_after_a_snapshot_in_the_stream_are_applied_on_top_of_it(rig: Rig) -> None:
    """B5(a): the snapshot says c1 rings 1001 (attempt 3); the DialEnd and HotlineParked that
    follow it in the same TCP write are newer and must win: c1 is rung again, to 1002."""
    rig.fake.devices = [device("1001", "INUSE"), device("1002")]
    rig.fake.channels = [
        {"Channel": "PJSIP/carrier-c1", "Uniqueid": "c1", "Linkedid": "c1", "Context": "hotline-connect",
         "Exten": "1001*15*3", "Application": "Dial", "Seconds": "9"},
        {"Channel": "PJSIP/agent1001-01", "Uniqueid": "c1.2", "Linkedid": "c1", "Context": "x"},
    ]
    rig.fake.after["Status"] = [
        {"Event": "DialEnd", "Linkedid": "c1", "Channel": "PJSIP/carrier-c1", "Context": "hotline-connect",
         "Exten": "1001*15*3", "DestChannel": "PJSIP/agent1001-01", "DialStatus": "NOANSWER"},
        {"Event": "UserEvent", "UserEvent": "HotlineParked", "Linkedid": "c1", "Channel": "PJSIP/carrier-c1"},
    ]
    await routing(rig)
    await until(lambda: bool(redirects(rig.fake, "hotline-connect")), what="a ring")
    (ring,) = redirects(rig.fake, "hotline-connect")
    assert ring["Exten"] == "1002*15*4"


async def test_a_snapshot_queued_after_its_link_went_down_is_not_applied(rig: Rig) -> None:
    """B5(b): routing never comes back on for a link that is gone, even when both halves of
    its snapshot (channels, then phones) are still queued."""
    await routing(rig)
    session = rig.dispatcher.session
    rig.fake.silent.add("Login")  # the link will not come back
    rig.fake.drop()
    await until(lambda: not rig.state.routing, what="routing off")
    rig.dispatcher.inbox.put_nowait(LinkDown(session))
    rig.dispatcher.inbox.put_nowait(Snapshot(session, ChannelsSnapshot()))
    rig.dispatcher.inbox.put_nowait(Snapshot(session, DevicesSnapshot(())))
    await rig.dispatcher.drain()
    assert not rig.state.routing


# -- B3: the heartbeat proves routing --------------------------------------------------------


async def test_no_heartbeat_and_a_growing_back_off_while_the_resync_keeps_failing(rig: Rig) -> None:
    """B3: a refused DeviceStateList must not keep the dialplan's fallback off, nor flap."""
    rig.fake.scripts["DeviceStateList"] = lambda _: error("Permission denied")
    await asyncio.sleep(2.0)
    assert not rig.state.routing
    beats = [a for a in rig.fake.actions("Setvar") if a.get("Variable") == "HOTLINE_ENGINE_SEEN"]
    assert beats == []
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... s between tries: at most 9 logins in 2 s; a back-off
    # that starts over after each session would log in every 0.05 s (some 30 times).
    assert 2 <= rig.fake.logins <= 9


async def test_the_heartbeat_starts_once_the_engine_routes(rig: Rig) -> None:
    await routing(rig)
    await until(lambda: any(a.get("Variable") == "HOTLINE_ENGINE_SEEN" for a in rig.fake.actions("Setvar")),
                what="a heartbeat")


# -- B4 and B11: failed and unconfirmed rings ----------------------------------------------------


async def test_a_refused_ring_is_retried_after_a_back_off_not_in_a_loop(rig: Rig) -> None:
    """B4: one persistent Redirect error once cost 8,000 Redirects a second."""
    rig.fake.devices = [device("1001")]
    rig.fake.scripts["Redirect"] = lambda _: error("Permission denied")
    await routing(rig)
    rig.fake.push(join("c1"))
    await asyncio.sleep(2.5)
    rings = redirects(rig.fake, "hotline-connect")
    assert 2 <= len(rings) <= 3  # at 0 s, 1 s and (after 2 s more) 3 s
    assert rig.state.calls["c1"].state is CallState.IN_LINE


async def test_a_redirect_with_no_answer_is_probed_before_the_caller_is_rung_again(rig: Rig) -> None:
    """B11: ringing again blindly could pull a caller out of a ring that did start."""
    rig.fake.devices = [device("1001"), device("1002")]
    rig.fake.channels = [hold_row("c1")]
    rig.fake.silent.add("Redirect")
    await routing(rig)
    rig.fake.push(join("c1"))
    await until(lambda: any("Channel" in a for a in rig.fake.actions("Status")), what="a probe")
    probe_at = next(i for i, a in enumerate(rig.fake.received) if a.get("Action") == "Status" and "Channel" in a)
    rig.fake.silent.discard("Redirect")
    await until(lambda: len(redirects(rig.fake)) >= 2, what="a second ring")
    second = [i for i, a in enumerate(rig.fake.received) if a.get("Action") == "Redirect"][1]
    assert probe_at < second


async def test_a_probe_whose_answer_is_lost_leaves_the_caller_in_line_and_asks_again(rig: Rig) -> None:
    """Review 3: only Asterisk's "no such channel" says the caller has gone. A probe that times
    out must not end the call (a record written, the caller stranded while still waiting)."""
    rig.fake.devices = [device("1001"), device("1002")]
    rig.fake.channels = [hold_row("c1")]
    await routing(rig)
    rig.fake.silent.update({"Redirect", "Status"})
    rig.fake.push(join("c1"))
    await until(lambda: sum("Channel" in a for a in rig.fake.actions("Status")) >= 2, timeout=10,
                what="a second probe")
    assert rig.sink.records == []
    assert rig.state.calls["c1"].state is CallState.CONFIRMING


# -- B1: nobody stranded on the way out ------------------------------------------------------


@pytest.mark.parametrize("queue", [QueueSettings(name="main", max_wait=0.3)])
async def test_a_caller_whose_send_out_fails_is_sent_again_after_a_back_off(rig: Rig) -> None:
    """B1: one failed time-out Redirect once stranded the caller until the dialplan's 30-minute limit."""
    answers = iter([error("Channel busy"), success()])
    rig.fake.scripts["Redirect"] = lambda _: next(answers)
    await routing(rig)
    rig.fake.push(join("c1"))
    await until(lambda: len(redirects(rig.fake, "hotline-leave")) == 2, timeout=5, what="the send-out, again")
    first, second = redirects(rig.fake, "hotline-leave")
    assert first["Exten"] == second["Exten"] == "timeout"
    assert rig.state.calls["c1"].state is CallState.LEAVING


@pytest.mark.parametrize("queue", [QueueSettings(name="main", max_wait=0.3)])
async def test_nobody_is_sent_out_while_the_link_is_down(rig: Rig) -> None:
    """B1: the decision waits for the link; the resync finds the caller still in line and sends them."""
    await routing(rig)
    rig.fake.channels = [hold_row("c1")]
    rig.fake.silent.add("Login")
    rig.fake.push(join("c1"))
    rig.fake.drop()
    await until(lambda: not rig.state.routing, what="the link down")
    await asyncio.sleep(0.6)  # max_wait passes while the link is down
    assert redirects(rig.fake) == []
    rig.fake.silent.discard("Login")
    await until(lambda: bool(redirects(rig.fake, "hotline-leave")), what="the send-out after the resync")


# -- B12: nothing accepted is lost ------------------------------------------------------------


async def test_a_record_produced_before_decide_failed_is_still_written_and_the_picture_rebuilt(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.fake.devices = [device("1001")]
    await routing(rig)
    rig.fake.push(join("c1"))
    await until(lambda: bool(redirects(rig.fake, "hotline-connect")), what="a ring")
    rig.fake.push({"Event": "DialEnd", "Linkedid": "c1", "Channel": "PJSIP/carrier-c1", "Context": "hotline-connect",
                   "Exten": "1001*15*1", "DestChannel": "PJSIP/agent1001-01", "DialStatus": "ANSWER"})
    await until(lambda: rig.state.calls["c1"].state is CallState.CONNECTED, what="connected")

    def broken(*_: object) -> None:
        raise RuntimeError("injected fault after the record")

    monkeypatch.setattr(acd.lifecycle.rules, "remember_answer", broken)
    statuses = len(rig.fake.actions("Status"))
    rig.fake.push({"Event": "Hangup", "Linkedid": "c1", "Channel": "PJSIP/carrier-c1"})
    await until(lambda: len(rig.sink.records) == 1, what="the record")
    assert rig.sink.records[0].outcome == "answered"
    await until(lambda: len(rig.fake.actions("Status")) > statuses, what="a resync")
    assert rig.metrics.event_errors._value.get() >= 1


async def test_every_event_queued_before_a_drain_is_handled(rig: Rig) -> None:
    await routing(rig)
    rig.fake.push(*(join(f"c{i}") for i in range(30)))
    rig.fake.push(*({"Event": "Hangup", "Linkedid": f"c{i}", "Channel": f"PJSIP/carrier-c{i}"} for i in range(30)))
    await until(lambda: rig.dispatcher.inbox.qsize() > 0 or len(rig.sink.records) == 30, what="events queued")
    await rig.dispatcher.drain()
    await until(lambda: len(rig.sink.records) == 30, timeout=2, what="30 records")


# -- the AMI client ---------------------------------------------------------------------------


async def test_a_list_answer_is_handed_over_exactly_at_its_place_in_the_stream() -> None:
    fake = FakeAmi(channels=[hold_row("c1")])
    port = await fake.start()
    seen: list[str] = []
    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, ping_interval=60), lambda m: seen.append(m.event or ""),
                    lambda _: None, lambda _: None)
    task = asyncio.create_task(ami.run())
    try:
        await until(lambda: ami.connected, what="logged in")
        fake.push({"Event": "Hangup", "Linkedid": "before", "Channel": "x"})
        fake.after["Status"] = [{"Event": "DialEnd", "Linkedid": "after", "DestChannel": "x"}]
        ami.send({"Action": "Status"}, in_order=lambda r: seen.append("STATUS" if not isinstance(r, AmiError) else "!"))
        await until(lambda: "DialEnd" in seen, what="the event after the list")
        assert seen[-3:] == ["Hangup", "STATUS", "DialEnd"]
    finally:
        await ami.close()
        task.cancel()
        await fake.close()


async def test_a_refused_action_is_told_apart_from_one_that_timed_out() -> None:
    fake = FakeAmi(scripts={"Redirect": lambda _: error("No such channel")}, silent={"Setvar"})
    port = await fake.start()
    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, ping_interval=60, action_timeout=0.3),
                    lambda _: None, lambda _: None, lambda _: None)
    task = asyncio.create_task(ami.run())
    try:
        await until(lambda: ami.connected, what="logged in")
        with pytest.raises(AmiError) as refused:
            await ami.action({"Action": "Redirect", "Channel": "x"})
        assert refused.value.refused
        with pytest.raises(AmiError) as unsure:
            await ami.action({"Action": "Setvar", "Variable": "A", "Value": "1"})
        assert not unsure.value.refused
        with pytest.raises(AmiError, match="line break") as injected:
            await ami.action({"Action": "Setvar", "Variable": "A", "Value": "1\r\nAction: Originate"})
        assert injected.value.refused
        assert not any("Originate" in str(a) for a in fake.received)
    finally:
        await ami.close()
        task.cancel()
        await fake.close()


def test_a_failed_resync_of_a_link_already_gone_does_not_drop_the_next_link() -> None:
    """The link (session 1) drops while its resync is pending: the pending Status fails
    (SnapshotFailed(1) is queued, then LinkDown(1)). The AMI client reconnects within
    0.2 s and logs in (session 2) while the dispatcher is still busy with older items.
    When the dispatcher reaches SnapshotFailed(1), its own `session` is still 1 and the
    client is connected (to session 2), so it drops the new, healthy link with a penalty
    (a longer back-off before the next try). A result of session 1 must not touch session 2."""
    dispatcher = Dispatcher((QueueSettings(),), (), Sink(), Metrics(CollectorRegistry()))
    dropped: list[bool] = []

    class NewLink:
        connected = True
        session = 2

        def drop(self, penalize: bool = False) -> None:
            dropped.append(penalize)

    dispatcher.ami = NewLink()  # type: ignore[assignment]
    dispatcher.session = 1  # LinkUp(1) was handled; LinkDown(1) and LinkUp(2) are still queued
    dispatcher.handle(SnapshotFailed(1, "Status: AMI connection lost"))
    assert dropped == []


def test_a_snapshot_of_a_link_already_gone_is_dropped_even_when_a_newer_link_is_up() -> None:
    """Review 4: a snapshot of session 1 reached after session 2 logged in (LinkDown(1) and
    LinkUp(2) still queued) belongs to a picture that is gone: dropped, counted."""
    metrics = Metrics(CollectorRegistry())
    dispatcher = Dispatcher((QueueSettings(),), (), Sink(), metrics)

    class NewLink:
        connected = True
        session = 2

    dispatcher.ami = NewLink()  # type: ignore[assignment]
    dispatcher.session = 1
    dispatcher.handle(Snapshot(1, ChannelsSnapshot()))
    assert metrics.snapshots_dropped._value.get() == 1

