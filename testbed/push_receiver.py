"""A stand-in for the provincial 12345 platform's push endpoint, for tests and the demo.

`POST /events` takes one event as tickets.push sends it and applies it once per
Idempotency-Key: the first time it is stored; a repeat answers 409 (or 200, `--repeat-status`)
and is not stored again. What it applied and every request it saw are kept in a SQLite file,
so they survive the receiver's own restart. `GET /stats` tells what it holds.

Faults on demand, reproducible (counted per request since this process started):
  --fail-every N    every Nth request answers 503 and is not applied
  --lose-every N    every Nth request is applied, then answered 503: the acknowledgement is lost
  --fail-rate F     a fraction F of requests answer 503, drawn from a random seeded by --seed

    python -m testbed.push_receiver --port 8099 --db push.db --fail-every 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from aiohttp import web

from cti.logs import setup

log = structlog.get_logger("hotline.push_receiver")

# No UNIQUE on key on purpose: the receiver's own check applies a key once, and the count per
# key in `applied` is how a test proves it (a broken check shows up as a 2, not as an error).
SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, ticket_id INTEGER NOT NULL,
    event TEXT NOT NULL, created TEXT NOT NULL, payload TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS applied_key ON applied (key);
CREATE TABLE IF NOT EXISTS requests (
    n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, status INTEGER NOT NULL, at REAL NOT NULL);
"""


class Ledger:
    """The receiver's SQLite file. A 2xx is answered only after the commit."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")  # a test reads it while the receiver writes
        self.db.executescript(SCHEMA)

    def apply(self, key: str, body: dict[str, Any]) -> bool:
        """Store the event unless its key was applied before; True if stored now."""
        self.db.execute("BEGIN IMMEDIATE")  # check and insert as one, even against another process
        try:
            if self.db.execute("SELECT 1 FROM applied WHERE key = ?", (key,)).fetchone():
                return False
            self.db.execute(
                "INSERT INTO applied (key, ticket_id, event, created, payload, at) VALUES (?, ?, ?, ?, ?, ?)",
                (key, body["ticket_id"], body["event"], body["created"],
                 json.dumps(body["payload"], ensure_ascii=False), time.time()))
            return True
        finally:
            self.db.execute("COMMIT")

    def saw(self, key: str, status: int) -> None:
        self.db.execute("INSERT INTO requests (key, status, at) VALUES (?, ?, ?)", (key, status, time.time()))

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class Stats:
    deliveries: int  # POSTs seen, whatever the answer
    applied: dict[str, int]  # key -> times applied (1 when the key is honoured)
    order: list[tuple[int, str]]  # (ticket_id, key) in the order applied
    statuses: dict[int, int]  # answer -> how many times given


def stats(path: Path) -> Stats:
    """What the receiver's file holds (it may be running or not; this only reads)."""
    db = sqlite3.connect(path, timeout=10)
    try:
        order = [(int(t), str(k)) for t, k in db.execute("SELECT ticket_id, key FROM applied ORDER BY seq")]
        statuses = {int(s): int(c) for s, c in db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status")}
    finally:
        db.close()
    return Stats(deliveries=sum(statuses.values()), applied=dict(Counter(k for _, k in order)), order=order,
                 statuses=statuses)


@dataclass
class Faults:
    fail_every: int = 0
    lose_every: int = 0
    fail_rate: float = 0.0
    seed: int = 0
    repeat_status: int = 409
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def at(self, n: int) -> Literal["fail", "lose", "ok"]:
        """What happens to the `n`th request (1-based)."""
        if (self.fail_every and n % self.fail_every == 0) or (self.fail_rate and self._rng.random() < self.fail_rate):
            return "fail"
        if self.lose_every and n % self.lose_every == 0:
            return "lose"
        return "ok"


def _problem(key: str, body: Any) -> str:
    """Why a request is not an event as tickets.push sends it; "" if it is one."""
    if not key:
        return "no Idempotency-Key header"
    if not isinstance(body, dict) or set(body) != {"key", "event", "ticket_id", "payload", "created"}:
        return "the body must be an object with exactly key, event, ticket_id, payload, created"
    if body["key"] != key:
        return "the body's key differs from the Idempotency-Key header"
    if not isinstance(body["ticket_id"], int) or not isinstance(body["event"], str):
        return "ticket_id must be an integer and event a string"
    return ""


def make_app(ledger: Ledger, faults: Faults) -> web.Application:
    seen = 0

    async def take(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        key = request.headers.get("Idempotency-Key", "")
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = _problem(key, body)
        if problem:
            ledger.saw(key, 400)
            return web.json_response({"error": problem}, status=400)
        fault = faults.at(seen)
        if fault == "fail":
            ledger.saw(key, 503)
            return web.json_response({"error": "injected failure, not applied"}, status=503)
        new = ledger.apply(key, body)
        status = 503 if fault == "lose" else 200 if new else faults.repeat_status
        ledger.saw(key, status)
        return web.json_response({"key": key, "applied": new}, status=status)

    async def show(_: web.Request) -> web.Response:
        counts = dict(ledger.db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
        applied = ledger.db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM applied").fetchone()
        return web.json_response({"deliveries": sum(counts.values()), "statuses": counts,
                                  "applied": applied[0], "keys": applied[1]})

    app = web.Application()
    app.router.add_post("/events", take)
    app.router.add_get("/stats", show)
    return app


async def serve(ledger: Ledger, faults: Faults, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(make_app(ledger, faults), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("push_receiver_listening", host=host, port=port, faults=repr(faults))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.push_receiver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True, help="its SQLite file (created if missing)")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--lose-every", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat-status", type=int, choices=(200, 409), default=409)
    args = parser.parse_args(argv)
    setup()
    faults = Faults(fail_every=args.fail_every, lose_every=args.lose_every, fail_rate=args.fail_rate,
                    seed=args.seed, repeat_status=args.repeat_status)
    ledger = Ledger(args.db)
    try:
        asyncio.run(serve(ledger, faults, args.host, args.port))
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
