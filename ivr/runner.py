"""The thin adapter between the pure flow model (ivr/flow.py) and a FastAGI channel.

The model decides; this module only performs its steps: plays prompts and reads keys,
looks a ticket up, hands a rating or a callback booking to the engine, and at the end
writes the flow's verdict into the caller's channel variables for the dialplan
([hotline-ivr] in extensions.conf.in). Whatever goes wrong here (a flow error, the
engine's hooks failing, Asterisk not answering a command in time) ends with the verdict
"queue": a caller is never left in silence. A caller who hangs up mid-flow ends the flow
at once; what must still be recorded (the survey's "no rating") is recorded.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

import structlog

from cti import dialplan as dp
from ivr import flow as f
from ivr import speech
from ivr.agi import AgiChannel, AgiError, AgiHangup, AgiTimeout

log = structlog.get_logger("hotline.ivr")

LOCAL = ZoneInfo("Asia/Shanghai")
NO_FLOWS = f.Flows({})
TRIP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.1, 0.25, 0.5, 1.0)
T = TypeVar("T")
KEYS = "0123456789*#"
# The longest any single AGI command may take, whatever the flow says: a prompt is seconds
# long, a key wait is the node's timeout. A command past it ends the flow (to the queue).
COMMAND_CAP = 120.0
# Hooks (ticket look-up, callback booking) answer within this or count as failed.
HOOK_TIMEOUT = 5.0


class Hooks(Protocol):
    """What the engine offers a flow. Every method is quick or bounded by HOOK_TIMEOUT."""

    def flows(self) -> f.Flows: ...

    def queues(self) -> frozenset[str]: ...

    def is_open(self, queue: str) -> bool: ...

    def estimated_wait(self, queue: str) -> float: ...

    def survey_started(self, call_id: str) -> None: ...

    def rated(self, call_id: str, score: int | None) -> None: ...

    async def lookup_ticket(self, number: str) -> f.TicketFound | f.TicketNotFound | f.Done: ...

    async def book_callback(self, call_id: str, request: f.RequestCallback, caller: str, caller_restricted: bool,
                            arrived_wall: float) -> bool: ...


@dataclass
class Counters:
    """For /metrics: sessions by flow and how they ended, and AGI round trips."""

    # (flow, end) -> count; end: enqueue | transfer | hangup | hung_up | error
    sessions: dict[tuple[str, str], int] = field(default_factory=dict)
    # AGI round trips of the commands that play nothing (answer, variables): how long the
    # engine waits for Asterisk per step, cumulative counts per upper bound (a histogram).
    trips: list[int] = field(default_factory=lambda: [0] * (len(TRIP_BUCKETS) + 1))
    trip_sum: float = 0.0

    def ended(self, flow: str, how: str) -> None:
        self.sessions[(flow, how)] = self.sessions.get((flow, how), 0) + 1

    def trip(self, seconds: float) -> None:
        self.trips[bisect.bisect_left(TRIP_BUCKETS, seconds)] += 1
        self.trip_sum += seconds


def sound_file(language: str, name: str) -> str:
    """Where Asterisk finds a prompt (`hotline asterisk-conf install` puts them there)."""
    return f"hotline/{language}/{name}"


def spoken(item: f.Spoken, language: str) -> tuple[str, ...]:
    """A prompt item as the recordings that say it, in the caller's language."""
    match item:
        case f.Sound():
            return (item.name,)
        case f.SayDigits():
            return speech.digits(item.text, language)
        case f.SayNumber():
            return speech.number(item.value, language)
        case f.SayDate():
            return speech.date(item.day, language)
    raise TypeError(f"not a prompt item: {item!r}")


class FlowRunner:
    """The FastAGI handler: `agi://host:port/<flow>` with the call's Linkedid as argument 1."""

    def __init__(self, hooks: Hooks, clock: Callable[[], float] = time.monotonic,
                 local_now: Callable[[], datetime] = lambda: datetime.now(LOCAL).replace(tzinfo=None),
                 wall: Callable[[], float] = time.time) -> None:
        self.hooks = hooks
        self.clock = clock
        self.wall = wall
        self.local_now = local_now
        self.counters = Counters()

    async def __call__(self, chan: AgiChannel) -> None:
        # The citizen's place in line, should they book a callback: when their call reached us.
        arrived_wall = self.wall()
        call_id = chan.args[0] if chan.args and chan.args[0] else chan.headers.get("uniqueid", "")
        name = chan.script
        bound = log.bind(call_id=call_id, flow=name)
        flows = NO_FLOWS
        restricted = chan.args[1:2] == ("1",)
        # Argument 3: the language the caller chose earlier (the survey after the talk).
        language: f.Language = "en" if chan.args[2:3] == ("en",) else "zh"
        ctx = f.Context(
            caller=_digits(chan.headers.get("callerid", "")),
            restricted=restricted,
            now_local=self.local_now(),
            is_open=self.hooks.is_open,
            estimated_wait=self.hooks.estimated_wait,
        )
        session: f.Session | None = None
        try:
            flows = self.hooks.flows()
            if flows.survey is not None and name == flows.survey:
                self.hooks.survey_started(call_id)
            session, step = f.start(flows, name, ctx, self.clock(), language)
            while not isinstance(step, f.Finish):
                result = await self._perform(chan, call_id, step, session, flows, ctx.caller, restricted,
                                             arrived_wall)
                step = f.resume(flows, session, result, ctx, self.clock())
            if step.error:
                bound.warning("ivr_flow_error", error=step.error, node=session.node,
                              hint="the caller went to the queue; check the flow with `hotline config check`")
            await self._finish(chan, step)
            self.counters.ended(_label(name, flows), "error" if step.error else step.action)
        except AgiHangup:
            # The caller hung up mid-flow: record what is owed (the survey's "no rating").
            if session is not None:
                for effect in f.hangup(flows, session, self.clock()):
                    if isinstance(effect, f.Rate):
                        self.hooks.rated(call_id, effect.score)
            self.counters.ended(_label(name, flows), "hung_up")
            bound.info("ivr_hung_up", node=session.node if session else "")
        except Exception as exc:  # a flow must never leave the caller in silence
            self.counters.ended(_label(name, flows), "error")
            bound.error("ivr_failed", error=f"{type(exc).__name__}: {exc}", node=session.node if session else "",
                        hint="the caller goes to the queue")
            if session is not None and isinstance(exc, AgiError):
                for effect in f.hangup(flows, session, self.clock()):
                    if isinstance(effect, f.Rate):
                        self.hooks.rated(call_id, effect.score)
            await self._to_queue(chan)

    # -- the steps ----------------------------------------------------------------------

    async def _perform(self, chan: AgiChannel, call_id: str, step: f.Step, session: f.Session, flows: f.Flows,
                       caller: str, restricted: bool, arrived_wall: float) -> f.Result:
        match step:
            case f.Prompt():
                return f.Digits(await self._prompt(chan, step, self._deadline(flows, session)))
            case f.Lookup():
                return await self.hooks.lookup_ticket(step.number)
            case f.Rate():
                self.hooks.rated(call_id, step.score)
                return f.Done(True)
            case f.RequestCallback():
                if step.queue is None:  # the dialled number's queue, as the dialplan set it
                    step = dataclasses.replace(step, queue=await self._trip(chan.get_variable(dp.QUEUE)))
                return f.Done(await self.hooks.book_callback(call_id, step, caller, restricted, arrived_wall))
            case f.Finish():
                raise TypeError("a Finish is not performed: it ends the flow")

    def _deadline(self, flows: f.Flows, session: f.Session) -> float:
        """When the current node's limit runs out (every node has one), on our clock."""
        due = f.deadline(flows, session)
        return self.clock() + COMMAND_CAP if due is None else due

    async def _trip(self, command: Awaitable[T]) -> T:
        """A command that plays nothing: its round trip is Asterisk's (and the loop's) own."""
        start = self.clock()
        result = await command
        self.counters.trip(self.clock() - start)
        return result

    async def _prompt(self, chan: AgiChannel, step: f.Prompt, deadline: float) -> str:
        """Play the items; with keys wanted, a key stops the playing and starts the reading.
        Past the node's limit (`deadline`) it stops and returns what it has: the model then
        takes the node's own give-up path, as it would for a caller who pressed nothing."""
        await self._answer(chan)
        keys = step.collect
        escape = KEYS if keys is not None else ""
        got = ""
        try:
            for item in step.items:
                for name in spoken(item, step.language):
                    left = self._left(deadline)
                    if left <= 0:
                        return got
                    got = await chan.stream_file(sound_file(step.language, name), escape, timeout=left)
                    if got:
                        break
                if got:
                    break
            if keys is None:
                return ""
            if got == keys.terminator and keys.terminator:
                return ""
            while len(got) < keys.max_digits:
                wait = min(keys.timeout if got else keys.first_timeout, self._left(deadline))
                if wait <= 0:
                    break
                digit = await chan.wait_for_digit(wait, timeout=wait + 5)
                if not digit:
                    break  # a timeout: what was read so far (the model judges it)
                if keys.terminator and digit == keys.terminator:
                    break
                got += digit
        except AgiTimeout:
            if self._left(deadline) > 0:
                raise  # Asterisk itself did not answer in time: a failure, the caller goes to the queue
        return got

    def _left(self, deadline: float) -> float:
        return min(COMMAND_CAP, deadline - self.clock())

    async def _answer(self, chan: AgiChannel) -> None:
        if not getattr(chan, "_hotline_answered", False):
            await self._trip(chan.answer())
            chan._hotline_answered = True  # type: ignore[attr-defined]

    async def _finish(self, chan: AgiChannel, step: f.Finish) -> None:
        """Write the verdict the dialplan reads ([hotline-ivr])."""
        if step.action == "hangup":
            await self._trip(chan.set_variable(dp.IVR_VERDICT, "hangup"))
            return
        if step.action == "transfer":
            number = _digits(step.number)
            if number:
                await self._trip(chan.set_variable(dp.IVR_NUMBER, number))
                await self._trip(chan.set_variable(dp.IVR_VERDICT, "transfer"))
                return
        if step.queue is not None and step.queue in self.hooks.queues():
            await self._trip(chan.set_variable(f"__{dp.QUEUE}", step.queue))
            await self._trip(chan.set_variable(dp.OFFERED, step.queue))
            await self._trip(chan.set_variable(dp.PATH, step.queue))
        if step.priority is not None:
            await self._trip(chan.set_variable(dp.PRIORITY, str(max(0, min(9, step.priority)))))
        if step.skills:
            await self._trip(chan.set_variable(dp.SKILLS, await _merged_skills(chan, step.skills)))
        await self._trip(chan.set_variable(dp.LANGUAGE, step.language))
        await self._trip(chan.set_variable(dp.IVR_VERDICT, "queue"))

    async def _to_queue(self, chan: AgiChannel) -> None:
        """After a failure: the queue, if the channel still listens (else the dialplan's
        empty verdict means the queue anyway)."""
        with contextlib.suppress(AgiError):
            await chan.set_variable(dp.IVR_VERDICT, "queue", timeout=2.0)


async def _merged_skills(chan: AgiChannel, skills: tuple[tuple[str, int], ...]) -> str:
    """The dialled number's skills with the flow's on top (the flow's level wins)."""
    current: dict[str, int] = {}
    for part in filter(None, (await chan.get_variable(dp.SKILLS) or "").split("+")):
        name, _, level = part.partition("=")
        if level.isdigit():
            current[name] = int(level)
    current.update(dict(skills))
    return "+".join(f"{k}={v}" for k, v in sorted(current.items()))


def _label(name: str, flows: f.Flows) -> str:
    """The flow's name for /metrics; any other name the AGI client sent is "unknown" (a label
    per arbitrary string would grow without bound)."""
    return name if name in flows.flows else "unknown"


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def flows_by_name(flows: f.Flows) -> Mapping[str, f.Flow]:
    return flows.flows
