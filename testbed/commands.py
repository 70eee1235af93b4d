"""`hotline sandbox ACTION`: the operator's side of the sandbox, with the lock's rules.

`up` claims the sandbox while it starts Asterisk, and the Asterisk it leaves running stays
its own: tests, benchmarks and the demo refuse to take it over until `down`. `down` is the
operator's clean-up; while another run holds the lock it refuses unless --force.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from config.settings import Settings
from testbed.errors import SandboxBusy, SandboxError
from testbed.lock import SandboxLock
from testbed.sandbox import MANUAL, Sandbox

TAKES_ARGUMENTS = ("rx", "sipp")


def sandbox(args: argparse.Namespace, settings: Callable[[], Settings], box: Sandbox | None = None) -> int:
    if box is None:
        box = Sandbox(Path(args.root)) if args.root else Sandbox()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    try:
        if rest and args.action not in TAKES_ARGUMENTS:
            raise SandboxError(f"`{args.action}` takes no arguments (got {' '.join(rest)})")
        if args.force and args.action != "down":
            raise SandboxError("--force goes with `down` only")
        if args.action == "up":
            up(box, settings())
        elif args.action == "down":
            down(box, force=args.force)
        elif args.action == "build":
            with box.claim("hotline sandbox build"):
                box.build()
        elif args.action == "status":
            print(json.dumps(box.status(), indent=2))
            return 0 if box.pid() else 1
        elif args.action == "rx":
            print(box.rx(" ".join(rest)), end="")
        elif args.action == "sipp":
            return subprocess.call(box.sipp_argv(rest))
    except SandboxError as exc:
        print(f"hotline sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


def up(box: Sandbox, settings: Settings) -> None:
    with box.claim(MANUAL, adopt=MANUAL):
        if box.pid() is None:
            box.start(settings)
            box.say("tests, benchmarks and the demo will not take this Asterisk over; "
                    "`hotline sandbox down` stops it")
            return
        box.reinstall(settings)
        box.say(f"configuration reinstalled and reloaded; Asterisk now has {box.manager_subscribers()} "
                "manager:core subscribers (1 when fresh, one more per reload, each slowing every later call): "
                "`hotline sandbox down` then `up` starts it fresh")


def down(box: Sandbox, *, force: bool) -> None:
    lock = SandboxLock(box.lock_dir)
    try:
        lock.acquire("hotline sandbox down")
    except SandboxBusy:
        if not force:
            raise
        holder = lock.read_owner()
        who = holder.describe() if holder else "a process that left no owner record"
        box.say(f"--force: the sandbox is in use by {who}; stopping Asterisk and SIPp under it, so that run "
                f"will fail. Its lock is released when {f'pid {holder.pid}' if holder else 'it'} exits")
        box.stop()
        return
    try:
        if box.pid() is not None and lock.previous is not None:
            box.say(f"stopping the Asterisk started by {lock.previous.describe()}")
        box.stop()
    finally:
        lock.release(leave=None)
