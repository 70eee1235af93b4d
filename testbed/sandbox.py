"""The Asterisk sandbox: Asterisk 22 and SIPp in a Debian sid chroot on this host.

Debian 12 has no asterisk package and sid's needs a newer glibc than the host's,
so it runs from a chroot that shares the host's network (AMI, SIP and RTP on
127.0.0.1). The chroot is built once and cached; `up` after that takes seconds.
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
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from cti.asterisk_conf import install
from testbed.blocking_ami import AmiRefused, wait_fully_booted

DEFAULT_ROOT = Path(os.environ.get("HOTLINE_SANDBOX", "/var/lib/hotline/sandbox/rootfs"))
STAMP = ".hotline-sandbox"
STAMP_VERSION = "1: sid minbase + asterisk sip-tester"
PACKAGES = ("asterisk", "sip-tester")
SIPP_DIR = "var/lib/hotline-sipp"  # SIPp run directories, relative to the chroot root

Say = Callable[[str], None]


class SandboxError(Exception):
    """Something the operator must fix; the message says what."""


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


@dataclass
class Sandbox:
    root: Path = DEFAULT_ROOT
    say: Say = _say

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
        self._require_root()
        if self.ready:
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

    @staticmethod
    def _write_hosts(root: Path) -> None:
        # Without the host's own name here every call blocks on DNS look-ups.
        name = socket.gethostname()
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.0.1 {name}\n::1 localhost\n")

    # -- run -------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int((self.root / "run/asterisk/asterisk.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def up(self, settings: Settings, extra_manager_users: str = "") -> None:
        self.build()
        e = settings.engine
        if self.pid() is not None:
            self.say("Asterisk is already running; reinstalling configuration and reloading")
            self.install_conf(settings, extra_manager_users)
            self._mount(Path(e.recordings.dir))
            self.rx("core reload")
        else:
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
            self._mount(Path(e.recordings.dir))
            self.say("starting Asterisk 22")
            subprocess.run(
                ["chroot", str(self.root), "/usr/sbin/asterisk", "-F"],
                check=True,
                umask=0o027,  # recordings 0640 in directories 0750: not world-readable
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            booted = wait_fully_booted(e.ami.host, e.ami.port, e.ami.username, e.ami.secret, 60)
        except AmiRefused as exc:
            raise SandboxError(f"{exc}: manager.conf does not match engine.yaml") from None
        if not booted:
            raise SandboxError(
                f"Asterisk did not report FullyBooted on AMI {e.ami.host}:{e.ami.port} within 60 s; "
                f"see {self.root}/var/log/asterisk/messages.log"
            )
        self.say(f"Asterisk is up: AMI {e.ami.host}:{e.ami.port}, SIP udp {e.sip.bind}:{e.sip.port}")

    def install_conf(self, settings: Settings, extra_manager_users: str = "") -> None:
        install(settings, self.root / "etc/asterisk", self.root / "usr/share/asterisk/sounds", extra_manager_users)
        (self.root / SIPP_DIR).mkdir(parents=True, exist_ok=True)

    def _mount(self, recordings: Path) -> None:
        recordings.mkdir(parents=True, exist_ok=True, mode=0o750)
        os.chmod(recordings, 0o750)
        inside = self.root / str(recordings).lstrip("/")
        inside.mkdir(parents=True, exist_ok=True, mode=0o750)
        if not os.path.ismount(inside):
            _run(["mount", "--bind", str(recordings), str(inside)], f"bind-mounting {recordings}")
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

    def down(self) -> None:
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

    def status(self) -> dict[str, object]:
        return {"root": str(self.root), "built": self.ready, "asterisk_pid": self.pid()}

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
