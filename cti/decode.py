"""AMI messages -> typed ACD events. Unknown or foreign events decode to None.

Field names follow what Asterisk 22 really sends; the dialplan side of the contract
(contexts, variables, UserEvents) is in cti/dialplan.py. Everything here is bad input
until proven otherwise: a missing field raises DecodeError with the event and field
named; a junk priority or skill is logged and ignored, never costing the caller.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping

import structlog

from acd.agents import Control
from acd.events import (
    AgentControl,
    AgentHungUp,
    AgentLeg,
    CallbackAgentAnswered,
    CallbackAgentMissed,
    CallbackDialed,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    ChannelsSnapshot,
    DeviceChanged,
    DialEnded,
    DialStarted,
    Event,
    FeatureCallEnded,
    PhoneReach,
    Probed,
    RecordingStarted,
    SnapshotCall,
    Where,
)
from cti import dialplan
from cti.ami_frame import AmiMessage

# Device states that mean "no phone there" and "that phone is busy".
ABSENT = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN"})
IN_USE = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
NAME_MAX = 128  # the store's caller_name column; a display name is cut to fit, and logged
REASON = re.compile(r"[A-Za-z0-9_ -]{0,32}")  # used with fullmatch: "05\n" is not a reason
SKILL = re.compile(r"(?P<name>[a-z][a-z0-9_]{0,31})=(?P<level>[0-9]{1,3})")

log = structlog.get_logger("hotline.decode")


class DecodeError(ValueError):
    """An event of ours arrived without a field we need, or with one we cannot accept."""


Fields = Mapping[str, str]


def _need(msg: Fields, key: str) -> str:
    value = msg.get(key)
    if not value:
        raise DecodeError(f"{msg.get('Event', '?')} event without {key}")
    return str(value)


def device_event(msg: Fields) -> DeviceChanged | None:
    m = dialplan.AGENT_DEVICE.match(str(msg.get("Device", "")))
    if not m:
        return None
    state = str(msg.get("State", "")).upper()
    return DeviceChanged(m.group("id"), registered=state not in ABSENT, busy=state in IN_USE)


def decode(msg: Fields) -> Event | None:
    name = msg.get("Event")
    if name == "UserEvent":
        kind = msg.get("UserEvent")
        if kind == dialplan.JOIN_EVENT:
            call_id = _need(msg, "Linkedid")
            return CallerJoined(
                call_id=call_id,
                channel=_need(msg, "Channel"),
                queue=_need(msg, "Queue"),
                caller_num=caller_number(msg.get("CallerIDNum", "")),
                caller_name=caller_name(msg.get("CallerIDName", ""), msg.get("From", ""), call_id),
                restricted=restricted(msg.get("Pres", "")),
                # Not "Priority": every channel event already has that header (the dialplan priority).
                priority=_priority(msg.get("CallPriority")),
                skills=_skills(msg.get("CallSkills")),
            )
        if kind == dialplan.AGENT_EVENT:
            return _agent_control(msg)
        if kind == dialplan.PARKED_EVENT:
            return CallerParked(_need(msg, "Linkedid"))
        if kind == dialplan.RECORDING_EVENT:
            return RecordingStarted(_need(msg, "Linkedid"), _need(msg, "File"))
        if kind == dialplan.CALLBACK_EVENT:
            return _callback_dialed(msg)
        return None
    if name == "OriginateResponse":
        return _originate_response(msg)
    if name == "Hangup":
        channel = _need(msg, "Channel")
        agent = dialplan.agent_of_channel(channel)
        if agent is not None and msg.get("Context") in dialplan.FEATURE_CONTEXTS:
            return FeatureCallEnded(agent)
        if agent is not None:
            return AgentHungUp(_need(msg, "Linkedid"), agent)
        return CallerHungUp(_need(msg, "Linkedid"), channel)
    if name in ("DialBegin", "DialEnd"):
        agent = dialplan.agent_of_channel(str(msg.get("DestChannel", "")))
        if agent is None:
            return None  # a forward to the carrier, or a callback's call to the citizen
        if not msg.get("Linkedid") and dialplan.is_callback_call(str(msg.get("DestLinkedid", ""))):
            return None  # a callback's Originate ringing its agent (no caller): OriginateResponse says how it went
        attempt = dialplan.attempt_of(str(msg.get("Context", "")), str(msg.get("Exten", "")))
        if name == "DialBegin":
            return DialStarted(_need(msg, "Linkedid"), agent, attempt)
        return DialEnded(_need(msg, "Linkedid"), agent, str(msg.get("DialStatus", "")).upper(), attempt)
    if name == "Newstate":
        return _agent_up(msg)
    if name == "DeviceStateChange":
        return device_event(msg)
    if name == "ContactStatus":
        return _contact_status(msg)
    return None


# What a ContactStatus says of the phone's reachability (qualify): Unreachable takes it out of
# routing; Reachable, a new registration (Asterisk 22 reports it NonQualified until the first
# ping: with qualify 0 the only status there is; older versions said Created) or its end
# (Removed: the registration decides from then on) clear that. Unknown and Updated say nothing.
CONTACT_REACH = {"Unreachable": False, "Reachable": True, "NonQualified": True, "Created": True, "Removed": True}


def _contact_status(msg: Fields) -> PhoneReach | None:
    m = AGENT_ENDPOINT.fullmatch(str(msg.get("AOR", "") or msg.get("EndpointName", "")))
    reach = CONTACT_REACH.get(str(msg.get("ContactStatus", "")))
    if m is None or reach is None:
        return None  # the carrier's AOR, or a status that changes nothing
    return PhoneReach(m.group("id"), reach)


# -- callbacks ------------------------------------------------------------------------


STATUS = re.compile(r"[A-Z]{0,16}")


def _originate_response(msg: Fields) -> Event | None:
    """The verdict on a callback's Originate to an agent. The engine gave the agent's leg the
    call id as its ChannelId, which Asterisk reports as Uniqueid even when it made no channel."""
    call_id = str(msg.get("Uniqueid", ""))
    if not dialplan.is_callback_call(call_id):
        return None  # not an Originate of ours
    channel = str(msg.get("Channel", ""))
    agent = dialplan.agent_of_channel(channel) or dialplan.agent_of_device(channel)
    if agent is None:
        raise DecodeError(f"OriginateResponse for {call_id} names no agent's channel: {channel[:40]!r}")
    if msg.get("Response") == "Success":
        return CallbackAgentAnswered(call_id, agent)
    return CallbackAgentMissed(call_id, agent, dialplan.originate_status(str(msg.get("Reason", ""))))


def _callback_dialed(msg: Fields) -> CallbackDialed:
    call_id = _need(msg, "Linkedid")
    if not dialplan.is_callback_call(call_id):
        raise DecodeError(f"HotlineCallback event on a call that is not a callback: {call_id[:80]!r}")
    status = str(msg.get("Status", "") or "").strip().upper()
    if not STATUS.fullmatch(status):
        log.warning("ami_bad_dial_status", call_id=call_id, value=status[:40], hint="read as an unknown status")
        status = "UNKNOWN"
    answered: float | None = None
    text = str(msg.get("AnsweredAt", "") or "").strip()
    if text:
        try:
            answered = float(text)
        except ValueError:
            log.warning("ami_bad_answer_time", call_id=call_id, value=text[:40])
    return CallbackDialed(call_id, status, answered)


def callback_leg(ch: AmiMessage, agent: str, wall: float) -> SnapshotCall:
    """A callback's agent leg in Asterisk's Status listing (the engine Originated it: its
    Uniqueid is the call id): ringing the agent, or answered (Up)."""
    v = ch.variables()
    call_id = ch.get("Linkedid", "")
    up = ch.get("ChannelStateDesc", "") == "Up" or ch.get("ChannelState", "") == "6"
    return SnapshotCall(
        call_id=call_id,
        channel=ch.get("Channel", ""),
        where=Where.CONNECT,
        age=_seconds(ch.get("Seconds", "0")),
        queue=v.get(dialplan.QUEUE, ""),
        legs=(AgentLeg(agent, up),),
        answered_ago=_ago(v.get(dialplan.ANSWERED_AT, ""), wall) if up else None,
        answered_by=agent if up else None,
        callback=dialplan.callback_request_of(call_id),
    )


def _agent_up(msg: Fields) -> DialEnded | None:
    """An agent's phone picked up a ring of ours: the answer, at the moment it happens.

    Dial's own DialEnd ANSWER comes only after the job number announcement (its A() option)
    has been played, seconds later; the wait and the 15-second rate must end at the pick-up.
    The agent leg inherits the caller's ring extension, which carries the attempt; legs
    without it (the fallback's Dial, an agent's own call, a callback) are left to their events.
    The later DialEnd ANSWER of the same ring is then a repeat the core ignores."""
    if str(msg.get("ChannelState", "")) != "6":
        return None
    agent = dialplan.agent_of_channel(str(msg.get("Channel", "")))
    m = dialplan.RING_EXTEN.match(str(msg.get("Exten", "")))
    if agent is None or m is None:
        return None
    return DialEnded(_need(msg, "Linkedid"), agent, "ANSWER", int(m.group("attempt")))


# -- caller identity: bad input from the carrier ------------------------------------


def unescape_ami(text: str) -> str:
    """Asterisk escapes caller ID in manager events C-style (\\\\, \\", \\', \\n, ...)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append({"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}.get(nxt, nxt))
    return "".join(out)


def _unquote_sip(text: str) -> str:
    """A SIP quoted-string's quoted-pairs (\\" and \\\\), which PJSIP passes on as they are."""
    return re.sub(r"\\(.)", r"\1", text)


def display_name(from_header: str) -> str | None:
    """The display name of a SIP From header value, or None if there is none."""
    text = from_header.strip()
    if text.startswith('"'):
        m = re.match(r'"((?:[^"\\]|\\.)*)"', text)
        return _unquote_sip(m.group(1)) if m else None
    head, sep, _ = text.partition("<")
    return head.strip() or None if sep else None


def caller_name(ami_name: str, from_b64: str, call_id: str = "") -> str:
    """The caller's display name: whole from the carrier's From header when the dialplan
    passed it (Asterisk itself cuts caller ID names at 79 bytes), else from the event,
    unescaped. Cut to the store's column, saying so in the log."""
    name: str | None = None
    if from_b64:
        try:
            header = base64.b64decode(from_b64, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            log.info("caller_from_unreadable", call_id=call_id, hint="the display name comes from caller ID")
        else:
            name = display_name(header)
    if name is None:
        name = _unquote_sip(unescape_ami(ami_name))
    name = "".join(ch for ch in name if ch.isprintable())
    if name == "<unknown>":
        return ""
    if len(name) > NAME_MAX:
        log.info("caller_name_cut", call_id=call_id, length=len(name), kept=NAME_MAX)
        name = name[:NAME_MAX]
    return name


def caller_number(value: str) -> str:
    """Asterisk writes '<unknown>' for an absent caller id. A number is never cut: one the
    store cannot hold is quarantined with its record, where an operator sees it."""
    text = unescape_ami(str(value or ""))
    return "" if text == "<unknown>" else "".join(ch for ch in text if ch.isprintable())


def restricted(pres: str) -> bool:
    text = str(pres or "").lower()
    return text.startswith("prohib") or text == "unavailable"


# -- agents' requests -----------------------------------------------------------------


AGENT_ENDPOINT = re.compile(r"agent(?P<id>[0-9]{2,12})")


def _agent_control(msg: Fields) -> AgentControl:
    m = AGENT_ENDPOINT.fullmatch(str(msg.get("Agent", "")))
    if not m:
        raise DecodeError(f"HotlineAgent event from an endpoint that is not an agent: {msg.get('Agent')!r}")
    try:
        action = Control(str(msg.get("Action", "")))
    except ValueError:
        raise DecodeError(f"HotlineAgent event with unknown action {msg.get('Action')!r}") from None
    reason = str(msg.get("Reason", "") or "")
    if not REASON.fullmatch(reason):
        raise DecodeError(f"HotlineAgent pause reason {reason[:40]!r} is not a short code")
    return AgentControl(m.group("id"), action, reason, by_phone=True)


def _priority(value: object) -> int:
    """0-9; anything else is logged and read as 0: a caller is never dropped for it."""
    text = str(value or "0")
    if not text.isdigit() or int(text) > 9:
        log.warning("ami_bad_priority", value=text[:40], hint="expected 0-9; the caller joins with priority 0")
        return 0
    return int(text)


def _skills(value: object) -> tuple[tuple[str, int], ...]:
    """'mandarin=50+tax=30' (the dialplan cannot carry commas or semicolons)."""
    out = []
    for part in filter(None, str(value or "").split("+")):
        m = SKILL.fullmatch(part)
        if not m or not 1 <= int(m.group("level")) <= 100:
            log.warning("ami_bad_skill", value=part[:40], hint="expected name=level (1-100); skill ignored")
            continue
        out.append((m.group("name"), int(m.group("level"))))
    return tuple(out)


# -- snapshots (Status with Variables) --------------------------------------------------


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _ago(epoch: str, wall: float) -> float | None:
    try:
        return max(0.0, wall - float(epoch)) if epoch else None
    except ValueError:
        return None


def snapshot_call(ch: AmiMessage, legs: tuple[AgentLeg, ...], wall: float) -> SnapshotCall:
    v = ch.variables()
    context, exten = ch.get("Context", ""), ch.get("Exten", "")
    call_id = ch.get("Linkedid", "")
    path = tuple(p for p in v.get(dialplan.PATH, "").split(dialplan.PATH_SEP) if p)
    agent = v.get(dialplan.AGENT, "")
    return SnapshotCall(
        call_id=call_id,
        channel=ch.get("Channel", ""),
        where=dialplan.where(context, exten, ch.get("Application", "")),
        age=_seconds(ch.get("Seconds", "0")),
        queue=v.get(dialplan.QUEUE, exten if context == dialplan.HOLD else ""),
        offered_queue=v.get(dialplan.OFFERED, ""),
        path=path,
        caller_num=caller_number(ch.get("CallerIDNum", "")),
        caller_name=caller_name(ch.get("CallerIDName", ""), v.get(dialplan.FROM, ""), call_id),
        restricted=restricted(v.get(dialplan.PRES, "")),
        priority=_priority(v.get(dialplan.PRIORITY) or "0"),
        skills=_skills(v.get(dialplan.SKILLS)),
        attempt=dialplan.attempt_of(context, exten),
        legs=legs,
        joined_ago=_ago(v.get(dialplan.JOINED_AT, ""), wall),
        answered_ago=_ago(v.get(dialplan.ANSWERED_AT, ""), wall),
        answered_by=agent if dialplan.AGENT_ENDPOINT_ID.fullmatch(agent) else None,
        talk_ended_ago=_ago(v.get(dialplan.TALK_ENDED_AT, ""), wall),
        leave_reason=dialplan.leave_reason_of(context, exten, v.get(dialplan.LEAVE_REASON, "")),
        fallback=v.get(dialplan.FALLBACK, "") == "1",
    )


def snapshot(rows: Iterable[AmiMessage], wall: float) -> ChannelsSnapshot:
    """The callers in a Status listing, each with the agent legs that share its Linkedid."""
    rows = list(rows)
    legs: dict[str, list[AgentLeg]] = {}
    for ch in rows:
        agent = dialplan.agent_of_channel(ch.get("Channel", ""))
        if agent is not None:
            # Up is answered even before it is bridged: the job number plays to both sides first.
            answered = bool(ch.get("BridgeID")) or str(ch.get("ChannelState", "")) == "6"
            legs.setdefault(ch.get("Linkedid", ""), []).append(AgentLeg(agent, answered))
    callers = []
    for ch in rows:
        linkedid = ch.get("Linkedid", "")
        if not linkedid or ch.get("Uniqueid") != linkedid:
            continue
        agent = dialplan.agent_of_channel(ch.get("Channel", ""))
        if agent is not None:
            if dialplan.is_callback_call(linkedid):
                callers.append(callback_leg(ch, agent, wall))  # a callback: the agent's leg is the call
            continue
        callers.append(snapshot_call(ch, tuple(legs.get(linkedid, ())), wall))
    return ChannelsSnapshot(tuple(callers))


def probed(call_id: str, rows: list[AmiMessage], probe: int | None = None) -> Probed:
    """Asterisk's Status of one caller's channel -> where that caller is (`probe`: the
    question this answers)."""
    for ch in rows:
        context, exten = ch.get("Context", ""), ch.get("Exten", "")
        return Probed(call_id, dialplan.where(context, exten, ch.get("Application", "")),
                      dialplan.attempt_of(context, exten), probe)
    return Probed(call_id, None, probe=probe)
