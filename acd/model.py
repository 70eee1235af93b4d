"""The ACD's live picture: agents, calls and the queue settings that steer them.

Times are plain floats (seconds since the epoch) handed in by the caller of
`decide`; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from acd.calendar import ALWAYS, Calendar, Hours


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
    OVERFLOW = "overflow"  # sent to the overflow message (queue full, empty, or waited too long)
    CLOSED = "closed"  # the queue was closed (its hours, a holiday): heard the closed message
    FORWARDED = "forwarded"  # overflow to an external number
    CALLBACK = "callback"  # overflow to a callback: the caller left their number to be called back


class Strategy(StrEnum):
    """Which free agent gets a caller of this queue."""

    LONGEST_IDLE = "longest_idle"
    FEWEST_CALLS = "fewest_calls"
    LEAST_TALK_TIME = "least_talk_time"
    ROUND_ROBIN = "round_robin"
    BEST_SKILL = "best_skill"
    RING_ALL = "ring_all"  # every qualified free agent at once; the first to answer takes it


@dataclass(frozen=True)
class Widen:
    """After `after` seconds in this queue, a caller also accepts..."""

    after: float
    min_level: int | None = None  # ...agents at this level or above in the queue's skills
    add_queues: tuple[str, ...] = ()  # ...agents who serve these queues


@dataclass(frozen=True)
class Overflow:
    """Where a caller goes after `after` seconds in this queue (or at once when the queue
    is full or has nobody logged in): another queue, or the overflow message."""

    after: float
    action: str = "message"  # "queue" | "message" | "number" | "callback"
    target: str = ""  # the queue for "queue", the digits for "number"


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
    strategy: Strategy = Strategy.LONGEST_IDLE
    # Skills every caller of this queue needs, with the minimum level (1-100).
    skills: tuple[tuple[str, int], ...] = ()
    # Each priority level counts as this many seconds of extra wait, up to max_boost:
    # a caller can be overtaken only by callers who arrived less than max_boost later.
    priority_step: float = 30.0
    max_boost: float = 120.0
    # Ring-no-answer this many times in a row pauses the agent ("no answer").
    max_no_answer: int = 3
    # An agent whose phone was busy or rejected the call is left alone this long.
    busy_backoff: float = 10.0
    widen: tuple[Widen, ...] = ()  # sorted by `after`
    overflow: Overflow | None = None
    max_length: int = 0  # callers in line; 0 = no limit. A caller beyond it overflows at once.
    # What a caller meets when no agent serving the queue is logged in: "wait" or "overflow".
    when_empty: str = "wait"
    hours: Hours = ALWAYS
    when_closed: str = "message"  # or "overflow" (e.g. to a 7x24 queue)
    # A caller who rings again within sticky_days is offered first to the agent who last
    # answered them, if that agent frees up within sticky_wait seconds. 0 days: off.
    sticky_days: float = 0.0
    sticky_wait: float = 30.0


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
    queues: frozenset[str] = frozenset({"main"})
    skills: dict[str, int] = field(default_factory=dict)
    wrapup: float | None = None  # overrides the queue's wrap-up time
    logged_in: bool = True
    paused: str | None = None  # the reason code while paused
    backoff_until: float = 0.0
    no_answer_streak: int = 0
    calls_taken: int = 0
    talk_total: float = 0.0
    last_offered: int = 0  # round-robin position

    def available(self, now: float | None = None) -> bool:
        return (
            self.configured
            and self.registered
            and self.logged_in
            and self.paused is None
            and not self.device_busy
            and self.phase is AgentPhase.IDLE
            and (now is None or now >= self.backoff_until)
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
    ringing: frozenset[str] = frozenset()  # the agents the current ring reaches (several for ring_all)
    recording: str | None = None
    leaving: bool = False  # sent to the time-out message; only the hangup is left
    dialing: bool = False  # Asterisk confirmed the Dial of the current ring
    # Blocked in the hold loop's Wait() (or in Dial): a Redirect now is safe. After an
    # unanswered ring the dialplan walks back to the loop and says so (HotlineParked);
    # a Redirect that lands while Set/GotoIf run can strand the caller.
    parked: bool = True
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()  # required (skill, level): queue's plus the call's own
    # Order in line: arrival minus the priority boost (smaller goes first).
    key: float = 0.0
    seq: int = 0
    extra_skills: tuple[tuple[str, int], ...] = ()  # asked for by the dialled number
    queue_since: float = 0.0  # widening and overflow count from here (moves on overflow)
    widened: int = 0  # how many of the queue's widening rules apply so far
    overflowed_from: str | None = None
    leave_reason: str = ""  # "timeout" or "overflow" once leaving
    sticky_agent: str | None = None
    sticky_until: float = 0.0

    def waited(self, now: float) -> float:
        return max(0.0, (self.answered if self.answered is not None else now) - self.arrived)


@dataclass
class State:
    queues: dict[str, QueueSettings] = field(default_factory=lambda: {"main": QueueSettings()})
    agents: dict[str, Agent] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    # Off while the AMI link is down or the picture is being rebuilt.
    routing: bool = False
    # Routable callers per queue, kept sorted by (key, seq): the head waited longest.
    lines: dict[str, list[tuple[float, int, str]]] = field(default_factory=dict)
    # Agents that could take a call now, but for a backoff that may still run.
    free: set[str] = field(default_factory=set)
    seq: int = 0
    calendar: Calendar = field(default_factory=Calendar)
    # Caller number -> (agent who last answered them, when that call ended), for sticky routing.
    last_agent: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Queue -> the queues whose widening rules may borrow its agents.
    borrowers: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Which queues may borrow each queue's agents (from the widening rules)."""
        borrowers: dict[str, set[str]] = {}
        for q in self.queues.values():
            for rule in q.widen:
                for lent in rule.add_queues:
                    borrowers.setdefault(lent, set()).add(q.name)
        self.borrowers = {k: frozenset(v) for k, v in borrowers.items()}

    @property
    def queue(self) -> QueueSettings:
        """The first (default) queue."""
        return next(iter(self.queues.values()))

    def settings(self, queue: str) -> QueueSettings:
        return self.queues.get(queue) or self.queue
