"""Deadlines derived from state, in the style of aioquic's `get_timer()`.

The core never asks the shell for a timer. Each call and agent has at most one next
deadline, computed from its state and its queue's current settings (`call_due` and
`agent_due`); the shell arms a single wake-up at `next_deadline()` and feeds a `Tick`
when it comes. Because nothing is ever armed for a particular event, nothing can go
stale: a reload that lengthens `max_wait` simply moves the deadline, a finished call
simply has none, and a wake-up that comes early (the wall clock stepped) finds nothing
due and the next deadline is asked for again.
"""

from __future__ import annotations

import heapq

from acd.agents import Activity, Agent
from acd.calls import Call, CallState
from acd.model import QueueSettings

# How long to wait for the answer to "where is this caller?" before asking again.
PROBE_WAIT = 5.0
# After a ring ends, how long the dialplan may take to walk the caller back to the loop
# before we assume it did (HotlineParked lost).
PARK_GRACE = 5.0

Key = tuple[str, str]  # ("call", call_id) or ("agent", agent_id)


def call_due(call: Call, q: QueueSettings, routing: bool, now: float) -> float | None:
    """When this call next needs the core's attention, from its state alone."""
    if not routing:
        # Nobody is sent anywhere while the picture is being rebuilt; the resync
        # reconsiders every call and these deadlines come back.
        return None
    if call.callback is not None:
        return callback_due(call, q, now)
    state = call.state
    if state is CallState.IN_LINE:
        if call.leave_reason is not None:
            return call.retry_after  # a decided send-out: now, or after a failed one's back-off
        at = call.arrived + q.max_wait
        if q.overflow is not None:
            at = min(at, call.queue_since + q.overflow.after)
        for rule in q.widen:  # the next widening step changes who may take the caller
            step = call.queue_since + rule.after
            if step > now:
                at = min(at, step)
                break
        for later in (call.sticky_until, call.retry_after):
            if later > now:
                at = min(at, later)
        told = next_slot(call, q)
        return at if told is None else min(at, told)
    if state is CallState.REDIRECTING:
        return call.since + q.dial_confirm
    if state is CallState.CONFIRMING:
        return call.since + PROBE_WAIT
    if state is CallState.DIALING:
        return call.since + (call.ring_for or q.ring_timeout) + q.ring_grace
    if state is CallState.WALKING_BACK:
        return call.walk_back_due
    return None  # FALLBACK, CONNECTED, AFTER_TALK, LEAVING: Asterisk ends these on its own


def next_slot(call: Call, q: QueueSettings) -> float | None:
    """When this caller's next announcement is due (None: none for this caller)."""
    a = q.announce
    if a is None or call.callback is not None or call.state is not CallState.IN_LINE or call.leave_reason:
        return None
    base = call.queue_since + a.first
    if call.announced_at < base:
        return base
    return base + ((call.announced_at - base) // a.every + 1) * a.every


def callback_due(call: Call, q: QueueSettings, now: float) -> float | None:
    """A callback (acd/callbacks.py) waiting in line has no max_wait or overflow (the citizen
    is not on the line): only what changes who may take it. Its agent's ring ends by
    Asterisk's Originate verdict, or is given up after the ring time and its grace."""
    if call.state is CallState.IN_LINE:
        later = [call.queue_since + rule.after for rule in q.widen if call.queue_since + rule.after > now][:1]
        later += [t for t in (call.sticky_until, call.retry_after) if t > now]
        return min(later, default=None)
    if call.state is CallState.REDIRECTING:
        return call.since + (call.ring_for or q.ring_timeout) + q.ring_grace
    return None  # CONNECTED: the agent's leg hanging up ends it


def agent_due(agent: Agent, now: float) -> float | None:
    if agent.activity is Activity.WRAP_UP:
        return agent.wrap_until
    if agent.backoff_until > now:
        return agent.backoff_until
    return None


class Deadlines:
    """The next deadline of every call and agent, with a heap to find the soonest.

    `_at` holds the truth; heap entries that no longer match it are dropped when they
    surface, and the heap is rebuilt when stale entries pile up.
    """

    __slots__ = ("_at", "_heap")

    def __init__(self) -> None:
        self._at: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []

    def set(self, key: Key, at: float | None) -> None:
        if at is None:
            self._at.pop(key, None)
            return
        if self._at.get(key) == at:
            return
        self._at[key] = at
        heapq.heappush(self._heap, (at, key))
        if len(self._heap) > 4 * len(self._at) + 1024:
            self._heap = [(t, k) for k, t in self._at.items()]
            heapq.heapify(self._heap)

    def get(self, key: Key) -> float | None:
        return self._at.get(key)

    def pop_due(self, now: float) -> list[Key]:
        """Every key whose deadline is at or before `now` (removed: recompute after handling)."""
        due: list[Key] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._at.get(key) == at:
                del self._at[key]
                due.append(key)
        return due

    def next(self) -> float | None:
        heap = self._heap
        while heap and self._at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def __len__(self) -> int:
        return len(self._at)
