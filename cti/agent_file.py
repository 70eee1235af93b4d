"""The agents' state kept in the spool folder (`agents.state`), so that a restart or a crash
does not put a paused or logged-out agent back in routing, nor reset the day's tallies.

What is kept and how the next engine takes it is the core's (acd/saved.py). Here: the file.
The dispatcher hands a snapshot after a change (at most every WRITE_EVERY seconds while events
keep coming); one thread writes it (a temporary file, fsync, rename), so a kill -9 leaves the
previous or the new version, never half of one. Read once per process, before the first resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import structlog

from acd.agents import Presence
from acd.events import AgentsRestored, SavedAgent

log = structlog.get_logger("hotline.agents")

VERSION = 1
# JSON, but not named *.json: the outbox takes every *.json (and *.json.tmp) in the spool folder
# for a call record waiting to be stored (tickets/store.py).
FILE_NAME = "agents.state"
WRITE_EVERY = 0.2  # seconds: under a stream of events, snapshots are taken at most this often
MAX_AGENTS = 100_000


T = TypeVar("T", int, float)


class AgentFileError(ValueError):
    pass


def encode(agents: tuple[SavedAgent, ...], wall: float) -> bytes:
    rows = [{"id": a.agent_id, "presence": a.presence.value, "pause_reason": a.pause_reason,
             "calls_taken": a.calls_taken, "talk_total": a.talk_total, "no_answer_streak": a.no_answer_streak,
             "idle_since": a.idle_since, "wrap_until": a.wrap_until, "unreachable": a.unreachable}
            for a in agents]
    return json.dumps({"version": VERSION, "written": round(wall, 3), "agents": rows},
                      ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(raw: bytes) -> AgentsRestored:
    """The agents in a file's content, and when it was written; AgentFileError naming the entry
    that is wrong."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: [[[[...]]]]
        raise AgentFileError(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("agents"), list):
        raise AgentFileError(f"not a version {VERSION} agents file (expected {{\"version\": 1, \"agents\": [...]}})")
    rows = doc["agents"]
    if len(rows) > MAX_AGENTS:
        raise AgentFileError(f"{len(rows)} agents, more than {MAX_AGENTS}")
    written = doc.get("written", 0)
    if isinstance(written, bool) or not isinstance(written, int | float) or not 0 <= written < 1e12:
        raise AgentFileError(f"written: {str(written)[:20]!r} is not a time")
    return AgentsRestored(tuple(_agent(i, row) for i, row in enumerate(rows)), float(written))


def _agent(i: int, row: Any) -> SavedAgent:
    where = f"agents[{i}]"
    if not isinstance(row, dict):
        raise AgentFileError(f"{where}: not an object")
    agent_id = row.get("id")
    if not isinstance(agent_id, str) or not agent_id.isdigit() or len(agent_id) > 16:
        raise AgentFileError(f"{where}.id: {str(agent_id)[:20]!r} is not an agent id")
    try:
        presence = Presence(str(row.get("presence")))
    except ValueError:
        raise AgentFileError(f"{where}.presence: {str(row.get('presence'))[:20]!r} is not one of "
                             f"{', '.join(p.value for p in Presence)}") from None
    reason = row.get("pause_reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 40):
        raise AgentFileError(f"{where}.pause_reason: not a short text")
    return SavedAgent(
        agent_id=agent_id, presence=presence, pause_reason=reason,
        calls_taken=_number(row, "calls_taken", where, int),
        talk_total=_number(row, "talk_total", where, float),
        no_answer_streak=_number(row, "no_answer_streak", where, int),
        idle_since=_number(row, "idle_since", where, float),
        wrap_until=_number(row, "wrap_until", where, float),
        unreachable=row.get("unreachable") is True,
    )


def _number(row: dict[str, Any], key: str, where: str, kind: type[T]) -> T:
    value = row.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        raise AgentFileError(f"{where}.{key}: {str(value)[:20]!r} is not a number from 0")
    return kind(value)


NOTHING = AgentsRestored(())


def read(path: Path | None) -> AgentsRestored:
    """The agents the engine before this one left; none when there is no file. A file whose
    content is wrong is set aside (renamed .bad) and logged: the agents start afresh, as
    before this file existed, rather than the engine not starting. One that cannot be read at
    all (permissions) is logged and replaced at the next write."""
    if path is None:
        return NOTHING
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return NOTHING
    except OSError as exc:
        log.error("agents_file_unread", file=str(path), error=str(exc),
                  hint="agents start logged in and ready, and the file is replaced at the next change; "
                       "check the spool folder's owner and permissions")
        return NOTHING
    try:
        return decode(raw)
    except AgentFileError as exc:
        bad = path.with_name(path.name + ".bad")
        log.error("agents_file_bad", file=str(path), error=str(exc), set_aside=str(bad),
                  hint="agents start logged in and ready; agents set their state again (*21-*24)")
        with contextlib.suppress(OSError):
            os.replace(path, bad)
        return NOTHING


def write(path: Path, content: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(content)
        while view:  # a short write (a nearly full disk) must not leave half a file to rename
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


class AgentFile:
    """One writer: the newest snapshot handed in is written next; older ones are skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        self.failed = False

    def put(self, content: bytes) -> None:
        self._pending = content
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending is not None:
            content, self._pending = self._pending, None
            try:
                await asyncio.to_thread(write, self.path, content)
            except OSError as exc:
                if not self.failed:
                    log.error("agents_file_unwritten", file=str(self.path), error=str(exc),
                              hint="agents' state will not survive a restart until the spool folder is writable")
                self.failed = True
            else:
                if self.failed:
                    log.info("agents_file_written_again", file=str(self.path))
                self.failed = False
                self.writes += 1

    async def flush(self) -> None:
        """Wait until the newest snapshot is on disk (at a clean stop)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
