"""Composition root: settings -> store, metrics, dispatcher, AMI link, the two listeners."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import resource
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine as Database

from acd.events import AgentsConfigured, History, PartyNoted, QueuesConfigured
from config.control_token import load_or_create_token
from config.loader import ConfigError, load
from config.settings import Settings
from cti import http, ivr_service
from cti.account import AccountReader
from cti.agent_file import FILE_NAME as AGENTS_FILE
from cti.agent_file import AgentFile
from cti.ami import AmiClient, AmiSettings
from cti.ami_frame import AmiMessage
from cti.callbacks import Callbacks, CallbackSettings
from cti.conference import Conference, PartyChange
from cti.dispatcher import Dispatcher
from cti.ivr_service import EngineIvr
from cti.logs import Throttle
from cti.metrics_http import MetricsServer
from cti.month_to_date import MonthToDate
from metrics.exporter import LiveCollector, Metrics
from tickets.overdue import OverdueTickets
from tickets.platform import TicketPlatform, platform
from tickets.store import Failure, Outbox, classify, describe, migrate, open_engine, recent_answers
from web import app as pages
from web.app import Web

log = structlog.get_logger("hotline.engine")
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL before another may take it


@dataclass
class Engine:
    settings: Settings
    dispatcher: Dispatcher
    ami: AmiClient
    outbox: Outbox
    registry: CollectorRegistry
    token: str
    account: AccountReader | None = None
    config_dir: Path | None = None
    http_port: int = 0  # the control listener's port once bound (0 in settings: any free port)
    metrics_port: int = 0
    restart_needed: tuple[str, ...] = ()  # engine.yaml sections changed since start (need a restart)
    tickets: TicketPlatform | None = None  # the 工单 platform, when it runs inside the engine
    tickets_port: int = 0
    ivr: EngineIvr | None = None  # the FastAGI listener of the IVR flows, when the dialplan calls it
    callbacks: Callbacks | None = None  # callbacks booked in the IVR: kept, fed to the ACD, retried
    month: MonthToDate | None = None  # this month's figures from the store (hotline_month_*)
    overdue: OverdueTickets | None = None  # hotline_tickets_overdue, read from the store
    reader: Database | None = None  # the pool those two read on (disposed when serve() ends)
    web: Web | None = None  # the desk, the wallboard and the department portal (on the ticket listener)
    conference: Conference | None = None  # 三方通话 and transfers (cti/conference.py)
    _reloads: set[asyncio.Task[list[str]]] = field(default_factory=set)

    async def reload(self) -> list[str]:
        """Re-read the configuration; apply it whole or not at all. Returns the errors."""
        try:
            settings = await asyncio.to_thread(load, self.config_dir)
        except ConfigError as exc:
            errors = [str(p) for p in exc.problems]
            log.error("reload_refused", errors=errors, hint="the running configuration keeps serving")
            return errors
        # engine.yaml's sections are read at start only: a change there is named, not ignored
        # silently, and the running values stay what the engine reports.
        running = self.settings.engine
        self.restart_needed = tuple(name for name in type(running).model_fields
                                    if getattr(running, name) != getattr(settings.engine, name))
        if self.restart_needed:
            log.warning("reload_engine_yaml_needs_restart", sections=list(self.restart_needed),
                        hint="these engine.yaml sections apply at the next restart of the engine (sip, fallback "
                             "and recordings also need `hotline asterisk-conf install` and an Asterisk reload)")
        self.settings = dataclasses.replace(settings, engine=running)
        if self.callbacks is not None and settings.ivr is not None:
            self.callbacks.settings = settings.ivr.settings.callback
        self.dispatcher.submit(QueuesConfigured(settings.core_queues(), settings.calendar.to_core()))
        profiles = settings.profiles()
        self.dispatcher.submit(AgentsConfigured(frozenset(p.agent_id for p in profiles), profiles))
        for q in settings.queues:
            self.dispatcher.metrics.init_queue(q.name)
        log.info("reloaded", queues=len(settings.queues), agents=len(settings.agents))
        return []

    def reload_soon(self) -> None:
        """SIGHUP: reload in a task that is kept (an unreferenced task can be collected mid-way)."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def store_figures(self) -> dict[str, int]:
        o, a = self.outbox, self.account
        return {"pending": o.pending(), "quarantined": o.in_quarantine(), "write_errors": o.errors,
                "spool_errors": o.spool_errors, "account_read_errors": a.read_errors if a else 0,
                "account_bad_rows": a.bad_rows if a else 0, "written_records": o.written + o.duplicates}


def build(settings: Settings, config_dir: Path | None = None) -> Engine:
    e = settings.engine
    for warning in settings.warnings:
        log.warning("configuration_warning", detail=warning)
    db = open_engine(e.store.url)
    schema: Callable[[], None] | None = None
    try:
        migrate(db)
    except Exception as exc:
        if db.dialect.name == "sqlite" or classify(exc) is not Failure.TRANSIENT:
            raise  # a local file that cannot be opened, or a failing migration: the operator fixes it
        # A host that boots before its database: route calls all the same; records wait in
        # the spool and the writer brings the schema up when the database answers.
        log.warning("store_unreachable_at_start", error=describe(exc),
                    hint="calls are routed; records wait in the spool until the database answers")
        schema = functools.partial(migrate, db)
    outbox = Outbox(db, e.store.spool, schema=schema)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for q in settings.queues:
        metrics.init_queue(q.name)
    dispatcher = Dispatcher(settings.core_queues(), settings.profiles(), outbox, metrics,
                            calendar=settings.calendar.to_core())
    dispatcher.mark_file = Path(e.store.spool) / "counted_until"
    # Not *.json: the outbox takes every *.json (and *.json.tmp) in the spool for a call record.
    dispatcher.agents_file = AgentFile(Path(e.store.spool) / AGENTS_FILE)
    # 三方通话: the department sees the hotline's number of the call's queue.
    conference = Conference(dispatcher, caller_ids={q.name: q.dialled()[0].number
                                                    for q in settings.queues if q.dialled()})

    def on_event(message: AmiMessage) -> None:
        dispatcher.on_ami_event(message)
        conference.on_ami_event(message)  # the parties' joins and hang-ups, refused Originates

    ami = AmiClient(
        AmiSettings(host=e.ami.host, port=e.ami.port, username=e.ami.username, secret=e.ami.secret,
                    action_timeout=e.ami.action_timeout, ping_interval=e.ami.ping_interval,
                    ping_timeout=e.ami.ping_timeout),
        on_event=on_event,
        on_up=dispatcher.on_link_up,
        on_down=dispatcher.on_link_down,
    )
    dispatcher.ami = ami
    token = load_or_create_token(e.http.token_file)
    account = None
    if e.account.cel_db is not None:
        account = AccountReader(e.account.cel_db, e.store.spool, db, dispatcher, outbox.knows,
                                lambda: dispatcher.state.queues, e.account.first_days)
        dispatcher.on_routing = account.kick
        dispatcher.account_enabled = True
    else:
        log.warning("no_asterisk_account", hint="account.cel_db is null: calls that end while the engine is "
                    "stopped, and calls the dialplan's fallback serves, get no record")
    engine = Engine(settings, dispatcher, ami, outbox, registry, token, account, config_dir=config_dir)
    engine.conference = conference

    def party_changed(change: PartyChange) -> None:
        # Into the call's record (through the one task that owns the call), then onto the desks.
        dispatcher.submit(PartyNoted(change.call_id, change.at, change.kind, change.party, change.detail))
        party_shown = getattr(engine.web, "party_changed", None)
        if party_shown is not None:
            party_shown(change)

    conference.on_change = party_changed
    if settings.tickets.http.enabled:
        # Its own connection pool on the same store: ticket queries never hold up call records.
        engine.tickets = platform(settings, open_engine(e.store.url))
        dispatcher.on_answered = engine.tickets.answered
        engine.web = pages.build(engine, engine.tickets.api)
        dispatcher.on_command = engine.web.on_command
    engine.callbacks = Callbacks(
        outbox.engine, dispatcher, settings.ivr.settings.callback if settings.ivr is not None else CallbackSettings(),
        dispatcher.metrics, caller_ids={q.name: q.dialled()[0].number for q in settings.queues if q.dialled()})
    if ivr_service.needed(engine):
        engine.ivr = EngineIvr(engine)
        registry.register(ivr_service.IvrCollector(engine.ivr))
    registry.register(LiveCollector(lambda: dispatcher.state, lambda: ami.connected, engine.store_figures))
    reader = open_engine(e.store.url)  # a pool of its own: the figures' queries never hold up call records
    engine.month = MonthToDate(reader, lambda: [q.name for q in engine.settings.queues],
                               e.metrics.month_to_date_interval, today=engine.web is not None)
    engine.overdue = OverdueTickets(reader)
    engine.reader = reader
    registry.register(engine.month)
    registry.register(engine.overdue)
    return engine


async def _listen(stack: AsyncExitStack, app: web.Application, host: str, port: int, what: str) -> int:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port} for the {what}: {exc.strerror}") from None
    sockets = getattr(site._server, "sockets", None) or []
    bound: int = sockets[0].getsockname()[1] if sockets else port
    log.info("listening", what=what, address=host, port=bound)
    return bound


async def serve(engine: Engine, stop: asyncio.Event) -> int:
    """Run until `stop` is set or a part of the engine dies; returns the exit status.

    On the way out no accepted event is dropped: the AMI link is closed first (nothing
    new comes in), every item already queued is handled (a hang-up still gets its
    record), and the store is flushed; what cannot be written stays in the spool for
    the next start. Calls still in progress live on in Asterisk and are adopted then."""
    e = engine.settings.engine
    status = 0
    async with AsyncExitStack() as stack:
        recovered = engine.outbox.recover()
        if recovered:
            log.info("store_recovering_spool", records=recovered)
        horizon = max((q.sticky_days for q in engine.settings.queues), default=0)
        if horizon > 0:
            since = time.time() - horizon * 86400
            try:
                answered = await asyncio.to_thread(recent_answers, engine.outbox.engine, since)
            except Exception as exc:  # the database is down: route without it
                log.warning("sticky_history_not_loaded", error=describe(exc),
                            hint="callers are not sent to their last agent until the next restart")
            else:
                engine.dispatcher.submit(History(tuple(answered)))
                log.info("sticky_history_loaded", callers=len(answered), days=horizon)
        metrics_server = MetricsServer({"/metrics": lambda: http.metrics_page(engine),
                                        "/healthz": lambda: http.health_page(engine)})
        try:
            engine.metrics_port = await metrics_server.start(e.metrics.listen, e.metrics.port)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {e.metrics.listen}:{e.metrics.port} for the metrics: "
                                     f"{exc.strerror}") from None
        stack.push_async_callback(metrics_server.close)
        log.info("listening", what="metrics", address=e.metrics.listen, port=engine.metrics_port)
        engine.http_port = await _listen(stack, http.control_app(engine), e.http.listen, e.http.port,
                                         "control API")
        if engine.ivr is not None:
            await engine.ivr.start()
            stack.push_async_callback(engine.ivr.close)
        tickets_stop = asyncio.Event()
        tasks = {
            asyncio.create_task(engine.outbox.run(), name="store-writer"),
            asyncio.create_task(engine.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(engine.dispatcher.heartbeat(), name="heartbeat"),
            asyncio.create_task(engine.ami.run(), name="ami"),
        }
        if engine.account is not None:
            tasks.add(asyncio.create_task(engine.account.run(), name="asterisk-account"))
        if engine.callbacks is not None:
            tasks.add(asyncio.create_task(engine.callbacks.run(), name="callbacks"))
        for name, part in (("month-to-date", engine.month), ("tickets-overdue", engine.overdue)):
            if part is not None:
                tasks.add(asyncio.create_task(part.run(), name=name))
        if engine.tickets is not None:
            t = engine.settings.tickets.http
            app = engine.tickets.api.app()
            if engine.web is not None:
                engine.web.install(app)
                tasks.add(asyncio.create_task(engine.web.run(), name="web-clock"))
            engine.tickets_port = await _listen(stack, app, t.listen, t.port, "ticket API and pages")
            tasks |= engine.tickets.tasks(tickets_stop)
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                # A part of the engine ended on its own: that is a fault, never a quiet state.
                status = 1
                died = task.exception() if not task.cancelled() else None
                log.error("engine_part_died", part=task.get_name(), exc_info=died,
                          hint="the engine stops so that its supervisor restarts it")
        finally:
            log.info("stopping")
            if engine.ivr is not None:
                # Flows in progress end first: their ratings and bookings reach the dispatcher
                # and the callbacks before those drain.
                await engine.ivr.close()
            await engine.dispatcher.let_go()
            await engine.ami.close()
            dispatcher_task = next(t for t in tasks if t.get_name() == "dispatcher")
            if not dispatcher_task.done():
                try:
                    await asyncio.wait_for(engine.dispatcher.drain(), 5.0)
                except TimeoutError:
                    log.warning("inbox_not_drained", hint="events still queued are lost with this process")
            if engine.dispatcher.agents_file is not None:
                engine.dispatcher.keep_agents()
                await engine.dispatcher.agents_file.flush()
            if engine.callbacks is not None:
                await engine.callbacks.drain(5.0)
            engine.dispatcher.cancel_timers()
            engine.dispatcher.settle_provisional(everything=True)
            if not await engine.outbox.drain(5.0):
                log.warning("store_not_drained", pending=engine.outbox.pending(),
                            hint="records stay in the spool and are written at the next start")
            tickets_stop.set()  # the relay finishes the delivery in flight
            stopping.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, stopping, return_exceptions=True)
            if engine.reader is not None:
                # The figures' connections close with the engine (a read still stuck in its
                # thread keeps its own until it returns).
                engine.reader.dispose()
    return status


def _more_descriptors() -> None:
    """Calls, recordings, the database and the listeners each hold descriptors: take what the
    system allows rather than the shell's usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class _RateLimited:
    """asyncio's own errors (a failed accept when descriptors run out, say) logged at most once
    every 10 s per kind, with how many were left out."""

    def __init__(self) -> None:
        self.throttle = Throttle()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        kind = str(context.get("message", ""))[:80]
        left_out = self.throttle.allow(kind, time.monotonic())
        if left_out is None:
            return
        exc = context.get("exception")
        log.error("event_loop_error", detail=kind, left_out=left_out,
                  exc_info=exc if isinstance(exc, BaseException) else None)


async def run(settings: Settings, config_dir: Path | None = None) -> int:
    engine = build(settings, config_dir)
    # Everything built so far lives as long as the process: keep it out of the cyclic
    # collector's walks, and collect the young generation less often, so that a
    # collection does not land in the middle of a routing decision.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # The store's writes, the ticket API's and the pages' reads run in threads: a thread busy
    # in Python keeps the GIL for up to the switch interval (5 ms by default) while an AMI event
    # waits. 1 ms bounds that wait for the routing loop at the cost of more switches.
    sys.setswitchinterval(SWITCH_INTERVAL)
    _more_descriptors()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_RateLimited())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, engine.reload_soon)
    return await serve(engine, stop)

