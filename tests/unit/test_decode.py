"""Decoding what Asterisk 22 sends into typed events, and refusing what it should not send."""

from __future__ import annotations

import base64

import pytest

from acd.agents import Control
from acd.events import (
    AgentControl,
    AgentHungUp,
    AgentLeg,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    DialStarted,
    FeatureCallEnded,
    PhoneReach,
    Probed,
    RecordingStarted,
    Where,
)
from acd.model import LeaveReason
from cti.ami_frame import AmiMessage
from cti.decode import DecodeError, caller_name, decode, display_name, probed, snapshot, unescape_ami

JOIN = {"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": "main", "Channel": "PJSIP/carrier-01",
        "Linkedid": "17.1", "Uniqueid": "17.1", "CallerIDNum": "138", "CallerIDName": "<unknown>"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_hotline_join_user_event() -> None:
    ev = decode({**JOIN, "Pres": "prohib_passed_screen"})
    assert ev == CallerJoined("17.1", "PJSIP/carrier-01", "main", "138", "", restricted=True)


def test_join_priority_and_skills_beside_the_channels_own_priority_header() -> None:
    ev = decode({**JOIN, "Queue": "tax", "Priority": "1", "CallPriority": "2", "CallSkills": "tax=60+english=40"})
    assert isinstance(ev, CallerJoined)
    assert (ev.priority, ev.skills) == (2, (("tax", 60), ("english", 40)))


def test_a_join_with_junk_priority_or_skills_still_joins() -> None:
    ev = decode({**JOIN, "CallPriority": "high", "CallSkills": "tax=900+ok=5+;rm+ok2=5\n"})
    assert isinstance(ev, CallerJoined)
    assert (ev.priority, ev.skills) == (0, (("ok", 5),))


@pytest.mark.parametrize(
    ("ami", "wanted"),
    [
        # What Asterisk's manager writes for these SIP display names (field test §4).
        ('Zhang \\\\\\"San\\\\\\" 张', 'Zhang "San" 张'),
        ("😀 O\\'Brien, \\\\\\\\ x", "😀 O'Brien, \\ x"),
        ("王小明（市民）", "王小明（市民）"),
    ],
)
def test_a_caller_name_escaped_by_asterisk_is_stored_as_the_caller_wrote_it(ami: str, wanted: str) -> None:
    assert caller_name(ami, "") == wanted


def test_the_whole_display_name_comes_from_the_carriers_from_header() -> None:
    # Asterisk cuts caller ID names at 79 bytes; the From header the dialplan passes is whole.
    name = "测" * 40
    header = f'"{name}" <sip:13800000000@127.0.0.2>;tag=abc'
    assert caller_name("测" * 26, b64(header)) == name


def test_a_display_name_longer_than_the_column_is_cut_to_fit() -> None:
    assert caller_name("", b64('"' + "A" * 1000 + '" <sip:1@x>')) == "A" * 128


@pytest.mark.parametrize(
    ("header", "name"),
    [('"Li \\"Hua\\"" <sip:1@h>', 'Li "Hua"'), ("Wang Wu <sip:1@h>", "Wang Wu"), ("<sip:1@h>", None),
     ("sip:1@h", None), ('"unclosed <sip:1@h>', None)],
)
def test_display_names_of_from_headers(header: str, name: str | None) -> None:
    assert display_name(header) == name


def test_an_unreadable_from_header_falls_back_to_the_caller_id_name() -> None:
    assert caller_name("李华", "%%% not base64") == "李华"


def test_control_characters_never_reach_a_caller_name() -> None:
    assert caller_name("a\\nb\\tc", "") == "abc"
    assert unescape_ami("a\\nb") == "a\nb"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"Agent": "agent1001", "Action": "pause", "Reason": "05"}, AgentControl("1001", Control.PAUSE, "05", True)),
     ({"Agent": "agent1002", "Action": "login", "Reason": ""}, AgentControl("1002", Control.LOGIN, "", True))],
)
def test_agent_feature_code_events(fields: dict[str, str], expected: AgentControl) -> None:
    assert decode({"Event": "UserEvent", "UserEvent": "HotlineAgent", **fields}) == expected


def test_the_hang_up_of_a_feature_code_call_ends_the_feature_call_not_a_caller() -> None:
    base = {"Event": "Hangup", "Channel": "PJSIP/agent1001-0000002a", "Linkedid": "1700000000.77"}
    assert decode({**base, "Context": "hotline-agent-feature", "Exten": "s"}) == FeatureCallEnded("1001")
    assert decode({**base, "Context": "hotline-connect", "Exten": "1001*15*3"}) == AgentHungUp("1700000000.77", "1001")
    # An agent leg that Dial created has the endpoint's context: it is the caller's conversation.
    assert decode({**base, "Context": "hotline-agents", "Exten": "s"}) == AgentHungUp("1700000000.77", "1001")


@pytest.mark.parametrize(("status", "reachable"), [
    ("Unreachable", False), ("Reachable", True), ("NonQualified", True), ("Created", True), ("Removed", True),
])
def test_contact_status_of_an_agents_phone_says_whether_it_answers(status: str, reachable: bool) -> None:
    # As Asterisk 22 sends it (res_pjsip: AOR, EndpointName, URI, ContactStatus, RoundtripUsec ...).
    msg = {"Event": "ContactStatus", "URI": "sip:agent1001@127.0.0.1:5091", "ContactStatus": status,
           "AOR": "agent1001", "EndpointName": "agent1001", "RoundtripUsec": "0"}
    assert decode(msg) == PhoneReach("1001", reachable)


@pytest.mark.parametrize("msg", [
    {"Event": "ContactStatus", "ContactStatus": "Unreachable", "AOR": "carrier", "EndpointName": "carrier"},
    {"Event": "ContactStatus", "ContactStatus": "Updated", "AOR": "agent1001"},
    {"Event": "ContactStatus", "ContactStatus": "Unknown", "AOR": "agent1001"},
    {"Event": "ContactStatus", "ContactStatus": "Unreachable", "AOR": "agent1001;evil"},
])
def test_contact_status_of_others_or_saying_nothing_new_is_ignored(msg: dict[str, str]) -> None:
    assert decode(msg) is None


@pytest.mark.parametrize(
    "fields",
    [{"Agent": "carrier", "Action": "login"}, {"Agent": "agent1001", "Action": "reboot"},
     {"Agent": "agent1001", "Action": "pause", "Reason": "x;System(rm)"},
     {"Agent": "agent1001", "Action": "pause", "Reason": "05\n"},  # field test defect 9
     {"Agent": "agent1001\n", "Action": "login"}],
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


def test_dial_events_carry_the_ring_attempt_from_the_callers_extension() -> None:
    fields = {"Linkedid": "17.1", "Channel": "PJSIP/carrier-01", "Context": "hotline-connect",
              "Exten": "1002*15*7", "DestChannel": "PJSIP/agent1002-0000000a"}
    assert decode({"Event": "DialBegin", **fields}) == DialStarted("17.1", "1002", 7)
    assert decode({"Event": "DialEnd", **fields, "DialStatus": "noanswer"}) == DialEnded("17.1", "1002", "NOANSWER", 7)
    ring_all = {**fields, "Exten": "all*15*8"}
    assert decode({"Event": "DialBegin", **ring_all}) == DialStarted("17.1", "1002", 8)


def test_a_dial_of_the_dialplan_fallback_carries_no_attempt() -> None:
    ev = decode({"Event": "DialBegin", "Linkedid": "1", "Context": "hotline-hold", "Exten": "main",
                 "DestChannel": "PJSIP/agent1001-0b"})
    assert ev == DialStarted("1", "1001", None)


def test_a_forward_to_the_carrier_is_not_a_ring() -> None:
    assert decode({"Event": "DialBegin", "Linkedid": "1", "DestChannel": "PJSIP/carrier-0c"}) is None


def test_hangup_parked_and_recording() -> None:
    assert decode({"Event": "Hangup", "Linkedid": "1", "Channel": "c"}) == CallerHungUp("1", "c")
    assert decode({"Event": "UserEvent", "UserEvent": "HotlineParked", "Linkedid": "1"}) == CallerParked("1")
    assert decode({"Event": "UserEvent", "UserEvent": "HotlineRecording", "Linkedid": "1", "File": "/r/1.wav"}) == (
        RecordingStarted("1", "/r/1.wav")
    )


def with_vars(base: dict[str, str], variables: dict[str, str]) -> AmiMessage:
    return AmiMessage((("Event", "Status"), *base.items(), *(("Variable", f"{k}={v}") for k, v in variables.items())))


def test_a_snapshot_pairs_callers_with_their_agent_legs_and_reads_back_what_the_channel_carries() -> None:
    caller = with_vars(
        {"Channel": "PJSIP/carrier-01", "Uniqueid": "1.1", "Linkedid": "1.1", "Context": "hotline-connect",
         "Exten": "1001*15*3", "Application": "Dial", "Seconds": "65", "BridgeID": "b1", "CallerIDNum": "138",
         "CallerIDName": "李华"},
        {"HOTLINE_QUEUE": "sales", "HOTLINE_OFFERED": "tax", "HOTLINE_PATH": "tax>sales", "HOTLINE_PRIORITY": "4",
         "HOTLINE_SKILLS": "tax=60", "HOTLINE_PRES": "prohib_passed_screen", "HOTLINE_JOINED_AT": "1000.5",
         "HOTLINE_ANSWERED_AT": "1030.25", "HOTLINE_AGENT": "1001"},
    )
    leg = AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/agent1001-0a", "Uniqueid": "1.2",
                            "Linkedid": "1.1", "Context": "hotline-agents", "BridgeID": "b1"}.items()))
    waiting = AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/carrier-02", "Uniqueid": "2.1",
                                "Linkedid": "2.1", "Context": "hotline-hold", "Exten": "main",
                                "Application": "Wait", "Seconds": "7"}.items()))
    other = AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/other-03", "Uniqueid": "3.1", "Linkedid": "3.1",
                              "Context": "default"}.items()))
    a, b, c = snapshot([caller, leg, waiting, other], wall=1100.5).callers
    assert (a.call_id, a.where, a.legs, a.age, a.caller_name, a.attempt) == (
        "1.1", Where.CONNECT, (AgentLeg("1001", True),), 65.0, "李华", 3)
    assert (a.queue, a.offered_queue, a.path, a.priority, a.skills, a.restricted) == (
        "sales", "tax", ("tax", "sales"), 4, (("tax", 60),), True)
    assert (a.joined_ago, a.answered_ago, a.answered_by) == (100.0, 70.25, "1001")
    assert (b.where, b.queue, b.legs, b.joined_ago) == (Where.HOLD, "main", (), None)
    assert c.where is Where.OTHER


@pytest.mark.parametrize(
    ("context", "exten", "app", "where", "reason"),
    [("hotline-hold", "main", "Dial", Where.FALLBACK, None),
     ("hotline-leave", "callback", "Playback", Where.LEAVING, LeaveReason.CALLBACK),
     ("hotline-external", "057112345", "Dial", Where.LEAVING, LeaveReason.FORWARD),
     ("hotline-inbound", "12345", "Ringing", Where.INBOUND, None)],
)
def test_where_a_caller_is_from_the_dialplan_position(context: str, exten: str, app: str, where: Where,
                                                       reason: LeaveReason | None) -> None:
    (call,) = snapshot([AmiMessage(tuple({"Event": "Status", "Channel": "PJSIP/carrier-9", "Uniqueid": "9",
                                          "Linkedid": "9", "Context": context, "Exten": exten,
                                          "Application": app}.items()))], wall=0).callers
    assert (call.where, call.leave_reason) == (where, reason)


def test_a_probe_says_where_the_caller_is_or_that_it_is_gone() -> None:
    row = AmiMessage(tuple({"Event": "Status", "Context": "hotline-connect", "Exten": "1001*15*4",
                            "Application": "Dial"}.items()))
    assert probed("c1", [row], 3) == Probed("c1", Where.CONNECT, 4, probe=3)
    assert probed("c1", []) == Probed("c1", None)
