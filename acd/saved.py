"""What an engine keeps of its agents across a restart or a crash, and how the next one takes it.

Kept (the agent's own choices and the day's tallies, which Asterisk does not know): logged in or
out, paused with its reason, calls taken, talk time, the ring-no-answer streak, idle since, the
end of a wrap-up, and a phone found unreachable. Re-read from Asterisk at the resync instead: the
phone's registration and whether it is busy (DeviceStateList), and the calls (who is ringing or
talking now). The shell writes `saved` to its spool folder after each change and hands the file's
content back once per process as `AgentsRestored`, before the first resync.
"""

from __future__ import annotations

from acd.agents import Activity, Presence
from acd.commands import Command
from acd.events import AgentsRestored, SavedAgent
from acd.state import AgentWatch, State

# A wrap-up longer than this left by the previous engine is taken for a clock that jumped.
MAX_RESTORED_WRAPUP = 600.0


def saved(state: State, now: float, wall: float) -> tuple[SavedAgent, ...]:
    """Every configured agent as it should be kept, with wall-clock times."""
    out = []
    for agent in sorted(state.agents.values(), key=lambda a: a.agent_id):
        if not agent.configured:
            continue
        wrapping = agent.activity is Activity.WRAP_UP and agent.wrap_until > now
        out.append(SavedAgent(
            agent_id=agent.agent_id,
            presence=agent.presence,
            pause_reason=agent.pause_reason if agent.presence is Presence.PAUSED else None,
            calls_taken=agent.calls_taken,
            talk_total=round(agent.talk_total, 3),
            no_answer_streak=agent.no_answer_streak,
            # Idle time means something only for an agent free now (longest_idle counts from when
            # they last became free): otherwise the next engine starts it when they become free.
            idle_since=round(wall - (now - agent.idle_since), 3) if agent.available() else 0.0,
            wrap_until=round(wall + (agent.wrap_until - now), 3) if wrapping else 0.0,
            unreachable=agent.unreachable,
        ))
    return tuple(out)


def restore(state: State, ev: AgentsRestored, now: float, wall: float, out: list[Command]) -> None:
    """Take back what the previous engine kept, for agents still configured. Their phones and
    calls are not known yet: the resync that follows sets them, and an agent it finds talking
    goes from a restored wrap-up to the call."""
    same_day = ev.written > 0 and state.calendar.local(ev.written).date() == state.calendar.local(wall).date()
    for kept in ev.agents:
        agent = state.agents.get(kept.agent_id)
        if agent is None or not agent.configured:
            continue  # removed from agents.yaml since: nothing to restore
        watch = AgentWatch(agent)
        agent.presence = kept.presence
        agent.pause_reason = (kept.pause_reason or "break") if kept.presence is Presence.PAUSED else None
        if same_day:  # the day's tallies (fewest_calls, least_talk_time, /agents) start afresh each day
            agent.calls_taken = max(0, kept.calls_taken)
            agent.talk_total = max(0.0, kept.talk_total)
            agent.no_answer_streak = max(0, kept.no_answer_streak)
        agent.unreachable = kept.unreachable
        if kept.idle_since > 0:
            agent.idle_since = now - max(0.0, wall - kept.idle_since)
            agent.idle_kept = True
        left = min(kept.wrap_until - wall, MAX_RESTORED_WRAPUP)
        if left > 0 and agent.activity is Activity.IDLE:
            agent.activity = Activity.WRAP_UP
            agent.wrap_until = now + left
        watch.done(state, now, out)
        if agent.activity is Activity.WRAP_UP:
            # `done` started the idle clock only for an available agent; a restored wrap-up
            # keeps the idle time it had, which it resumes when the wrap-up ends.
            state.dirty_agents.add(agent.agent_id)
