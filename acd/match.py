"""Who gets whom: callers in line order, each offered to a free agent by its queue's strategy.

- Callers are taken in line order across the queues the free agents can serve: the
  smallest key (arrival minus the bounded priority boost) first.
- Each caller gets the agent its own queue's strategy picks among the free agents who
  may take it (`rules.may_take`) and for whom it is not kept (`rules.sticky_elsewhere`).
  A queue's strategy never depends on other queues: one congested queue does not turn
  another queue's ring_all or best_skill into longest-idle.
- An agent who let a caller ring out is offered that caller again only when no other
  free agent can take any caller they could: untried pairs are matched first.
- ring_all rings every qualified free agent, but leaves one for each caller still in
  line behind it in the same queue, so that a second caller is not kept waiting by the
  first one's ring.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from acd.agents import Agent
from acd.calls import Call
from acd.model import QueueSettings, Strategy
from acd.rules import may_take, sticky_elsewhere
from acd.state import State


@dataclass(frozen=True)
class Assignment:
    call: Call
    agent: Agent
    also: tuple[Agent, ...] = ()  # ring_all: rung at the same time


def assignments(state: State, now: float) -> list[Assignment]:
    """The rings to start now (the state is not changed)."""
    if not state.routing or not state.free:
        return []
    free = sorted((a for a in (state.agents[i] for i in state.free) if a.available(now)),
                  key=lambda a: (a.idle_since, a.agent_id))
    if not free:
        return []
    free_ids = {a.agent_id for a in free}
    scan: set[str] = set()
    for agent in free:
        for queue in agent.queues:
            scan.add(queue)
            scan |= state.borrowers.get(queue, frozenset())
    lines = [line for name in scan if (line := state.lines.get(name))]
    if not lines:
        return []
    out: list[Assignment] = []
    taken: set[str] = set()
    served: dict[str, int] = {}
    # Candidates depend on the queue, the skills and how far widening has gone, not on
    # the caller: cache them so that a long line of callers nobody free can take is cheap.
    cache: dict[tuple[str, tuple[tuple[str, int], ...], int], list[Agent]] = {}
    for allow_tried in (False, True):
        for _, _, call_id in heapq.merge(*lines):
            if not free:
                return out
            if call_id in taken:
                continue
            call = state.calls[call_id]
            if now < call.retry_after:
                continue
            q = state.queues[call.queue]
            pool = _pool(state, cache, free, free_ids, call, q, now)
            candidates = [a for a in pool if not sticky_elsewhere(state, a, call, now)]
            if not allow_tried:
                candidates = [a for a in candidates if a.agent_id not in call.tried]
            if not candidates:
                continue
            behind = len(state.lines[call.queue]) - served.get(call.queue, 0) - 1
            chosen = _pick(candidates, q, call, behind)
            for a in chosen:
                free.remove(a)
                free_ids.discard(a.agent_id)
            taken.add(call_id)
            served[call.queue] = served.get(call.queue, 0) + 1
            out.append(Assignment(call, chosen[0], tuple(chosen[1:])))
    return out


def _pool(state: State, cache: dict[tuple[str, tuple[tuple[str, int], ...], int], list[Agent]],
          free: list[Agent], free_ids: set[str], call: Call, q: QueueSettings, now: float) -> list[Agent]:
    key = (call.queue, call.skills, _stage(q, call, now))
    pool = cache.get(key)
    if pool is None:
        pool = cache[key] = [a for a in free if may_take(state, a, call, now)]
    return [a for a in pool if a.agent_id in free_ids]


def _stage(q: QueueSettings, call: Call, now: float) -> int:
    return sum(1 for rule in q.widen if now >= call.queue_since + rule.after)


def _pick(candidates: Sequence[Agent], q: QueueSettings, call: Call, behind: int) -> list[Agent]:
    order = _order(q.strategy, call.skills)
    if q.strategy is Strategy.RING_ALL:
        ranked = sorted(candidates, key=order)
        return ranked[: max(1, len(ranked) - max(behind, 0))]
    return [min(candidates, key=order)]


def _order(strategy: Strategy, skills: tuple[tuple[str, int], ...]) -> Callable[[Agent], tuple[float | str, ...]]:
    """Ties break on idle time, then agent id, so every choice is repeatable."""

    def idle(a: Agent) -> tuple[float | str, ...]:
        return (a.idle_since, a.agent_id)

    match strategy:
        case Strategy.FEWEST_CALLS:
            return lambda a: (a.calls_taken, *idle(a))
        case Strategy.LEAST_TALK_TIME:
            return lambda a: (a.talk_total, *idle(a))
        case Strategy.ROUND_ROBIN:
            return lambda a: (a.last_offered, *idle(a))
        case Strategy.BEST_SKILL:
            names = [name for name, _ in skills]
            return lambda a: (-sum(a.skills.get(n, 0) for n in names), *idle(a))
        case Strategy.LONGEST_IDLE | Strategy.RING_ALL:
            return idle
