"""Pure routing core: model, events in, commands out, `decide(state, event, now)`."""

from acd.decide import agent_state, decide

__all__ = ["agent_state", "decide"]
