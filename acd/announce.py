"""Position announcements (位置播报) for callers waiting in a queue that has them.

A queue's `announce` settings give the first announcement `first` seconds after the caller
joined the queue and then one every `every` seconds (slots counted from the join, so the rhythm
does not drift with rings). A slot that passes while the caller is being rung is told when they
are back in line, and never to a caller the same event rings: the announcements are sent after
the matching. The wait is announced only when the engine has seen enough finished calls to stand
by its figure (`acd/estimate.py`); otherwise the caller hears their place only.
"""

from __future__ import annotations

from acd import estimate
from acd.calls import Call
from acd.commands import Announce, Command
from acd.deadlines import next_slot
from acd.model import QueueSettings
from acd.state import State


def check(state: State, call: Call, q: QueueSettings, now: float) -> None:
    """Called when the caller's deadline is due: note an announcement if one is."""
    at = next_slot(call, q)
    if at is not None and at <= now:
        call.announced_at = now
        state.announce.add(call.call_id)


def emit(state: State, now: float, out: list[Command]) -> None:
    """Tell the callers noted in this event who are still waiting in line."""
    for call_id in sorted(state.announce):
        call = state.calls.get(call_id)
        q = state.queues.get(call.queue) if call is not None else None
        if call is None or q is None or q.announce is None or next_slot(call, q) is None:
            continue  # rung, gone or sent out meanwhile
        line = state.lines.get(call.queue)
        ahead = line.rank(state.place_of(call)) if line is not None else 0
        minutes = None
        if q.announce.wait:
            wait = estimate.wait_in_line(state, call.queue, ahead, now)
            minutes = max(1, int(-(-wait // 60))) if wait is not None else None  # rounded up
        told = ahead if q.announce.position else None
        if told is not None or minutes is not None:  # a wait-only queue says nothing without a figure
            out.append(Announce(call.call_id, call.channel, told, minutes))
    state.announce.clear()
