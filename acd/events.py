"""Typed events that `decide` understands. The shell decodes AMI into these."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from acd.agents import Control, Presence
from acd.calendar import Calendar
from acd.model import LeaveReason, QueueSettings


@dataclass(frozen=True)
class CallerJoined:
    call_id: str
    channel: str
    queue: str
    caller_num: str = ""
    caller_name: str = ""
    restricted: bool = False
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()  # needed on top of the queue's own


@dataclass(frozen=True)
class CallerParked:
    """The dialplan walked the caller back to the hold loop after a ring: safe to Redirect."""

    call_id: str


@dataclass(frozen=True)
class CallerHungUp:
    call_id: str
    channel: str


@dataclass(frozen=True)
class AgentHungUp:
    """An agent's leg of this call hung up (the caller's own channel may stay: the survey)."""

    call_id: str
    agent_id: str


@dataclass(frozen=True)
class SurveyStarted:
    """The caller reached the satisfaction survey (the IVR says so before the first prompt)."""

    call_id: str


@dataclass(frozen=True)
class SurveyRated:
    """The survey's answer: the key pressed, or None for no rating (no key, a hang-up)."""

    call_id: str
    rating: int | None


@dataclass(frozen=True)
class PartyNoted:
    """Someone joined or left the call's conversation (三方通话, a transfer: cti/conference.py).
    Kept on the call so that its one record says who was on it when. `at` is the wall clock."""

    call_id: str
    at: float
    kind: str  # dialing | joined | failed | left
    party: str  # "caller", "agent:<id>" or "number:<digits>"
    detail: str = ""


@dataclass(frozen=True)
class DialStarted:
    """Asterisk began dialling an agent for this caller. `attempt` is the engine's ring
    attempt the Dial belongs to (carried in the dialplan extension); None for a Dial the
    engine did not ask for (the dialplan's fallback)."""

    call_id: str
    agent_id: str
    attempt: int | None = None


@dataclass(frozen=True)
class DialEnded:
    """Asterisk's Dial from the caller to an agent finished with `status`."""

    call_id: str
    agent_id: str
    status: str  # ANSWER, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL, ...
    attempt: int | None = None


@dataclass(frozen=True)
class RecordingStarted:
    call_id: str
    path: str


@dataclass(frozen=True)
class DeviceChanged:
    agent_id: str
    registered: bool
    busy: bool


@dataclass(frozen=True)
class RingFailed:
    """The Redirect (or Setvar) that should ring an agent failed. `sure`: Asterisk refused
    it, so the caller did not move; otherwise (a time-out, the link dropped) it may or may
    not have happened."""

    call_id: str
    attempt: int
    sure: bool = True


@dataclass(frozen=True)
class LeaveFailed:
    """The Redirect that should take a caller out of line failed (`sure` as for RingFailed)."""

    call_id: str
    sure: bool = True


class Where(StrEnum):
    """Where Asterisk has a caller's channel (from its context and application)."""

    INBOUND = "inbound"  # before the queue (greeting, IVR): not ours yet
    HOLD = "hold"  # the hold loop: waiting for an agent
    CONNECT = "connect"  # ringing or talking to an agent we asked for
    FALLBACK = "fallback"  # the hold loop's own fallback Dial to every agent
    LEAVING = "leaving"  # a time-out, overflow, closed or callback message, or a forward
    DONE = "done"  # the conversation is over, the channel is hanging up
    SURVEY = "survey"  # the agent hung up first; the caller is in the satisfaction survey
    OTHER = "other"


@dataclass(frozen=True)
class Probed:
    """Asterisk's answer to "where is this caller now?" (None: no such channel any more)."""

    call_id: str
    where: Where | None
    attempt: int | None = None  # the ring attempt in the extension, when in CONNECT
    probe: int | None = None  # the ProbeCall this answers (None: taken as the latest)


@dataclass(frozen=True)
class Tick:
    """A deadline the core asked for (`next_deadline`) has come."""


@dataclass(frozen=True)
class LinkLost:
    """The AMI connection dropped: stop routing until the picture is rebuilt."""


@dataclass(frozen=True)
class AgentLeg:
    agent_id: str
    bridged: bool  # answered and talking (in a bridge)


@dataclass(frozen=True)
class SnapshotCall:
    """One caller's channel in Asterisk's snapshot, with what the dialplan and the engine
    stored on it (channel variables), so that a restarted engine loses nothing."""

    call_id: str
    channel: str
    where: Where
    age: float  # seconds since the caller's channel was created
    queue: str = ""
    offered_queue: str = ""
    path: tuple[str, ...] = ()
    caller_num: str = ""
    caller_name: str = ""
    restricted: bool = False
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()
    attempt: int | None = None  # the ring attempt in the extension (hotline-connect)
    legs: tuple[AgentLeg, ...] = ()
    joined_ago: float | None = None  # seconds since it joined the queue, if the dialplan says
    answered_ago: float | None = None  # seconds since an agent answered, if the dialplan says
    answered_by: str | None = None  # the agent who answered, if the dialplan says
    talk_ended_ago: float | None = None  # seconds since the agent hung up first (the survey)
    leave_reason: LeaveReason | None = None
    fallback: bool = False  # the dialplan's fallback rang (or connected) this caller
    # A callback's agent leg (Originate'd by the engine): the request id. `legs` then has the
    # agent, bridged once they answered; `channel` is the agent's own channel.
    callback: str = ""


@dataclass(frozen=True)
class ChannelsSnapshot:
    """Asterisk's callers at one instant, delivered in the order of the AMI stream: every
    event before it is older, and the events after it are applied on top."""

    callers: tuple[SnapshotCall, ...] = ()


@dataclass(frozen=True)
class DevicesSnapshot:
    """Asterisk's agent phones at one instant, in stream order like ChannelsSnapshot."""

    devices: tuple[DeviceChanged, ...] = ()


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    queues: frozenset[str]
    skills: tuple[tuple[str, int], ...] = ()
    wrapup: float | None = None


@dataclass(frozen=True)
class AgentsConfigured:
    """The configured agents (at start and on reload). Without profiles every agent
    serves every queue with no skills."""

    agent_ids: frozenset[str]
    profiles: tuple[AgentProfile, ...] = ()


@dataclass(frozen=True)
class QueuesConfigured:
    """The configured queues (at start and on reload); callers keep their place."""

    queues: tuple[QueueSettings, ...]
    calendar: Calendar | None = None


@dataclass(frozen=True)
class History:
    """Who last answered whom, read from the store at start: (caller number, agent, ended wall time)."""

    answered: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class AgentControl:
    """An agent's own request, from a softphone feature code or the HTTP API."""

    agent_id: str
    action: Control
    reason: str = ""
    # Dialled on the phone: the call that carries the code is not a caller's (Agent.feature_call).
    by_phone: bool = False


@dataclass(frozen=True)
class FeatureCallEnded:
    """The agent's feature-code call hung up."""

    agent_id: str


@dataclass(frozen=True)
class PhoneReach:
    """Asterisk's qualify (OPTIONS) verdict on an agent's registered phone: `reachable` False
    when it stopped answering, True when it answers again, registers anew or unregisters."""

    agent_id: str
    reachable: bool


@dataclass(frozen=True)
class SavedAgent:
    """What the engine keeps of an agent across a restart (cti/agent_file.py). Times are the
    wall clock: the monotonic clock of the engine that wrote them means nothing to the next."""

    agent_id: str
    presence: Presence
    pause_reason: str | None = None
    calls_taken: int = 0
    talk_total: float = 0.0
    no_answer_streak: int = 0
    idle_since: float = 0.0  # wall clock; 0: unknown
    wrap_until: float = 0.0  # wall clock; 0: not in wrap-up
    unreachable: bool = False


@dataclass(frozen=True)
class AgentsRestored:
    """The agents as the engine before this process left them, read once at start-up, before
    the first resync reconciles them with what Asterisk reports (phones, calls)."""

    agents: tuple[SavedAgent, ...]
    written: float = 0.0  # wall clock; the day's tallies of another (local) day are not taken


# -- callbacks (virtual hold): a citizen who asked to be called back keeps their place ------


@dataclass(frozen=True)
class CallbackQueued:
    """A booked callback's turn may come: it takes its place in the queue's line as if the
    citizen had waited there since their own call arrived (`waited` seconds ago). It was
    counted as offered when it was booked: never again. `call_id` names this attempt
    ("cb-<request>-<attempt>"); a call id the core already holds is ignored."""

    call_id: str
    request_id: str
    queue: str
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()
    arrived_wall: float = 0.0  # the citizen's own call arrived (epoch seconds): the place in line
    waited: float = 0.0  # seconds since then
    caller_num: str = ""  # the number to call (for logs and sticky routing; masked if restricted)
    restricted: bool = False


@dataclass(frozen=True)
class CallbackAgentAnswered:
    """The agent the engine rang for a callback (AMI Originate) answered: the dialplan now
    calls the citizen from the agent's phone (OriginateResponse Success)."""

    call_id: str
    agent_id: str


@dataclass(frozen=True)
class CallbackAgentMissed:
    """The agent rung for a callback did not take it (OriginateResponse Failure): `status`
    as a Dial's (NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL)."""

    call_id: str
    agent_id: str
    status: str


@dataclass(frozen=True)
class CallbackDialed:
    """How the call to the citizen went (UserEvent HotlineCallback from the agent leg's
    hangup handler): Dial's status (ANSWER, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL;
    "" if the agent hung up before the citizen was dialled), and when the citizen answered."""

    call_id: str
    status: str
    answered_at: float | None = None  # epoch seconds


@dataclass(frozen=True)
class CallbackCancelled:
    """The request was cancelled: a callback still waiting in line leaves it (one already
    ringing an agent or talking runs to its end)."""

    call_id: str


Event = (
    CallerJoined
    | CallerParked
    | CallerHungUp
    | AgentHungUp
    | SurveyStarted
    | SurveyRated
    | PartyNoted
    | DialStarted
    | DialEnded
    | RecordingStarted
    | DeviceChanged
    | RingFailed
    | LeaveFailed
    | Probed
    | Tick
    | LinkLost
    | ChannelsSnapshot
    | DevicesSnapshot
    | AgentsConfigured
    | QueuesConfigured
    | AgentControl
    | FeatureCallEnded
    | PhoneReach
    | AgentsRestored
    | History
    | CallbackQueued
    | CallbackAgentAnswered
    | CallbackAgentMissed
    | CallbackDialed
    | CallbackCancelled
)
