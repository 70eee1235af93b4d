"""The contract between the engine and its dialplan (asterisk-conf/extensions.conf.in and
the blocks `cti/asterisk_conf.py` renders): context names, the extensions the engine
Redirects to, the channel variables both sides read and write, the UserEvents.

Change one side, change the other: tests/unit/test_dialplan_contract.py renders the
dialplan and checks that every name here appears in it.
"""

from __future__ import annotations

import re

from acd.events import Where
from acd.model import LeaveReason

# Contexts.
INBOUND = "hotline-inbound"  # the dialled number: sets the caller's variables, then HOLD
HOLD = "hotline-hold"  # <queue>: HotlineJoin, one Wait, then the shared wait loop
WAIT = "hotline-wait"  # s: the wait loop every queue shares (and the fallback Dial)
CONNECT = "hotline-connect"  # <agent>*<ring s>*<attempt> or all*<ring s>*<attempt>: Dial
LEAVE = "hotline-leave"  # <reason>: the time-out, overflow, closed or callback message
EXTERNAL = "hotline-external"  # <digits>: forward through the carrier trunk
DONE = "hotline-done"  # after an answered Dial: hang up
ANSWERED = "hotline-answered"  # Dial's U() on the agent leg at answer: record, mark the caller
ENDED = "hotline-ended"  # the caller's hangup handler: Asterisk's own account (CEL) of the call

# The engine Redirects to priority 2; priority 1 is a landing pad, because a Redirect that
# lands while a quick application runs can arrive one priority short (seen at 25 calls/s).
REDIRECT_PRIORITY = 2

# Channel variables on the caller's channel. The dialplan sets the first group at the
# dialled number; the engine keeps QUEUE, OFFERED and PATH current (TagCaller); the
# dialplan sets the rest as the call goes. A restarted engine reads them all back
# (Status with Variables), and the hangup handler writes them into CEL.
QUEUE = "HOTLINE_QUEUE"
OFFERED = "HOTLINE_OFFERED"
PATH = "HOTLINE_PATH"  # queues entered, joined by PATH_SEP
PRIORITY = "HOTLINE_PRIORITY"
SKILLS = "HOTLINE_SKILLS"  # name=level+name=level (no commas or semicolons in dialplan)
PRES = "HOTLINE_PRES"  # CALLERID(pres) as the call came in
FROM = "HOTLINE_FROM"  # the carrier's From header, base64: the whole display name
JOINED_AT = "HOTLINE_JOINED_AT"  # epoch seconds with milliseconds, when the caller joined
ANSWERED_AT = "HOTLINE_ANSWERED_AT"  # likewise, when an agent answered
AGENT = "HOTLINE_AGENT"  # the agent who answered
FALLBACK = "HOTLINE_FALLBACK"  # 1 once the dialplan's own fallback rang this caller
LEAVE_REASON = "HOTLINE_LEAVE"  # why the caller left the line (a LeaveReason value)
RECORDING = "HOTLINE_REC"
DIAL = "HOTLINE_DIAL"  # ring_all: PJSIP/agentA&PJSIP/agentB, set by the engine before the Redirect
ENGINE_SEEN = "HOTLINE_ENGINE_SEEN"  # global: the engine's heartbeat (epoch seconds)

SNAPSHOT_VARIABLES = (QUEUE, OFFERED, PATH, PRIORITY, SKILLS, PRES, FROM, JOINED_AT, ANSWERED_AT, AGENT,
                      FALLBACK, LEAVE_REASON)
PATH_SEP = ">"

# UserEvents the dialplan raises.
JOIN_EVENT = "HotlineJoin"
PARKED_EVENT = "HotlineParked"
RECORDING_EVENT = "HotlineRecording"
AGENT_EVENT = "HotlineAgent"

AGENT_DEVICE = re.compile(r"^PJSIP/agent(?P<id>[0-9]{2,12})$")
AGENT_CHANNEL = re.compile(r"^PJSIP/agent(?P<id>[0-9]{2,12})-[0-9a-f]+$")
AGENT_ENDPOINT_ID = re.compile(r"[0-9]{2,12}")  # an agent id (digits only: safe in dialplan)
RING_EXTEN = re.compile(r"^(?:[0-9]{2,12}|all)\*[0-9]{1,3}\*(?P<attempt>[0-9]{1,9})$")


def ring_target(agent_ids: tuple[str, ...], seconds: float, attempt: int) -> tuple[str, str | None]:
    """(extension in CONNECT, value for DIAL or None) for a ring of these agents."""
    secs = max(1, round(seconds))
    if len(agent_ids) == 1:
        return f"{agent_ids[0]}*{secs}*{attempt}", None
    return f"all*{secs}*{attempt}", "&".join(f"PJSIP/agent{a}" for a in agent_ids)


def leave_target(reason: LeaveReason, number: str = "") -> tuple[str, str]:
    """(context, extension) a caller leaving the line is Redirected to."""
    if reason is LeaveReason.FORWARD:
        return EXTERNAL, number
    return LEAVE, reason.value


def attempt_of(context: str, exten: str) -> int | None:
    """The engine's ring attempt a Dial belongs to (None: a Dial the engine did not ask for)."""
    if context != CONNECT:
        return None
    m = RING_EXTEN.match(exten)
    return int(m.group("attempt")) if m else None


def where(context: str, exten: str, application: str) -> Where:
    """Where a caller's channel is, from its dialplan position."""
    if context in (HOLD, WAIT):
        return Where.FALLBACK if application == "Dial" else Where.HOLD
    if context == CONNECT:
        return Where.CONNECT
    if context in (LEAVE, EXTERNAL):
        return Where.LEAVING
    if context in (DONE, ENDED):
        return Where.DONE
    if context == INBOUND:
        return Where.INBOUND
    return Where.OTHER


def leave_reason_of(context: str, exten: str, variable: str) -> LeaveReason | None:
    for text in (variable, exten if context == LEAVE else ""):
        try:
            return LeaveReason(text)
        except ValueError:
            continue
    return LeaveReason.FORWARD if context == EXTERNAL else None


def agent_of_channel(channel: str) -> str | None:
    m = AGENT_CHANNEL.match(channel)
    return m.group("id") if m else None
