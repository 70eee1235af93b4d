"""The ticket platform as a process of its own (`hotline ticket serve`), for a center that
outgrows one process: as many as wanted, against the same PostgreSQL, beside an engine whose
tickets.yaml says `http: {enabled: false}`. Each serves the API, sweeps answered calls into
drafts (opening a draft is keyed by the call, so two workers never open two) and relays push
events (rows are claimed with SKIP LOCKED, so two workers never send one twice)."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from tickets.db import migrate, open_engine
from tickets.platform import platform

log = structlog.get_logger("hotline.tickets.worker")
SWEEP_EVERY = 5.0  # seconds: without the engine's hand-off, the sweep is how drafts appear


async def serve(settings: Settings, stop: asyncio.Event) -> int:
    db = open_engine(settings.engine.store.url)
    try:
        await asyncio.to_thread(migrate, db)
    except OperationalError as exc:
        log.error("ticket_store_unavailable", error=" ".join(str(exc.orig).split())[:200],
                  hint="is the database running, and is store.url in engine.yaml right? the worker exits so "
                       "that its supervisor starts it again")
        db.dispose()
        return 1
    p = platform(settings, db)
    p.drafts.sweep_every = SWEEP_EVERY
    h = settings.tickets.http
    runner = web.AppRunner(p.api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, h.listen, h.port)
    await site.start()
    log.info("listening", what="ticket API", address=h.listen, port=h.port)
    tasks = p.tasks(stop)
    waiting = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({*tasks, waiting}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    for task in done - {waiting}:
        status = 1
        log.error("ticket_worker_part_died", part=task.get_name(),
                  exc_info=task.exception() if not task.cancelled() else None,
                  hint="the worker stops so that its supervisor restarts it")
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, waiting, return_exceptions=True)
    await runner.cleanup()
    db.dispose()
    return status


async def run(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await serve(settings, stop)
