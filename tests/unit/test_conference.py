"""三方通话 and transfers (cti/conference.py) against the fake AMI: what is sent, in which order,
and the answer to every request that cannot be carried out."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from acd.calls import CallState
from acd.events import AgentProfile
from acd.model import QueueSettings
from cti import dialplan
from cti.ami import AmiClient, AmiSettings
from cti.ami_frame import AmiMessage
from cti.conference import Conference, ConferenceError, PartyChange
from cti.dispatcher import Dispatcher
from metrics.exporter import Metrics
from tests.fake_ami import FakeAmi, Fields, error, success
from tests.unit.test_dispatcher import Sink, device, until

Q = QueueSettings(name="main", ring_timeout=15, wrapup=0, max_wait=300, short_abandon=5)
CALLER = "PJSIP/carrier-00000001"
AGENT_LEG = "PJSIP/agent1001-00000002"


@dataclass
class Rig:
    fake: FakeAmi
    dispatcher: Dispatcher
    ami: AmiClient
    conf: Conference
    changes: list[PartyChange]


def talking_rows() -> list[Fields]:
    """c1 talking to 1001 (answered 5 s ago), as a resync finds it."""
    return [
        {"Channel": CALLER, "Uniqueid": "c1", "Linkedid": "c1", "Context": "hotline-connect", "Exten": "1001*15*1",
         "Application": "Dial", "Seconds": "20", "CallerIDNum": "13800000000"},
        {"Channel": AGENT_LEG, "Uniqueid": "c1.2", "Linkedid": "c1", "Context": "hotline-connect",
         "Exten": "1001*15*1", "BridgeID": "b1", "ChannelState": "6"},
    ]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    fake = FakeAmi()
    fake.channels = talking_rows()
    fake.devices = [device("1001", "INUSE"), device("1002"), device("1003")]
    port = await fake.start()
    metrics = Metrics(CollectorRegistry())
    profiles = tuple(AgentProfile(a, frozenset({Q.name})) for a in ("1001", "1002", "1003"))
    dispatcher = Dispatcher((Q,), profiles, Sink(), metrics)
    conf = Conference(dispatcher, caller_ids={"main": "12345"}, ring_timeout=20)
    changes: list[PartyChange] = []
    conf.on_change = changes.append

    def on_event(message: AmiMessage) -> None:
        dispatcher.on_ami_event(message)
        conf.on_ami_event(message)

    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, action_timeout=0.5, ping_interval=60,
                                backoff_initial=0.05, backoff_max=0.4),
                    on_event, dispatcher.on_link_up, dispatcher.on_link_down)
    dispatcher.ami = ami
    fake.scripts["Getvar"] = lambda a: success(Variable="BRIDGEPEER", Value=AGENT_LEG if a.get("Channel") == CALLER
                                               else "")
    tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(ami.run())]
    await until(lambda: dispatcher.state.routing, what="routing")
    assert dispatcher.state.calls["c1"].state is CallState.CONNECTED
    yield Rig(fake, dispatcher, ami, conf, changes)
    await ami.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await fake.close()


def moves(fake: FakeAmi) -> list[Fields]:
    """The actions the conference sends (not the dispatcher's own)."""
    return [a for a in fake.received if a.get("Action") in ("Getvar", "Redirect", "Originate", "Hangup")]


def conf_event(role: str, action: str, party: str = "") -> Fields:
    return {"Event": "UserEvent", "UserEvent": dialplan.CONF_EVENT, "Call": "c1", "Role": role, "Party": party,
            "Action": action}


async def test_a_department_is_rung_into_the_conference_the_caller_and_agent_are_moved_to(rig: Rig) -> None:
    change = await rig.conf.add_party("c1", "02988880000", who="1001")
    assert (change.kind, change.party, change.detail) == ("dialing", "number:02988880000", "by:1001")
    (move,) = rig.fake.actions("Redirect")
    assert (move["Channel"], move["Context"], move["Exten"], move["Priority"]) == (
        CALLER, "hotline-conf", "caller", "2")
    assert (move["ExtraChannel"], move["ExtraExten"], move["ExtraPriority"]) == (AGENT_LEG, "agent", "2")
    (dial,) = rig.fake.actions("Originate")
    assert dial["Channel"] == "PJSIP/02988880000@carrier"
    assert (dial["Context"], dial["Exten"], dial["Async"], dial["Timeout"]) == (
        "hotline-conf", "party", "true", "20000")
    assert dial["Variable"] == f"HOTLINE_CONF_CALL=c1,HOTLINE_CONF_PARTY={dial['ChannelId']}"
    assert dial["CallerID"] == '"12345" <12345>'
    # Asterisk then reports the legs joining.
    rig.fake.push(conf_event("agent", "joined"), conf_event("caller", "joined"),
                  conf_event("party", "joined", dial["ChannelId"]))
    await until(lambda: len(rig.changes) == 4, what="the joins")
    assert [(c.kind, c.party) for c in rig.changes[1:]] == [
        ("joined", "agent:1001"), ("joined", "caller"), ("joined", "number:02988880000")]
    assert rig.conf.parties("c1") == ["caller", "agent:1001", "number:02988880000"]
    # A second department: the caller and the agent are in the conference already.
    await rig.conf.add_party("c1", "02988881111", who="1001")
    assert len(rig.fake.actions("Redirect")) == 1 and len(rig.fake.actions("Originate")) == 2


async def test_the_agent_leaves_the_caller_and_department_talk_on_and_the_core_frees_the_agent(rig: Rig) -> None:
    await rig.conf.add_party("c1", "02988880000", who="1001")
    with pytest.raises(ConferenceError, match=r"^第三方尚未接通 \(no other party has joined yet\)$"):
        await rig.conf.leave("c1", "1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    rig.fake.push(conf_event("party", "joined", party))
    await until(lambda: rig.conf.parties("c1")[-1] == "number:02988880000", what="the join")
    change = await rig.conf.leave("c1", "1001")
    assert (change.kind, change.party, change.detail) == ("left", "agent:1001", "leave")
    move = rig.fake.actions("Redirect")[-1]
    assert (move["Channel"], move["Exten"], move["ExtraChannel"], move["ExtraExten"]) == (
        CALLER, "on", AGENT_LEG, "bye")
    # Asterisk: the agent's leg hangs up (its own event later is not a second report).
    rig.fake.push({"Event": "Hangup", "Channel": AGENT_LEG, "Linkedid": "c1", "Uniqueid": "c1.2"},
                  conf_event("agent", "left"))
    state = rig.dispatcher.state
    await until(lambda: state.calls["c1"].state is CallState.AFTER_TALK, what="the core to see the agent go")
    assert state.agents["1001"].call_id is None
    assert [c.kind for c in rig.changes].count("left") == 1
    assert rig.conf.parties("c1") == ["caller", "number:02988880000"]
    # The caller hangs up: one record, answered by 1001.
    rig.fake.push(conf_event("caller", "left"), {"Event": "Hangup", "Channel": CALLER, "Linkedid": "c1",
                                                  "Uniqueid": "c1"})
    sink = rig.dispatcher.outbox
    assert isinstance(sink, Sink)
    await until(lambda: len(sink.records) == 1, what="the record")
    (rec,) = sink.records
    assert (rec.outcome.value, rec.agent_id) == ("answered", "1001")
    assert rig.conf.parties("c1") == []


async def test_the_department_is_dropped_and_the_caller_and_agent_go_on(rig: Rig) -> None:
    with pytest.raises(ConferenceError, match=r"^该通话没有可挂断的第三方 \(no such party in this call\)$"):
        await rig.conf.drop_party("c1")
    await rig.conf.add_party("c1", "02988880000", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    (change,) = await rig.conf.drop_party("c1")
    assert (change.kind, change.party, change.detail) == ("left", "number:02988880000", "drop")
    (hangup,) = rig.fake.actions("Hangup")
    assert hangup["Channel"] == party
    assert rig.dispatcher.state.calls["c1"].state is CallState.CONNECTED
    # Its hang-up event is not reported twice; the department can be rung again.
    rig.fake.push(conf_event("party", "left", party))
    await rig.conf.add_party("c1", "02988880000", who="1001")
    assert [c.kind for c in rig.changes] == ["dialing", "left", "dialing"]


async def test_a_dropped_partys_own_hang_up_read_before_the_reply_is_not_a_second_leaving(rig: Rig) -> None:
    await rig.conf.add_party("c1", "02988880000", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    rig.fake.push(conf_event("party", "joined", party))
    await until(lambda: rig.conf.parties("c1")[-1] == "number:02988880000", what="the join")
    # Asterisk hangs the party up and its dialplan reports the leaving before the reply is written.
    rig.fake.scripts["Hangup"] = lambda a: [conf_event("party", "left", party), *success()]
    assert len(await rig.conf.drop_party("c1")) == 1
    await asyncio.sleep(0.05)  # the event was read before the reply: nothing more is on its way
    assert [(c.kind, c.detail) for c in rig.changes if c.party == "number:02988880000"] == [
        ("dialing", "by:1001"), ("joined", ""), ("left", "drop")]


@pytest.mark.parametrize("how", ["leave", "blind"])
async def test_the_leaving_agents_own_hang_up_read_before_the_reply_is_not_a_second_leaving(
        rig: Rig, how: str) -> None:
    if how == "leave":
        await rig.conf.add_party("c1", "02988880000", who="1001")
    else:
        await rig.conf.transfer_blind("c1", "1002", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    # Asterisk 22: the agent's leg hangs up (`bye`) and its handler reports it before the reply.
    rig.fake.scripts["Redirect"] = lambda a: [conf_event("agent", "left"), *success()]
    rig.fake.push(conf_event("party", "joined", party))
    if how == "leave":
        await until(lambda: len(rig.conf.parties("c1")) == 3, what="the join")
        await rig.conf.leave("c1", "1001")
    else:
        await until(lambda: rig.changes[-1].detail == "transfer", what="the hand-over")
    await asyncio.sleep(0.05)  # the event was read before the reply: nothing more is on its way
    assert [(c.kind, c.detail) for c in rig.changes if c.party == "agent:1001"] == [
        ("left", "leave" if how == "leave" else "transfer")]
    assert len(rig.fake.actions("Redirect")) == 2  # into the conference, and the hand-over: the caller once


async def test_a_leave_asterisk_refuses_keeps_the_agent_on_the_call(rig: Rig) -> None:
    await rig.conf.add_party("c1", "02988880000", who="1001")
    rig.fake.push(conf_event("party", "joined", rig.fake.actions("Originate")[0]["ChannelId"]))
    await until(lambda: len(rig.conf.parties("c1")) == 3, what="the join")
    rig.fake.scripts["Redirect"] = lambda _: error("Channel not found")
    with pytest.raises(ConferenceError, match="拒绝"):
        await rig.conf.leave("c1", "1001")
    assert rig.conf.parties("c1") == ["caller", "agent:1001", "number:02988880000"]
    # Their phone hung up after all: said so, and the caller is moved on.
    del rig.fake.scripts["Redirect"]
    rig.fake.push(conf_event("agent", "left"))
    await until(lambda: rig.changes[-1].party == "agent:1001", what="the hang-up")
    assert rig.changes[-1].detail == "hangup"


async def test_the_legs_joining_read_before_the_moves_reply_are_reported(rig: Rig) -> None:
    rig.fake.scripts["Redirect"] = lambda a: [conf_event("agent", "joined"), conf_event("caller", "joined"),
                                              *success()]
    await rig.conf.add_party("c1", "02988880000", who="1001")
    await until(lambda: len(rig.changes) == 3, what="the joins")
    assert sorted((c.kind, c.party) for c in rig.changes) == [
        ("dialing", "number:02988880000"), ("joined", "agent:1001"), ("joined", "caller")]


async def test_a_move_asterisk_refuses_leaves_no_conference_behind(rig: Rig) -> None:
    rig.fake.scripts["Redirect"] = lambda a: error("No such channel")
    with pytest.raises(ConferenceError, match="拒绝"):
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert rig.conf.parties("c1") == [] and not rig.fake.actions("Originate")


async def test_a_department_that_does_not_answer_is_reported_failed(rig: Rig) -> None:
    await rig.conf.add_party("c1", "02988880000", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    rig.fake.push({"Event": "OriginateResponse", "Response": "Failure", "Uniqueid": party, "Reason": "3",
                   "Channel": "PJSIP/02988880000@carrier"})
    await until(lambda: rig.changes[-1].kind == "failed", what="the failure")
    assert (rig.changes[-1].party, rig.changes[-1].detail) == ("number:02988880000", "NOANSWER")
    await rig.conf.add_party("c1", "02988880000", who="1001")  # not "already present"


async def test_blind_transfer_to_an_agent_hands_over_when_that_agent_answers(rig: Rig) -> None:
    change = await rig.conf.transfer_blind("c1", "1002", who="1001")
    assert (change.kind, change.party) == ("dialing", "agent:1002")
    (dial,) = rig.fake.actions("Originate")
    assert dial["Channel"] == "Local/1002*20@hotline-conf-dial/n"
    assert dial["CallerID"] == '"转接 1001" <13800000000>'
    assert len(rig.fake.actions("Redirect")) == 1  # into the conference; the agent stays until 1002 answers
    rig.fake.push(conf_event("party", "joined", dial["ChannelId"]))
    await until(lambda: len(rig.fake.actions("Redirect")) == 2, what="the hand-over")
    assert rig.fake.actions("Redirect")[-1]["ExtraExten"] == "bye"
    await until(lambda: rig.changes[-1].detail == "transfer", what="the report")
    assert rig.conf.parties("c1") == ["caller", "agent:1002"]


async def test_blind_transfer_to_a_queue_picks_its_longest_free_agent(rig: Rig) -> None:
    state = rig.dispatcher.state
    state.agents["1002"].idle_since, state.agents["1003"].idle_since = 50.0, 10.0
    change = await rig.conf.transfer_blind("c1", "main", who="1001")
    assert change.party == "agent:1003"
    with pytest.raises(ConferenceError, match=r"没有这个坐席或队列 \(no agent or queue 'nope'\)"):
        await rig.conf.transfer_blind("c1", "nope", who="1001")


async def test_attended_transfer_consults_then_the_first_agent_leaves(rig: Rig) -> None:
    await rig.conf.transfer_attended("c1", "1002", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    rig.fake.push(conf_event("party", "joined", party))
    await until(lambda: "agent:1002" in rig.conf.parties("c1"), what="the consultation")
    assert len(rig.fake.actions("Redirect")) == 1  # attended: nobody leaves on their own
    await rig.conf.leave("c1", "1001")
    assert rig.conf.parties("c1") == ["caller", "agent:1002"]
    # The second agent can leave too (hang-up of their leg).
    await rig.conf.leave("c1", "1002")
    assert rig.fake.actions("Hangup")[-1]["Channel"] == party


async def test_the_agent_hanging_up_their_phone_moves_the_caller_on(rig: Rig) -> None:
    await rig.conf.add_party("c1", "02988880000", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    rig.fake.push(conf_event("party", "joined", party), conf_event("agent", "left"))
    await until(lambda: len(rig.fake.actions("Redirect")) == 2, what="the caller moved on")
    last = rig.fake.actions("Redirect")[-1]
    assert (last["Exten"], "ExtraChannel" in last) == ("on", False)
    assert rig.changes[-1].party == "agent:1001" and rig.changes[-1].detail == "hangup"


@pytest.mark.parametrize(("call_id", "message"), [
    ("nope", r"^没有这个通话 \(no such call: 'nope'\)$"),
])
async def test_an_unknown_call_is_refused(rig: Rig, call_id: str, message: str) -> None:
    with pytest.raises(ConferenceError, match=message) as info:
        await rig.conf.add_party(call_id, "02988880000", who="1001")
    assert info.value.code == "unknown_call"


async def test_a_call_that_ended_is_refused_as_ended(rig: Rig) -> None:
    rig.fake.push({"Event": "Hangup", "Channel": CALLER, "Linkedid": "c1", "Uniqueid": "c1"})
    await until(lambda: "c1" not in rig.dispatcher.state.calls, what="the end")
    with pytest.raises(ConferenceError, match=r"^该通话已结束 \(the call has ended\)$"):
        await rig.conf.add_party("c1", "02988880000", who="1001")


async def test_a_call_not_in_talk_and_bad_targets_are_refused(rig: Rig) -> None:
    with pytest.raises(ConferenceError, match="号码无效"):
        await rig.conf.add_party("c1", "02-9888;x", who="1001")
    with pytest.raises(ConferenceError, match="该坐席已在通话中"):
        await rig.conf.transfer_attended("c1", "1001", who="1001")
    with pytest.raises(ConferenceError, match="没有这个坐席"):
        await rig.conf.transfer_attended("c1", "9999", who="1001")
    rig.dispatcher.state.agents["1002"].device_busy = True
    with pytest.raises(ConferenceError, match="该坐席现在不空闲"):
        await rig.conf.transfer_attended("c1", "1002", who="1001")
    rig.dispatcher.state.calls["c1"].state = CallState.DIALING
    with pytest.raises(ConferenceError, match=r"该通话不在坐席通话中 \(the call is not in talk \(it is dialing\)\)"):
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert rig.fake.actions("Redirect") == [] and rig.fake.actions("Originate") == []


async def test_a_party_already_present_is_refused(rig: Rig) -> None:
    await rig.conf.add_party("c1", "02988880000", who="1001")
    with pytest.raises(ConferenceError, match=r"^该号码已在通话中 \(this number is already in the call\)$") as info:
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert info.value.code == "party_present"


async def test_two_concurrent_requests_for_one_department_move_the_legs_once_and_ring_it_once(rig: Rig) -> None:
    first, second = await asyncio.gather(rig.conf.add_party("c1", "02988880000", who="1001"),
                                         rig.conf.add_party("c1", "02988880000", who="1001"),
                                         return_exceptions=True)
    assert isinstance(first, PartyChange) and first.kind == "dialing"
    assert isinstance(second, ConferenceError) and second.code == "party_present"
    assert len(rig.fake.actions("Redirect")) == 1 and len(rig.fake.actions("Originate")) == 1
    # The call's lock goes with its conference once the caller hangs up.
    rig.fake.push(conf_event("caller", "joined"), conf_event("caller", "left"))
    await until(lambda: rig.conf.parties("c1") == [], what="the conference forgotten")
    assert rig.conf._turns == {}


@pytest.mark.parametrize(("one", "other"), [("1002", "1002"), ("main", "main"), ("1002", "1003")])
async def test_two_concurrent_blind_transfers_ring_one_agent_and_move_the_legs_once(
        rig: Rig, one: str, other: str) -> None:
    results = await asyncio.gather(rig.conf.transfer_blind("c1", one, who="1001"),
                                   rig.conf.transfer_blind("c1", other, who="1001"), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["ConferenceError", "PartyChange"]
    refused = next(r for r in results if isinstance(r, ConferenceError))
    assert refused.code == "party_present"
    assert len(rig.fake.actions("Redirect")) == 1 and len(rig.fake.actions("Originate")) == 1
    # The new agent answers: the first agent is taken out once.
    rig.fake.push(conf_event("party", "joined", rig.fake.actions("Originate")[0]["ChannelId"]))
    await until(lambda: rig.changes[-1].detail == "transfer", what="the hand-over")
    await asyncio.sleep(0.05)
    assert len(rig.fake.actions("Redirect")) == 2


async def test_only_the_answering_agent_adds_a_party_or_transfers_and_only_an_agent_on_the_call_leaves(
        rig: Rig) -> None:
    await rig.conf.transfer_attended("c1", "1002", who="1001")
    party = rig.fake.actions("Originate")[0]["ChannelId"]
    rig.fake.push(conf_event("party", "joined", party))
    await until(lambda: "agent:1002" in rig.conf.parties("c1"), what="the consultation")
    sent = moves(rig.fake)
    # 1002, brought in for consultation, would take 1001 out of the call with a transfer.
    for request in (rig.conf.transfer_blind("c1", "1003", who="1002"),
                    rig.conf.transfer_attended("c1", "1003", who="1002"),
                    rig.conf.add_party("c1", "02988880000", who="1002")):
        with pytest.raises(ConferenceError, match=r"^只有接听该通话的坐席可以邀请第三方或转接 ") as info:
            await request
        assert info.value.code == "not_answering_agent"
    with pytest.raises(ConferenceError, match="该坐席不在这个通话中") as info:
        await rig.conf.leave("c1", "1003")
    assert info.value.code == "not_on_call"
    assert moves(rig.fake) == sent  # nothing reached Asterisk
    await rig.conf.leave("c1", "1002")  # the consulted agent leaves
    assert rig.fake.actions("Hangup")[-1]["Channel"] == party


@pytest.mark.parametrize("call_id", ["c1,Exten=x", "c1\r\nAction: Hangup", "c" * 65, "c1 2", ""])
async def test_a_call_id_that_would_write_ami_fields_is_refused_before_any_action(rig: Rig, call_id: str) -> None:
    # As the dispatcher would hold it (a Linkedid is what Asterisk named the channel).
    state = rig.dispatcher.state
    bad = copy.copy(state.calls["c1"])
    bad.call_id = call_id
    state.calls[call_id] = bad
    sent = moves(rig.fake)
    for request in (rig.conf.add_party(call_id, "02988880000", who="1001"),
                    rig.conf.transfer_blind(call_id, "1002", who="1001"),
                    rig.conf.transfer_attended(call_id, "1002", who="1001"),
                    rig.conf.leave(call_id, "1001"), rig.conf.drop_party(call_id)):
        with pytest.raises(ConferenceError, match=r"^通话编号无法用于会议 ") as info:
            await request
        assert info.value.code == "not_supported"
    assert moves(rig.fake) == sent and rig.conf._turns == {}


async def test_the_conferences_logs_keep_only_the_last_four_digits_of_a_number(rig: Rig) -> None:
    number = "02988881234"
    with capture_logs() as logs:
        await rig.conf.add_party("c1", number, who="1001")
        party = rig.fake.actions("Originate")[0]["ChannelId"]
        rig.fake.push({"Event": "OriginateResponse", "Response": "Failure", "Uniqueid": party, "Reason": "5"})
        await until(lambda: rig.changes[-1].kind == "failed", what="the failure")
        await rig.conf.add_party("c1", number, who="1001")
        party = rig.fake.actions("Originate")[-1]["ChannelId"]
        rig.fake.push(conf_event("party", "joined", party))
        await until(lambda: rig.changes[-1].kind == "joined", what="the join")
        await rig.conf.drop_party("c1")
        await rig.conf.transfer_blind("c1", "1002", who="1001")  # its caller ID carries the caller's number
    ours = [e for e in logs if str(e["event"]).startswith("conference_")]
    shown = {e["event"] for e in ours if e.get("party") == "number:*******1234"}
    assert shown >= {"conference_party_dialing", "conference_party_failed", "conference_party_dropped",
                     "conference_change"}
    for event in ours:
        assert not any(number in str(v) or "13800000000" in str(v) for v in event.values()), event


async def test_not_yet_bridged_is_refused_before_anything_moves(rig: Rig) -> None:
    rig.fake.scripts["Getvar"] = lambda _: success(Variable="BRIDGEPEER", Value="")
    with pytest.raises(ConferenceError, match="坐席与来电尚未接通") as info:
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert info.value.code == "not_talking" and rig.fake.actions("Redirect") == []


async def test_asterisk_refusing_and_not_answering(rig: Rig) -> None:
    rig.fake.scripts["Redirect"] = lambda _: error("Channel not found")
    refused = r"^Asterisk 拒绝了该操作 \(AMI action Redirect failed: Channel not found\)$"
    with pytest.raises(ConferenceError, match=refused) as info:
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert info.value.code == "refused" and rig.fake.actions("Originate") == []
    del rig.fake.scripts["Redirect"]
    rig.fake.silent.add("Originate")
    with pytest.raises(ConferenceError, match="Asterisk 未及时应答") as info:
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert info.value.code == "timeout"
    assert rig.conf.parties("c1") == ["caller", "agent:1001"]  # moved, but nobody was added


async def test_the_ami_link_down_is_said_so(rig: Rig) -> None:
    rig.fake.silent.add("Login")
    rig.fake.drop()
    await until(lambda: not rig.ami.connected, what="the link down")
    down = r"^与 Asterisk 的连接已断开 \(the AMI link to Asterisk is down\)$"
    with pytest.raises(ConferenceError, match=down) as info:
        await rig.conf.add_party("c1", "02988880000", who="1001")
    assert info.value.code == "ami_down"


async def test_a_failing_on_change_hook_does_not_fail_the_request(rig: Rig) -> None:
    def boom(_: PartyChange) -> None:
        raise RuntimeError("desk down")

    rig.conf.on_change = boom
    change = await rig.conf.add_party("c1", "02988880000", who="1001")
    assert change.kind == "dialing"


def test_the_rendered_dialplan_and_confbridge_profiles_hold_what_the_engine_names() -> None:
    from acd.events import Where
    from config.loader import load
    from cti.asterisk_conf import render

    files = render(load(None))
    ext, bridge = files["extensions.conf"], files["confbridge.conf"]
    assert f"[{dialplan.CONF}]" in ext and f"[{dialplan.CONF_DIAL}]" in ext
    for exten in (dialplan.CONF_CALLER, dialplan.CONF_AGENT, dialplan.CONF_ON, dialplan.CONF_BYE):
        assert f"exten => {exten},1,NoOp" in ext and f"\n same => {dialplan.REDIRECT_PRIORITY}," in ext
    assert f"exten => {dialplan.CONF_PARTY_EXTEN},1," in ext
    for profile in ("[hotline_conf]", "[hotline_caller]", "[hotline_member]"):
        assert profile in bridge
    assert bridge.count("quiet = yes") == 2 and bridge.count("announce_only_user = no") == 2
    assert "MixMonitor(${HOTLINE_REC},a)" in ext  # the caller's leg appends to the one recording
    # A restarted engine reads the caller's place in the conference.
    assert dialplan.where(dialplan.CONF, dialplan.CONF_CALLER, "ConfBridge") is Where.CONNECT
    assert dialplan.where(dialplan.CONF, dialplan.CONF_ON, "ConfBridge") is Where.SURVEY
