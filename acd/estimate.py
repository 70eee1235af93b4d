"""How long a caller joining a queue now would wait: the figure the IVR's callback offer
(`wait_over`) is judged by.

A deliberately plain estimate from the live picture, no history: the callers already in
line, the agents who serve the queue and are not paused, and the mean handle time the
engine has seen (talk + the queue's wrap-up). It errs long rather than short: a callback
offered a little early costs less than one withheld from a caller who then waits.
"""

from __future__ import annotations

from acd.agents import Activity, Agent, Presence
from acd.state import State

# Before any call was answered there is no handle time to go by: a 12345 call's typical
# talk (the national centers report 3-5 minutes).
DEFAULT_TALK = 180.0
# Finished calls of the serving agents below which no wait is announced to a caller.
MIN_FINISHED = 5
INFINITE = float("inf")


def estimated_wait(state: State, queue: str, now: float) -> float:
    """Seconds a new caller of `queue` would wait; infinity when nobody serves it."""
    q = state.queues.get(queue)
    if q is None:
        return INFINITE
    serving = serving_agents(state, queue)
    if not serving:
        return INFINITE
    ahead = len(state.lines.get(queue, ()))
    if ahead == 0 and any(a.available(now) for a in serving):
        return 0.0
    handle, _ = _handle_time(serving, q.wrapup)
    return (ahead + 1) * handle / len(serving)


def serving_agents(state: State, queue: str) -> list[Agent]:
    """The agents who take this queue's callers now or once free: ready, phone registered and reachable."""
    return [a for a in state.agents.values()
            if queue in a.queues and a.configured and a.registered and not a.unreachable
            and a.presence is Presence.READY]


def seconds_per_caller(state: State, queue: str) -> float | None:
    """How long each caller ahead adds to a wait in this queue (handle time / serving agents),
    for an announcement: None where the engine cannot stand by a figure (nobody serves the
    queue, or fewer than MIN_FINISHED calls finished to take the handle time from: no default
    is announced)."""
    q = state.queues.get(queue)
    serving = serving_agents(state, queue)
    if q is None or not serving:
        return None
    handle, finished = _handle_time(serving, q.wrapup)
    if finished < MIN_FINISHED:
        return None
    return handle / len(serving)


def _handle_time(serving: list[Agent], wrapup: float) -> tuple[float, int]:
    """The mean handle time (talk + wrap-up) of the serving agents, and how many finished calls
    it is taken from. talk_total grows when a call ends, calls_taken when it is answered: count
    finished calls only, or a morning's first calls (all still going) would make it look short."""
    finished = sum(a.calls_taken - (1 if a.activity is Activity.ON_CALL else 0) for a in serving)
    talk = sum(a.talk_total for a in serving) / finished if finished > 0 else DEFAULT_TALK
    return talk + wrapup, finished
