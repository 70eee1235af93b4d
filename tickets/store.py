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
import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from acd.commands import CallRecord
from acd.model import Outcome
from tickets.models import CallRecordRow

log = structlog.get_logger("hotline.store")
MIGRATIONS = Path(__file__).parent / "migrations"


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def insert_record(engine: Engine, rec: CallRecord) -> bool:
    """Insert one call; False if that call id was already stored."""
    values: dict[str, Any] = {
        "call_id": rec.call_id,
        "queue": rec.queue,
        "caller_num": rec.caller_num,
        "caller_name": rec.caller_name,
        "caller_restricted": rec.restricted,
        "arrived": _ts(rec.arrived),
        "answered": _ts(rec.answered),
        "ended": _ts(rec.ended),
        "agent_id": rec.agent_id,
        "outcome": rec.outcome.value,
        "wait_seconds": rec.wait_seconds,
        "talk_seconds": rec.talk_seconds,
        "recording": rec.recording,
    }
    dialect = engine.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(CallRecordRow).values(values).on_conflict_do_nothing(index_elements=["call_id"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(CallRecordRow).values(values).on_conflict_do_nothing(index_elements=["call_id"])
    else:  # pragma: no cover - other databases: check first, single writer
        with Session(engine) as s, s.begin():
            if s.get(CallRecordRow, rec.call_id) is not None:
                return False
            s.add(CallRecordRow(**values))
        return True
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount)


def read_records(engine: Engine) -> list[CallRecordRow]:
    with Session(engine) as s:
        return list(s.scalars(select(CallRecordRow).order_by(CallRecordRow.arrived)))


def recent_answers(engine: Engine, since: float) -> list[tuple[str, str, float]]:
    """(caller number, agent, ended) of answered calls since `since`, oldest first."""
    rows = CallRecordRow
    query = (
        select(rows.caller_num, rows.agent_id, rows.ended)
        .where(rows.outcome == Outcome.ANSWERED.value, rows.ended >= _ts(since), rows.caller_num != "")
        .order_by(rows.ended)
    )
    with Session(engine) as s:
        out = []
        for num, agent, ended in s.execute(query):
            if agent:
                stamp = ended if ended.tzinfo else ended.replace(tzinfo=UTC)  # SQLite drops the zone
                out.append((str(num), str(agent), stamp.timestamp()))
        return out


def callback_requests(engine: Engine, since: float) -> list[dict[str, Any]]:
    """Callers who chose (or were offered) a callback since `since`, newest first."""
    rows = CallRecordRow
    query = (
        select(rows.call_id, rows.queue, rows.caller_num, rows.caller_name, rows.ended)
        .where(rows.outcome == Outcome.CALLBACK.value, rows.ended >= _ts(since))
        .order_by(rows.ended.desc())
    )
    with Session(engine) as s:
        return [
            {"call_id": cid, "queue": queue, "caller_num": num, "caller_name": name,
             "requested": (ended if ended.tzinfo else ended.replace(tzinfo=UTC)).isoformat()}
            for cid, queue, num, name, ended in s.execute(query)
        ]


def record_to_json(rec: CallRecord) -> str:
    data = asdict(rec)
    data["outcome"] = rec.outcome.value
    return json.dumps(data, ensure_ascii=False)


def record_from_json(text: str) -> CallRecord:
    data = json.loads(text)
    data["outcome"] = Outcome(data["outcome"])
    return CallRecord(**data)


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
