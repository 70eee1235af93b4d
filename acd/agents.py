"""An agent's life as two explicit state machines.

Presence is what the agent chose (logged out, ready, paused with a reason), changed by
their own requests (feature codes, HTTP). Activity is what the engine has them doing
(idle, ringing, on a call, in wrap-up). The phone's own state (registered, busy with a
call of its own) comes from Asterisk and is kept beside them. The label a supervisor
sees is derived from all three (`label`).

A request that the presence table does not allow is rejected with a reason (the HTTP
API answers 409 with it); an activity move the table does not allow is an unexpected
event, counted by the shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class Presence(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    PAUSED = "paused"


class Control(StrEnum):
    """What an agent may ask for, from a softphone feature code or over HTTP."""

    LOGIN = "login"
    LOGOUT = "logout"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    END_WRAPUP = "end_wrapup"


class Activity(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class ActivityTrigger(StrEnum):
    RESERVE = "reserve"  # a ring of ours reaches the agent
    RELEASE = "release"  # that ring is over without an answer
    ANSWER = "answer"
    HANG_UP = "hang_up"  # the call the agent was on ended
    WRAPUP_DUE = "wrapup_due"
    END_WRAPUP = "end_wrapup"  # the agent ends wrap-up early (*25)


P, C = Presence, Control

PRESENCE_TRANSITIONS: Final[dict[tuple[Presence, Control], Presence]] = {
    (P.LOGGED_OUT, C.LOGIN): P.READY,
    (P.READY, C.LOGIN): P.READY,
    (P.PAUSED, C.LOGIN): P.READY,  # logging in again clears a pause
    (P.READY, C.LOGOUT): P.LOGGED_OUT,
    (P.PAUSED, C.LOGOUT): P.LOGGED_OUT,
    (P.LOGGED_OUT, C.LOGOUT): P.LOGGED_OUT,
    (P.READY, C.PAUSE): P.PAUSED,
    (P.PAUSED, C.PAUSE): P.PAUSED,  # a new reason
    (P.PAUSED, C.UNPAUSE): P.READY,
    (P.READY, C.UNPAUSE): P.READY,
}

# Why a request is refused in a presence where the table has no move for it.
REFUSALS: Final[dict[tuple[Presence, Control], str]] = {
    (P.LOGGED_OUT, C.PAUSE): "not logged in: log in first (*21)",
    (P.LOGGED_OUT, C.UNPAUSE): "not logged in: log in first (*21)",
}

A, AT = Activity, ActivityTrigger

ACTIVITY_TRANSITIONS: Final[dict[tuple[Activity, ActivityTrigger], Activity]] = {
    (A.IDLE, AT.RESERVE): A.RINGING,
    (A.RINGING, AT.RELEASE): A.IDLE,
    (A.RINGING, AT.ANSWER): A.ON_CALL,
    # Answers with no ring of ours: the dialplan's fallback rang while we were away.
    (A.IDLE, AT.ANSWER): A.ON_CALL,
    (A.WRAP_UP, AT.ANSWER): A.ON_CALL,
    (A.ON_CALL, AT.HANG_UP): A.WRAP_UP,
    (A.WRAP_UP, AT.WRAPUP_DUE): A.IDLE,
    (A.WRAP_UP, AT.END_WRAPUP): A.IDLE,
}


@dataclass(eq=False)  # identity: an agent is itself, not its field values
class Agent:
    agent_id: str
    registered: bool = False
    # The phone is busy with something (any call, ours or not): never ring it.
    device_busy: bool = False
    # The phone stopped answering Asterisk's OPTIONS pings (qualify): out of routing until it
    # answers again, even while its registration has not expired.
    unreachable: bool = False
    # The phone's call is a feature code (*21...*25): the agent is not busy with a caller.
    feature_call: bool = False
    busy_before_feature: bool = False  # the phone was busy already when the code was dialled
    presence: Presence = Presence.READY
    pause_reason: str | None = None
    activity: Activity = Activity.IDLE
    call_id: str | None = None  # the call the agent is ringing for or talking on
    # When the agent last became free to take a call; longest-idle orders by it.
    idle_since: float = 0.0
    wrap_until: float = 0.0
    # False once removed from configuration: finishes its call, never rung again.
    configured: bool = True
    queues: frozenset[str] = frozenset({"main"})
    skills: dict[str, int] = field(default_factory=dict)
    wrapup: float | None = None  # overrides the queue's wrap-up time
    backoff_until: float = 0.0
    backoff_reason: str = ""  # the Dial status that backed them off (BUSY, CHANUNAVAIL, ...)
    no_answer_streak: int = 0
    calls_taken: int = 0
    talk_total: float = 0.0
    last_offered: int = 0  # round-robin position
    shown: str = "logged_out"  # the label last reported (AgentStateChanged): see `label`
    idle_kept: bool = False  # idle_since restored from the engine before: kept at the first resync

    def present(self) -> bool:
        """Logged in with a registered phone: counts as staff for `when_empty` (paused too)."""
        return (self.configured and self.registered and not self.unreachable
                and self.presence is not Presence.LOGGED_OUT)

    def available(self, now: float | None = None) -> bool:
        """Free to be rung now (with `now`: and not backed off)."""
        return (
            self.configured
            and self.registered
            and not self.unreachable
            and self.presence is Presence.READY
            and not self.busy()
            and self.activity is Activity.IDLE
            and (now is None or now >= self.backoff_until)
        )


    def busy(self) -> bool:
        """Busy with a call that is not a feature code (that one ends in a second, and the
        agent asked to be routed to, or not, at once)."""
        return self.device_busy and (not self.feature_call or self.busy_before_feature)


# Why an agent who is not available may look it: what `reason` says for each label.
UNREACHABLE_REASON = "no reply to OPTIONS"


def label(agent: Agent, now: float | None = None) -> str:
    """The state a supervisor sees (metrics, /agents, logs). With `now`, an agent left alone
    after a busy or rejected ring shows as `backed_off` until the back-off ends."""
    if agent.activity is not Activity.IDLE:
        return str(agent.activity.value)
    if agent.presence is Presence.LOGGED_OUT:
        return "logged_out"
    if agent.unreachable:
        return "unreachable"
    if not agent.registered:
        return "logged_out"
    if agent.presence is Presence.PAUSED:
        return "paused"
    if agent.busy():
        return "busy_other"
    if now is not None and now < agent.backoff_until:
        return "backed_off"
    return "available"


def reason(agent: Agent, now: float) -> str:
    """What the label's reason is: the pause code, the status that backed the agent off, or
    the unanswered OPTIONS; "" where the label says it all."""
    shown = label(agent, now)
    if shown == "paused":
        return agent.pause_reason or ""
    if shown == "backed_off":
        return agent.backoff_reason
    if shown == "unreachable":
        return UNREACHABLE_REASON
    return ""


def backoff_left(agent: Agent, now: float) -> float:
    """Seconds until a backed-off agent is rung again (0: not backed off)."""
    return max(0.0, agent.backoff_until - now) if label(agent, now) == "backed_off" else 0.0


def move(agent: Agent, trigger: ActivityTrigger) -> bool:
    """Move the agent's activity along the table; False (and no change) if there is no such move."""
    nxt = ACTIVITY_TRANSITIONS.get((agent.activity, trigger))
    if nxt is None:
        return False
    agent.activity = nxt
    return True
