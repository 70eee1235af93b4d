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
IVR = "hotline-ivr"  # s: after a number's IVR flow, its verdict (HOTLINE_IVR)
DONE = "hotline-done"  # after an answered Dial (the agent hung up first): the survey, or hang up
SURVEY = "hotline-survey"  # s: the satisfaction survey over FastAGI, then hang up
ANSWERED = "hotline-answered"  # Dial's U() on the agent leg at answer: record, mark the caller
ENDED = "hotline-ended"  # the caller's hangup handler: Asterisk's own account (CEL) of the call
CALLBACK = "hotline-callback"  # s: Originate'd on the agent's phone for a callback; `ended`: its hangup handler
CALLBACK_ANSWERED = "hotline-callback-answered"  # Dial's U() on the citizen's leg at answer: note it, record
# 三方通话 and transfers (cti/conference.py): a ConfBridge per call, named CONF_PREFIX + call id.
CONF = "hotline-conf"  # caller | agent (one Redirect with ExtraChannel), party (Originate), on, bye
CONF_DIAL = "hotline-conf-dial"  # <agent id>*<ring s>: the Local channel's other half rings a second agent

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
TALK_ENDED_AT = "HOTLINE_TALK_ENDED_AT"  # epoch seconds, when the agent hung up first (the survey began)
IVR_VERDICT = "HOTLINE_IVR"  # queue | hangup | transfer, set by the IVR flow
IVR_NUMBER = "HOTLINE_IVR_NUMBER"  # the outside number of a `transfer` verdict
LANGUAGE = "HOTLINE_LANG"  # zh | en: the language the caller chose in the IVR
RECORDING = "HOTLINE_REC"
DIAL = "HOTLINE_DIAL"  # ring_all: PJSIP/agentA&PJSIP/agentB, set by the engine before the Redirect
ENGINE_SEEN = "HOTLINE_ENGINE_SEEN"  # global: the engine's heartbeat (epoch seconds)
# Global: the wall time up to which an engine's live counters hold what it saw (epoch seconds,
# set with every heartbeat and once more as the engine lets go of the link). The next engine
# (or this one after a reconnect) counts only what happened after it: once, never twice.
COUNTED_UNTIL = "HOTLINE_COUNTED_UNTIL"
# Where a call from an agent's phone runs its feature code (*21...*25): its hang-up there ends
# a feature call, not a caller's. Not hotline-agents: that is the endpoint's context, which an
# agent leg that Dial created carries in its Hangup too.
FEATURE_CONTEXTS = frozenset({"hotline-agent-feature"})
# The position announcement the wait loop plays at its next pass (set on the caller's channel):
# prompt names joined by '&' (ivr/announce.py), played as hotline/<language>/<name>.
ANNOUNCE = "HOTLINE_ANNOUNCE"
# What the caller hears while waiting and ringing (set by the dialplan): MUSIC the music-on-hold
# class (empty: ringback), MUSIC_FOR the queue it was taken from; the global QUEUE_MUSIC_PREFIX +
# queue holds each queue's class, so that a caller the engine moves to another queue hears its music.
MUSIC = "HOTLINE_MUSIC"
MUSIC_FOR = "HOTLINE_MUSIC_FOR"
QUEUE_MUSIC_PREFIX = "HOTLINE_QUEUE_MUSIC_"
# A callback's agent leg, set by the engine's Originate (and HOTLINE_LANG, HOTLINE_QUEUE).
CALLBACK_ID = "HOTLINE_CALLBACK"  # the request id
CB_NUMBER = "HOTLINE_CB_NUMBER"  # the citizen's number (digits, validated at booking; FILTERed again)
CB_TIMEOUT = "HOTLINE_CB_TIMEOUT"  # seconds the citizen's phone rings
CB_CLI = "HOTLINE_CB_CLI"  # the number the citizen sees calling (digits; the hotline's)
CB_ANSWERED_AT = "HOTLINE_CB_ANSWERED_AT"  # epoch seconds with milliseconds, when the citizen answered
# A conference party's leg, set by the engine's Originate.
CONF_CALL = "HOTLINE_CONF_CALL"  # the call id whose conference the party joins
CONF_PARTY = "HOTLINE_CONF_PARTY"  # the party's id (its ChannelId): named in its HotlineConf events

SNAPSHOT_VARIABLES = (QUEUE, OFFERED, PATH, PRIORITY, SKILLS, PRES, FROM, JOINED_AT, ANSWERED_AT, AGENT,
                      FALLBACK, LEAVE_REASON, TALK_ENDED_AT)
PATH_SEP = ">"

# UserEvents the dialplan raises.
JOIN_EVENT = "HotlineJoin"
PARKED_EVENT = "HotlineParked"
RECORDING_EVENT = "HotlineRecording"
AGENT_EVENT = "HotlineAgent"
CALLBACK_EVENT = "HotlineCallback"  # Status: Dial's DIALSTATUS to the citizen, AnsweredAt: CB_ANSWERED_AT
CONF_EVENT = "HotlineConf"  # Call, Role (caller | agent | party), Party, Action (joined | left)

# The conference's extensions in CONF (the engine Redirects to REDIRECT_PRIORITY; Originate starts at 1).
CONF_CALLER, CONF_AGENT, CONF_PARTY_EXTEN, CONF_ON, CONF_BYE = "caller", "agent", "party", "on", "bye"
CONF_PREFIX = "hotline-"  # the ConfBridge's name: CONF_PREFIX + call id

# A callback attempt's call id, cb-<request id>-<attempt>: the ChannelId the engine gives the
# agent's leg, so its Uniqueid and the Linkedid of every channel and event of the attempt.
CALLBACK_PREFIX = "cb-"
CALLBACK_CALL_ID = re.compile(r"cb-[A-Za-z0-9._-]{1,64}-[0-9]{1,4}")
# OriginateResponse's Reason (Asterisk's old originate reasons, main/pbx.c pbx_dial_reason)
# as a Dial status: 1 hung up, 3 rang out, 5 busy, 8 congestion or refused; 0 failed before
# ringing (not registered, the call id in use, ...).
ORIGINATE_REASONS = {"1": "CANCEL", "3": "NOANSWER", "5": "BUSY", "8": "CONGESTION", "0": "CHANUNAVAIL"}

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
    if context == SURVEY:
        return Where.SURVEY
    if context in (DONE, ENDED):
        return Where.DONE
    if context == CONF:
        # In the call's conference: with the answering agent (`caller`), or after that agent left
        # (`on`: the agent's talk is over, as in the survey; the caller talks on with the others).
        return Where.SURVEY if exten == CONF_ON else Where.CONNECT
    if context in (INBOUND, IVR):
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


def agent_of_device(device: str) -> str | None:
    """The agent of a device (PJSIP/agent1001): what an Originate that made no channel names."""
    m = AGENT_DEVICE.match(device)
    return m.group("id") if m else None


def callback_call_id(request_id: str, attempt: int) -> str:
    return f"{request_id}-{attempt}"


def is_callback_call(call_id: str) -> bool:
    return CALLBACK_CALL_ID.fullmatch(call_id) is not None


def callback_request_of(call_id: str) -> str:
    """The request id of a callback attempt's call id."""
    return call_id.rsplit("-", 1)[0]


def originate_status(reason: str) -> str:
    return ORIGINATE_REASONS.get(reason.strip(), "NOANSWER")


def conference_name(call_id: str) -> str:
    return CONF_PREFIX + call_id
