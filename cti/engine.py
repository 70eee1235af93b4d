"""Composition root: settings -> store, metrics, dispatcher, AMI link, HTTP."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.settings import Settings
from cti.ami import AmiClient, AmiSettings
from cti.dispatcher import Dispatcher
from metrics.exporter import LiveCollector, Metrics
from tickets.store import Outbox, migrate, open_engine

log = structlog.get_logger("hotline.engine")


@dataclass
class Engine:
    settings: Settings
    dispatcher: Dispatcher
    ami: AmiClient
    outbox: Outbox
    registry: CollectorRegistry
    http_port: int = 0


def build(settings: Settings) -> Engine:
    e = settings.engine
    db = open_engine(e.store.url)
    migrate(db)
    outbox = Outbox(db, e.store.spool)
    registry = CollectorRegistry()
    metrics = Metrics(registry, settings.queue.service_level)
    metrics.init_queue(settings.queue.name)
    dispatcher = Dispatcher(
        settings.queue.to_core(), frozenset(a.id for a in settings.agents), outbox, metrics
    )
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
    return Engine(settings, dispatcher, ami, outbox, registry)


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

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(engine: Engine, stop: asyncio.Event) -> None:
    """Run until `stop` is set; spooled records are flushed before returning."""
    e = engine.settings.engine
    async with AsyncExitStack() as stack:
        recovered = engine.outbox.recover()
        if recovered:
            log.info("store_recovering_spool", records=recovered)
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


async def run(settings: Settings) -> None:
    engine = build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(engine, stop)
