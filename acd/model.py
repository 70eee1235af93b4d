"""Queue settings and the small vocabularies (enums) the routing core shares.

Times handed to the core are floats in seconds; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from acd.calendar import ALWAYS, Hours


class Outcome(StrEnum):
    """How a call ended, as a fact. Whether a hang-up counts as a short abandon is the
    KPI module's decision (metrics/kpi.py), from the wait and the threshold in force."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"  # hung up before an agent answered
    TIMED_OUT = "timed_out"  # reached max_wait: heard the time-out message
    OVERFLOW = "overflow"  # sent to the overflow message (queue full, empty, or waited too long)
    CLOSED = "closed"  # the queue was closed (its hours, a holiday): heard the closed message
    FORWARDED = "forwarded"  # overflow to an external number
    CALLBACK = "callback"  # overflow to a callback: the caller left their number to be called back


class LeaveReason(StrEnum):
    """Why the engine sent a caller out of line (the dialplan place each one goes to)."""

    TIMEOUT = "timeout"
    OVERFLOW = "overflow"
    CLOSED = "closed"
    CALLBACK = "callback"
    FORWARD = "forward"  # to an external number through the carrier trunk

    @property
    def outcome(self) -> Outcome:
        return _LEAVE_OUTCOME[self]


_LEAVE_OUTCOME = {
    LeaveReason.TIMEOUT: Outcome.TIMED_OUT,
    LeaveReason.OVERFLOW: Outcome.OVERFLOW,
    LeaveReason.CLOSED: Outcome.CLOSED,
    LeaveReason.CALLBACK: Outcome.CALLBACK,
    LeaveReason.FORWARD: Outcome.FORWARDED,
}


class Strategy(StrEnum):
    """Which free agent gets a caller of this queue."""

    LONGEST_IDLE = "longest_idle"
    FEWEST_CALLS = "fewest_calls"
    LEAST_TALK_TIME = "least_talk_time"
    ROUND_ROBIN = "round_robin"
    BEST_SKILL = "best_skill"
    RING_ALL = "ring_all"  # every qualified free agent at once; the first to answer takes it


class OverflowTo(StrEnum):
    QUEUE = "queue"  # another queue; the caller keeps their arrival time
    MESSAGE = "message"  # the overflow message
    NUMBER = "number"  # an external number through the carrier trunk
    CALLBACK = "callback"  # tell the caller they will be called back; the record is the request


class WhenEmpty(StrEnum):
    WAIT = "wait"
    OVERFLOW = "overflow"  # nobody logged in for the queue: overflow at once (app_queue's leavewhenempty)


class WhenClosed(StrEnum):
    MESSAGE = "message"
    OVERFLOW = "overflow"


@dataclass(frozen=True)
class Widen:
    """After `after` seconds in this queue, a caller also accepts..."""

    after: float
    min_level: int | None = None  # ...agents at this level or above in the queue's skills
    add_queues: tuple[str, ...] = ()  # ...agents who serve these queues


@dataclass(frozen=True)
class Overflow:
    """Where a caller goes after `after` seconds in this queue (or at once when the queue is
    full, closed with `when_closed: overflow`, or has nobody logged in with `when_empty:
    overflow`)."""

    after: float
    to: OverflowTo = OverflowTo.MESSAGE
    target: str = ""  # the queue for QUEUE, the digits for NUMBER


@dataclass(frozen=True)
class Announce:
    """Periodic announcements to a waiting caller (位置播报): their place in line and, when the
    engine's figures support one, the expected wait. Off unless a queue configures it."""

    first: float = 30.0  # seconds after joining this queue
    every: float = 60.0  # then every this many seconds
    position: bool = True
    wait: bool = True


@dataclass(frozen=True)
class QueueSettings:
    name: str = "main"
    ring_timeout: float = 15.0
    wrapup: float = 5.0
    max_wait: float = 300.0
    short_abandon: float = 5.0
    service_level: float = 15.0
    # How long past the ring timeout we wait for Asterisk's own DialEnd before
    # treating the ring as over (lost events, stuck channel).
    ring_grace: float = 5.0
    # A Redirect that Asterisk accepted but that has not turned into a Dial after this
    # long makes the engine ask Asterisk where the caller is (it can be lost in a race
    # with the dialplan's own Goto, or merely be slow).
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
    when_empty: WhenEmpty = WhenEmpty.WAIT
    hours: Hours = ALWAYS
    when_closed: WhenClosed = WhenClosed.MESSAGE
    # A caller who rings again within sticky_days is offered first to the agent who last
    # answered them, if that agent frees up within sticky_wait seconds. 0 days: off.
    sticky_days: float = 0.0
    sticky_wait: float = 30.0
    # Music on hold while waiting and ringing (a class of musiconhold.conf); "": ringback only.
    music: str = "default"
    announce: Announce | None = None
