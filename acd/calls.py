"""A caller's life as an explicit state machine.

Every state change of a call goes through `advance`, which looks the pair
(state, trigger) up in `CALL_TRANSITIONS`. A pair that is not in the table is an
unexpected event: the call does not move and the caller of `advance` reports it
(the shell counts them), in the spirit of h11's `_state.py`.

    IN_LINE       --RING--> REDIRECTING --DIAL_BEGIN--> DIALING --ANSWER--> CONNECTED
    REDIRECTING   --RING_FAILED--> IN_LINE      (Asterisk refused the Redirect)
    REDIRECTING   --UNSURE--> CONFIRMING        (no DialBegin in time, or no answer to the
                                                 Redirect: ask Asterisk where the caller is)
    CONFIRMING    --PROBED_*--> IN_LINE | DIALING | LEAVING
    DIALING       --DIAL_END | RING_DUE--> WALKING_BACK --PARKED | PARK_DUE--> IN_LINE
    WALKING_BACK  --DIAL_BEGIN | ANSWER--> DIALING | CONNECTED  (the ring was only assumed over)
    IN_LINE       --LEAVE--> LEAVING --LEAVE_FAILED--> IN_LINE
    IN_LINE       --FALLBACK_DIAL--> FALLBACK (the dialplan's own fallback rings everyone)
    CONNECTED     --AGENT_LEFT--> AFTER_TALK  (the agent hung up first: the caller stays on
                                               the line for the satisfaction survey)
    A callback (virtual hold) uses IN_LINE --RING--> REDIRECTING (the agent is Originated)
    --ANSWER | RING_FAILED--> CONNECTED | IN_LINE: see acd/callbacks.py.
    any state     --hang-up--> (the call ends and its record is written)

A resync rebuilds calls from Asterisk's own snapshot, which is the truth: it may put a
call in any state (`acd/resync.py`), and does not go through this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from acd.model import LeaveReason


class CallState(StrEnum):
    IN_LINE = "in_line"  # in the hold loop, safe to Redirect: waits for an agent
    REDIRECTING = "redirecting"  # sent to ring an agent; Asterisk has not begun the Dial yet
    CONFIRMING = "confirming"  # a Redirect's fate is unknown: Asterisk was asked where the caller is
    DIALING = "dialing"  # Asterisk rings the agent(s)
    WALKING_BACK = "walking_back"  # the ring is over; the dialplan walks the caller back to the loop
    FALLBACK = "fallback"  # the dialplan's own fallback rings every agent (no engine was routing)
    CONNECTED = "connected"  # talking to an agent
    LEAVING = "leaving"  # sent out of line (time-out, overflow, closed, callback, forward)
    AFTER_TALK = "after_talk"  # the agent hung up first; the caller is still on (the survey)


class CallTrigger(StrEnum):
    RING = "ring"
    DIAL_BEGIN = "dial_begin"
    ANSWER = "answer"
    DIAL_END = "dial_end"
    RING_DUE = "ring_due"  # ring timeout + grace passed without Asterisk's DialEnd
    RING_FAILED = "ring_failed"
    UNSURE = "unsure"  # a Redirect that was neither confirmed nor refused
    PROBED_IN_LINE = "probed_in_line"
    PROBED_DIALING = "probed_dialing"
    PROBED_LEAVING = "probed_leaving"
    PARKED = "parked"  # the dialplan says the caller is back in the loop (HotlineParked)
    PARK_DUE = "park_due"  # ...or enough time has passed to assume so
    LEAVE = "leave"
    LEAVE_FAILED = "leave_failed"
    FALLBACK_DIAL = "fallback_dial"
    AGENT_LEFT = "agent_left"  # the answering agent's leg hung up while the caller stays


S, T = CallState, CallTrigger

CALL_TRANSITIONS: Final[dict[tuple[CallState, CallTrigger], CallState]] = {
    (S.IN_LINE, T.RING): S.REDIRECTING,
    (S.IN_LINE, T.LEAVE): S.LEAVING,
    (S.IN_LINE, T.FALLBACK_DIAL): S.FALLBACK,
    (S.IN_LINE, T.PARKED): S.IN_LINE,
    # An answer with no ring of ours: the dialplan's fallback rang while we were away.
    (S.IN_LINE, T.ANSWER): S.CONNECTED,
    (S.REDIRECTING, T.DIAL_BEGIN): S.DIALING,
    (S.REDIRECTING, T.RING_FAILED): S.IN_LINE,
    (S.REDIRECTING, T.UNSURE): S.CONFIRMING,
    # DialBegin lost or filtered: the later events still say what happened.
    (S.REDIRECTING, T.ANSWER): S.CONNECTED,
    (S.REDIRECTING, T.DIAL_END): S.WALKING_BACK,
    (S.CONFIRMING, T.DIAL_BEGIN): S.DIALING,
    (S.CONFIRMING, T.ANSWER): S.CONNECTED,
    (S.CONFIRMING, T.DIAL_END): S.WALKING_BACK,
    (S.CONFIRMING, T.PROBED_IN_LINE): S.IN_LINE,
    (S.CONFIRMING, T.PROBED_DIALING): S.DIALING,
    (S.CONFIRMING, T.PROBED_LEAVING): S.LEAVING,
    (S.CONFIRMING, T.UNSURE): S.CONFIRMING,  # no answer to the question either: ask again
    (S.CONFIRMING, T.FALLBACK_DIAL): S.FALLBACK,
    (S.DIALING, T.ANSWER): S.CONNECTED,
    (S.DIALING, T.DIAL_END): S.WALKING_BACK,
    (S.DIALING, T.RING_DUE): S.WALKING_BACK,
    (S.WALKING_BACK, T.PARKED): S.IN_LINE,
    (S.WALKING_BACK, T.PARK_DUE): S.IN_LINE,
    # The ring was only assumed over (its deadline passed, or a snapshot showed the caller
    # in hotline-connect with no agent leg): Asterisk's own Dial events are the truth.
    (S.WALKING_BACK, T.DIAL_BEGIN): S.DIALING,
    (S.WALKING_BACK, T.ANSWER): S.CONNECTED,
    (S.WALKING_BACK, T.FALLBACK_DIAL): S.FALLBACK,
    (S.FALLBACK, T.ANSWER): S.CONNECTED,
    (S.FALLBACK, T.DIAL_END): S.WALKING_BACK,
    # Back from the fallback's Dial although a leg's DialEnd was lost: HotlineParked says so.
    (S.FALLBACK, T.PARKED): S.IN_LINE,
    (S.CONNECTED, T.AGENT_LEFT): S.AFTER_TALK,
    (S.LEAVING, T.LEAVE_FAILED): S.IN_LINE,
    (S.LEAVING, T.UNSURE): S.CONFIRMING,
}

# States in which the engine has asked Asterisk to move the caller and awaits the outcome.
PENDING_RING = frozenset({S.REDIRECTING, S.CONFIRMING, S.DIALING})


# HOTLINE_OFFERED on the channel of a caller the engine never offered (closed hours in
# every queue the caller entered): the dialplan sets the dialled queue for every caller,
# so the engine overwrites it, and a restarted engine and Asterisk's account read it.
NOT_OFFERED = "-"


@dataclass(eq=False)  # identity: a call is itself, not its field values
class Call:
    call_id: str  # Asterisk Linkedid of the caller's channel
    channel: str
    queue: str  # the queue the caller waits in now
    arrived: float  # when the caller joined the first queue (the core's clock)
    arrived_wall: float  # the same moment on the wall clock, for the record
    caller_num: str = ""
    caller_name: str = ""
    restricted: bool = False  # presentation restricted: mask the number wherever it is shown
    priority: int = 0
    extra_skills: tuple[tuple[str, int], ...] = ()  # asked for by the dialled number
    path: tuple[str, ...] = ()  # every queue the caller entered, in order
    # The first open queue the caller entered: KPIs count the call there, with that
    # queue's service level and short-abandon threshold (None: not offered, e.g. closed).
    offered_in: str | None = None
    service_level: float = 15.0
    short_abandon: float = 5.0
    state: CallState = CallState.IN_LINE
    since: float = 0.0  # when the call entered its state
    # The agent rung or talking; for ring_all the first of `ringing`.
    agent_id: str | None = None
    ringing: frozenset[str] = frozenset()  # agents the current ring reaches (several for ring_all)
    tried: frozenset[str] = frozenset()  # agents who let this caller ring out
    attempt: int = 0  # bumped on every ring; Asterisk's Dial events carry it back
    ring_for: float = 0.0  # the current ring's timeout, as Asterisk's Dial was told (a reload does not cut it)
    dial_ended: int = 0  # the last attempt whose DialEnd came: a DialBegin of it arriving later is stale
    answered: float | None = None
    talk_ended: float | None = None  # the agent hung up first (AFTER_TALK): the talk ended here
    # The satisfaction survey after the talk: offered (the caller reached it) and the key
    # pressed, 1 (best) .. scale; None with `surveyed` is "no rating".
    surveyed: bool = False
    rating: int | None = None
    recording: str | None = None
    leave_reason: LeaveReason | None = None  # set once the engine decided the caller leaves
    forward_to: str = ""  # the external number, when leaving to FORWARD
    confirming_leave: bool = False  # CONFIRMING a send-out rather than a ring
    probe: int = 0  # the latest ProbeCall's number: only its answer is taken
    walk_back_due: float = 0.0  # WALKING_BACK: assume the caller is back in the loop by then
    retry_after: float = 0.0  # after a failed Redirect, not rung again before this
    failures: int = 0  # Redirects in a row that Asterisk refused (for the back-off)
    # Line order: arrival minus the priority boost (smaller goes first); seq breaks ties
    # and changes when the caller moves to another queue.
    key: float = 0.0
    seq: int = 0
    skills: tuple[tuple[str, int], ...] = ()  # required (skill, level): the queue's plus the call's own
    queue_since: float = 0.0  # widening and overflow count from here (moves on overflow)
    announced_at: float = -1.0  # the last position announcement (acd/announce.py); -1: none yet
    sticky_agent: str | None = None
    sticky_until: float = 0.0
    served_by_fallback: bool = False
    adopted: bool = False  # found in a resync snapshot rather than seen joining
    # The live counters have this call's answer: counted by this process, or (an adopted call
    # answered before `State.counted_until`) by the engine that ran before.
    answer_counted: bool = False
    # A callback (virtual hold, acd/callbacks.py): the request id. Such a call has no channel
    # of its own (`channel` is ""): it waits in line at the citizen's original arrival; the
    # agent's leg, Originated when its turn comes, is the call, and it calls the citizen.
    callback: str | None = None
    callback_status: str | None = None  # Dial's status of the call to the citizen, once known
    callback_answered: float | None = None  # wall clock: the citizen answered
    callback_gone: str | None = None  # this agent's leg hung up before Asterisk's verdict on the Originate came
    # 三方通话 and transfers: (wall clock, kind, party, detail) for each join and leave, in order.
    parties: tuple[tuple[float, str, str, str], ...] = ()

    @property
    def offered_queue(self) -> str:
        return self.offered_in or (self.path[0] if self.path else self.queue)

    def waited(self, now: float) -> float:
        return max(0.0, (self.answered if self.answered is not None else now) - self.arrived)


def advance(call: Call, trigger: CallTrigger, now: float) -> bool:
    """Move the call along the table; False (and no change) if the table has no such move."""
    nxt = CALL_TRANSITIONS.get((call.state, trigger))
    if nxt is None:
        return False
    if nxt is not call.state:
        call.state = nxt
        call.since = now
    return True
