"""Position announcements (位置播报) for callers waiting in a queue that has them.

A queue's `announce` settings give the first announcement `first` seconds after the caller
joined the queue and then one every `every` seconds (slots counted from the join, so the rhythm
does not drift with rings: acd/deadlines.py `next_slot`). The announcements are sent after the
matching, never to a caller the same event rings; a slot that falls due while the caller is
being rung (or in the very event that rings them) is told when they are back in line.

The place counts every caller who will be served before this one by the same agents: those
ahead in this queue's line and in the lines of the queues that share its agents (agents take
callers in line order across all the queues they serve) or may borrow them by widening. The
wait is that many callers plus one, times the handle time, over the agents who serve this
queue: it errs long where other agents also take some of those callers. It is said only when
the engine has seen enough finished calls to stand by it (`acd/estimate.py`); otherwise the
caller hears their place only.
"""

from __future__ import annotations

from acd import estimate
from acd.calls import Call
from acd.commands import Announce, Command
from acd.deadlines import next_slot
from acd.line import Line
from acd.model import QueueSettings
from acd.state import State


def check(state: State, call: Call, q: QueueSettings, now: float) -> None:
    """Called when the caller's deadline is due: note an announcement if one is (the slot is
    taken now, so the deadline moves on; `emit` gives it back if the caller is rung instead)."""
    at = next_slot(call, q)
    if at is not None and at <= now:
        state.announce.setdefault(call.call_id, call.announced_at)
        call.announced_at = now


def competing_lines(state: State, queue: str) -> list[Line]:
    """The lines whose callers the agents of `queue` may take before its own caller."""
    staff = [a for a in state.agents.values() if a.configured and queue in a.queues]
    names = {queue, *state.borrowers.get(queue, ())}
    names.update(name for a in staff for name in a.queues)
    return [line for name, line in state.lines.items() if name in names]


def emit(state: State, now: float, out: list[Command]) -> None:
    """Tell the callers noted in this event who are still waiting in line."""
    per_queue: dict[str, tuple[list[Line], float | None]] = {}
    for call_id, before in sorted(state.announce.items()):
        call = state.calls.get(call_id)
        q = state.queues.get(call.queue) if call is not None else None
        if call is None or q is None or q.announce is None:
            continue  # gone, or the queue stopped announcing
        if next_slot(call, q) is None:
            call.announced_at = before  # rung (or sent out) meanwhile: the slot is told when back in line
            continue
        if call.queue not in per_queue:
            rate = estimate.seconds_per_caller(state, call.queue) if q.announce.wait else None
            per_queue[call.queue] = (competing_lines(state, call.queue), rate)
        lines, rate = per_queue[call.queue]
        place = state.place_of(call)
        ahead = sum(line.rank(place) for line in lines)
        # Rounded up to whole minutes, at least one.
        minutes = max(1, int(-(-((ahead + 1) * rate) // 60))) if rate is not None else None
        told = ahead if q.announce.position else None
        if told is not None or minutes is not None:  # a wait-only queue says nothing without a figure
            out.append(Announce(call.call_id, call.channel, told, minutes))
    state.announce.clear()
