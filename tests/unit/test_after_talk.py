"""The agent hangs up first and the caller stays for the satisfaction survey (AFTER_TALK):
the agent is free at once, the talk ends at the agent's hang-up, the rating lands on the
record; and the answer is taken at the agent's pick-up (Newstate Up), not after the job
number. Pure core and the decoder, no Asterisk."""

from __future__ import annotations

from acd.agents import Activity
from acd.calls import CallState
from acd.commands import CallAnswered
from acd.estimate import DEFAULT_TALK, estimated_wait
from acd.events import (
    AgentHungUp,
    AgentLeg,
    ChannelsSnapshot,
    DialEnded,
    SnapshotCall,
    SurveyRated,
    SurveyStarted,
    Where,
)
from acd.model import Outcome
from cti import decode
from cti.ami_frame import AmiMessage
from tests.unit.world import World, chan, of_type


def talking(w: World, call_id: str = "c1", agent: str = "1001", at: float = 1000) -> None:
    w.join(call_id, at=at)
    w.answer(call_id, agent, at=at + 2)


def test_the_agent_who_hangs_up_first_is_freed_at_once_and_the_talk_ends_there() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    talking(w)
    w.feed(AgentHungUp("c1", "1001"), at=1032)
    assert w.call("c1").state is CallState.AFTER_TALK
    assert w.agent("1001").activity is Activity.WRAP_UP  # not waiting for the caller's survey
    w.feed(SurveyStarted("c1"), at=1032.5)
    w.feed(SurveyRated("c1", 2), at=1040)
    w.hangup("c1", at=1045)
    (rec,) = w.records()
    assert rec.outcome is Outcome.ANSWERED and rec.agent_id == "1001"
    assert rec.talk_seconds == 30  # 1002 -> 1032, not the survey after it
    assert rec.ended - rec.arrived == 45  # the call itself ends when the caller hangs up
    assert (rec.surveyed, rec.rating) == (True, 2)
    assert w.agent("1001").talk_total == 30


def test_a_survey_with_no_key_or_a_hang_up_is_surveyed_with_no_rating() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    talking(w)
    w.feed(AgentHungUp("c1", "1001"), at=1032)
    w.feed(SurveyStarted("c1"), at=1032.5)
    w.hangup("c1", at=1036)
    (rec,) = w.records()
    assert (rec.surveyed, rec.rating) == (True, None)


def test_a_call_the_caller_ends_is_not_surveyed() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    talking(w)
    w.hangup("c1", at=1030)
    (rec,) = w.records()
    assert (rec.surveyed, rec.rating) == (False, None)


def test_another_agents_leg_hanging_up_is_no_news() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002", at=900)
    talking(w)
    w.feed(AgentHungUp("c1", "1002"), at=1010)  # e.g. ring_all's loser, or an earlier ring
    assert w.call("c1").state is CallState.CONNECTED
    assert w.agent("1001").activity is Activity.ON_CALL


def test_the_answer_is_taken_at_the_pick_up_and_the_later_dial_end_is_a_repeat() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    w.join("c1", at=1000)
    attempt = w.call("c1").attempt
    w.dial_begin("c1", "1001", at=1000.1)
    up = decode.decode({"Event": "Newstate", "Channel": "PJSIP/agent1001-00000007", "ChannelState": "6",
                        "Linkedid": "c1", "Exten": f"1001*15*{attempt}", "Context": "hotline-agents"})
    assert up == DialEnded("c1", "1001", "ANSWER", attempt)
    out = w.feed(up, at=1001)
    out += w.feed(DialEnded("c1", "1001", "ANSWER", attempt), at=1004.7)  # after the job number
    assert [c.wait for c in of_type(out, CallAnswered)] == [1.0]
    assert w.agent("1001").calls_taken == 1


def test_newstate_other_than_an_agents_pick_up_of_our_ring_is_ignored() -> None:
    base = {"Event": "Newstate", "Channel": "PJSIP/agent1001-00000007", "ChannelState": "6", "Linkedid": "c1",
            "Exten": "1001*15*3"}
    assert decode.decode({**base, "ChannelState": "5"}) is None  # ringing
    assert decode.decode({**base, "Exten": "s"}) is None  # the fallback's Dial, a callback leg
    assert decode.decode({**base, "Exten": "*21"}) is None  # the agent's own feature-code call
    assert decode.decode({**base, "Channel": "PJSIP/carrier-00000003"}) is None


def test_an_agent_channels_hang_up_decodes_as_the_agent_leaving() -> None:
    event = decode.decode({"Event": "Hangup", "Channel": "PJSIP/agent1001-0000000a", "Linkedid": "c1"})
    assert event == AgentHungUp("c1", "1001")
    caller = decode.decode({"Event": "Hangup", "Channel": "PJSIP/carrier-0000000b", "Linkedid": "c1"})
    assert caller is not None and not isinstance(caller, AgentHungUp)


def test_a_resync_finds_the_caller_in_the_survey_and_leaves_their_agent_on_the_next_call() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    talking(w, "c1")
    w.feed(AgentHungUp("c1", "1001"), at=1030)
    w.tick(1040)  # wrap-up over
    talking(w, "c2", at=1041)
    assert w.agent("1001").call_id == "c2"
    snap = ChannelsSnapshot(callers=(
        SnapshotCall(call_id="c1", channel=chan("c1"), where=Where.SURVEY, age=50, queue="main", answered_by="1001",
                     answered_ago=48, talk_ended_ago=20),
        SnapshotCall(call_id="c2", channel=chan("c2"), where=Where.CONNECT, age=10, queue="main",
                     legs=(AgentLeg("1001", bridged=True),), answered_ago=8),
    ))
    out = w.feed(snap, at=1050)
    assert w.call("c1").state is CallState.AFTER_TALK
    assert (w.agent("1001").activity, w.agent("1001").call_id) == (Activity.ON_CALL, "c2")
    assert of_type(out, CallAnswered) == []  # nothing counted twice


def test_an_up_agent_leg_not_yet_bridged_counts_as_answered_in_a_snapshot() -> None:
    """During the job number the agent's leg is up but not bridged yet: answered, not ringing."""
    caller = AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/carrier-01", "Uniqueid": "1.1",
                               "Linkedid": "1.1", "Context": "hotline-connect", "Exten": "1001*15*3",
                               "Application": "Dial", "Seconds": "20"}.items()))
    def leg(state: str) -> AmiMessage:
        return AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/agent1001-0a", "Uniqueid": "1.2",
                                 "Linkedid": "1.1", "ChannelState": state, "BridgeID": ""}.items()))
    (up,) = decode.snapshot([caller, leg("6")], wall=1100.0).callers
    (ringing,) = decode.snapshot([caller, leg("5")], wall=1100.0).callers
    assert (up.legs, ringing.legs) == ((AgentLeg("1001", True),), (AgentLeg("1001", False),))


def test_the_estimated_wait_counts_only_finished_calls() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002", at=900)
    w.join("c1", at=1000)
    w.join("c2", at=1000.5)
    w.answer("c1", "1001", at=1002)
    w.answer("c2", "1002", at=1002.5)
    for i in range(5):
        w.join(f"w{i}", at=1003 + i)
    # Both first calls are still going: no handle time known yet, the typical one stands in.
    wait = estimated_wait(w.state, "main", 1010)
    assert wait >= 6 * DEFAULT_TALK / 2
