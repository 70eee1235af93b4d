"""The ACD's live picture: queues, agents, calls, the lines and the deadlines.

One task owns a `State` and hands it to `decide` with every event; `decide` changes it
in place (copying thousands of calls per event would cost more than it proves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from acd.agents import Agent, label, reason
from acd.calendar import Calendar
from acd.calls import Call, CallState
from acd.commands import AgentStateChanged, Command
from acd.deadlines import Deadlines
from acd.line import Line, Place
from acd.model import QueueSettings


@dataclass
class State:
    queues: dict[str, QueueSettings] = field(default_factory=lambda: {"main": QueueSettings()})
    agents: dict[str, Agent] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    # Off while the AMI link is down or the picture is being rebuilt.
    routing: bool = False
    # Which halves of a resync are still to come after the link came (back) up.
    awaiting: set[str] = field(default_factory=lambda: {"channels", "devices"})
    # Callers in line (IN_LINE) per queue, ordered by (key, seq): the head waited longest.
    lines: dict[str, Line] = field(default_factory=dict)
    # Agents that could take a call now, but for a back-off that may still run.
    free: set[str] = field(default_factory=set)
    seq: int = 0
    calendar: Calendar = field(default_factory=Calendar)
    # Caller number -> (agent who last answered them, wall time that call ended), for
    # sticky routing; oldest first, pruned to the longest sticky_days of any queue.
    last_agent: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Queue -> the queues whose widening rules may borrow its agents.
    borrowers: dict[str, frozenset[str]] = field(default_factory=dict)
    deadlines: Deadlines = field(default_factory=Deadlines)
    # Callers whose announcement fell due in this event: told after the matching, so that a
    # caller about to be rung is not told to wait (acd/announce.py).
    # call id -> its announced_at before this event's slot was taken (given back if it is rung).
    announce: dict[str, float] = field(default_factory=dict)
    # Calls and agents whose deadline may have changed during the current event.
    dirty_calls: set[str] = field(default_factory=set)
    dirty_agents: set[str] = field(default_factory=set)
    # Wall time up to which an engine counted what it saw (the engine before a restart, or this
    # one before its link dropped): the shell reads it from Asterisk at every resync. A caller a
    # snapshot shows who joined before it was counted offered then, one answered before it was
    # counted answered: not again (README "Counting"). 0: no engine counted anything before.
    counted_until: float = 0.0

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
    def default_queue(self) -> QueueSettings:
        """The first configured queue: where callers of an unknown or removed queue go."""
        return next(iter(self.queues.values()))

    def settings(self, queue: str) -> QueueSettings:
        """The queue's settings. Calls only ever sit in configured queues (join and reload
        see to that), so an unknown name here is a bug, not bad input: it raises."""
        return self.queues[queue]

    def sticky_horizon(self) -> float:
        """Seconds of answer history sticky routing can use (0: none kept)."""
        return max((q.sticky_days for q in self.queues.values()), default=0.0) * 86400

    # -- the lines ---------------------------------------------------------------

    @staticmethod
    def place_of(call: Call) -> Place:
        return (call.key, call.seq, call.call_id)

    def place(self, call: Call) -> None:
        """Put the caller in (or take them out of) their queue's line to match their state:
        in line while IN_LINE, unless the engine already decided they leave."""
        if call.state is CallState.IN_LINE and call.leave_reason is None:
            self.lines.setdefault(call.queue, Line()).add(self.place_of(call))
        else:
            self.unplace(call)

    def unplace(self, call: Call) -> None:
        line = self.lines.get(call.queue)
        if line is not None:
            line.remove(self.place_of(call))

    def touch(self, call: Call) -> None:
        self.dirty_calls.add(call.call_id)


class AgentWatch:
    """Remember an agent's availability before a change; after it, keep the free set right,
    start the idle clock, and report a label that differs from the one last reported."""

    __slots__ = ("agent", "available")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.available = agent.available()

    def done(self, state: State, now: float, out: list[Command]) -> None:
        agent = self.agent
        state.dirty_agents.add(agent.agent_id)
        if agent.available():
            if not self.available:
                agent.idle_since = now
            state.free.add(agent.agent_id)
        else:
            state.free.discard(agent.agent_id)
        relabel(agent, now, out)


def relabel(agent: Agent, now: float, out: list[Command]) -> None:
    """Report the agent's label if it changed since it was last reported (a back-off that
    ran out changes it with nothing else changing)."""
    new = label(agent, now)
    if new != agent.shown:
        out.append(AgentStateChanged(agent.agent_id, agent.shown, new, reason(agent, now)))
        agent.shown = new
