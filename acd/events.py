"""Typed events that `decide` understands. The shell decodes AMI into these."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from acd.calendar import Calendar
from acd.model import QueueSettings


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
    """The caller is back in the hold loop, blocked in Wait(): safe to Redirect again."""

    call_id: str


@dataclass(frozen=True)
class CallerHungUp:
    call_id: str
    channel: str


@dataclass(frozen=True)
class DialStarted:
    """Asterisk began dialling an agent for this caller: our Redirect took effect."""

    call_id: str
    agent_id: str


@dataclass(frozen=True)
class DialEnded:
    """Asterisk's Dial from the caller to an agent finished with `status`."""

    call_id: str
    agent_id: str
    status: str  # ANSWER, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL, ...


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
    """The command to ring an agent could not be carried out (AMI error or timeout)."""

    call_id: str
    agent_id: str
    attempt: int


class TimerKind(StrEnum):
    RING = "ring"
    BACKOFF = "backoff"
    WRAPUP = "wrapup"
    MAX_WAIT = "max_wait"
    PARK = "park"
    DIAL_CONFIRM = "dial_confirm"
    WIDEN = "widen"
    OVERFLOW = "overflow"
    STICKY = "sticky"


@dataclass(frozen=True)
class TimerFired:
    kind: TimerKind
    key: str  # call_id or agent_id
    attempt: int = 0


@dataclass(frozen=True)
class LinkLost:
    """The AMI connection dropped: stop routing until the picture is rebuilt."""


@dataclass(frozen=True)
class SnapshotChannel:
    call_id: str
    channel: str
    queue: str
    age: float  # seconds since the caller's channel was created
    caller_num: str = ""
    caller_name: str = ""
    agent_id: str | None = None  # set when the caller is ringing or talking to an agent
    bridged: bool = False


@dataclass(frozen=True)
class Resynced:
    """Asterisk's current view after (re)connect: callers in our contexts and phones."""

    callers: tuple[SnapshotChannel, ...] = ()
    devices: tuple[DeviceChanged, ...] = ()
    # Callers who joined after the snapshot was taken: alive though absent from it.
    joined: frozenset[str] = frozenset()


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
    """Who last answered whom, read from the store at start: (caller number, agent, ended)."""

    answered: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class AgentControl:
    """An agent's own request, from a softphone feature code or the HTTP API."""

    agent_id: str
    action: str  # login, logout, pause, unpause, end_wrapup
    reason: str = ""


Event = (
    CallerJoined
    | CallerParked
    | CallerHungUp
    | DialStarted
    | DialEnded
    | RecordingStarted
    | DeviceChanged
    | RingFailed
    | TimerFired
    | LinkLost
    | Resynced
    | AgentsConfigured
    | QueuesConfigured
    | AgentControl
    | History
)
