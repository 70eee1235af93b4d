"""The ACD's live picture: agents, calls and the queue settings that steer them.

Times are plain floats (seconds since the epoch) handed in by the caller of
`decide`; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class AgentPhase(StrEnum):
    """What the engine has this agent doing (the phone's own state is separate)."""

    IDLE = "idle"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class CallPhase(StrEnum):
    WAITING = "waiting"
    RINGING = "ringing"
    CONNECTED = "connected"


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    SHORT_ABANDON = "short_abandon"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class QueueSettings:
    name: str = "main"
    ring_timeout: float = 15.0
    wrapup: float = 5.0
    max_wait: float = 300.0
    short_abandon: float = 5.0
    service_level: float = 15.0
    # How long past the ring timeout we wait for Asterisk's own DialEnd before
    # treating the ring as failed (lost events, stuck channel).
    ring_grace: float = 5.0
    # A Redirect that Asterisk accepted but that never turned into a Dial (it can be
    # lost in a race with the dialplan's own Goto) is retried after this long.
    dial_confirm: float = 3.0


@dataclass
class Agent:
    agent_id: str
    registered: bool = False
    # The phone is busy with something (any call, ours or not): never ring it.
    device_busy: bool = False
    phase: AgentPhase = AgentPhase.IDLE
    call_id: str | None = None
    # When the agent last became free to take a call; longest-idle orders by it.
    idle_since: float = 0.0
    wrap_until: float = 0.0
    # False once removed from configuration: finishes its call, never rung again.
    configured: bool = True

    def available(self) -> bool:
        return (
            self.configured
            and self.registered
            and not self.device_busy
            and self.phase is AgentPhase.IDLE
        )


@dataclass
class Call:
    call_id: str  # Asterisk Linkedid of the caller's channel
    channel: str
    queue: str
    arrived: float
    caller_num: str = ""
    caller_name: str = ""
    restricted: bool = False  # presentation restricted: mask the number in logs
    phase: CallPhase = CallPhase.WAITING
    agent_id: str | None = None
    answered: float | None = None
    attempt: int = 0  # bumped on every ring, so a stale timer can tell it is stale
    rung_at: float = 0.0
    tried: frozenset[str] = frozenset()
    dialing: bool = False  # Asterisk confirmed the Dial of the current ring
    # Blocked in the hold loop's Wait() (or in Dial): a Redirect now is safe. After an
    # unanswered ring the dialplan walks back to the loop and says so (HotlineParked);
    # a Redirect that lands while Set/GotoIf run can strand the caller.
    parked: bool = True
    recording: str | None = None
    leaving: bool = False  # sent to the time-out message; only the hangup is left

    def waited(self, now: float) -> float:
        return max(0.0, (self.answered if self.answered is not None else now) - self.arrived)


@dataclass
class State:
    queue: QueueSettings = field(default_factory=QueueSettings)
    agents: dict[str, Agent] = field(default_factory=dict)
    # Insertion order is arrival order except after a resync; routing sorts by arrived.
    calls: dict[str, Call] = field(default_factory=dict)
    # Off while the AMI link is down or the picture is being rebuilt.
    routing: bool = False
