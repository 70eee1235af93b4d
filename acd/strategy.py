"""Which free agent gets a caller: the queue's strategy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from acd.model import Agent, QueueSettings, Strategy


def pick_agent(
    candidates: Sequence[Agent],
    tried: frozenset[str],
    queue: QueueSettings,
    skills: tuple[tuple[str, int], ...] = (),
) -> Agent:
    """The queue's choice among qualified free agents, preferring ones this caller has
    not already rung. An agent who let this caller ring out goes to the back for this
    caller only; if every candidate has been tried, start over rather than leave the
    caller waiting. Ties break on idle time, then agent id, so the choice is repeatable.
    """
    fresh = [a for a in candidates if a.agent_id not in tried]
    return min(fresh or candidates, key=_order(queue.strategy, skills))


def _order(strategy: Strategy, skills: tuple[tuple[str, int], ...]) -> Callable[[Agent], tuple[float | str, ...]]:
    def idle(a: Agent) -> tuple[float | str, ...]:
        return (a.idle_since, a.agent_id)

    if strategy is Strategy.FEWEST_CALLS:
        return lambda a: (a.calls_taken, *idle(a))
    if strategy is Strategy.LEAST_TALK_TIME:
        return lambda a: (a.talk_total, *idle(a))
    if strategy is Strategy.ROUND_ROBIN:
        return lambda a: (a.last_offered, *idle(a))
    if strategy is Strategy.BEST_SKILL:
        names = [name for name, _ in skills]
        return lambda a: (-sum(a.skills.get(n, 0) for n in names), *idle(a))
    return idle
