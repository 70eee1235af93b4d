"""Composition root: settings -> store, metrics, dispatcher, AMI link, HTTP."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from acd import agent_state
from acd.events import AgentControl, AgentsConfigured, History, QueuesConfigured
from config.loader import ConfigError, load
from config.settings import Settings
from cti.ami import AmiClient, AmiSettings
from cti.decode import AGENT_ACTIONS, REASON
from cti.dispatcher import Dispatcher
from metrics.exporter import LiveCollector, Metrics
from tickets.store import Outbox, callback_requests, migrate, open_engine, recent_answers

log = structlog.get_logger("hotline.engine")


@dataclass
class Engine:
    settings: Settings
    dispatcher: Dispatcher
    ami: AmiClient
    outbox: Outbox
    registry: CollectorRegistry
    http_port: int = 0
    config_dir: Path | None = None

    async def reload(self) -> list[str]:
        """Re-read the configuration; apply it whole or not at all. Returns the errors."""
        try:
            settings = await asyncio.to_thread(load, self.config_dir)
        except ConfigError as exc:
            errors = [str(p) for p in exc.problems]
            log.error("reload_refused", errors=errors, hint="the running configuration keeps serving")
            return errors
        self.settings = settings
        inbox = self.dispatcher.inbox
        inbox.put_nowait(("event", QueuesConfigured(settings.core_queues(), settings.calendar.to_core())))
        profiles = settings.profiles()
        inbox.put_nowait(("event", AgentsConfigured(frozenset(p.agent_id for p in profiles), profiles)))
        log.info("reloaded", queues=len(settings.queues), agents=len(settings.agents))
        return []


def build(settings: Settings, config_dir: Path | None = None) -> Engine:
    e = settings.engine
    db = open_engine(e.store.url)
    migrate(db)
    outbox = Outbox(db, e.store.spool)
    registry = CollectorRegistry()
    metrics = Metrics(registry, settings.queue.service_level)
    for q in settings.queues:
        metrics.init_queue(q.name)
    dispatcher = Dispatcher(settings.core_queues(), settings.profiles(), outbox, metrics,
                            calendar=settings.calendar.to_core())
    ami = AmiClient(
        AmiSettings(
            host=e.ami.host,
            port=e.ami.port,
            username=e.ami.username,
            secret=e.ami.secret,
            action_timeout=e.ami.action_timeout,
            ping_interval=e.ami.ping_interval,
            ping_timeout=e.ami.ping_timeout,
        ),
        on_event=dispatcher.on_ami_event,
        on_up=dispatcher.on_link_up,
        on_down=dispatcher.on_link_down,
    )
    dispatcher.ami = ami
    registry.register(LiveCollector(lambda: dispatcher.state, lambda: ami.connected, outbox.pending))
    return Engine(settings, dispatcher, ami, outbox, registry, config_dir=config_dir)


def http_app(engine: Engine) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(engine.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok = engine.ami.connected
        return web.json_response(
            {"ami_connected": ok, "calls": len(engine.dispatcher.state.calls),
             "store_pending": engine.outbox.pending()},
            status=200 if ok else 503,
        )

    async def agents(_: web.Request) -> web.Response:
        st = engine.dispatcher.state
        return web.json_response([
            {"id": a.agent_id, "state": agent_state(a), "reason": a.paused, "queues": sorted(a.queues),
             "skills": a.skills, "registered": a.registered, "calls_taken": a.calls_taken}
            for a in sorted(st.agents.values(), key=lambda a: a.agent_id) if a.configured
        ])

    async def control(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        action = request.match_info["action"].replace("-", "_")
        if action not in AGENT_ACTIONS:
            return _problem(404, f"unknown action {action!r}; one of {', '.join(sorted(AGENT_ACTIONS))}")
        agent = engine.dispatcher.state.agents.get(agent_id)
        if agent is None or not agent.configured:
            return _problem(404, f"no agent {agent_id!r} in agents.yaml")
        reason = ""
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _problem(400, "the body must be JSON, e.g. {\"reason\": \"05\"}")
            if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str):
                return _problem(400, "the body must be an object with an optional string field 'reason'")
            reason = body.get("reason", "")
            if not REASON.match(reason):
                return _problem(400, "reason: up to 32 letters, digits, spaces, '_' or '-'")
        engine.dispatcher.inbox.put_nowait(("event", AgentControl(agent_id, action, reason)))
        return web.json_response({"accepted": True, "agent": agent_id, "action": action}, status=202)

    async def callbacks(request: web.Request) -> web.Response:
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            return _problem(400, "hours must be a number, e.g. ?hours=24")
        if not 0 < hours <= 24 * 90:
            return _problem(400, "hours must be between 0 and 2160")
        since = time.time() - hours * 3600
        rows = await asyncio.to_thread(callback_requests, engine.outbox.engine, since)
        return web.json_response(rows)

    async def reload(_: web.Request) -> web.Response:
        errors = await engine.reload()
        return web.json_response({"ok": not errors, "errors": errors}, status=200 if not errors else 422)

    app = web.Application(client_max_size=16 * 1024)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/agents", agents)
    app.router.add_post("/agents/{agent}/{action}", control)
    app.router.add_post("/reload", reload)
    app.router.add_get("/callbacks", callbacks)
    return app


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"error": detail}, status=status)


async def serve(engine: Engine, stop: asyncio.Event) -> None:
    """Run until `stop` is set; spooled records are flushed before returning."""
    e = engine.settings.engine
    async with AsyncExitStack() as stack:
        recovered = engine.outbox.recover()
        if recovered:
            log.info("store_recovering_spool", records=recovered)
        days = max((q.sticky_days for q in engine.settings.queues), default=0)
        if days > 0:
            since = time.time() - days * 86400
            answered = await asyncio.to_thread(recent_answers, engine.outbox.engine, since)
            engine.dispatcher.inbox.put_nowait(("event", History(tuple(answered))))
            log.info("sticky_history_loaded", callers=len(answered), days=days)
        runner = web.AppRunner(http_app(engine), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, e.http.listen, e.http.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        engine.http_port = sockets[0].getsockname()[1] if sockets else e.http.port
        log.info("http_listening", address=e.http.listen, port=engine.http_port)
        tasks = [
            asyncio.create_task(engine.outbox.run(), name="store-writer"),
            asyncio.create_task(engine.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(engine.dispatcher.heartbeat(), name="heartbeat"),
            asyncio.create_task(engine.ami.run(), name="ami"),
        ]
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            await engine.ami.close()
            engine.dispatcher.cancel_timers()
            # Let the dispatcher finish what is queued, then flush the store.
            await asyncio.sleep(0)
            if not await engine.outbox.drain(5.0):
                log.warning("store_not_drained", pending=engine.outbox.pending(),
                            hint="records stay in the spool and are written at the next start")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def run(settings: Settings, config_dir: Path | None = None) -> None:
    engine = build(settings, config_dir)
    # Everything built so far lives as long as the process: keep it out of the cyclic
    # collector's walks, and collect the young generation less often, so that a
    # collection does not land in the middle of a routing decision.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(engine.reload()))
    await serve(engine, stop)
