"""The Asterisk sandbox: Asterisk 22 and SIPp in a Debian sid chroot on this host.

Debian 12 has no asterisk package and sid's needs a newer glibc than the host's,
so it runs from a chroot that shares the host's network (AMI, SIP and RTP on
127.0.0.1). The chroot is built once and cached; starting it after that takes seconds.

One user at a time: whoever builds or starts it first claims it (testbed/lock.py), and
nobody takes over an Asterisk they did not start.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings
from cti.asterisk_conf import install
from testbed.blocking_ami import AmiRefused, wait_fully_booted
from testbed.errors import SandboxBusy, SandboxError
from testbed.lock import Owner, SandboxLock

DEFAULT_ROOT = Path(os.environ.get("HOTLINE_SANDBOX", "/var/lib/hotline/sandbox/rootfs"))
STAMP = ".hotline-sandbox"
STAMP_VERSION = "2: sid minbase + asterisk sip-tester asterisk-moh-opsound-wav"
# asterisk-moh-opsound-wav: the hold music musiconhold.conf's [default] plays (CC-BY-SA 3.0).
# A sandbox built with fewer packages gets the missing ones installed in place (see build).
PACKAGES = ("asterisk", "sip-tester", "asterisk-moh-opsound-wav")
SIPP_DIR = "var/lib/hotline-sipp"  # SIPp run directories, relative to the chroot root
MANUAL = "hotline sandbox up"  # the purpose of an operator's claim

Say = Callable[[str], None]

__all__ = ["DEFAULT_ROOT", "MANUAL", "SIPP_DIR", "Claim", "Sandbox", "SandboxBusy", "SandboxError"]


def _say(msg: str) -> None:
    print(f"[sandbox] {msg}", file=sys.stderr, flush=True)


def apt_mirror() -> str:
    """The Debian mirror this host already uses (the only one reachable here)."""
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            m = re.match(r"^URIs:\s*(\S+)", line) or re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    with open(log or os.devnull, "ab") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        where = f"; see {log}" if log else ""
        raise SandboxError(f"{what} failed (exit {proc.returncode}){where}")


def port_free(port: int, kind: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _running_message(pid: int, starter: Owner | None) -> str:
    by = f"started by {starter.describe()}" if starter else "and nobody has claimed it"
    return (f"Asterisk is already running in the sandbox (pid {pid}), {by}; this run does not take over "
            "an Asterisk it did not start: stop it with `hotline sandbox down`, then try again")


@dataclass
class Sandbox:
    root: Path = DEFAULT_ROOT
    say: Say = _say
    _claim: Claim | None = field(default=None, init=False, repr=False)

    @property
    def ready(self) -> bool:
        try:
            return (self.root / STAMP).read_text().strip() == STAMP_VERSION
        except OSError:
            return False

    @property
    def log_path(self) -> Path:
        return self.root.parent / "build.log"

    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise SandboxError("the sandbox needs root (it builds a chroot and mounts into it): run it with sudo")

    # -- build -----------------------------------------------------------------

    def build(self) -> None:
        self._require_claim()
        self._require_root()
        if self.ready:
            self._write_hosts(self.root)
            return
        if self._add_missing_packages():
            self._write_hosts(self.root)
            return
        for tool in ("debootstrap", "chroot", "mount"):
            if not any((Path(d) / tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")):
                raise SandboxError(f"{tool} is not installed: apt-get install -y debootstrap")
        tmp = self.root.with_name(self.root.name + ".tmp")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            self._unmount_all(tmp)
            _run(["rm", "-rf", "--one-file-system", str(tmp)], "removing a half-built sandbox")
        mirror = apt_mirror()
        self.say(f"building the Asterisk sandbox in {self.root} (once; about 1-2 minutes, log: {self.log_path})")
        self.say(f"1/3 debootstrap Debian sid from {mirror}")
        t0 = time.monotonic()
        _run(["debootstrap", "--variant=minbase", "sid", str(tmp), mirror], "debootstrap", self.log_path)
        self.say(f"    done in {time.monotonic() - t0:.0f} s")
        self._write_hosts(tmp)
        (tmp / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
        self.say("2/3 apt-get update inside the sandbox (sid's Release file is past Valid-Until: not checked)")
        apt = ["chroot", str(tmp), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y"]
        _run([*apt, "-o", "Acquire::Check-Valid-Until=false", "update"], "apt-get update", self.log_path)
        self.say(f"3/3 apt-get install {' '.join(PACKAGES)} (about 700 MB)")
        t0 = time.monotonic()
        _run([*apt, "install", "--no-install-recommends", *PACKAGES], "apt-get install", self.log_path)
        self.say(f"    done in {time.monotonic() - t0:.0f} s")
        (tmp / STAMP).write_text(STAMP_VERSION + "\n")
        if self.root.exists():
            self._unmount_all(self.root)
            _run(["rm", "-rf", "--one-file-system", str(self.root)], "removing the old sandbox")
        tmp.rename(self.root)
        self.say("sandbox built and cached")

    def _missing_packages(self) -> list[str]:
        missing = []
        for package in PACKAGES:
            proc = subprocess.run(["chroot", str(self.root), "dpkg-query", "-W", "-f", "${db:Status-Status}",
                                   package], capture_output=True, text=True, check=False)
            if proc.stdout.strip() != "installed":
                missing.append(package)
        return missing

    def _add_missing_packages(self) -> bool:
        """An earlier build (an older stamp) lacks only packages PACKAGES has gained since: install
        those into it, in seconds instead of a rebuild. False when there is no such build, or the
        install failed (then the caller rebuilds from scratch)."""
        try:
            old = (self.root / STAMP).read_text().strip()
        except OSError:
            return False
        if not (self.root / "usr/sbin/asterisk").exists():
            return False
        missing = self._missing_packages()
        if missing:
            self.say(f"the sandbox ({old}) lacks {' '.join(missing)}: installing it into the existing sandbox")
            apt = ["chroot", str(self.root), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y"]
            try:
                _run([*apt, "-o", "Acquire::Check-Valid-Until=false", "update"], "apt-get update", self.log_path)
                _run([*apt, "install", "--no-install-recommends", *missing], "apt-get install", self.log_path)
            except SandboxError as exc:
                self.say(f"{exc}: rebuilding the sandbox instead")
                return False
        (self.root / STAMP).write_text(STAMP_VERSION + "\n")
        self.say("sandbox brought up to date")
        return True

    @staticmethod
    def _write_hosts(root: Path) -> None:
        # Without the host's own name here every call blocks on DNS look-ups.
        name = socket.gethostname()
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.0.1 {name}\n::1 localhost\n")

    # -- run -------------------------------------------------------------------

    def pid(self) -> int | None:
        """The sandbox's running Asterisk, from its pid file: only if that process lives in
        the chroot (a pid file left by a crash may name a host process that got the number)."""
        try:
            pid = int((self.root / "run/asterisk/asterisk.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid if self.in_sandbox(pid) else None

    def in_sandbox(self, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/root") == os.path.realpath(self.root)
        except OSError:
            return False

    def start(self, settings: Settings, extra_manager_users: str = "") -> None:
        """Install asterisk-conf/ and start a fresh Asterisk; return once it is FullyBooted."""
        self._require_claim()
        self.build()
        if (pid := self.pid()) is not None:
            raise SandboxError(f"Asterisk is already running in the sandbox (pid {pid}); "
                               "stop it with `hotline sandbox down` first")
        e = settings.engine
        busy = [
            f"{what} {port}"
            for what, port, kind in (
                ("AMI TCP", e.ami.port, socket.SOCK_STREAM),
                ("SIP UDP", e.sip.port, socket.SOCK_DGRAM),
            )
            if not port_free(port, kind, "127.0.0.1")
        ]
        if busy:
            raise SandboxError(
                f"port in use: {', '.join(busy)} on 127.0.0.1. Another Asterisk or SIP service is running "
                "(`ss -lntup` shows which); stop it, or change ami.port / sip.port in engine.yaml"
            )
        self.install_conf(settings, extra_manager_users)
        self._mount(settings)
        self.say("starting Asterisk 22")
        subprocess.run(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-F"],
            check=True,
            umask=0o027,  # recordings 0640 in directories 0750: not world-readable
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_booted(settings)
        self.say(f"Asterisk is up (pid {self.pid()}): AMI {e.ami.host}:{e.ami.port}, "
                 f"SIP udp {e.sip.bind}:{e.sip.port}")

    def reinstall(self, settings: Settings, extra_manager_users: str = "") -> None:
        """Install asterisk-conf/ into the running Asterisk and `core reload` it. Each reload
        leaves Asterisk 22.10.1 one more manager subscriber that slows every later call."""
        self._require_claim()
        self.install_conf(settings, extra_manager_users)
        self._mount(settings)
        self.rx("core reload")
        self._wait_booted(settings)

    def _wait_booted(self, settings: Settings) -> None:
        a = settings.engine.ami
        try:
            booted = wait_fully_booted(a.host, a.port, a.username, a.secret, 60)
        except AmiRefused as exc:
            raise SandboxError(f"{exc}: manager.conf does not match engine.yaml") from None
        if not booted:
            raise SandboxError(
                f"Asterisk did not report FullyBooted on AMI {a.host}:{a.port} within 60 s; "
                f"see {self.root}/var/log/asterisk/messages.log"
            )

    def install_conf(self, settings: Settings, extra_manager_users: str = "") -> None:
        install(settings, self.root / "etc/asterisk", self.root / "usr/share/asterisk/sounds", extra_manager_users)
        (self.root / SIPP_DIR).mkdir(parents=True, exist_ok=True)

    def _mount(self, settings: Settings) -> None:
        """Folders Asterisk writes and the engine reads, at the same path on both sides: the
        recordings, and the folder of Asterisk's own call account (CEL)."""
        shared = [Path(settings.engine.recordings.dir)]
        if settings.engine.account.cel_db is not None:
            shared.append(settings.engine.account.cel_db.parent)
        for folder in shared:
            if not folder.exists():
                folder.mkdir(parents=True, mode=0o750)
                os.chmod(folder, 0o750)  # mkdir's mode is cut by the umask; an existing folder is left alone
            inside = self.root / str(folder).lstrip("/")
            inside.mkdir(parents=True, exist_ok=True, mode=0o750)
            if not os.path.ismount(inside):
                _run(["mount", "--bind", str(folder), str(inside)], f"bind-mounting {folder}")
        proc = self.root / "proc"
        if not os.path.ismount(proc):
            _run(["mount", "-t", "proc", "proc", str(proc)], "mounting /proc in the sandbox")

    def processes(self) -> list[int]:
        """Every process whose root is the sandbox (Asterisk, SIPp)."""
        found = []
        real = os.path.realpath(self.root)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "root") == real:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        """Stop Asterisk and every process in the chroot, and unmount. The lock is the
        caller's business: `hotline sandbox down` checks it, a claim's owner stops its own."""
        self._require_root()
        if self.pid() is not None:
            self.say("stopping Asterisk")
            subprocess.run(["chroot", str(self.root), "asterisk", "-rx", "core stop now"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20, check=False)
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if self.pid() is None:  # gone, or a stale file naming some other process: not ours
            (self.root / "run/asterisk/asterisk.pid").unlink(missing_ok=True)
        self._unmount_all(self.root)
        self.say("sandbox stopped")

    @staticmethod
    def _unmount_all(root: Path) -> None:
        real = os.path.realpath(root)
        try:
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        except OSError:
            return
        for point in sorted((m for m in mounts if m.startswith(real + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def manager_subscribers(self) -> int | None:
        """Subscribers of the manager:core topic: 1 on a fresh Asterisk, one more after each
        `dialplan reload` or `core reload` (Asterisk 22.10.1), each slowing every later call."""
        try:
            out = self.rx("stasis show topic manager:core")
        except (SandboxError, OSError, subprocess.TimeoutExpired):
            return None
        m = re.search(r"Subscribers count:\s*(\d+)", out)
        return int(m.group(1)) if m else None

    def status(self) -> dict[str, object]:
        lock = SandboxLock(self.lock_dir)
        owner = lock.read_owner()
        pid = self.pid()
        return {
            "root": str(self.root),
            "built": self.ready,
            "asterisk_pid": pid,
            "manager_core_subscribers": self.manager_subscribers() if pid else None,
            "locked_by": owner.describe() if lock.locked() and owner else None,
            "started_by": owner.describe() if pid and owner else None,
        }

    # -- claim -------------------------------------------------------------------

    @property
    def lock_dir(self) -> Path:
        return self.root.parent

    def claim(self, purpose: str, *, adopt: str | None = None) -> Claim:
        """Take the sandbox for this process's whole run (test session, benchmark, demo, ...).

        SandboxBusy if another process holds it, or if Asterisk is already running: nobody
        takes over an Asterisk they did not start, since reinstalling configuration or hanging
        up channels under its owner breaks that owner's run. `adopt` names the one purpose
        whose running Asterisk this claim may take on (an operator's `hotline sandbox up` again).
        """
        lock = SandboxLock(self.lock_dir)
        lock.acquire(purpose)
        pid = self.pid()
        if pid is not None:
            starter = lock.previous
            if adopt is None or starter is None or starter.purpose != adopt:
                lock.release(leave=starter)
                raise SandboxBusy(_running_message(pid, starter))
        claim = Claim(self, lock)
        self._claim = claim
        return claim

    def _require_claim(self) -> None:
        if self._claim is None or not self._claim.lock.held:
            raise SandboxError("the sandbox is used without a claim: call Sandbox.claim() first")

    def rx(self, command: str) -> str:
        proc = subprocess.run(
            ["chroot", str(self.root), "asterisk", "-rx", command],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if proc.returncode != 0:
            raise SandboxError(f"asterisk -rx {command!r} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def sipp_argv(self, args: list[str]) -> list[str]:
        return ["chroot", str(self.root), "sipp", *args]

    def host_path(self, inside: str) -> Path:
        """Where a path inside the sandbox lives on the host."""
        return self.root / inside.lstrip("/")


class Claim:
    """This process's hold on the sandbox; release() (or leaving the `with`) gives it back.
    If Asterisk is still running then (the demo's --keep, a manual `up`), the owner file
    keeps naming this process as the one that started it."""

    def __init__(self, box: Sandbox, lock: SandboxLock) -> None:
        self.box = box
        self.lock = lock

    def release(self) -> None:
        if not self.lock.held:
            return
        self.lock.release(leave=self.lock.owner if self.box.pid() is not None else None)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
