"""A small world for testing the routing core: a `State`, the engine's monotonic clock, and
helpers that play Asterisk's side (phones registering, callers joining, the Dial events of
the call's current ring attempt, the walk back to the hold loop, hang-ups, the shell's
wake-ups at `next_deadline`) and read the commands back.

The clock only moves forward, as the shell's does (`now` is the loop's monotonic time);
the wall clock, which only labels records and decides opening hours, is `now +
wall_offset` and may be stepped in either direction by a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from acd import decide, next_deadline
from acd.agents import Agent, Control
from acd.calls import Call
from acd.commands import CallRecord, Command, ProbeCall, RingAgent, SendOut
from acd.events import (
    AgentControl,
    AgentProfile,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    CallerParked,
    DeviceChanged,
    DialEnded,
    DialStarted,
    Event,
    Tick,
)
from acd.model import QueueSettings
from acd.state import State

Q = QueueSettings(ring_timeout=15, wrapup=5, max_wait=300, short_abandon=5, ring_grace=5)

# agent id -> (the queues it serves, its skills)
Profiles = Mapping[str, tuple[Iterable[str], Mapping[str, int]]]

T = TypeVar("T")


def chan(call_id: str) -> str:
    return f"chan-{call_id}"


def of_type(out: Iterable[object], kind: type[T]) -> list[T]:
    return [c for c in out if isinstance(c, kind)]


def rings(out: Iterable[object]) -> list[tuple[str, str]]:
    """(caller, first agent) of every RingAgent."""
    return [(c.call_id, c.agent_id) for c in of_type(out, RingAgent)]


def sendouts(out: Iterable[object]) -> list[SendOut]:
    return of_type(out, SendOut)


def probes(out: Iterable[object]) -> list[str]:
    return [c.call_id for c in of_type(out, ProbeCall)]


class World:
    """A state plus a clock, feeding events one at a time and keeping every command."""

    def __init__(self, queues: Iterable[QueueSettings] = (Q,),
                 agents: Iterable[str] | Profiles = ("1001", "1002", "1003"), *,
                 now: float = 0.0, routing: bool = True, wall_offset: float = 0.0) -> None:
        self.state = State(queues={q.name: q for q in queues}, routing=routing)
        self.now = now
        self.wall_offset = wall_offset
        self.out: list[Command] = []
        self.configure(agents)

    # -- feeding --------------------------------------------------------------------

    def feed(self, event: Event, at: float | None = None) -> list[Command]:
        if at is not None:
            assert at >= self.now, f"the engine's clock only moves forward ({at} < {self.now})"
            self.now = at
        _, out = decide(self.state, event, self.now, self.now + self.wall_offset)
        self.out.extend(out)
        return out

    def tick(self, at: float) -> list[Command]:
        """The shell's wake-up (it may come early: then nothing is due)."""
        return self.feed(Tick(), at)

    def run_until(self, at: float) -> list[Command]:
        """Wake up at every deadline up to `at`, as the shell does; the clock ends at `at`."""
        out: list[Command] = []
        for _ in range(10_000):
            due = next_deadline(self.state)
            if due is None or due > at:
                self.now = max(self.now, at)
                return out
            out += self.tick(max(due, self.now))
        raise AssertionError("deadlines keep falling due: the core spins")

    # -- the agents' side -----------------------------------------------------------------

    def configure(self, agents: Iterable[str] | Profiles, at: float | None = None) -> list[Command]:
        if isinstance(agents, Mapping):
            profiles = tuple(AgentProfile(a, frozenset(qs), tuple(sorted(sk.items())))
                             for a, (qs, sk) in agents.items())
            return self.feed(AgentsConfigured(frozenset(agents), profiles), at)
        return self.feed(AgentsConfigured(frozenset(agents)), at)

    def register(self, *agents: str, at: float | None = None, busy: bool = False) -> list[Command]:
        out: list[Command] = []
        for agent in agents:
            out += self.feed(DeviceChanged(agent, registered=True, busy=busy), at)
        return out

    def control(self, agent: str, action: Control, reason: str = "", at: float | None = None) -> list[Command]:
        return self.feed(AgentControl(agent, action, reason), at)

    # -- the caller's side, as Asterisk reports it --------------------------------------------

    def join(self, call_id: str, queue: str | None = None, at: float | None = None,
             **fields: object) -> list[Command]:
        name = queue if queue is not None else self.state.default_queue.name
        return self.feed(CallerJoined(call_id, chan(call_id), name, **fields), at)  # type: ignore[arg-type]

    def dial_begin(self, call_id: str, agent: str | None = None, at: float | None = None) -> list[Command]:
        call = self.call(call_id)
        out: list[Command] = []
        for agent_id in [agent] if agent else sorted(call.ringing):
            out += self.feed(DialStarted(call_id, agent_id, call.attempt), at)
        return out

    def answer(self, call_id: str, agent: str | None = None, at: float | None = None) -> list[Command]:
        return self.dial_end(call_id, "ANSWER", agent, at)

    def no_answer(self, call_id: str, agent: str | None = None, at: float | None = None,
                  status: str = "NOANSWER") -> list[Command]:
        return self.dial_end(call_id, status, agent, at)

    def dial_end(self, call_id: str, status: str, agent: str | None = None,
                 at: float | None = None) -> list[Command]:
        call = self.call(call_id)
        agent_id = agent or call.agent_id
        assert agent_id is not None, f"{call_id} rings nobody"
        return self.feed(DialEnded(call_id, agent_id, status, call.attempt), at)

    def park(self, call_id: str, at: float | None = None) -> list[Command]:
        return self.feed(CallerParked(call_id), at)

    def hangup(self, call_id: str, at: float | None = None) -> list[Command]:
        return self.feed(CallerHungUp(call_id, chan(call_id)), at)

    def answer_and_finish(self, call_id: str, agent: str | None = None, *, at: float,
                          talk: float = 10) -> list[Command]:
        return self.answer(call_id, agent, at) + self.hangup(call_id, at + talk)

    # -- reading ---------------------------------------------------------------------------

    def call(self, call_id: str) -> Call:
        return self.state.calls[call_id]

    def agent(self, agent_id: str) -> Agent:
        return self.state.agents[agent_id]

    def records(self) -> list[CallRecord]:
        return of_type(self.out, CallRecord)

    def deadline_of(self, call_id: str) -> float | None:
        return self.state.deadlines.get(("call", call_id))

    def agent_deadline(self, agent_id: str) -> float | None:
        return self.state.deadlines.get(("agent", agent_id))
