"""One user of the sandbox at a time: an flock held for the user's whole run.

Whoever uses the sandbox (a test session, a benchmark, the demo, `hotline sandbox up`) takes
an exclusive `flock` on <dir>/sandbox.lock and writes <dir>/sandbox.owner (purpose, pid,
command line, start time), so that whoever is refused can be told who holds it and what to
do. The kernel drops an flock when its holder exits, however it exits, so a crash never
leaves the sandbox locked. The owner file may outlive its process: it then tells who left
Asterisk running (see Sandbox.claim).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from testbed.errors import SandboxBusy

LOCK_NAME = "sandbox.lock"
OWNER_NAME = "sandbox.owner"


def _proc_start(pid: int) -> int | None:
    """When the process started (clock ticks since boot), to tell it from a later process
    that was given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count from its closing ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _cmdline() -> str:
    """This process's command line on one line, for messages (`python3 -m pytest ...`)."""
    try:
        parts = [p.decode(errors="replace") for p in Path("/proc/self/cmdline").read_bytes().split(b"\0") if p]
    except OSError:
        parts = sys.argv
    text = " ".join(shlex.join(parts).split())
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class Owner:
    purpose: str  # "integration tests", "hotline sandbox up", ...
    pid: int
    cmdline: str
    started: float  # time.time() when the sandbox was claimed
    proc_start: int | None = None

    @classmethod
    def this_process(cls, purpose: str) -> Owner:
        pid = os.getpid()
        return cls(purpose, pid, _cmdline(), time.time(), _proc_start(pid))

    def alive(self) -> bool:
        start = _proc_start(self.pid)
        return start is not None and (self.proc_start is None or start == self.proc_start)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        state = "" if self.alive() else ", no longer running"
        return f"{self.purpose} (pid {self.pid}{state}: `{self.cmdline}`, since {since})"


class SandboxLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self.owner_path = directory / OWNER_NAME
        self.previous: Owner | None = None  # the record found when we took the lock
        self.owner: Owner | None = None  # ours, while we hold it
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, purpose: str) -> None:
        """Take the lock without waiting, or raise SandboxBusy naming its holder."""
        if self._fd is not None:
            raise RuntimeError("SandboxLock.acquire() twice")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SandboxBusy(self.busy_message(self.read_owner())) from None
        self._fd = fd
        self.previous = self.read_owner()
        self.owner = Owner.this_process(purpose)
        self._write(self.owner)

    def release(self, leave: Owner | None = None) -> None:
        """Drop the lock. `leave` is the record to leave behind (whoever leaves Asterisk
        running); None removes the owner file."""
        if self._fd is None:
            return
        if leave is None:
            self.owner_path.unlink(missing_ok=True)
        else:
            self._write(leave)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None
        self.owner = None

    def locked(self) -> bool:
        """Whether anyone (this object included) holds the lock now."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted only while nobody holds it exclusively
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def read_owner(self) -> Owner | None:
        try:
            data = json.loads(self.owner_path.read_text(encoding="utf-8"))
            return Owner(**data)
        except (OSError, ValueError, TypeError):
            return None

    def busy_message(self, owner: Owner | None) -> str:
        if owner is None:
            return (f"the sandbox is locked by a process that left no owner record; "
                    f"`fuser -v {self.path}` shows it")
        hint = "" if owner.alive() else f" (a process it started still holds the lock: `fuser -v {self.path}`)"
        return (f"the sandbox is in use by {owner.describe()}{hint}; wait for it to finish, "
                "or stop Asterisk under it with `hotline sandbox down --force`")

    def _write(self, owner: Owner) -> None:
        tmp = self.owner_path.with_name(self.owner_path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(owner)) + "\n", encoding="utf-8")
        os.replace(tmp, self.owner_path)
