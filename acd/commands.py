"""Commands `decide` returns. The shell carries them out; they describe, never do."""

from __future__ import annotations

from dataclasses import dataclass

from acd.events import TimerKind
from acd.model import Outcome


@dataclass(frozen=True)
class RingAgent:
    call_id: str
    channel: str
    agent_id: str
    timeout: float
    attempt: int
    also: tuple[str, ...] = ()  # ring_all: the other agents rung at the same time

    @property
    def agent_ids(self) -> tuple[str, ...]:
        return (self.agent_id, *self.also)


@dataclass(frozen=True)
class SendToTimeout:
    """Take a caller out of line: the time-out (or overflow, closed, callback) message, or
    `number` to forward the call to an external number."""

    call_id: str
    channel: str
    reason: str = "timeout"
    number: str = ""


@dataclass(frozen=True)
class StartTimer:
    kind: TimerKind
    key: str
    at: float
    attempt: int = 0


@dataclass(frozen=True)
class CallOffered:
    call_id: str
    queue: str


@dataclass(frozen=True)
class CallAnswered:
    call_id: str
    queue: str
    agent_id: str
    wait: float


@dataclass(frozen=True)
class CallRecord:
    """One finished call, exactly as it is written to the store."""

    call_id: str
    queue: str
    caller_num: str
    caller_name: str
    arrived: float
    answered: float | None
    ended: float
    agent_id: str | None
    outcome: Outcome
    wait_seconds: float
    talk_seconds: float
    recording: str | None
    restricted: bool = False


@dataclass(frozen=True)
class AgentStateChanged:
    """An agent moved from one state label to another (logged and timed by the shell)."""

    agent_id: str
    old: str
    new: str
    reason: str = ""


Command = RingAgent | SendToTimeout | StartTimer | CallOffered | CallAnswered | CallRecord | AgentStateChanged
