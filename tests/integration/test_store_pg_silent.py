"""PostgreSQL behind a network path that goes silent (a failover, a dead host, a firewall
dropping state: no RST, no FIN): the writer gives up the connection (keepalives, statement
timeout, a watchdog on each write) and writes the next records over a new one, and SIGTERM
stops the engine without waiting for the kernel's 15-minute give-up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.unit.store_helpers import record, stored_ids, until, writing
from tickets.db import migrate, open_engine
from tickets.store import Outbox

ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


class SilentProxy:
    """Forwards to PostgreSQL; `silence()` makes every connection open now stop forwarding
    (kept open, nothing closed), while new connections are forwarded normally."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.generation = 0
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 5432))
            self.socks += [client, upstream]
            gen = self.generation
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, gen), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gen: int) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while gen != self.generation:
                    time.sleep(3600)  # silent: the bytes go nowhere, the socket stays open
                dst.sendall(data)

    def silence(self) -> None:
        self.generation += 1

    def close(self) -> None:
        self.listener.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture
def pg_name() -> Iterator[str]:
    name = f"silentpg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_silent_database_connection_does_not_hold_up_the_writer(pg_name: str, tmp_path: Path) -> None:
    direct = open_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}")
    migrate(direct)
    proxy = SilentProxy()
    db = open_engine(f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{pg_name}")
    outbox = Outbox(db, tmp_path / "spool", retry_min=0.1, retry_max=1.0, probe_every=0.2)
    try:
        async with writing(outbox):
            outbox.put(record("before"))
            await until(lambda: outbox.pending() == 0, what="the first record")
            proxy.silence()  # the pooled connection goes silent; a new one would work
            outbox.put(record("after"))
            await until(lambda: "after" in stored_ids(direct), timeout=30,
                        what="the record behind a silent connection (the writer waits in recv())")
    finally:
        proxy.close()
        db.dispose()
        direct.dispose()


def test_sigterm_stops_the_engine_while_its_database_connection_is_silent(pg_name: str, tmp_path: Path) -> None:
    """serve() gives the store 5 s, logs store_not_drained, and returns; then asyncio.run waits,
    with no limit, for the worker thread still in recv(): `hotline run` does not exit on SIGTERM
    (the supervisor's stop times out and it SIGKILLs)."""
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.integration.harness import write_config
    from tests.unit.test_cli import free_port
    from tickets.spool import quarantine, spool_record

    direct = open_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}")
    migrate(direct)
    proxy = SilentProxy()
    http_port = free_port()
    cfg = write_config(tmp_path / "config", ami_port=1, account=False, http_port=http_port, metrics_port=free_port(),
                       db_url=f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{pg_name}")
    spool = cfg / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    spool_record(spool, record("first"))
    quarantine(spool, spool_record(spool, record("second")), "second", "test", 1, "requeue it")
    with (tmp_path / "engine.log").open("wb") as log:
        engine = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(cfg)], stderr=log)
    try:
        deadline = time.monotonic() + 20
        while "first" not in stored_ids(direct) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "first" in stored_ids(direct)
        proxy.silence()
        token = (cfg / "control.token").read_text().strip()
        retry = urllib.request.Request(f"http://127.0.0.1:{http_port}/quarantine/second/retry", method="POST",
                                       headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(retry, timeout=5) as resp:
            assert resp.status == 200
        time.sleep(2)
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("`hotline run` still runs 20 s after SIGTERM (asyncio.run waits for the stuck writer thread)")
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        proxy.close()
        direct.dispose()
