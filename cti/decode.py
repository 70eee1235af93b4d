"""AMI messages -> typed ACD events. Unknown or foreign events decode to None.

Field names follow what Asterisk 22 really sends (see asterisk-conf/extensions.conf
for the UserEvents our dialplan raises).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import structlog

from acd.events import (
    AgentControl,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    DialStarted,
    Event,
    RecordingStarted,
    SnapshotChannel,
)

AGENT_DEVICE = re.compile(r"^PJSIP/agent(?P<id>[0-9]{2,12})$")
AGENT_CHANNEL = re.compile(r"^PJSIP/agent(?P<id>[0-9]{2,12})-[0-9a-f]+$")
# Contexts a caller sits in while the engine owns them (see extensions.conf).
CALLER_CONTEXTS = frozenset({"hotline-inbound", "hotline-hold", "hotline-connect"})
# Device states that mean "a phone is there" and "that phone is busy".
ABSENT = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN"})
BUSY = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})


log = structlog.get_logger("hotline.decode")


class DecodeError(ValueError):
    """An event of ours arrived without a field we need."""


Fields = Mapping[str, str]


def _need(msg: Fields, key: str) -> str:
    value = msg.get(key)
    if not value:
        raise DecodeError(f"{msg.get('Event', '?')} event without {key}")
    return str(value)


def agent_of_channel(channel: str) -> str | None:
    m = AGENT_CHANNEL.match(channel)
    return m.group("id") if m else None


def device_event(msg: Fields) -> DeviceChanged | None:
    m = AGENT_DEVICE.match(str(msg.get("Device", "")))
    if not m:
        return None
    state = str(msg.get("State", "")).upper()
    return DeviceChanged(m.group("id"), registered=state not in ABSENT, busy=state in BUSY)


def decode(msg: Fields) -> Event | None:
    name = msg.get("Event")
    if name == "UserEvent":
        kind = msg.get("UserEvent")
        if kind == "HotlineJoin":
            pres = str(msg.get("Pres", "")).lower()
            return CallerJoined(
                call_id=_need(msg, "Linkedid"),
                channel=_need(msg, "Channel"),
                queue=_need(msg, "Queue"),
                caller_num=_clean(msg.get("CallerIDNum", "")),
                caller_name=_clean(msg.get("CallerIDName", "")),
                restricted=pres.startswith("prohib") or pres == "unavailable",
                # Not "Priority": every channel event already has that header (the dialplan priority).
                priority=_priority(msg.get("CallPriority")),
                skills=_skills(msg.get("CallSkills")),
            )
        if kind == "HotlineAgent":
            return _agent_control(msg)
        if kind == "HotlineParked":
            return CallerParked(_need(msg, "Linkedid"))
        if kind == "HotlineRecording":
            return RecordingStarted(_need(msg, "Linkedid"), _need(msg, "File"))
        return None
    if name == "Hangup":
        return CallerHungUp(_need(msg, "Linkedid"), _need(msg, "Channel"))
    if name == "DialBegin":
        agent = agent_of_channel(str(msg.get("DestChannel", "")))
        return DialStarted(_need(msg, "Linkedid"), agent) if agent else None
    if name == "DialEnd":
        agent = agent_of_channel(str(msg.get("DestChannel", "")))
        if agent is None:
            return None
        return DialEnded(_need(msg, "Linkedid"), agent, str(msg.get("DialStatus", "")).upper())
    if name == "DeviceStateChange":
        return device_event(msg)
    return None


AGENT_ENDPOINT = re.compile(r"^agent(?P<id>[0-9]{2,12})$")
AGENT_ACTIONS = frozenset({"login", "logout", "pause", "unpause", "end_wrapup"})
REASON = re.compile(r"^[A-Za-z0-9_ -]{0,32}$")


def _agent_control(msg: Fields) -> AgentControl:
    m = AGENT_ENDPOINT.match(str(msg.get("Agent", "")))
    if not m:
        raise DecodeError(f"HotlineAgent event from an endpoint that is not an agent: {msg.get('Agent')!r}")
    action = str(msg.get("Action", ""))
    if action not in AGENT_ACTIONS:
        raise DecodeError(f"HotlineAgent event with unknown action {action!r}")
    reason = str(msg.get("Reason", "") or "")
    if not REASON.match(reason):
        raise DecodeError(f"HotlineAgent pause reason {reason!r} is not a short code")
    return AgentControl(m.group("id"), action, reason)


def _priority(value: object) -> int:
    """0-9; anything else is logged and read as 0: a caller is never dropped for it."""
    text = str(value or "0")
    if not text.isdigit() or int(text) > 9:
        log.warning("ami_bad_priority", value=text[:40], hint="expected 0-9; the caller joins with priority 0")
        return 0
    return int(text)


SKILL = re.compile(r"^(?P<name>[a-z][a-z0-9_]{0,31})=(?P<level>[0-9]{1,3})$")


def _skills(value: object) -> tuple[tuple[str, int], ...]:
    """'mandarin=50+tax=30' (the dialplan cannot carry commas or semicolons)."""
    out = []
    for part in filter(None, str(value or "").split("+")):
        m = SKILL.match(part)
        if not m or not 1 <= int(m.group("level")) <= 100:
            log.warning("ami_bad_skill", value=part[:40], hint="expected name=level (1-100); skill ignored")
            continue
        out.append((m.group("name"), int(m.group("level"))))
    return tuple(out)


def _clean(value: object) -> str:
    """Asterisk writes '<unknown>' for an absent caller id."""
    text = str(value or "")
    return "" if text == "<unknown>" else text


def _duration(text: str) -> float:
    try:
        h, m, s = (int(p) for p in text.split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + s)


def snapshot_callers(channels: Iterable[Fields], default_queue: str) -> tuple[SnapshotChannel, ...]:
    """Callers in our contexts, with the agent leg that shares their Linkedid if any."""
    rows = list(channels)
    legs: dict[str, tuple[str, bool]] = {}
    for ch in rows:
        agent = agent_of_channel(str(ch.get("Channel", "")))
        if agent:
            linkedid = str(ch.get("Linkedid", ""))
            bridged = bool(ch.get("BridgeId"))
            if linkedid not in legs or (bridged and not legs[linkedid][1]):  # the answered leg wins
                legs[linkedid] = (agent, bridged)
    out = []
    for ch in rows:
        linkedid = str(ch.get("Linkedid", ""))
        if not linkedid or ch.get("Uniqueid") != linkedid or ch.get("Context") not in CALLER_CONTEXTS:
            continue
        agent_id, bridged = legs.get(linkedid, (None, False))
        queue = str(ch.get("Exten")) if ch.get("Context") == "hotline-hold" else default_queue
        out.append(
            SnapshotChannel(
                call_id=linkedid,
                channel=str(ch.get("Channel")),
                queue=queue,
                age=_duration(str(ch.get("Duration", "0:0:0"))),
                caller_num=_clean(ch.get("CallerIDNum", "")),
                caller_name=_clean(ch.get("CallerIDName", "")),
                agent_id=agent_id,
                bridged=bridged or bool(ch.get("BridgeId")),
            )
        )
    return tuple(out)
