"""The engine's side of the IVR: the FastAGI listener, and what a flow may ask of the engine
(hours, the estimated wait, the survey's rating, a ticket's progress, a callback booking).

Ratings go to the dispatcher's inbox like any event (one task owns the live state); the
ticket look-up runs in a thread with a time limit; a flow never waits on the database for
longer than ivr.runner.HOOK_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from acd.calendar import is_open
from acd.estimate import estimated_wait
from acd.events import SurveyRated, SurveyStarted
from cti.callbacks import BookingRequest
from ivr import flow as f
from ivr.agi import FastAgiServer
from ivr.runner import HOOK_TIMEOUT, TRIP_BUCKETS, FlowRunner

if TYPE_CHECKING:
    from cti.engine import Engine

log = structlog.get_logger("hotline.ivr")

NO_FLOWS = f.Flows({})
LOOKUP_SLOTS = 4


def needed(engine: Engine) -> bool:
    """Whether the dialplan calls the IVR at all: a number with a flow, or the survey."""
    ivr = engine.settings.ivr
    return ivr is not None and bool(ivr.settings.numbers or ivr.settings.survey.enabled)


class IvrCollector:
    """The IVR's counts on /metrics, read from the runner and the FastAGI server as they are."""

    def __init__(self, ivr: EngineIvr) -> None:
        self.ivr = ivr

    def collect(self) -> Iterable[Metric]:
        sessions = CounterMetricFamily("hotline_ivr_sessions", "IVR flows run, by flow and how they ended "
                                       "(enqueue, transfer, hangup: the flow's verdict; hung_up: the caller "
                                       "left mid-flow; error: a flow failed and the caller went to the queue)",
                                       labels=["flow", "end"])
        for (flow, end), n in sorted(self.ivr.runner.counters.sessions.items()):
            sessions.add_metric([flow, end], n)
        yield sessions
        server = self.ivr.server
        refused = CounterMetricFamily("hotline_agi_connections_dropped", "FastAGI connections dropped before a "
                                      "flow ran: a bad or slow header, or over the connection limit",
                                      labels=["reason"])
        refused.add_metric(["bad_header"], server.bad_headers)
        refused.add_metric(["over_limit"], server.refused)
        yield refused
        yield GaugeMetricFamily("hotline_agi_sessions_active", "FastAGI sessions running now", value=server.active)
        counters = self.ivr.runner.counters
        trips = HistogramMetricFamily("hotline_agi_round_trip_seconds", "FastAGI round trips of the commands that "
                                      "play nothing (answer, set variable): engine to Asterisk and back")
        cumulative, buckets = 0, []
        for bound, n in zip((*TRIP_BUCKETS, float("inf")), counters.trips, strict=True):
            cumulative += n
            buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
        trips.add_metric([], buckets, counters.trip_sum)
        yield trips
        lookups = CounterMetricFamily("hotline_ivr_ticket_lookups", "Ticket numbers keyed in the IVR (跟踪), by "
                                      "result (failed: the store did not answer in time)", labels=["result"])
        for result in ("found", "not_found", "failed"):
            lookups.add_metric([result], self.ivr.lookups.get(result, 0))
        yield lookups


class EngineIvr:
    """The Hooks of ivr.runner, served from the running engine."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self.runner = FlowRunner(self)
        self.server = FastAgiServer(self.runner)
        self.port = 0
        self.lookups: dict[str, int] = {}  # result -> count
        # Look-ups in flight at once: a slow store must not take every thread of the loop's
        # default pool (reload, the account reader and the drafts sweep use it too).
        self.lookup_slots = asyncio.Semaphore(LOOKUP_SLOTS)

    async def start(self) -> int:
        a = self.engine.settings.engine.agi
        try:
            self.port = await self.server.start(a.listen, a.port)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {a.listen}:{a.port} for the IVR (FastAGI): {exc.strerror}; "
                                     "set agi.port in engine.yaml and run `hotline asterisk-conf install`") from None
        log.info("listening", what="IVR (FastAGI)", address=a.listen, port=self.port)
        return self.port

    async def close(self) -> None:
        await self.server.close()

    # -- ivr.runner.Hooks --------------------------------------------------------------

    def flows(self) -> f.Flows:
        ivr = self.engine.settings.ivr
        return ivr.flows if ivr is not None else NO_FLOWS

    def queues(self) -> frozenset[str]:
        return frozenset(q.name for q in self.engine.settings.queues)

    def is_open(self, queue: str) -> bool:
        state = self.engine.dispatcher.state
        q = state.queues.get(queue)
        return q is not None and is_open(state.calendar, q.hours, time.time())

    def estimated_wait(self, queue: str) -> float:
        # Read between two events of the dispatcher (same loop, no await here): a consistent picture.
        wait = estimated_wait(self.engine.dispatcher.state, queue, self.clock())
        return wait if math.isfinite(wait) else 86400.0

    def survey_started(self, call_id: str) -> None:
        self.engine.dispatcher.submit(SurveyStarted(call_id))

    def rated(self, call_id: str, score: int | None) -> None:
        self.engine.dispatcher.submit(SurveyRated(call_id, score))
        log.info("survey_rated", call_id=call_id, rating=score if score is not None else "none")

    async def lookup_ticket(self, number: str) -> f.TicketFound | f.TicketNotFound | f.Done:
        """The ticket's state, or not found; when the store cannot say (down, slow, no ticket
        platform here), Done(False): the flow puts the caller through to an agent."""
        result = await self._lookup(number)
        key = "found" if isinstance(result, f.TicketFound) else "not_found" if result is not None else "failed"
        self.lookups[key] = self.lookups.get(key, 0) + 1
        return result if result is not None else f.Done(False)

    async def _lookup(self, number: str) -> f.TicketFound | f.TicketNotFound | None:
        platform = self.engine.tickets
        if platform is None:
            return None
        if self.lookup_slots.locked():
            log.warning("ivr_ticket_lookup_busy", hint="as many look-ups as allowed are waiting for the store; "
                        "the caller is put through to an agent")
            return None
        # The slot is held until the thread is done, even when this wait gives up on it.
        task = asyncio.ensure_future(self._progress(platform.service.progress, number))
        try:
            found = await asyncio.wait_for(asyncio.shield(task), HOOK_TIMEOUT)
        except Exception as exc:  # the store is down or slow: an agent, never "not found" nor silence
            log.warning("ivr_ticket_lookup_failed", error=f"{type(exc).__name__}: {exc}",
                        hint="the ticket store did not answer in time; the caller was put through to an agent")
            return None
        if found is None:
            return f.TicketNotFound()
        state, due = found
        return f.TicketFound(state=state, due=due)

    async def _progress(self, progress: Callable[[str], tuple[str, date | None] | None],
                        number: str) -> tuple[str, date | None] | None:
        async with self.lookup_slots:
            return await asyncio.to_thread(progress, number)

    async def book_callback(self, call_id: str, request: f.RequestCallback, caller: str, caller_restricted: bool,
                            arrived_wall: float) -> bool:
        callbacks = self.engine.callbacks
        if callbacks is None:
            return False
        queues = [q.name for q in self.engine.settings.queues]
        booking = BookingRequest(
            call_id=call_id, number=request.number,
            queue=request.queue if request.queue in queues else queues[0],
            priority=request.priority or 0, skills=request.skills, language=request.language,
            arrived_wall=arrived_wall, caller_restricted=caller_restricted, caller=caller)
        try:
            return await asyncio.wait_for(callbacks.book(booking), HOOK_TIMEOUT)
        except TimeoutError:
            # The caller is about to be queued: a booking that lands after all is cancelled.
            callbacks.withdraw(call_id)
            log.warning("ivr_callback_not_booked", call_id=call_id, error="the store did not answer in time",
                        hint="the caller was kept in the queue instead")
            return False
        except Exception as exc:
            log.warning("ivr_callback_not_booked", call_id=call_id, error=f"{type(exc).__name__}: {exc}",
                        hint="the caller was kept in the queue instead")
            return False
