"""The call-record store (SQLite by default, PostgreSQL by URL) and its outbox.

A finished call is first written to a spool file (one small JSON file per call,
written atomically by the dispatcher), then a writer task inserts it into the
database off the event loop and deletes the spool file. If the database is
down the file waits and the write is retried with backoff; if the engine dies,
the next start finds the file and writes it. Inserts are keyed by call id and
ignore a row that already exists, so a retry after a lost acknowledgement never
writes a call twice.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog
from sqlalchemy import Engine

from acd.commands import CallRecord
from tickets.db import (
    callback_requests,
    insert_record,
    migrate,
    open_engine,
    read_records,
    recent_answers,
    row_to_record,
)
from tickets.spool import record_from_json, record_to_json

__all__ = [
    "Outbox",
    "callback_requests",
    "insert_record",
    "migrate",
    "open_engine",
    "read_records",
    "recent_answers",
    "record_from_json",
    "record_to_json",
    "row_to_record",
]

log = structlog.get_logger("hotline.store")


class Outbox:
    """Spool + writer. `put` is called by the dispatcher; `run` is the writer task."""

    def __init__(self, engine: Engine, spool: Path, retry_max: float = 30.0) -> None:
        self.engine = engine
        self.spool = spool
        self.retry_max = retry_max
        self.queue: asyncio.Queue[Path] = asyncio.Queue()
        self.written = 0
        self.duplicates = 0
        self.errors = 0
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o750)

    def put(self, rec: CallRecord) -> Path:
        """Spool a finished call (atomic rename; a crash leaves either nothing or a whole file)."""
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in rec.call_id)
        path = self.spool / f"{safe}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(record_to_json(rec))
        os.replace(tmp, path)
        self.queue.put_nowait(path)
        return path

    def pending(self) -> int:
        return self.queue.qsize()

    def recover(self) -> int:
        """Queue spool files left by an earlier run."""
        found = sorted(self.spool.glob("*.json"))
        for path in found:
            self.queue.put_nowait(path)
        return len(found)

    async def run(self) -> None:
        delay = 0.5
        while True:
            path = await self.queue.get()
            while True:
                try:
                    stored = await asyncio.to_thread(self._write, path)
                    break
                except Exception as exc:  # the database is down or refused: keep the file, retry
                    self.errors += 1
                    log.warning("store_write_failed", spool=str(path), error=str(exc)[:300], retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)
            delay = 0.5
            if stored is not None:
                self.written += 1 if stored else 0
                self.duplicates += 0 if stored else 1

    def _write(self, path: Path) -> bool | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # already written and removed (queued twice by recover)
        try:
            rec = record_from_json(text)
        except (ValueError, TypeError, KeyError) as exc:
            bad = path.with_suffix(".bad")
            os.replace(path, bad)
            log.error("store_spool_unreadable", spool=str(bad), error=str(exc))
            return None
        stored = insert_record(self.engine, rec)
        path.unlink(missing_ok=True)
        log.info("call_record_stored", call_id=rec.call_id, outcome=rec.outcome.value, duplicate=not stored)
        return stored

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued record is written (or the time is up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.queue.empty() and not any(self.spool.glob("*.json")):
                return True
            await asyncio.sleep(0.05)
        return False
