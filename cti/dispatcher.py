"""The one task that owns live state.

Everything that can change the picture arrives on one inbox: AMI events (in wire
order, tagged with a sequence number), timer expiries, link up/down, results of
commands. The dispatcher decodes each item, calls `acd.decide`, and carries out
the commands without ever awaiting on the hot path: AMI actions run as tasks
whose failures come back through the inbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from panoramisk.message import Message

from acd import decide
from acd.calendar import Calendar
from acd.commands import (
    AgentStateChanged,
    CallAnswered,
    CallOffered,
    CallRecord,
    Command,
    RingAgent,
    SendToTimeout,
    StartTimer,
)
from acd.events import (
    AgentProfile,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    DeviceChanged,
    Event,
    LinkLost,
    QueuesConfigured,
    Resynced,
    RingFailed,
    TimerFired,
    TimerKind,
)
from acd.model import QueueSettings, State
from cti.ami import AmiClient, AmiError
from cti.decode import DecodeError, decode, device_event, snapshot_callers
from cti.logs import mask_number
from metrics.exporter import Metrics
from tickets.store import Outbox

log = structlog.get_logger("hotline.dispatch")

CONNECT_CONTEXT = "hotline-connect"
TIMEOUT_CONTEXT = "hotline-timeout"


@dataclass
class _Window:
    """What changed while a resync was in flight; the older snapshot must not undo it."""

    hung: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    joined: set[str] = field(default_factory=set)


class Dispatcher:
    def __init__(
        self,
        queues: tuple[QueueSettings, ...],
        profiles: tuple[AgentProfile, ...],
        outbox: Outbox,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        calendar: Calendar | None = None,
    ) -> None:
        self.state = State(queues={q.name: q for q in queues})
        self.profiles = profiles
        self.calendar = calendar
        self.outbox = outbox
        self.metrics = metrics
        self.clock = clock
        self.ami: AmiClient | None = None
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._timers: dict[tuple[TimerKind, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._window: _Window | None = None
        self._item_read_at: float | None = None
        self.resyncs = 0
        # Hooks for tests and benchmarks: called after each item is handled.
        self.after_item: Callable[[tuple[Any, ...]], None] | None = None

    # -- feeding the inbox (callbacks: they only enqueue) -----------------------

    def on_ami_event(self, seq: int, msg: Message) -> None:
        self.inbox.put_nowait(("ami", seq, msg, time.perf_counter()))

    def on_link_up(self) -> None:
        self.inbox.put_nowait(("up",))

    def on_link_down(self) -> None:
        self.inbox.put_nowait(("down",))

    # -- the loop ---------------------------------------------------------------

    async def run(self) -> None:
        if self.calendar is not None:
            self.apply(QueuesConfigured(tuple(self.state.queues.values()), self.calendar))
        self.apply(AgentsConfigured(frozenset(p.agent_id for p in self.profiles), self.profiles))
        while True:
            item = await self.inbox.get()
            try:
                self.handle(item)
            except Exception:
                # One bad event is logged and counted; routing goes on.
                self.metrics.event_errors.inc()
                log.exception("event_failed", item=repr(item)[:500])
            if self.after_item is not None:
                self.after_item(item)

    def handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        self._item_read_at = item[3] if kind == "ami" else None
        if kind == "ami":
            try:
                event = decode(item[2])
            except DecodeError as exc:
                self.metrics.decode_errors.inc()
                log.warning("ami_event_rejected", reason=str(exc))
                return
            if event is None:
                return
            if self._window is not None:
                if isinstance(event, CallerHungUp):
                    self._window.hung.add(event.channel)
                elif isinstance(event, CallerJoined):
                    self._window.joined.add(event.call_id)
                elif isinstance(event, DeviceChanged):
                    self._window.devices.add(event.agent_id)
            self.apply(event)
        elif kind == "event":
            self.apply(item[1])
        elif kind == "up":
            self._window = _Window()
            self._spawn(self._beat())
            self._spawn(self._resync())
        elif kind == "down":
            self._window = None
            self.apply(LinkLost())
        elif kind == "resynced":
            snap: Resynced = item[1]
            window = self._window or _Window()
            self._window = None
            self.resyncs += 1
            self.apply(
                Resynced(
                    callers=tuple(c for c in snap.callers if c.channel not in window.hung),
                    devices=tuple(d for d in snap.devices if d.agent_id not in window.devices),
                    joined=frozenset(window.joined),
                )
            )
            log.info("resynced", callers=len(snap.callers), devices=len(snap.devices),
                     waiting=len(self.state.calls))

    def apply(self, event: Event) -> None:
        now = self.clock()
        _, commands = decide(self.state, event, now)
        for cmd in commands:
            try:
                self.execute(cmd, now)
            except Exception:
                # One command failing (a full disk for the spool, say) must not cost the others.
                self.metrics.event_errors.inc()
                log.exception("command_failed", command=repr(cmd)[:300])

    # -- commands -----------------------------------------------------------------

    def execute(self, cmd: Command, now: float) -> None:
        self.metrics.observe(cmd)
        match cmd:
            case RingAgent():
                log.info("ring_agent", call_id=cmd.call_id, agent_id=cmd.agent_id, attempt=cmd.attempt,
                         also=list(cmd.also) or None)
                seconds = max(1, round(cmd.timeout))
                exten = f"{cmd.agent_id}*{seconds}"
                dial = None
                if cmd.also:
                    # ring_all: the dial string goes in a channel variable (agent ids are digits only).
                    exten = f"all*{seconds}"
                    dial = "&".join(f"PJSIP/agent{a}" for a in cmd.agent_ids)
                self._spawn(self._redirect(cmd.call_id, cmd.channel, CONNECT_CONTEXT, exten,
                                           RingFailed(cmd.call_id, cmd.agent_id, cmd.attempt),
                                           self._item_read_at, priority=2, dial=dial))
            case SendToTimeout():
                log.info("caller_leaves_line", call_id=cmd.call_id, reason=cmd.reason)
                context, exten = TIMEOUT_CONTEXT, "s"
                if cmd.reason == "number":
                    context, exten = "hotline-external", cmd.number
                elif cmd.reason == "callback":
                    context = "hotline-callback"
                self._spawn(self._redirect(cmd.call_id, cmd.channel, context, exten, None, priority=2))
            case StartTimer():
                self._arm(cmd, now)
            case CallOffered():
                call = self.state.calls.get(cmd.call_id)
                log.info("call_offered", call_id=cmd.call_id, queue=cmd.queue,
                         caller=mask_number(call.caller_num, call.restricted) if call else "")
            case CallAnswered():
                log.info("call_answered", call_id=cmd.call_id, agent_id=cmd.agent_id, wait=round(cmd.wait, 3))
            case AgentStateChanged():
                self.metrics.agent_changed(cmd, now)
                log.info("agent_state", agent_id=cmd.agent_id, old=cmd.old, new=cmd.new, reason=cmd.reason or None)
            case CallRecord():
                self.outbox.put(cmd)
                log.info("call_ended", call_id=cmd.call_id, agent_id=cmd.agent_id, outcome=cmd.outcome.value,
                         wait=cmd.wait_seconds, talk=cmd.talk_seconds,
                         caller=mask_number(cmd.caller_num, cmd.restricted))

    def _arm(self, cmd: StartTimer, now: float) -> None:
        loop = asyncio.get_running_loop()
        key = (cmd.kind, cmd.key)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        fired = TimerFired(cmd.kind, cmd.key, cmd.attempt)

        def fire() -> None:
            self._timers.pop(key, None)
            self.inbox.put_nowait(("event", fired))

        self._timers[key] = loop.call_later(max(0.0, cmd.at - now), fire)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _redirect(self, call_id: str, channel: str, context: str, exten: str,
                        on_fail: Event | None, read_at: float | None = None, priority: int = 1,
                        dial: str | None = None) -> None:
        ami = self.ami
        try:
            if ami is None:
                raise AmiError("no AMI link")
            if dial is not None:
                await ami.checked({"Action": "Setvar", "Channel": channel, "Variable": "HOTLINE_DIAL",
                                   "Value": dial})
            if read_at is not None:
                # The action is written synchronously at the start of `checked`.
                self.metrics.ring_dispatch.observe(time.perf_counter() - read_at)
            await ami.checked({"Action": "Redirect", "Channel": channel, "Context": context,
                               "Exten": exten, "Priority": str(priority)})
        except AmiError as exc:
            log.warning("redirect_failed", call_id=call_id, context=context, error=str(exc))
            if on_fail is not None:
                self.inbox.put_nowait(("event", on_fail))

    async def _resync(self) -> None:
        """Ask Asterisk what is going on now; the answer comes back through the inbox."""
        ami = self.ami
        if ami is None:
            return
        try:
            channels = await ami.collect({"Action": "CoreShowChannels"}, timeout=15)
            devices = await ami.collect({"Action": "DeviceStateList"}, timeout=15)
        except AmiError as exc:
            # Never stay connected with routing off: drop the link, the reconnect resyncs.
            log.warning("resync_failed", error=str(exc), hint="dropping the AMI link to start over")
            ami.drop()
            return
        snap = Resynced(
            callers=snapshot_callers(channels, self.state.queue.name),
            devices=tuple(d for d in (device_event(m) for m in devices) if d is not None),
        )
        self.inbox.put_nowait(("resynced", snap))

    async def _beat(self) -> None:
        ami = self.ami
        if ami is None or not ami.connected:
            return
        try:
            await ami.checked({"Action": "Setvar", "Variable": "HOTLINE_ENGINE_SEEN",
                               "Value": str(int(self.clock()))})
        except AmiError as exc:
            log.warning("heartbeat_failed", error=str(exc))

    async def heartbeat(self, interval: float = 5.0) -> None:
        """Tell the dialplan we are alive (its fallback rings all agents when we are not)."""
        while True:
            await self._beat()
            await asyncio.sleep(interval)

    def cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
