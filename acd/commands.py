"""Commands `decide` returns. The shell carries them out; they describe, never do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from acd.agents import Control
from acd.model import LeaveReason, Outcome

# Who answered (or rang) the caller: the engine's routing, or the dialplan's own fallback
# that rings every agent while no engine is routing.
ServedBy = Literal["engine", "fallback"]
# How the record was made: seen live by the engine; closed at a resync (the call ended
# while the engine could not see it, so `ended` is when the engine noticed); or
# reconstructed from Asterisk's own durable account (CEL) for a call the engine never saw.
RecordSource = Literal["live", "resync", "asterisk"]


@dataclass(frozen=True)
class RingAgent:
    """Redirect the caller to Dial the agent(s); the attempt travels in the extension so
    that Asterisk's Dial events can be tied to this ring."""

    call_id: str
    channel: str
    agent_id: str
    timeout: float
    attempt: int
    also: tuple[str, ...] = ()  # ring_all: the other agents rung at the same time
    # A callback's ring (the request id): there is no caller's channel to Redirect; the
    # shell Originates a call to the agent, which then calls the citizen.
    callback: str | None = None

    @property
    def agent_ids(self) -> tuple[str, ...]:
        return (self.agent_id, *self.also)


@dataclass(frozen=True)
class SendOut:
    """Take a caller out of line: the time-out, overflow, closed or callback message, or
    forward the call to the external `number`."""

    call_id: str
    channel: str
    reason: LeaveReason
    number: str = ""


@dataclass(frozen=True)
class ProbeCall:
    """Ask Asterisk where the caller is (the answer comes back as a `Probed` event, which
    carries `probe` back: only the answer to the latest question is taken)."""

    call_id: str
    channel: str
    probe: int = 0


@dataclass(frozen=True)
class TagCaller:
    """Store the caller's current queue and path on their channel, so that the dialplan's
    walk back, a restarted engine and Asterisk's own account all see the queue they are in."""

    call_id: str
    channel: str
    queue: str
    offered: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class CallOffered:
    """A caller entered an open queue: one offered call, counted in `queue` (the offered queue)."""

    call_id: str
    queue: str


@dataclass(frozen=True)
class Announce:
    """Tell a waiting caller their place (`ahead`: callers before them, 0 = next) and, when the
    engine can stand by one, the expected wait in whole minutes (rounded up). The dialplan
    plays it at its next pass of the wait loop; a ring interrupts it."""

    call_id: str
    channel: str
    ahead: int | None  # None: the queue announces the wait only
    wait_minutes: int | None


@dataclass(frozen=True)
class CallAnswered:
    call_id: str
    queue: str  # the offered queue, where KPIs count the call
    agent_id: str
    wait: float
    service_level: float  # the offered queue's, in force when the call was offered
    answered_in: str = ""  # the queue the caller was in when answered
    # False: the live counters have this answer already (the engine before a restart counted
    # it; a snapshot showed it again). The shell then counts nothing, but still tells the
    # ticket platform, which opens the call's draft once whatever it is told.
    counted: bool = True


@dataclass(frozen=True)
class CallRecord:
    """One finished call, exactly as it is written to the store.

    What a report needs is here: the queue the call was offered in (KPIs count the call
    there), every queue it waited in, its priority, and the service level and short-abandon
    threshold that applied to it. Whether a hang-up was a short abandon is decided by the
    KPI module (metrics/kpi.py) from `wait_seconds` and `short_abandon`, never here.
    """

    call_id: str
    queue: str  # where the call ended: the queue that answered it, or the last one it waited in
    caller_num: str
    caller_name: str
    arrived: float  # wall clock, when the caller joined the first queue
    answered: float | None
    ended: float
    agent_id: str | None
    outcome: Outcome
    wait_seconds: float
    talk_seconds: float
    recording: str | None
    restricted: bool = False  # presentation restricted: mask the number wherever it is shown
    offered_queue: str = ""  # the queue the call was first offered in ("" in old records: `queue`)
    path: tuple[str, ...] = ()  # every queue the caller waited in, in order (overflow path)
    priority: int = 0
    service_level: float = 15.0  # seconds; the offered queue's, in force when the call was offered
    short_abandon: float = 5.0  # seconds; likewise
    served_by: ServedBy = "engine"
    source: RecordSource = "live"
    # The satisfaction survey after an answered call: reached by the caller, and the
    # rating (1 = best .. the scale); surveyed with no rating is "no rating" (未评价).
    surveyed: bool = False
    rating: int | None = None
    # Who else was on the call (三方通话, transfers): (wall clock, kind, party, detail), in order.
    parties: tuple[tuple[float, str, str, str], ...] = ()


@dataclass(frozen=True)
class AgentStateChanged:
    """An agent moved from one state label to another (logged and timed by the shell)."""

    agent_id: str
    old: str
    new: str
    reason: str = ""


@dataclass(frozen=True)
class ControlDone:
    """The answer to an agent's request: applied, or refused with the reason."""

    agent_id: str
    action: Control
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Unexpected:
    """An event the state machines have no move for (counted and logged by the shell)."""

    machine: Literal["call", "agent"]
    state: str
    trigger: str
    key: str


@dataclass(frozen=True)
class CallbackAttempt:
    """The agent answered a callback: the citizen is being called now (one attempt counted)."""

    request_id: str
    call_id: str
    agent_id: str


@dataclass(frozen=True)
class CallbackOutcome:
    """A callback attempt is over (the agent's leg hung up): `status` is Dial's status of the
    call to the citizen (ANSWER: they talked), "" if the citizen was never dialled, UNKNOWN
    if the engine could not see the end. Times are wall-clock epoch seconds."""

    request_id: str
    call_id: str
    agent_id: str | None
    status: str
    answered_at: float | None  # the citizen answered
    ended: float
    talk_seconds: float
    recording: str | None


Command = (
    RingAgent
    | SendOut
    | ProbeCall
    | TagCaller
    | CallOffered
    | CallAnswered
    | Announce
    | CallRecord
    | AgentStateChanged
    | ControlDone
    | Unexpected
    | CallbackAttempt
    | CallbackOutcome
)
