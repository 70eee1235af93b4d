"""Which free agent gets a caller."""

from __future__ import annotations

from collections.abc import Sequence

from acd.model import Agent


def pick_agent(free: Sequence[Agent], tried: frozenset[str]) -> Agent:
    """Longest-idle agent, preferring ones this caller has not already rung.

    An agent who let this caller ring out goes to the back for this caller only;
    if every free agent has been tried, start over rather than leave the caller waiting.
    Ties break on agent id so that the choice is repeatable.
    """
    fresh = [a for a in free if a.agent_id not in tried]
    return min(fresh or free, key=lambda a: (a.idle_since, a.agent_id))
