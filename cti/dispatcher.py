"""The one task that owns live state.

Everything that can change the picture arrives on one typed inbox, in order: AMI events
as the link reads them, the link going up and down, resync snapshots at their place in
the AMI stream, the results of commands, the deadline wake-up, configuration, agents'
requests. The dispatcher decodes each item, calls `acd.decide`, and carries out the
commands without awaiting on the hot path: AMI actions run as tasks whose results come
back through the inbox.

Clocks: the core gets the monotonic clock as `now` (every rule and deadline) and the
wall clock as `wall` (what people read); the one wake-up is armed on the monotonic clock,
so a wall-clock step can neither strand nor hurry anybody.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, assert_never

import structlog

from acd import DecideError, State, decide, next_deadline
from acd.calendar import Calendar
from acd.calls import Call
from acd.commands import (
    AgentStateChanged,
    Announce,
    CallAnswered,
    CallbackAttempt,
    CallbackOutcome,
    CallOffered,
    CallRecord,
    Command,
    ControlDone,
    ProbeCall,
    RingAgent,
    SendOut,
    TagCaller,
    Unexpected,
)
from acd.events import (
    AgentControl,
    AgentProfile,
    AgentsConfigured,
    CallbackCancelled,
    ChannelsSnapshot,
    DevicesSnapshot,
    Event,
    LeaveFailed,
    LinkLost,
    Probed,
    QueuesConfigured,
    RingFailed,
    Tick,
)
from acd.model import Outcome, QueueSettings
from acd.saved import saved
from cti import agent_file, dialplan
from cti import decode as decoding
from cti.agent_file import AgentFile
from cti.ami import AmiClient, AmiError, Reply
from cti.ami_frame import AmiMessage
from cti.logs import mask_number
from ivr import announce as announcement
from metrics import kpi
from metrics.exporter import Metrics

log = structlog.get_logger("hotline.dispatch")

SNAPSHOT_TIMEOUT = 15.0
RECENT_RECORDS = 200_000  # call ids recorded by this process, remembered against double records
# How long the record of a call that ended out of the engine's sight waits for Asterisk's account.
PROVISIONAL_WAIT = 120.0


class RecordSink(Protocol):
    """Where finished calls go (tickets.store.Outbox): must never lose one it accepted."""

    def put(self, rec: CallRecord) -> object: ...


class CallbackPlacer(Protocol):
    """The callbacks' shell (cti/callbacks.py `Callbacks`): what a callback's Originate
    carries, and where an attempt's start and end are stored. Called in the dispatcher's
    task: they return at once (the store is written by their own task)."""

    def originate(self, cmd: RingAgent) -> dict[str, str] | None: ...

    def attempt_started(self, cmd: CallbackAttempt) -> None: ...

    def attempt_ended(self, cmd: CallbackOutcome) -> None: ...


# -- the inbox ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AmiEvent:
    message: AmiMessage
    read_at: float  # perf_counter when read: the engine's own share of the ring latency


@dataclass(frozen=True)
class LinkUp:
    session: int


@dataclass(frozen=True)
class LinkDown:
    session: int


@dataclass(frozen=True)
class Snapshot:
    session: int
    event: ChannelsSnapshot | DevicesSnapshot


@dataclass(frozen=True)
class CountedUntil:
    """Asterisk's mark of what an engine counted (dialplan.COUNTED_UNTIL), read before the
    snapshot of the same resync is applied."""

    session: int
    at: float


@dataclass(frozen=True)
class SnapshotFailed:
    session: int
    error: str


@dataclass(frozen=True)
class CoreEvent:
    event: Event  # a deadline, a command's result, configuration, history


@dataclass(frozen=True)
class ControlRequest:
    event: AgentControl
    reply: asyncio.Future[ControlDone]


@dataclass(frozen=True)
class Recovered:
    """Records rebuilt from Asterisk's account, checked once more against what the
    dispatcher knows before they are written (`done` gets how many were)."""

    records: tuple[CallRecord, ...]
    done: asyncio.Future[int]


@dataclass(frozen=True)
class Drain:
    """Everything before this has been handled (shutdown waits for it)."""

    done: asyncio.Future[None]


InboxItem = (AmiEvent | LinkUp | LinkDown | CountedUntil | Snapshot | SnapshotFailed | CoreEvent | ControlRequest
             | Recovered | Drain)


class Dispatcher:
    def __init__(
        self,
        queues: tuple[QueueSettings, ...],
        profiles: tuple[AgentProfile, ...],
        outbox: RecordSink,
        metrics: Metrics,
        calendar: Calendar | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.state = State(queues={q.name: q for q in queues})
        self.profiles = profiles
        self.calendar = calendar
        self.outbox = outbox
        self.metrics = metrics
        self.clock = clock
        self.wall = wall
        self.ami: AmiClient | None = None
        self.inbox: asyncio.Queue[InboxItem] = asyncio.Queue()
        self.session = 0  # the AMI session whose snapshots count
        self.resyncs = 0
        self.records = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._read_at: float | None = None
        self._reply: asyncio.Future[ControlDone] | None = None
        self._recent: dict[str, None] = {}  # insertion-ordered: the oldest are forgotten first
        self._provisional: dict[str, tuple[CallRecord, float]] = {}  # call id -> (guess, write it after)
        self.account_enabled = False  # Asterisk's account is read (cti/account.py)
        # The engine's own copy of the counted-until mark (dialplan.COUNTED_UNTIL), in the spool
        # folder: Asterisk's global is gone after an Asterisk restart, and the account may be
        # reconciled before the first resync reads it.
        self.mark_file: Path | None = None
        self._mark_read = False  # Asterisk's mark is read once: what came later is this process's own
        # The agents' state kept across restarts (cti/agent_file.py, acd/saved.py): None: not kept.
        self.agents_file: AgentFile | None = None
        self._agents_changed = False
        self._agents_kept_at = -math.inf
        self.on_routing: Callable[[], None] | None = None  # called when routing (re)starts
        # Called when an agent answers (the ticket platform opens the call's draft); it must not block.
        self.on_answered: Callable[[CallAnswered, Call | None], None] | None = None
        # The live pages' observer (web/app.py): told each command after it is carried out, so
        # a ring's Redirect is on its way to Asterisk before any page is drawn.
        self.on_command: Callable[[Command, float], None] | None = None
        # Hook for tests and benchmarks: called after each item is handled.
        self.after_item: Callable[[InboxItem], None] | None = None
        self.callbacks: CallbackPlacer | None = None  # set by cti.callbacks.Callbacks

    # -- feeding the inbox (callbacks: they only enqueue) ------------------------------

    def on_ami_event(self, message: AmiMessage) -> None:
        self.inbox.put_nowait(AmiEvent(message, time.perf_counter()))

    def on_link_up(self, session: int) -> None:
        self.inbox.put_nowait(LinkUp(session))

    def on_link_down(self, session: int) -> None:
        self.inbox.put_nowait(LinkDown(session))

    def submit(self, event: Event) -> None:
        self.inbox.put_nowait(CoreEvent(event))

    async def control(self, event: AgentControl, timeout: float = 5.0) -> ControlDone:
        """An agent's request from HTTP: applied by the dispatcher, answered with the outcome."""
        reply: asyncio.Future[ControlDone] = asyncio.get_running_loop().create_future()
        self.inbox.put_nowait(ControlRequest(event, reply))
        return await asyncio.wait_for(reply, timeout)

    def unknown(self, call_id: str) -> bool:
        """Neither a live call nor one this process has recorded (a record still waiting for
        the account to confirm it counts as not recorded)."""
        if call_id in self._provisional:
            return True
        return call_id not in self.state.calls and call_id not in self._recent

    def _current_link(self, session: int) -> AmiClient | None:
        """The AMI client if `session` is the link that is up now: not one gone since, nor one
        a newer link replaced while its items still wait in the inbox."""
        ami = self.ami
        if ami is None or not ami.connected or session != self.session or ami.session != session:
            return None
        return ami

    def holds(self, call_id: str) -> bool:
        """A call still live in the engine's picture (its end not seen yet)."""
        return call_id in self.state.calls

    async def recovered(self, records: list[CallRecord]) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.inbox.put_nowait(Recovered(tuple(records), done))
        return await done

    async def drain(self) -> None:
        """Wait until every item queued so far has been handled."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox.put_nowait(Drain(done))
        await done

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        self.state.counted_until = read_mark(self.mark_file)
        if self.calendar is not None:
            self.apply(QueuesConfigured(tuple(self.state.queues.values()), self.calendar))
        self.apply(AgentsConfigured(frozenset(p.agent_id for p in self.profiles), self.profiles))
        if self.agents_file is not None:
            kept = agent_file.read(self.agents_file.path)
            if kept.agents:
                self.apply(kept)
                log.info("agents_restored", agents=len(kept.agents), file=str(self.agents_file.path))
        while True:
            item = await self.inbox.get()
            try:
                self.handle(item)
            except Exception:
                # One bad item is logged and counted; routing goes on.
                self.metrics.event_errors.inc()
                log.exception("event_failed", item=type(item).__name__)
            if self._agents_changed and (self.inbox.empty() or
                                         self.clock() - self._agents_kept_at >= agent_file.WRITE_EVERY):
                self.keep_agents()
            if self.after_item is not None:
                self.after_item(item)

    def handle(self, item: InboxItem) -> None:
        match item:
            case AmiEvent():
                self._read_at = item.read_at
                try:
                    event = decoding.decode(item.message)
                except decoding.DecodeError as exc:
                    self.metrics.decode_errors.inc()
                    log.warning("ami_event_rejected", reason=str(exc))
                    return
                if event is not None:
                    self.apply(event)
                self._read_at = None
            case LinkUp():
                self.session = item.session
                self._request_snapshots(item.session)
            case LinkDown():
                if item.session == self.session:
                    self.apply(LinkLost())
            case CountedUntil():
                # Only the engine before this process matters (a call this process does not know
                # is one it never counted): the mark at later resyncs is this process's own.
                if self._current_link(item.session) is not None and not self._mark_read:
                    self._mark_read = True
                    self.state.counted_until = max(self.state.counted_until, item.at)
            case Snapshot():
                if self._current_link(item.session) is None:
                    # Taken on a link that has gone since: the next link brings its own.
                    self.metrics.snapshots_dropped.inc()
                    return
                was_routing = self.state.routing
                self.apply(item.event)
                if self.state.routing and not was_routing:
                    self.resyncs += 1
                    log.info("resynced", calls=len(self.state.calls), session=item.session,
                             agents=sum(1 for a in self.state.agents.values() if a.configured and a.registered))
                    self._spawn(self._beat())
                    if self.on_routing is not None:
                        self.on_routing()
            case SnapshotFailed():
                if (ami := self._current_link(item.session)) is not None:
                    # Never stay connected with routing off: drop the link (with a growing
                    # back-off), the reconnect resyncs; the heartbeat stays off meanwhile.
                    log.warning("resync_failed", error=item.error, hint="dropping the AMI link to start over")
                    ami.drop(penalize=True)
            case CoreEvent():
                self.apply(item.event)
            case ControlRequest():
                self._reply = item.reply
                try:
                    self.apply(item.event)
                finally:
                    if self._reply is not None and not self._reply.done():
                        self._reply.set_exception(RuntimeError("the request was not answered"))
                    self._reply = None
            case Recovered():
                added = 0
                for rec in item.records:
                    provisional = self._provisional.pop(rec.call_id, None)
                    if provisional is not None:
                        self._supersede(provisional[0], rec)
                        added += 1
                    elif self.unknown(rec.call_id):
                        self.execute(rec, self.clock())
                        added += 1
                if not item.done.done():
                    item.done.set_result(added)
            case Drain():
                if not item.done.done():
                    item.done.set_result(None)
            case _:
                assert_never(item)

    def keep_agents(self) -> None:
        """Hand the agents' state to the file's writer (after the commands: never before a ring)."""
        self._agents_changed = False
        if self.agents_file is None:
            return
        now = self.clock()
        self._agents_kept_at = now
        self.agents_file.put(agent_file.encode(saved(self.state, now, self.wall()), self.wall()))

    def apply(self, event: Event) -> None:
        now, wall = self.clock(), self.wall()
        try:
            _, commands = decide(self.state, event, now, wall)
        except DecideError as exc:
            # The state may be half-changed: keep every record already produced, count it,
            # and rebuild the picture from Asterisk.
            self.metrics.event_errors.inc()
            log.error("decide_failed", input=type(event).__name__, exc_info=exc.__cause__,
                      hint="the picture is rebuilt from Asterisk")
            commands = [c for c in exc.commands if isinstance(c, CallRecord)]
            self._rebuild()
        # What Asterisk waits for first: the records' spool writes (fsynced) and the logs
        # come after the Redirects have been written.
        commands.sort(key=lambda c: not isinstance(c, (RingAgent, SendOut)))
        for cmd in commands:
            try:
                self.execute(cmd, now)
            except Exception:
                # One command failing must not cost the others.
                self.metrics.event_errors.inc()
                log.exception("command_failed", command=type(cmd).__name__)
        self._arm()

    def _rebuild(self) -> None:
        try:
            decide(self.state, LinkLost(), self.clock(), self.wall())
        except DecideError:
            log.exception("decide_failed_again")
        if self.ami is not None and self.ami.connected:
            self._request_snapshots(self.session)

    # -- commands ---------------------------------------------------------------------

    def execute(self, cmd: Command, now: float) -> None:
        self._execute(cmd, now)
        if self.on_command is not None:
            self.on_command(cmd, now)

    def _execute(self, cmd: Command, now: float) -> None:
        match cmd:
            case RingAgent():
                log.info("ring_agent", call_id=cmd.call_id, agent_id=cmd.agent_id, attempt=cmd.attempt,
                         also=list(cmd.also) or None, callback=cmd.callback)
                if cmd.callback is not None:
                    self._spawn(self._originate(cmd))  # no caller's channel: Asterisk calls the agent
                else:
                    self._ring_now(cmd, self._read_at)
            case SendOut():
                log.info("caller_leaves_line", call_id=cmd.call_id, reason=cmd.reason.value)
                self._spawn(self._send_out(cmd))
            case ProbeCall():
                log.info("probe_caller", call_id=cmd.call_id)
                self._spawn(self._probe(cmd))
            case TagCaller():
                self._spawn(self._tag(cmd))
            case CallOffered():
                self.metrics.offered_call(cmd)
                call = self.state.calls.get(cmd.call_id)
                log.info("call_offered", call_id=cmd.call_id, queue=cmd.queue,
                         caller=mask_number(call.caller_num, call.restricted) if call else "")
            case CallAnswered():
                if cmd.counted:
                    self.metrics.answered_call(cmd)
                log.info("call_answered", call_id=cmd.call_id, agent_id=cmd.agent_id, wait=round(cmd.wait, 3),
                         counted_before=not cmd.counted or None)
                if self.on_answered is not None:
                    try:
                        self.on_answered(cmd, self.state.calls.get(cmd.call_id))
                    except Exception:  # the draft is also opened from the stored record: routing goes on
                        log.exception("on_answered_failed", call_id=cmd.call_id)
            case AgentStateChanged():
                self._agents_changed = True
                self.metrics.agent_changed(cmd, now)
                log.info("agent_state", agent_id=cmd.agent_id, old=cmd.old, new=cmd.new, reason=cmd.reason or None)
            case CallRecord():
                if cmd.source == "resync" and self.account_enabled:
                    # The call ended while the engine could not see it: this record is the
                    # engine's guess. Asterisk's own account has the truth (who answered, when
                    # it ended); it is written instead if the account shows the call soon.
                    self._provisional[cmd.call_id] = (cmd, self.wall() + PROVISIONAL_WAIT)
                    log.info("call_record_waits_for_account", call_id=cmd.call_id, outcome=cmd.outcome.value)
                    return
                self._write(cmd)
                if cmd.source == "asterisk":
                    self.metrics.reconstructed_call(cmd, self.state.counted_until)
                else:
                    self.metrics.ended_call(cmd)
            case ControlDone():
                self._agents_changed = self._agents_changed or cmd.ok  # a new pause reason changes no label
                if self._reply is not None and not self._reply.done():
                    self._reply.set_result(cmd)
                log.info("agent_request", agent_id=cmd.agent_id, action=cmd.action.value, ok=cmd.ok,
                         reason=cmd.reason or None)
            case CallbackAttempt():
                log.info("callback_attempt", call_id=cmd.call_id, agent_id=cmd.agent_id, request=cmd.request_id)
                if self.callbacks is not None:
                    self.callbacks.attempt_started(cmd)
            case CallbackOutcome():
                log.info("callback_outcome", call_id=cmd.call_id, agent_id=cmd.agent_id, request=cmd.request_id,
                         status=cmd.status or None, talk=cmd.talk_seconds)
                if self.callbacks is not None:
                    self.callbacks.attempt_ended(cmd)
                else:
                    log.error("callback_outcome_not_stored", call_id=cmd.call_id,
                              hint="no callbacks service is wired to the dispatcher")
            case Announce():
                log.info("announce", call_id=cmd.call_id, ahead=cmd.ahead, wait_minutes=cmd.wait_minutes)
                self._spawn(self._announce(cmd))
            case Unexpected():
                self.metrics.unexpected_event(cmd)
                log.info("unexpected_event", machine=cmd.machine, state=cmd.state, trigger=cmd.trigger,
                         call_id=cmd.key if cmd.machine == "call" else None,
                         agent_id=cmd.key if cmd.machine == "agent" else None)
            case _:
                assert_never(cmd)

    def record_booking(self, rec: CallRecord) -> None:
        """The record of a call that booked a callback (outcome callback) from the IVR: the core
        never saw it (it never joined a queue), so it is offered and ended at once here, the
        honest count (offered, not answered), through the same outbox as every record. A call
        recorded already (booked twice) is not written or counted again. (A caller waiting in
        a queue has a record of their own to come: booking is offered before the queue.)"""
        if rec.call_id in self._recent or rec.call_id in self.state.calls:
            return  # recorded already, or in a queue after all: its own record is to come
        self._write(rec)
        self.metrics.reconstructed_call(rec)

    def _write(self, rec: CallRecord) -> None:
        self.outbox.put(rec)
        self.records += 1
        self._recent[rec.call_id] = None
        if len(self._recent) > RECENT_RECORDS:
            del self._recent[next(iter(self._recent))]
        log.info("call_ended", call_id=rec.call_id, agent_id=rec.agent_id, outcome=rec.outcome.value,
                 wait=rec.wait_seconds, talk=rec.talk_seconds, source=rec.source, served_by=rec.served_by,
                 caller=mask_number(rec.caller_num, rec.restricted))

    def _supersede(self, guess: CallRecord, rec: CallRecord) -> None:
        """Write the account's record of a call the engine had counted live up to the moment
        it lost sight of it: count only what the live counters have not counted yet."""
        self._write(rec)
        if kpi.classify(rec).offered and not kpi.classify(guess).offered:
            # Never offered as far as the engine saw (closed hours), answered by the fallback.
            self.metrics.offered_call(CallOffered(rec.call_id, kpi.offered_queue(rec)))
        if rec.outcome is Outcome.ANSWERED and guess.outcome is not Outcome.ANSWERED:
            self.metrics.answered_call(CallAnswered(rec.call_id, rec.offered_queue or rec.queue, rec.agent_id or "",
                                                    rec.wait_seconds, rec.service_level, rec.queue))
        self.metrics.ended_call(rec)

    def settle_provisional(self, everything: bool = False) -> int:
        """Write the guesses the account has not replaced in time (all of them at shutdown:
        a record is never held back from the store for good)."""
        now = self.wall()
        due = [cid for cid, (_, until) in self._provisional.items() if everything or until <= now]
        for call_id in due:
            guess, _ = self._provisional.pop(call_id)
            self._write(guess)
            self.metrics.ended_call(guess)
        return len(due)

    def _arm(self) -> None:
        """One wake-up, at the core's next deadline (re-armed only when it moves)."""
        at = next_deadline(self.state)
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, at - self.clock()), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._timer_at = None
        self.inbox.put_nowait(CoreEvent(Tick()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ring_now(self, cmd: RingAgent, read_at: float | None) -> None:
        """A single agent's ring is written to Asterisk at once, in this turn of the loop; its
        answer is awaited in a task. ring_all first sets the dial string, so it runs in a task."""
        exten, dial = dialplan.ring_target(cmd.agent_ids, cmd.timeout, cmd.attempt)
        if dial is not None or self.ami is None or not self.ami.connected:
            self._spawn(self._ring(cmd, read_at))
            return
        future = self.ami.send({"Action": "Redirect", "Channel": cmd.channel, "Context": dialplan.CONNECT,
                                "Exten": exten, "Priority": str(dialplan.REDIRECT_PRIORITY)})
        if read_at is not None:
            self.metrics.ring_dispatch.observe(time.perf_counter() - read_at)
        self._spawn(self._ring_answered(cmd, self.ami, future))

    async def _ring_answered(self, cmd: RingAgent, ami: AmiClient, future: asyncio.Future[Reply]) -> None:
        try:
            await self._wait(ami, future, "Redirect")
        except AmiError as exc:
            log.warning("ring_failed", call_id=cmd.call_id, error=str(exc), refused=exc.refused)
            self.submit(RingFailed(cmd.call_id, cmd.attempt, sure=exc.refused))

    async def _ring(self, cmd: RingAgent, read_at: float | None) -> None:
        exten, dial = dialplan.ring_target(cmd.agent_ids, cmd.timeout, cmd.attempt)
        try:
            ami = self._link()
            if dial is not None:
                await ami.action({"Action": "Setvar", "Channel": cmd.channel, "Variable": dialplan.DIAL,
                                  "Value": dial})
        except AmiError as exc:
            # The Redirect was never sent: the caller certainly did not move.
            log.warning("ring_failed", call_id=cmd.call_id, error=str(exc))
            self.submit(RingFailed(cmd.call_id, cmd.attempt, sure=True))
            return
        try:
            future = ami.send({"Action": "Redirect", "Channel": cmd.channel, "Context": dialplan.CONNECT,
                               "Exten": exten, "Priority": str(dialplan.REDIRECT_PRIORITY)})
            if read_at is not None:
                self.metrics.ring_dispatch.observe(time.perf_counter() - read_at)
            await self._wait(ami, future, "Redirect")
        except AmiError as exc:
            log.warning("ring_failed", call_id=cmd.call_id, error=str(exc), refused=exc.refused)
            self.submit(RingFailed(cmd.call_id, cmd.attempt, sure=exc.refused))

    async def _originate(self, cmd: RingAgent) -> None:
        """A callback's ring. Why an AMI Originate and not a call file: a call file needs a spool
        folder shared with Asterisk (and its permissions) and gives no per-attempt answer,
        while Originate with Async answers at once (queued, or refused) and raises
        OriginateResponse with the agent's verdict, tied to the call by its ChannelId. It needs
        the AMI user's `originate` write class; it runs a dialplan context, never an
        application, so System and Exec (which Asterisk also refuses there without the
        `system` class) are never asked for."""
        fields = self.callbacks.originate(cmd) if self.callbacks is not None else None
        if fields is None:
            # Cancelled, or unknown to the callbacks' shell: it leaves the line.
            log.warning("callback_not_placed", call_id=cmd.call_id, request=cmd.callback,
                        hint="the request is cancelled or unknown; the callback leaves the line")
            self.submit(RingFailed(cmd.call_id, cmd.attempt, sure=True))
            self.submit(CallbackCancelled(cmd.call_id))
            return
        try:
            ami = self._link()
        except AmiError as exc:
            log.warning("callback_originate_failed", call_id=cmd.call_id, error=str(exc))
            self.submit(RingFailed(cmd.call_id, cmd.attempt, sure=True))  # never sent
            return
        try:
            await self._wait(ami, ami.send(fields), "Originate")
        except AmiError as exc:
            # Refused: the agent was not rung. Unanswered: it may ring; its verdict or the
            # ring's deadline says.
            log.warning("callback_originate_failed", call_id=cmd.call_id, error=str(exc), refused=exc.refused)
            self.submit(RingFailed(cmd.call_id, cmd.attempt, sure=exc.refused))

    async def _send_out(self, cmd: SendOut) -> None:
        context, exten = dialplan.leave_target(cmd.reason, cmd.number)
        try:
            ami = self._link()
            await ami.action({"Action": "Redirect", "Channel": cmd.channel, "Context": context, "Exten": exten,
                              "Priority": str(dialplan.REDIRECT_PRIORITY)})
        except AmiError as exc:
            log.warning("send_out_failed", call_id=cmd.call_id, error=str(exc), refused=exc.refused)
            self.submit(LeaveFailed(cmd.call_id, sure=exc.refused))

    async def _probe(self, cmd: ProbeCall) -> None:
        try:
            reply = await self._link().action({"Action": "Status", "Channel": cmd.channel,
                                               "Variables": ",".join(dialplan.SNAPSHOT_VARIABLES)})
        except AmiError as exc:
            if exc.refused:  # "No such channel": the caller has gone, its hang-up follows
                self.submit(Probed(cmd.call_id, None, probe=cmd.probe))
            else:
                log.warning("probe_failed", call_id=cmd.call_id, error=str(exc))  # asked again later
            return
        self.submit(decoding.probed(cmd.call_id, reply.events, cmd.probe))

    async def _tag(self, cmd: TagCaller) -> None:
        values = ((dialplan.QUEUE, cmd.queue), (dialplan.OFFERED, cmd.offered),
                  (dialplan.PATH, dialplan.PATH_SEP.join(cmd.path)))
        try:
            ami = self._link()
            for name, value in values:
                await ami.action({"Action": "Setvar", "Channel": cmd.channel, "Variable": name, "Value": value})
        except AmiError as exc:
            # Only what a restarted engine or Asterisk's own account would see is affected.
            log.warning("tag_caller_failed", call_id=cmd.call_id, error=str(exc))

    async def _announce(self, cmd: Announce) -> None:
        try:
            await self._link().action({"Action": "Setvar", "Channel": cmd.channel, "Variable": dialplan.ANNOUNCE,
                                       "Value": announcement.value(cmd.ahead, cmd.wait_minutes)})
        except AmiError as exc:  # the caller misses this one; the next comes at its time
            log.warning("announce_failed", call_id=cmd.call_id, error=str(exc))

    def _link(self) -> AmiClient:
        if self.ami is None or not self.ami.connected:
            raise AmiError("no AMI link")
        return self.ami

    async def _wait(self, ami: AmiClient, future: asyncio.Future[Reply], name: str) -> Reply:
        try:
            return await asyncio.wait_for(asyncio.shield(future), ami.settings.action_timeout)
        except TimeoutError:
            ami.expire(future, f"AMI action {name} timed out")
            raise AmiError(f"AMI action {name} timed out") from None

    # -- resync -----------------------------------------------------------------------

    def _request_snapshots(self, session: int) -> None:
        """Ask for the channels and the phones; each answer is queued at its place in the stream."""
        ami = self.ami
        if ami is None:
            return

        def channels(result: Reply | AmiError) -> None:
            try:
                if isinstance(result, AmiError):
                    raise result
                event: ChannelsSnapshot | DevicesSnapshot = decoding.snapshot(result.events, self.wall())
            except Exception as exc:  # a list we cannot read is a failed resync: it is tried again
                self.inbox.put_nowait(SnapshotFailed(session, f"Status: {exc}"))
            else:
                self.inbox.put_nowait(Snapshot(session, event))

        def devices(result: Reply | AmiError) -> None:
            try:
                if isinstance(result, AmiError):
                    raise result
                found = (decoding.device_event(m) for m in result.events)
                event: ChannelsSnapshot | DevicesSnapshot = DevicesSnapshot(tuple(d for d in found if d is not None))
            except Exception as exc:
                self.inbox.put_nowait(SnapshotFailed(session, f"DeviceStateList: {exc}"))
            else:
                self.inbox.put_nowait(Snapshot(session, event))

        def counted(result: Reply | AmiError) -> None:
            # Answered in stream order, before the channels: the mark is in place when they are
            # adopted. Unreadable: keep the last mark (a resync must not hang on a counter).
            if isinstance(result, AmiError):
                log.warning("counted_until_unread", error=str(result))
                return
            value = result.response.get("Value", "").strip()
            try:
                at = float(value) if value else 0.0
            except ValueError:
                log.warning("counted_until_unread", error=f"not a time: {value!r}")
                return
            self.inbox.put_nowait(CountedUntil(session, at if math.isfinite(at) else 0.0))

        pending = [
            ami.send({"Action": "Getvar", "Variable": dialplan.COUNTED_UNTIL}, in_order=counted),
            ami.send({"Action": "Status", "Variables": ",".join(dialplan.SNAPSHOT_VARIABLES)}, in_order=channels),
            ami.send({"Action": "DeviceStateList"}, in_order=devices),
        ]
        self._spawn(self._snapshot_deadline(ami, pending))

    async def _snapshot_deadline(self, ami: AmiClient, pending: list[asyncio.Future[Reply]]) -> None:
        done, _ = await asyncio.wait(pending, timeout=SNAPSHOT_TIMEOUT)
        for future in pending:
            if future not in done:
                ami.expire(future, f"resync answer not complete within {SNAPSHOT_TIMEOUT:g} s")

    async def _beat(self) -> None:
        """Tell the dialplan a routing engine is here (its fallback rings all agents when not).
        Only while routing: an engine that is connected but cannot rebuild its picture must
        not keep the fallback off."""
        # Routing on a link whose LinkUp is handled: a flag left over from a link that dropped
        # (its LinkDown still queued) must neither keep the fallback off nor mark the outage counted.
        ami = self._current_link(self.session)
        if not self.state.routing or ami is None:
            return
        try:
            await ami.action({"Action": "Setvar", "Variable": dialplan.ENGINE_SEEN, "Value": str(int(self.wall()))})
            await self._mark_counted(ami, self.wall())
        except AmiError as exc:
            log.warning("heartbeat_failed", error=str(exc))

    async def _mark_counted(self, ami: AmiClient, at: float) -> None:
        await self._wait(ami, ami.send({"Action": "Setvar", "Variable": dialplan.COUNTED_UNTIL,
                                        "Value": f"{at:.3f}"}), "Setvar")
        write_mark(self.mark_file, at)

    async def let_go(self) -> None:
        """Before the engine closes its link: everything it counted is marked (in Asterisk and in
        the spool folder), so the next engine counts only what happens after. A crash leaves the
        last heartbeat's mark; a stop while not routing leaves the mark where it was."""
        ami = self._current_link(self.session)
        if not self.state.routing or ami is None:
            return
        try:
            await self._mark_counted(ami, self.wall())
        except AmiError as exc:
            log.warning("counted_until_not_marked", error=str(exc))

    async def heartbeat(self, interval: float = 5.0) -> None:
        while True:
            await self._beat()
            await asyncio.sleep(interval)

    def cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None


def read_mark(path: Path | None) -> float:
    """The counted-until mark an engine left in the spool folder (0: none, or unreadable)."""
    if path is None:
        return 0.0
    try:
        value = float(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return 0.0
    except (OSError, ValueError) as exc:
        log.warning("counted_until_file_unread", file=str(path), error=str(exc))
        return 0.0
    return value if math.isfinite(value) else 0.0


def write_mark(path: Path | None, at: float) -> None:
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(f"{at:.3f}\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("counted_until_file_unwritten", file=str(path), error=str(exc))
