"""The whole store in open formats, and back: the contracting authority owns the data.

`export` writes every table of the ticket platform and the call records to a new folder,
twice: JSON Lines (what `import_` reads; every type survives) and CSV (for people and
spreadsheets), plus manifest.json with the row counts and the SHA-256 of every file.

- CSV is UTF-8 *with* a byte-order mark: Excel, which most offices open a CSV with, reads a
  CSV without one in the Windows code page (GBK on Chinese Windows) and shows the Chinese
  as mojibake; Python (utf-8-sig), pandas, LibreOffice and PostgreSQL's COPY skip the mark.
  RFC 4180: a header row, "," between fields, CRLF after a row, a field quoted when it holds
  a comma, a quote or a line break, a quote inside doubled. CSV cannot tell NULL from "":
  both are an empty field. Cells are written as stored (a leading =, + or - is not escaped).
- JSON Lines: one object per row, keys in the table's column order, UTF-8 (Chinese as is),
  times ISO 8601 in UTC ("2026-11-26T02:00:00+00:00"), dates ISO, true/false, null. Rows in
  primary-key order, strings compared byte by byte on both stores, so the same data gives the
  same bytes whichever store it came from.
- users are written without password_hash: a copy of an export must not carry what
  passwords can be guessed from offline. `import_` creates every user disabled, with the hash
  of a random secret nobody is shown; an admin gives each a password and enables it. So an
  import's users differ from the export in `disabled` only (true for all).

The export reads one consistent snapshot (PostgreSQL: a REPEATABLE READ, READ ONLY
transaction; SQLite: one read transaction, during which writers wait) and streams it, so a
million tickets never sit in memory. The manifest is written last, after every file is on
disk: a folder without one is an export that did not finish.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table, bindparam, insert, literal, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import Boolean, Date, DateTime, Float, Integer, String

from tickets.models import Base

FORMAT = "hotline-export"
FORMAT_VERSION = 1
# Parents before the rows that point at them: the order of the import's inserts.
TABLE_NAMES = ("call_records", "departments", "users", "kb_articles", "ticket_counters", "tickets", "ticket_calls",
               "ticket_events", "push_outbox", "report_versions")
TABLES: tuple[Table, ...] = tuple(Base.metadata.tables[name] for name in TABLE_NAMES)
WITHHELD = {"users": ("password_hash",)}
NOT_EXPORTED = {
    "users.password_hash": "withheld: an export must not spread password hashes. hotline import creates every user "
                           "disabled with an unusable password; an admin sets one (hotline user passwd NAME) and "
                           "enables the user (hotline user enable NAME)",
    "auth_tokens": "sign-in sessions: they end with the store; users sign in anew",
    "login_failures": "the sign-in limiter's short-lived counts",
    "search indexes": "the full-text indexes of kb_articles and tickets (FTS5 tables on SQLite, trigram indexes on "
                      "PostgreSQL) are derived: the store fills them from the rows as they are imported",
    "recordings": "call_records.recording and ticket_calls.recording are paths; the audio files are not in the "
                  "store: copy the recordings folder with the export",
}
FILE_MODE = 0o640  # they hold citizens' names, numbers and words
DIR_MODE = 0o750
PROGRESS_EVERY = 10_000  # rows between two progress reports
FETCH = 2_000  # rows the database hands over at a time
CHUNK = 1_000  # rows per INSERT on import

Progress = Callable[[str, int], None]


class Refused(Exception):
    """An export or import that cannot be done as asked; the text says what to do instead."""


# ---- values ------------------------------------------------------------------------------------


def _columns(table: Table) -> list[Column[Any]]:
    withheld = WITHHELD.get(table.name, ())
    return [c for c in table.columns if c.name not in withheld]


def _to_json(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, DateTime):  # SQLite gives times back naive; they are stored in UTC
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(kind, Date):
        return value.isoformat()
    if isinstance(kind, Float):
        return float(value)
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, Integer):
        return int(value)
    return str(value)


def _to_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_json(column: Column[Any], value: Any) -> Any:
    """The stored value of a JSON value, or ValueError saying what is wrong with it."""
    kind = column.type
    if value is None:
        if not column.nullable:
            raise ValueError("is null, but the column may not be empty")
        return None
    if isinstance(kind, DateTime):
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
        if when is None or when.tzinfo is None:
            raise ValueError(f"must be an ISO 8601 time with its offset, e.g. 2026-11-26T02:00:00+00:00, not {value!r}")
        return when.astimezone(UTC)
    if isinstance(kind, Date):
        if not isinstance(value, str):
            raise ValueError(f"must be an ISO date, e.g. 2026-11-26, not {value!r}")
        return date.fromisoformat(value)
    if isinstance(kind, Boolean):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value
    if isinstance(kind, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {value!r}")
        return float(value)
    if isinstance(kind, Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    if isinstance(kind, String) and kind.length and len(value) > kind.length:
        raise ValueError(f"is {len(value)} characters long; the column holds at most {kind.length}")
    return value


def _order(table: Table, dialect: str) -> list[Any]:
    """Primary-key order, strings byte by byte on both stores (SQLite's BINARY is PostgreSQL's
    "C"; a PostgreSQL database's own collation may sort otherwise)."""
    return [c.collate("C") if dialect == "postgresql" and isinstance(c.type, String) else c
            for c in table.primary_key.columns]


# ---- files -------------------------------------------------------------------------------------


class _Sink:
    """A new file, 0640 whatever the umask, whose bytes are hashed on their way to the disk."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # the umask may have taken the group's read away
        self._file = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._sha.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(text)

    def close(self) -> dict[str, Any]:
        """Flush it to the disk; its SHA-256 and size for the manifest."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return {"sha256": self._sha.hexdigest(), "bytes": self.size}

    def abandon(self) -> None:
        self._file.close()  # export() removes it


def _new_folder(out_dir: Path) -> bool:
    """Make `out_dir` ready (0750, empty); True if it was created here."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise Refused(f"{out_dir} is a file; name a new folder for the export")
        if any(out_dir.iterdir()):
            raise Refused(f"{out_dir} is not empty; an export never writes over files: name a new folder")
        created = False
    else:
        try:
            out_dir.mkdir(parents=True, mode=DIR_MODE)
        except PermissionError:
            raise Refused(f"may not create {out_dir}; choose a folder this user may write") from None
        created = True
    os.chmod(out_dir, DIR_MODE)  # mkdir's mode passes through the umask; an existing folder keeps its own
    return created


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


# ---- export ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection that sees one moment of the store for as long as the export reads."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")  # the write watchdog's limit is not for this
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # pysqlite opens no transaction for a SELECT
        try:
            yield conn
        finally:
            conn.rollback()


def _revision(conn: Connection) -> str:
    return ",".join(sorted(str(v) for v in conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()))


def _export_table(conn: Connection, table: Table, out_dir: Path, files: dict[str, Any],
                  progress: Progress | None) -> int:
    columns = _columns(table)
    names = [c.name for c in columns]
    jsonl, sheet = _Sink(out_dir / f"{table.name}.jsonl"), _Sink(out_dir / f"{table.name}.csv")
    sheet.write("\ufeff")  # see the module's docstring: Excel needs it to read UTF-8
    writer = csv.writer(sheet, lineterminator="\r\n")
    writer.writerow(names)
    rows = 0
    query = select(*columns).order_by(*_order(table, conn.dialect.name)).execution_options(yield_per=FETCH)
    try:
        for row in conn.execute(query):
            values = [_to_json(c, v) for c, v in zip(columns, row, strict=True)]
            jsonl.write(json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False, separators=(",", ":")))
            jsonl.write("\n")
            writer.writerow([_to_csv(v) for v in values])
            rows += 1
            if progress and rows % PROGRESS_EVERY == 0:
                progress(table.name, rows)
    except BaseException:
        jsonl.abandon()
        sheet.abandon()
        raise
    if progress and rows % PROGRESS_EVERY:
        progress(table.name, rows)
    files[f"{table.name}.jsonl"] = jsonl.close()
    files[f"{table.name}.csv"] = sheet.close()
    return rows


def export(engine: Engine, out_dir: Path, *, progress: Progress | None = None) -> dict[str, int]:
    """Write every table to `out_dir` (new, or empty) as JSON Lines and CSV, then manifest.json.
    Returns the rows written per table. On failure the files written so far are removed."""
    created = _new_folder(out_dir)
    counts: dict[str, int] = {}
    files: dict[str, Any] = {}
    try:
        with _snapshot(engine) as conn:
            revision = _revision(conn)
            for table in TABLES:
                counts[table.name] = _export_table(conn, table, out_dir, files, progress)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {"store": engine.dialect.name, "alembic_revision": revision},
            "tables": {t.name: {"rows": counts[t.name], "columns": [c.name for c in _columns(t)],
                                "files": [f"{t.name}.jsonl", f"{t.name}.csv"]} for t in TABLES},
            "files": files,
            "encoding": {
                "jsonl": "UTF-8, one JSON object per row in primary-key order; times ISO 8601 in UTC, dates ISO "
                         "8601, booleans true/false, NULL null. hotline import reads these files.",
                "csv": "UTF-8 with a byte-order mark (so that Excel reads the Chinese), RFC 4180, a header row, "
                       "CRLF; times and dates as in JSON Lines, booleans true/false, NULL and the empty string "
                       "both an empty field.",
            },
            "not_exported": NOT_EXPORTED,
        }
        sink = _Sink(out_dir / "manifest.json")
        sink.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        sink.close()
        fd = os.open(out_dir, os.O_RDONLY)  # the names of the files on the disk too, not only their bytes
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        for name in ("manifest.json", *(f"{t.name}.{ext}" for t in TABLES for ext in ("jsonl", "csv"))):
            (out_dir / name).unlink(missing_ok=True)  # no half export, with citizens' data in it, is left behind
        if created:
            out_dir.rmdir()
        raise
    return counts


# ---- import ------------------------------------------------------------------------------------


def _manifest(in_dir: Path) -> dict[str, Any]:
    path = in_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise Refused(f"{path} is missing: {in_dir} is not an export, or its export did not finish; "
                      "export again with hotline export") from None
    except ValueError as exc:
        raise Refused(f"{path} is not JSON ({exc}); export again with hotline export") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Refused(f"{path} is not the manifest of a hotline export")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise Refused(f"{path}: format version {manifest.get('format_version')!r}; this hotline reads version "
                      f"{FORMAT_VERSION}: import with the hotline version that wrote it")
    return manifest


def _check(in_dir: Path, manifest: dict[str, Any]) -> None:
    """Every table present with this store's columns; every file with the manifest's size and SHA-256."""
    tables, files = manifest.get("tables"), manifest.get("files")
    if not isinstance(tables, dict) or not isinstance(files, dict):
        raise Refused(f"{in_dir / 'manifest.json'} lists no tables or files; export again with hotline export")
    revision = (manifest.get("source") or {}).get("alembic_revision")
    for table in TABLES:
        entry = tables.get(table.name)
        if not isinstance(entry, dict) or f"{table.name}.jsonl" not in files:
            raise Refused(f"{in_dir / 'manifest.json'} has no table {table.name}; export again with hotline export")
        ours = [c.name for c in _columns(table)]
        if entry.get("columns") != ours:
            raise Refused(f"{table.name}: the export (schema revision {revision}) has columns {entry.get('columns')}, "
                          f"this store has {ours}: import with the hotline version that wrote the export")
    for name, meta in files.items():
        path = in_dir / name
        if Path(name).name != name or not path.is_file():
            raise Refused(f"{path}, listed in manifest.json, is missing; copy the whole export folder again")
        size = path.stat().st_size
        if size != meta.get("bytes"):
            raise Refused(f"{path} has {size} bytes, manifest.json says {meta.get('bytes')}: it was cut short or "
                          "changed; copy the export again from where it was written")
        if _sha256(path) != meta.get("sha256"):
            raise Refused(f"{path}: its SHA-256 differs from manifest.json's: the file was changed after the "
                          "export; copy the export again from where it was written")


def _rows(path: Path, table: Table) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSON Lines file; Refused naming the file and line if one is bad."""
    columns = {c.name: c for c in _columns(table)}
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):  # split at b"\n" only: U+2028 in a text is not a line break
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("the line is not a JSON object")
                if obj.keys() != columns.keys():
                    missing, unknown = sorted(columns.keys() - obj.keys()), sorted(obj.keys() - columns.keys())
                    raise ValueError(f"missing {missing}, unknown {unknown}")
                row = {}
                for name, column in columns.items():
                    try:
                        row[name] = _from_json(column, obj[name])
                    except ValueError as exc:
                        raise ValueError(f"{name} {exc}") from None
            except ValueError as exc:
                raise Refused(f"{path}:{number}: {exc}. Nothing was imported. The file matches manifest.json, "
                              "so it was written or edited so: export again from the source") from None
            yield number, row


def _insert(conn: Connection, table: Table, path: Path, chunk: list[tuple[int, dict[str, Any]]]) -> None:
    try:
        conn.execute(insert(table), [row for _, row in chunk])
    except DBAPIError as exc:
        # The first line names the constraint; PostgreSQL's DETAIL below it may quote a citizen's row.
        why = (str(exc.orig).splitlines() or ["no reason given"])[0]
        raise Refused(f"{path}:{chunk[0][0]}-{chunk[-1][0]}: the store refused a row of these lines ({why}). "
                      "Nothing was imported.") from None


def _import_table(conn: Connection, table: Table, path: Path, unusable: Callable[[], str],
                  progress: Progress | None) -> int:
    rows = 0
    chunk: list[tuple[int, dict[str, Any]]] = []
    later: list[dict[str, int]] = []  # tickets pointing at a ticket further down: set once it exists
    for number, row in _rows(path, table):
        if table.name == "users":
            row.update(password_hash=unusable(), disabled=True)
        elif table.name == "tickets" and row["original_id"] is not None and row["original_id"] >= row["id"]:
            later.append({"b_id": row["id"], "b_original": row["original_id"]})
            row["original_id"] = None
        chunk.append((number, row))
        if len(chunk) == CHUNK:
            _insert(conn, table, path, chunk)
            chunk = []
        rows += 1
        if progress and rows % PROGRESS_EVERY == 0:
            progress(table.name, rows)
    if chunk:
        _insert(conn, table, path, chunk)
    if later:
        conn.execute(update(table).where(table.c.id == bindparam("b_id")).values(original_id=bindparam("b_original")),
                     later)
    if progress and rows % PROGRESS_EVERY:
        progress(table.name, rows)
    return rows


def _unusable_password() -> Callable[[], str]:
    """The hash every imported user gets: of a random secret that is never stored or shown.
    One argon2 hash for the whole import (each takes ~0.4 s); a sign-in against it costs what
    any other does, so it does not tell that the user was imported."""
    from tickets import auth  # noqa: PLC0415 - argon2 only when users are imported

    made: list[str] = []

    def hashed() -> str:
        if not made:
            made.append(auth.hash_password(secrets.token_urlsafe(32)))
        return made[0]

    return hashed


def import_(engine: Engine, in_dir: Path, *, progress: Progress | None = None) -> dict[str, int]:
    """Read an export into a migrated store that holds no rows of its tables, in one
    transaction, keeping every id. Files are checked against the manifest before anything is
    written. Returns the rows imported per table."""
    manifest = _manifest(in_dir)
    _check(in_dir, manifest)
    counts: dict[str, int] = {}
    unusable = _unusable_password()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")  # a long import is not a hung write
        full = [t.name for t in TABLES if conn.execute(select(literal(1)).select_from(t).limit(1)).first()]
        if full:
            raise Refused(f"the store already holds rows in {', '.join(full)}; an import goes into an empty store "
                          "only: point store.url at a new database, migrated and empty")
        for table in TABLES:
            counts[table.name] = _import_table(conn, table, in_dir / f"{table.name}.jsonl", unusable, progress)
            expected = manifest["tables"][table.name].get("rows")
            if counts[table.name] != expected:
                raise Refused(f"{in_dir / (table.name + '.jsonl')} has {counts[table.name]} rows, manifest.json says "
                              f"{expected}; export again. Nothing was imported.")
        if engine.dialect.name == "postgresql":
            for table in TABLES:
                if "id" in table.c and table.c.id.primary_key:  # new rows must not collide with imported ids
                    name = conn.dialect.identifier_preparer.quote(table.name)
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence(:t, 'id'), "
                                      f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"), {"t": table.name})
    return counts
