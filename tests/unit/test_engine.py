"""The engine as a whole process part: it stops when a part of it dies, and on the way out
nothing accepted is dropped (no Asterisk: AMI points at a port nobody listens on)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from acd.commands import CallRecord
from acd.events import CallerHungUp, CallerJoined, ChannelsSnapshot, DevicesSnapshot
from acd.model import Outcome
from config.loader import load
from cti.dispatcher import CoreEvent
from cti.engine import Engine, build, serve
from testbed.configs import write_config
from tests.unit.test_cli import config_folder
from tickets.models import TicketRow
from tickets.store import read_records


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return build(load(write_config(tmp_path / "config", ami_port=1, account=False)), tmp_path / "config")


async def started(engine: Engine, stop: asyncio.Event) -> asyncio.Task[int]:
    task = asyncio.create_task(serve(engine, stop))
    while engine.http_port == 0 and not task.done():
        await asyncio.sleep(0.01)
    return task


async def test_the_engine_stops_with_exit_1_when_a_part_of_it_dies(engine: Engine) -> None:
    async def broken() -> None:
        raise RuntimeError("the writer fell over")

    engine.outbox.run = broken  # type: ignore[method-assign]
    with capture_logs() as logs:
        status = await asyncio.wait_for(serve(engine, asyncio.Event()), 20)
    assert status == 1
    died = [line for line in logs if line["event"] == "engine_part_died"]
    assert [line["part"] for line in died] == ["store-writer"]


async def test_every_event_queued_when_the_stop_comes_is_handled_and_its_record_stored(engine: Engine) -> None:
    stop = asyncio.Event()
    task = await started(engine, stop)
    d = engine.dispatcher
    for event in (ChannelsSnapshot(), DevicesSnapshot(())):
        d.submit(event)
    await d.drain()
    for i in range(20):  # queued right before SIGTERM: each hang-up still owes its record
        d.inbox.put_nowait(CoreEvent(CallerJoined(f"c{i}", f"chan-c{i}", "main")))
        d.inbox.put_nowait(CoreEvent(CallerHungUp(f"c{i}", f"chan-c{i}")))
    stop.set()
    assert await asyncio.wait_for(task, 20) == 0
    assert sorted(r.call_id for r in read_records(engine.outbox.engine)) == sorted(f"c{i}" for i in range(20))


async def test_a_record_still_waiting_for_asterisks_account_is_written_at_shutdown(engine: Engine) -> None:
    stop = asyncio.Event()
    task = await started(engine, stop)
    d = engine.dispatcher
    d.account_enabled = True
    guess = CallRecord("c9", "main", "138", "", 1000.0, None, 1010.0, None, Outcome.ABANDONED, 10.0, 0.0, None,
                       source="resync")
    d.execute(guess, 0.0)
    assert read_records(engine.outbox.engine) == []  # held for the account
    stop.set()
    assert await asyncio.wait_for(task, 20) == 0
    assert [r.call_id for r in read_records(engine.outbox.engine)] == ["c9"]


async def metrics_page(engine: Engine) -> str:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{engine.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    return await asyncio.to_thread(get)


async def test_a_served_engine_exports_the_overdue_tickets_of_its_store_and_closes_the_readers_pool(
    engine: Engine,
) -> None:
    """serve() starts the overdue count (and the month's figures) on the engine's store, read in
    threads of their own on a pool of their own, and disposes of that pool when it ends."""
    now = datetime.now(UTC)
    with Session(engine.outbox.engine) as s, s.begin():
        for i, due in enumerate((now - timedelta(hours=3), now - timedelta(minutes=1), now + timedelta(days=1))):
            s.add(TicketRow(number=f"20261126{i:05d}", state="dispatched", channel="phone", due_at=due,
                            created=now - timedelta(days=3), updated=now - timedelta(days=3)))
    stop = asyncio.Event()
    task = await started(engine, stop)
    try:
        deadline = time.monotonic() + 10
        page = await metrics_page(engine)
        while "hotline_tickets_overdue 2.0" not in page or "hotline_month_calls{" not in page:
            assert time.monotonic() < deadline, page
            await asyncio.sleep(0.05)
            page = await metrics_page(engine)
        assert engine.reader is not None and engine.reader.pool.checkedin() >= 1  # read on the reader's pool
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0
    assert engine.reader.pool.checkedin() == 0  # disposed: no connection left open


def test_the_engine_starts_and_serves_while_its_postgresql_is_down(tmp_path: Path) -> None:
    # "the database is down | records wait in the spool and are written when it returns" -- but
    # build() runs migrate() before anything listens, so an engine (re)started during a
    # database outage (a host reboot where PostgreSQL comes up later, maintenance) dies at once
    # with an uncaught OperationalError: no routing at all, every caller left to the fallback.
    import json
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from tests.unit.test_cli import free_port

    metrics_port, dead_db = free_port(), free_port()
    folder = config_folder(tmp_path / "cfg", engine=(
        f"ami: {{port: {free_port()}, secret: own-ami-secret}}\n"
        f"http: {{port: {free_port()}, token_file: {tmp_path / 'control.token'}}}\n"
        f"metrics: {{port: {metrics_port}}}\n"
        f"store: {{url: 'postgresql+psycopg://postgres@127.0.0.1:{dead_db}/hotline', spool: {tmp_path / 'spool'}}}\n"
        f"recordings: {{dir: {tmp_path / 'rec'}}}\naccount: {{cel_db: null}}\n"))
    proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        health = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2) as resp:
                    health = json.loads(resp.read())
            except urllib.error.HTTPError as exc:  # 503: not routing (no Asterisk here), but serving
                health = json.loads(exc.read())
            except OSError:
                time.sleep(0.2)
        err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert proc.poll() is None, f"the engine exited {proc.returncode}: {err[-600:]}"
        assert health is not None
    finally:
        proc.terminate()
        proc.wait(20)
