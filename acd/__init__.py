"""Pure routing core: events in, commands out, `decide(state, event, now)`; deadlines
derived from state (`next_deadline`)."""

from acd.agents import label as agent_state
from acd.decide import DecideError, decide, next_deadline
from acd.state import State

__all__ = ["DecideError", "State", "agent_state", "decide", "next_deadline"]
