"""The spool: one JSON file per accepted call record, written durably, and its quarantine.

A spool file is written to a temporary name, fsynced, renamed into place, and its folder is
fsynced, so after a crash or power cut it is either absent or whole. A record the database
refuses for good is moved to `<spool>/quarantine/` with a `.reason` file beside it (what went
wrong, when, after how many attempts, what to do); `requeue` puts it back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from acd.commands import CallRecord, RecordSource, ServedBy
from tickets.models import outcome_of

QUARANTINE = "quarantine"
REASON = ".reason"
FILE_MODE = 0o640
DIR_MODE = 0o750


class BadSpoolFile(ValueError):
    """A spool file that is not a call record (cut short, edited, written by another version)."""


def spool_name(call_id: str) -> str:
    """The file name for a call id: safe characters only, and two ids never share a name."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in call_id)
    if safe != call_id or not safe or len(safe) > 100:
        safe = f"{safe[:100]}-{hashlib.sha256(call_id.encode()).hexdigest()[:12]}"
    return f"{safe}.json"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str) -> None:
    """Write `text` to `path`: a crash leaves no file or the whole file, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk-full half file must not linger
        raise
    fsync_dir(path.parent)


def spool_record(spool: Path, rec: CallRecord) -> Path:
    path = spool / spool_name(rec.call_id)
    write_durably(path, record_to_json(rec))
    return path


def record_to_json(rec: CallRecord) -> str:
    data = asdict(rec)
    data["outcome"] = rec.outcome.value
    data["path"] = list(rec.path)
    data["parties"] = [list(p) for p in rec.parties]
    return json.dumps(data, ensure_ascii=False)


_TEXT = ("call_id", "queue", "caller_num", "caller_name", "offered_queue")
_OPTIONAL_TEXT = ("agent_id", "recording")
_NUMBER = ("arrived", "ended", "wait_seconds", "talk_seconds", "service_level", "short_abandon")
_OPTIONAL_NUMBER = ("answered",)
_CHOICES: dict[str, tuple[Any, ...]] = {"served_by": get_args(ServedBy), "source": get_args(RecordSource)}
_FIELDS = {f.name for f in fields(CallRecord)}


def _number(value: Any) -> bool:
    # Python's json reads NaN and Infinity; a NaN wait would make every report of its period fail.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check(data: dict[str, Any]) -> None:
    """Refuse a value of the wrong kind here, naming the field, rather than at the database."""
    if unknown := sorted(set(data) - _FIELDS):
        raise BadSpoolFile(f"unknown field(s) {', '.join(unknown)}: written by a newer version?")
    wrong = [name for name in _TEXT if name in data and not isinstance(data[name], str)]
    wrong += [name for name in _OPTIONAL_TEXT if data.get(name) is not None and not isinstance(data[name], str)]
    wrong += [name for name in _NUMBER if name in data and not _number(data[name])]
    wrong += [name for name in _OPTIONAL_NUMBER if data.get(name) is not None and not _number(data[name])]
    wrong += [name for name, ok in _CHOICES.items() if name in data and data[name] not in ok]
    if "priority" in data and (not isinstance(data["priority"], int) or isinstance(data["priority"], bool)):
        wrong.append("priority")
    for flag in ("restricted", "surveyed"):
        if flag in data and not isinstance(data[flag], bool):
            wrong.append(flag)
    rating = data.get("rating")
    if rating is not None and (not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5):
        wrong.append("rating")
    if "path" in data and not (isinstance(data["path"], list) and all(isinstance(q, str) for q in data["path"])):
        wrong.append("path")
    if "parties" in data and not _parties(data["parties"]):
        wrong.append("parties")
    if wrong:
        raise BadSpoolFile(f"wrong kind of value in {', '.join(wrong)}")


def _parties(value: Any) -> bool:
    """[[at, kind, party, detail], ...]: a finite time and three short texts each."""
    return isinstance(value, list) and len(value) <= 256 and all(
        isinstance(p, list) and len(p) == 4 and _number(p[0])
        and all(isinstance(t, str) and len(t) <= 128 for t in p[1:]) for p in value)


def record_from_json(text: str) -> CallRecord:
    """Parse a spool file; BadSpoolFile (a ValueError) says why it is not a call record."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadSpoolFile(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadSpoolFile("not a JSON object")
    _check(data)
    try:
        data["outcome"] = outcome_of(str(data.get("outcome")))
    except ValueError as exc:
        raise BadSpoolFile(f"unknown outcome {data.get('outcome')!r}") from exc
    data["path"] = tuple(data.get("path", ()))
    data["parties"] = tuple((float(p[0]), p[1], p[2], p[3]) for p in data.get("parties", ()))
    try:
        return CallRecord(**data)
    except TypeError as exc:  # a missing field
        raise BadSpoolFile(str(exc)) from exc


def read_spool_file(path: Path) -> CallRecord:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSpoolFile(f"not UTF-8: {exc}") from exc
    return record_from_json(text)


@dataclass(frozen=True)
class Quarantined:
    """A record set aside because the database refused it (or its file could not be read)."""

    call_id: str
    file: Path
    error: str
    quarantined_at: str  # ISO 8601, UTC
    attempts: int
    hint: str


def quarantine_dir(spool: Path) -> Path:
    folder = spool / QUARANTINE
    folder.mkdir(mode=DIR_MODE, exist_ok=True)
    return folder


def quarantine(spool: Path, path: Path, call_id: str, error: str, attempts: int, hint: str) -> Quarantined:
    """Move spool file `path` into quarantine with a `.reason` file beside it. The reason is written
    first: a crash in between leaves the record in the spool, to be tried (and set aside) again."""
    folder = quarantine_dir(spool)
    target = folder / path.name
    info = Quarantined(call_id, target, error, datetime.now(UTC).isoformat(timespec="seconds"), attempts, hint)
    reason = {**asdict(info), "file": target.name}
    write_durably(target.with_suffix(REASON), json.dumps(reason, ensure_ascii=False, indent=1))
    os.replace(path, target)
    fsync_dir(folder)
    fsync_dir(path.parent)
    return info


def _call_id_of(file: Path) -> str:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return str(data["call_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return file.stem  # unreadable: the file name is all there is


def list_quarantine(spool: Path) -> list[Quarantined]:
    """Every quarantined record, oldest first."""
    folder = spool / QUARANTINE
    out = []
    for file in folder.glob("*.json") if folder.is_dir() else ():
        try:
            why = json.loads(file.with_suffix(REASON).read_text(encoding="utf-8"))
            out.append(Quarantined(str(why["call_id"]), file, str(why["error"]), str(why["quarantined_at"]),
                                   int(why["attempts"]), str(why["hint"])))
        except (OSError, ValueError, KeyError, TypeError):
            out.append(Quarantined(_call_id_of(file), file, "reason file missing or unreadable", "", 0,
                                   "read the record file, then requeue or delete it"))
    return sorted(out, key=lambda q: (q.quarantined_at, q.file.name))


def requeue(spool: Path, call_id: str) -> Path:
    """Move a quarantined record back into the spool, where the next `recover()` (or a running
    outbox's `requeue`) writes it. LookupError if no such record; FileExistsError if the spool
    already holds a record for that call."""
    for q in list_quarantine(spool):
        if q.call_id == call_id:
            target = spool / q.file.name
            if target.exists():
                raise FileExistsError(f"{target} already holds a record for call {call_id}; compare the two "
                                      f"and delete one before requeueing")
            os.replace(q.file, target)
            fsync_dir(spool)
            fsync_dir(q.file.parent)
            q.file.with_suffix(REASON).unlink(missing_ok=True)
            return target
    raise LookupError(f"no quarantined record for call id {call_id!r} in {spool / QUARANTINE}")
