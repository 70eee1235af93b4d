"""The call-record database: open it (safely), migrate it, insert a record once, read records back.

SQLite by default, PostgreSQL by URL. Inserts are keyed by call id and ignore a row that
already exists (ON CONFLICT DO NOTHING on both), so a retry after a lost acknowledgement,
or a spool file a crash left behind, never writes a call twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, insert, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from acd.commands import CallRecord, RecordSource, ServedBy
from acd.model import Outcome
from tickets.models import CallRecordRow, outcome_of

log = structlog.get_logger("hotline.store")
MIGRATIONS = Path(__file__).parent / "migrations"
PG_CONNECT_TIMEOUT = 5  # seconds: an unreachable host must fail a write, not hang the writer for minutes
PG_SILENCE_MS = 15_000  # a statement, or a connection that stops answering, is given up after this


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()  # SQLite drops the zone


def open_engine(url: str) -> Engine:
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            secure_sqlite_file(Path(parsed.database))
    elif parsed.get_backend_name() == "postgresql":
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
        # A connection that goes silent (a failover, a dead host, a firewall) is given up in
        # seconds, not the kernel's quarter of an hour: the writer retries, shutdown is not held.
        # An `options` of the URL (a search_path, say) is kept, after ours: it may override ours.
        theirs = parsed.query.get("options", "")
        theirs = " ".join(theirs) if isinstance(theirs, tuple) else theirs
        connect_args.update(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                            tcp_user_timeout=PG_SILENCE_MS,
                            options=f"-c statement_timeout={PG_SILENCE_MS} {theirs}".strip())
    # The parameters of a failed statement (callers' numbers and names) stay out of error
    # messages, which reach the log and the quarantine's reason files.
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, hide_parameters=True)


def secure_sqlite_file(path: Path) -> None:
    """Create the database 0600 (in a 0750 folder if the folder is new), or take away the world
    access of an existing one: it holds callers' names and numbers. SQLite gives its -journal,
    -wal and -shm files the mode of the database file."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o750)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file is an empty db
    for file in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o007:
            os.chmod(file, 0o600)
            log.warning("store_file_was_world_readable", file=str(file), mode=oct(mode), now="0o600",
                        hint="it holds caller names and numbers; check who copied or read it")


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # A migration rewrites whole tables: the write watchdog's statement timeout is not
            # for it (for this transaction only; the connection goes back to the pool with it).
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def record_values(rec: CallRecord) -> dict[str, Any]:
    """The row for a record. A record from before offered queues ("" there) was offered in
    `queue` and waited only there, as migration 0002 says of old rows."""
    legacy = not rec.offered_queue
    return {
        "call_id": rec.call_id,
        "queue": rec.queue,
        "caller_num": rec.caller_num,  # never cut to fit: a value too long is refused and quarantined
        "caller_name": rec.caller_name,
        "caller_restricted": rec.restricted,
        "arrived": _ts(rec.arrived),
        "answered": _ts(rec.answered),
        "ended": _ts(rec.ended),
        "agent_id": rec.agent_id,
        "outcome": outcome_of(rec.outcome.value).value,
        "wait_seconds": rec.wait_seconds,
        "talk_seconds": rec.talk_seconds,
        "recording": rec.recording,
        "offered_queue": rec.queue if legacy else rec.offered_queue,
        "path": json.dumps(list(rec.path) or ([rec.queue] if legacy else []), ensure_ascii=False),
        "priority": rec.priority,
        "service_level": rec.service_level,
        "short_abandon": rec.short_abandon,
        "served_by": rec.served_by,
        "source": rec.source,
        "surveyed": rec.surveyed,
        "rating": rec.rating,
        "parties": json.dumps([list(p) for p in rec.parties], ensure_ascii=False),
    }


def _insert(dialect: str, values: dict[str, Any]) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(CallRecordRow).values(values).on_conflict_do_nothing(index_elements=["call_id"])
    if dialect == "sqlite":
        return sqlite.insert(CallRecordRow).values(values).on_conflict_do_nothing(index_elements=["call_id"])
    return insert(CallRecordRow).values(values)


def insert_record(engine: Engine, rec: CallRecord) -> bool:
    """Insert one call; False if that call id was already stored."""
    values = record_values(rec)
    dialect = engine.dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - other databases: check first, single writer
        with Session(engine) as s, s.begin():
            if s.get(CallRecordRow, rec.call_id) is not None:
                return False
            s.add(CallRecordRow(**values))
        return True
    with engine.begin() as conn:
        return bool(conn.execute(_insert(dialect, values)).rowcount)


_PROBE = CallRecord("hotline-store-probe", "probe", "", "", 0.0, None, 0.0, None, Outcome.ABANDONED, 0.0, 0.0, None)


def probe(engine: Engine) -> bool:
    """True if the database would take a well-formed record now: one is inserted and rolled back.
    Unlike `SELECT 1` this also fails when the table is missing or may not be written."""
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                conn.execute(_insert(engine.dialect.name, record_values(_PROBE)))
            finally:
                tx.rollback()
    except Exception:
        return False
    return True


def row_to_record(row: CallRecordRow) -> CallRecord:
    """A stored row as the record that was written (timestamps back to epoch seconds)."""
    return CallRecord(
        call_id=row.call_id,
        queue=row.queue,
        caller_num=row.caller_num,
        caller_name=row.caller_name,
        arrived=_epoch(row.arrived),
        answered=None if row.answered is None else _epoch(row.answered),
        ended=_epoch(row.ended),
        agent_id=row.agent_id,
        outcome=outcome_of(row.outcome),
        wait_seconds=row.wait_seconds,
        talk_seconds=row.talk_seconds,
        recording=row.recording,
        restricted=row.caller_restricted,
        offered_queue=row.offered_queue,
        path=tuple(json.loads(row.path)),
        priority=row.priority,
        service_level=row.service_level,
        short_abandon=row.short_abandon,
        served_by=cast(ServedBy, row.served_by),
        source=cast(RecordSource, row.source),
        surveyed=bool(row.surveyed),
        rating=row.rating,
        parties=tuple((float(at), kind, party, detail) for at, kind, party, detail in json.loads(row.parties or "[]")),
    )


def stored_ids(engine: Engine, call_ids: list[str]) -> set[str]:
    """Which of these calls already have a record."""
    found: set[str] = set()
    with Session(engine) as s:
        for i in range(0, len(call_ids), 500):
            chunk = call_ids[i : i + 500]
            found.update(s.scalars(select(CallRecordRow.call_id).where(CallRecordRow.call_id.in_(chunk))))
    return found


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
        return [(str(num), str(agent), _epoch(ended)) for num, agent, ended in s.execute(query) if agent]


def callback_requests(engine: Engine, since: float) -> list[dict[str, Any]]:
    """Callers who chose (or were offered) a callback since `since`, newest first.

    `restricted` is True when the caller withheld the number: whoever shows the list masks it."""
    rows = CallRecordRow
    query = (
        select(rows.call_id, rows.queue, rows.caller_num, rows.caller_name, rows.caller_restricted, rows.ended)
        .where(rows.outcome == Outcome.CALLBACK.value, rows.ended >= _ts(since))
        .order_by(rows.ended.desc())
    )
    with Session(engine) as s:
        return [
            {"call_id": cid, "queue": queue, "caller_num": num, "caller_name": name, "restricted": bool(restricted),
             "requested": (ended if ended.tzinfo else ended.replace(tzinfo=UTC)).isoformat()}
            for cid, queue, num, name, restricted, ended in s.execute(query)
        ]
