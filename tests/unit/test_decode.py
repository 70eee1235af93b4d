"""Decoding what Asterisk 22 sends into typed events."""

from __future__ import annotations

import pytest

from acd.events import AgentControl, CallerHungUp, CallerJoined, DeviceChanged, DialEnded, DialStarted, RecordingStarted
from cti.decode import DecodeError, decode, snapshot_callers


def test_hotline_join_user_event() -> None:
    ev = decode({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "main", "Channel": "PJSIP/carrier-01",
                 "Linkedid": "17.1", "Uniqueid": "17.1", "CallerIDNum": "138", "CallerIDName": "<unknown>",
                 "Pres": "prohib_passed_screen"})
    assert ev == CallerJoined("17.1", "PJSIP/carrier-01", "main", "138", "", restricted=True)


def test_join_priority_and_skills_beside_the_channels_own_priority_header() -> None:
    ev = decode({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "tax", "Channel": "c", "Linkedid": "1",
                 "Priority": "1", "CallPriority": "2", "CallSkills": "tax=60+english=40"})
    assert isinstance(ev, CallerJoined)
    assert (ev.priority, ev.skills) == (2, (("tax", 60), ("english", 40)))


def test_a_join_with_junk_priority_or_skills_still_joins() -> None:
    ev = decode({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "tax", "Channel": "c", "Linkedid": "1",
                 "CallPriority": "high", "CallSkills": "tax=900+ok=5+;rm"})
    assert isinstance(ev, CallerJoined)
    assert (ev.priority, ev.skills) == (0, (("ok", 5),))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"Agent": "agent1001", "Action": "pause", "Reason": "05"}, AgentControl("1001", "pause", "05")),
     ({"Agent": "agent1002", "Action": "login", "Reason": ""}, AgentControl("1002", "login", ""))],
)
def test_agent_feature_code_events(fields: dict[str, str], expected: AgentControl) -> None:
    assert decode({"Event": "UserEvent", "UserEvent": "HotlineAgent", **fields}) == expected


@pytest.mark.parametrize(
    "fields",
    [{"Agent": "carrier", "Action": "login"}, {"Agent": "agent1001", "Action": "reboot"},
     {"Agent": "agent1001", "Action": "pause", "Reason": "x;System(rm)"}],
)
def test_bad_agent_events_are_rejected_with_the_reason(fields: dict[str, str]) -> None:
    with pytest.raises(DecodeError):
        decode({"Event": "UserEvent", "UserEvent": "HotlineAgent", **fields})


def test_a_join_without_linkedid_is_rejected_with_the_reason() -> None:
    with pytest.raises(DecodeError, match="Linkedid"):
        decode({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "main", "Channel": "x"})


@pytest.mark.parametrize(
    ("state", "registered", "busy"),
    [("NOT_INUSE", True, False), ("INUSE", True, True), ("RINGING", True, True), ("UNAVAILABLE", False, False),
     ("INVALID", False, False), ("ONHOLD", True, True)],
)
def test_device_states(state: str, registered: bool, busy: bool) -> None:
    assert decode({"Event": "DeviceStateChange", "Device": "PJSIP/agent1001", "State": state}) == DeviceChanged(
        "1001", registered, busy
    )


def test_other_devices_and_events_are_ignored() -> None:
    assert decode({"Event": "DeviceStateChange", "Device": "PJSIP/carrier", "State": "INUSE"}) is None
    assert decode({"Event": "Newexten"}) is None
    assert decode({"Event": "UserEvent", "UserEvent": "Other"}) is None


def test_dial_end_to_an_agent() -> None:
    ev = decode({"Event": "DialEnd", "Linkedid": "17.1", "Channel": "PJSIP/carrier-01",
                 "DestChannel": "PJSIP/agent1002-0000000a", "DialStatus": "NOANSWER"})
    assert ev == DialEnded("17.1", "1002", "NOANSWER")


def test_dial_begin_to_an_agent_confirms_the_ring() -> None:
    ev = decode({"Event": "DialBegin", "Linkedid": "17.1", "DestChannel": "PJSIP/agent1002-0000000a"})
    assert ev == DialStarted("17.1", "1002")


def test_hangup_and_recording() -> None:
    assert decode({"Event": "Hangup", "Linkedid": "1", "Channel": "c"}) == CallerHungUp("1", "c")
    assert decode({"Event": "UserEvent", "UserEvent": "HotlineRecording", "Linkedid": "1", "File": "/r/1.wav"}) == (
        RecordingStarted("1", "/r/1.wav")
    )


def test_snapshot_pairs_callers_with_their_agent_leg() -> None:
    rows = [
        {"Channel": "PJSIP/carrier-01", "Uniqueid": "1.1", "Linkedid": "1.1", "Context": "hotline-connect",
         "Exten": "1001*15", "Duration": "00:01:05", "BridgeId": "b1", "CallerIDNum": "138", "CallerIDName": "李华"},
        {"Channel": "PJSIP/agent1001-0a", "Uniqueid": "1.2", "Linkedid": "1.1", "Context": "hotline-agents",
         "BridgeId": "b1"},
        {"Channel": "PJSIP/carrier-02", "Uniqueid": "2.1", "Linkedid": "2.1", "Context": "hotline-hold",
         "Exten": "main", "Duration": "00:00:07"},
        {"Channel": "PJSIP/other-03", "Uniqueid": "3.1", "Linkedid": "3.1", "Context": "default"},
    ]
    a, b = snapshot_callers(rows, "main")
    assert (a.call_id, a.agent_id, a.bridged, a.age, a.caller_name) == ("1.1", "1001", True, 65.0, "李华")
    assert (b.call_id, b.agent_id, b.bridged, b.age, b.queue) == ("2.1", None, False, 7.0, "main")
