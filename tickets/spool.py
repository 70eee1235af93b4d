"""The spool file format: one JSON object per call record, every field, read back exactly."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, get_args

from acd.commands import CallRecord, RecordSource, ServedBy
from tickets.models import outcome_of


class BadSpoolFile(ValueError):
    """A spool file that is not a call record (cut short, edited, written by another version)."""


def record_to_json(rec: CallRecord) -> str:
    data = asdict(rec)
    data["outcome"] = rec.outcome.value
    data["path"] = list(rec.path)
    return json.dumps(data, ensure_ascii=False)


_TEXT = ("call_id", "queue", "caller_num", "caller_name", "offered_queue")
_OPTIONAL_TEXT = ("agent_id", "recording")
_NUMBER = ("arrived", "ended", "wait_seconds", "talk_seconds", "service_level", "short_abandon")
_OPTIONAL_NUMBER = ("answered",)
_CHOICES: dict[str, tuple[Any, ...]] = {"served_by": get_args(ServedBy), "source": get_args(RecordSource)}
_FIELDS = {f.name for f in fields(CallRecord)}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    if "restricted" in data and not isinstance(data["restricted"], bool):
        wrong.append("restricted")
    if "path" in data and not (isinstance(data["path"], list) and all(isinstance(q, str) for q in data["path"])):
        wrong.append("path")
    if wrong:
        raise BadSpoolFile(f"wrong kind of value in {', '.join(wrong)}")


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
    try:
        return CallRecord(**data)
    except TypeError as exc:  # a missing field
        raise BadSpoolFile(str(exc)) from exc
