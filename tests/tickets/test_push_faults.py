"""Exactly once through crashes, with real processes: the relay (`python -m tickets.push`) is
SIGKILLed mid-stream and started again; the receiver (`python -m testbed.push_receiver`) fails
every third request, loses the answer to every seventh after applying it, and is itself
SIGKILLed and started again once. At the end the receiver applied every event exactly once, a
ticket's events in order, and the outbox holds every one as delivered."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from testbed.push_receiver import stats
from tickets.models import PushEventRow
from tickets.push import enqueue, pending

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 200
TICKETS = 40
SECRET = "13987654321"  # in every payload; must never reach the relay's log

Spawn = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `python -m <module> <args>` with its stderr appended to tmp_path/<name>.log; every
    process still running at the end is killed, whatever way the test ended."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, module: str, *args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        time.sleep(0.05)


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def write(engine: Engine, first: int, count: int) -> None:
    """Events first..first+count-1: event i belongs to ticket i % TICKETS, so each ticket gets a run."""
    with Session(engine) as s, s.begin():
        for i in range(first, first + count):
            enqueue(s, ticket_id=i % TICKETS, event=f"e{i // TICKETS}", payload={"i": i, "caller_num": SECRET},
                    now=datetime.now(UTC))


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(10)


def test_every_event_is_applied_once_through_relay_and_receiver_crashes(
        db: Engine, db_url: str, spawn: Spawn, tmp_path: Path) -> None:
    port, ledger = free_port(), tmp_path / "receiver.db"

    def receiver() -> subprocess.Popen[bytes]:
        proc = spawn("receiver", "testbed.push_receiver", "--port", str(port), "--db", str(ledger),
                     "--fail-every", "3", "--lose-every", "7")
        wait_for(lambda: answers(port), 10, "receiver listening")
        return proc

    def relay() -> subprocess.Popen[bytes]:
        # A 1 s timeout makes the lease of a killed relay's rows 6 s; backoffs stay under 0.5 s.
        return spawn("relay", "tickets.push", "--url", f"http://127.0.0.1:{port}/events", "--db-url", db_url,
                     "--timeout", "1", "--max-backoff", "0.5", "--batch", "50")

    def applied() -> int:
        return len(stats(ledger).applied) if ledger.exists() else 0

    started = time.monotonic()
    the_receiver = receiver()
    write(db, 0, 100)
    the_relay = relay()
    wait_for(lambda: applied() >= 40, 15, "40 events applied")
    sigkill(the_relay)
    assert pending(db) > 0  # killed mid-stream
    write(db, 100, 50)
    the_relay = relay()
    wait_for(lambda: applied() >= 110, 20, "110 events applied")
    sigkill(the_receiver)
    write(db, 150, 50)
    time.sleep(0.3)  # the relay meets a closed port
    the_receiver = receiver()
    wait_for(lambda: pending(db) == 0, 30, "every event delivered")
    the_relay.terminate()
    assert the_relay.wait(10) == 0  # SIGTERM: finishes its round and exits cleanly
    took = time.monotonic() - started

    seen = stats(ledger)
    with Session(db) as s:
        outbox = list(s.execute(select(PushEventRow.key, PushEventRow.ticket_id, PushEventRow.delivered)
                                .order_by(PushEventRow.id)))
    assert len(outbox) == EVENTS and all(delivered is not None for _, _, delivered in outbox)
    assert seen.applied == {key: 1 for key, _, _ in outbox}  # every event, each exactly once
    assert seen.statuses.get(503, 0) > 0 and seen.statuses.get(409, 0) > 0  # retries and repeats did happen
    for ticket in range(TICKETS):
        assert [k for t, k in seen.order if t == ticket] == [k for k, t, _ in outbox if t == ticket]
    relay_log = (tmp_path / "relay.log").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in relay_log.splitlines()]  # one JSON object a line, even after SIGKILL
    assert SECRET not in relay_log
    assert any(line["event"] == "push_delivery_failed" for line in lines)
    print(f"\n{db.dialect.name}: {EVENTS} events, {seen.deliveries} deliveries, statuses {seen.statuses}, "
          f"{took:.1f} s")
