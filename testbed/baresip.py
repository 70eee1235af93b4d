"""A real softphone as an agent's phone: baresip 1.0.0 (Debian 12's baresip-core) on the host.

baresip runs on the host, not in the sandbox: the sandbox is Debian sid, whose baresip is a
later major version with another configuration, and the chroot shares the host's network, so
a host process reaches Asterisk on 127.0.0.1:5060 as any softphone would.

    with Phone("1001", password="pw-1001-test") as phone:
        phone.wait_registered()
        ...                           # a caller rings it; answermode=auto takes the call
        phone.wait_event("CALL_ESTABLISHED")
        phone.hangup()                # the agent hangs up first
        phone.kill()                  # or: the phone dies (SIGKILL), its binding stays in Asterisk

Each phone lives in a private folder (mode 0700, removed by stop()): baresip's config, an
empty accounts file (the account is created over ctrl_tcp once we listen, so no
REGISTER_OK can come before we do), a generated tone WAV it sends as its voice (aufile), and
phone.log (its output and events, timestamped). What it hears goes to ALSA's null PCM
(baresip 1.0.0 has no file player; the null PCM needs no sound card). Commands go to
baresip's ctrl_tcp as netstring JSON ({"command", "params", "token"}); the same connection
carries its events ({"event": true, "type": "CALL_INCOMING", ...}), kept in a thread-safe log.

baresip 1.0.0's traps (see shared/reference/real-softphone.md): accounts need account.so;
`net_interface lo` fails (an address works); it also binds TCP (TLS) on the SIP port + 1.
With answermode=auto it answers at once and reports no CALL_INCOMING; with manual it reports
CALL_INCOMING, and `hangup` then rejects the call with 486.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from testbed.sandbox import port_free

DEFAULT_AGENTS = Path(__file__).resolve().parent.parent / "config" / "defaults" / "agents.yaml"
BARESIP = "baresip"
MODULES = Path("/usr/lib/baresip/modules")

ASTERISK = "127.0.0.1:5060"
HOST = "127.0.0.1"
# SIP ports for phones: apart from SIPp's agents (6000s) and Asterisk (5060). A phone takes
# UDP and TCP on its port and TCP (TLS) on port + 1, hence steps of 3.
SIP_PORTS = range(7000, 8000, 3)
# RTP: above Asterisk's 10000-20000, below SIPp's media ports (30000 and up). baresip picks
# a port of the range at random for each call and tries another if it is taken.
RTP_PORTS = (21000, 29999)
NETSTRING_MAX = 1_000_000  # far above any event or answer baresip sends

AnswerMode = Literal["auto", "manual"]


class BaresipError(Exception):
    """baresip could not start, refused a command, or an awaited event did not come."""


# -- netstrings ------------------------------------------------------------------------


def netstring(payload: bytes) -> bytes:
    """`len:payload,` as ctrl_tcp reads it."""
    return b"%d:%s," % (len(payload), payload)


class NetstringReader:
    """Splits a byte stream into netstrings; feed() returns the complete ones."""

    def __init__(self, limit: int = NETSTRING_MAX) -> None:
        self._buf = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._buf:
            colon = self._buf.find(b":")
            head = self._buf if colon < 0 else self._buf[:colon]
            if not head.isdigit() and head:
                raise BaresipError(f"netstring: length {head[:12]!r} is not a number")
            if colon < 0:
                if len(head) > len(str(self._limit)):
                    raise BaresipError(f"netstring: no ':' after {head[:12]!r}")
                break
            if not head:
                raise BaresipError("netstring: no length before ':'")
            if len(head) > 1 and head.startswith(b"0"):
                raise BaresipError(f"netstring: length {head!r} has a leading zero")
            size = int(head)
            if size > self._limit:
                raise BaresipError(f"netstring: {size} bytes, more than {self._limit}")
            end = colon + 1 + size
            if len(self._buf) <= end:
                break  # the rest has not arrived yet
            if self._buf[end:end + 1] != b",":
                raise BaresipError(f"netstring: no ',' after {size} bytes")
            out.append(self._buf[colon + 1:end])
            self._buf = self._buf[end + 1:]
        return out


# -- configuration ---------------------------------------------------------------------


def default_password(agent_id: str) -> str:
    """The agent's password in config/defaults/agents.yaml (the demo's agents)."""
    roster = yaml.safe_load(DEFAULT_AGENTS.read_text(encoding="utf-8"))
    for entry in roster["agents"]:
        if str(entry["id"]) == agent_id:
            return str(entry["password"])
    raise BaresipError(f"no agent {agent_id} in {DEFAULT_AGENTS}")


def render_config(folder: Path, *, sip_port: int, ctrl_port: int, voice: Path,
                  rtp: tuple[int, int] = RTP_PORTS) -> str:
    """baresip's `config` for one phone on loopback."""
    return "\n".join([
        f"sip_listen {HOST}:{sip_port}",
        f"net_interface {HOST}",  # "lo" fails in 1.0.0: "could not get IPv4 address"
        f"audio_source aufile,{voice}",
        "audio_player alsa,null",
        "audio_alert alsa,null",
        f"rtp_ports {rtp[0]}-{rtp[1]}",
        "rtp_stats yes",
        f"module_path {MODULES}",
        "module g711.so",
        "module aufile.so",
        "module alsa.so",
        "module_app account.so",  # reads the (empty) accounts file; without it no account at all
        "module_app menu.so",  # dial, accept, hangup, hold, uanew ...
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen {HOST}:{ctrl_port}",
        f"# folder {folder}",
        "",
    ])


def account_line(agent_id: str, password: str, *, answermode: AnswerMode = "auto",
                 registrar: str = ASTERISK, regint: int | None = None) -> str:
    """The account, as baresip's accounts file and its `uanew` take it. regint None: the
    phone asks for baresip's default hour; Asterisk grants at most sip.max_expiry."""
    for value, what in ((agent_id, "agent id"), (password, "password")):
        if not value or any(c in value for c in ";<>\n\r ,"):
            raise BaresipError(f"{what} {value!r} cannot go into a baresip account line")
    line = (f"<sip:agent{agent_id}@{registrar};transport=udp>;auth_pass={password};"
            f"answermode={answermode}")
    return line + (f";regint={regint}" if regint is not None else "")


def write_tone(path: Path, seconds: float = 120.0, rate: int = 8000) -> None:
    """The phone's voice: 8 kHz mono 16-bit, 440 Hz for half a second in every second."""
    n = int(seconds * rate)
    samples = array.array("h", (int(6000 * math.sin(2 * math.pi * 440 * i / rate)) if i % rate < rate // 2 else 0
                                for i in range(n)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def _tcp_free(port: int) -> bool:
    return port_free(port, socket.SOCK_STREAM, HOST)


def _free_sip_port(start: int) -> int:
    ports = list(SIP_PORTS)
    first = start % len(ports)
    for port in itertools.chain(ports[first:], ports[:first]):
        if port_free(port, socket.SOCK_DGRAM, HOST) and _tcp_free(port) and _tcp_free(port + 1):
            return port
    raise BaresipError(f"no free SIP port for a phone in {SIP_PORTS.start}-{SIP_PORTS.stop}")


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# -- the phone ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One ctrl_tcp event: `kind` is its type (REGISTER_OK, CALL_INCOMING, ...)."""

    index: int  # its place in the phone's log, for wait_event(after=...)
    at: float  # time.monotonic() when it was read
    wall: float  # time.time() then
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class Phone:
    """baresip registered as agent<agent_id> to the sandbox Asterisk, in a private folder."""

    def __init__(self, agent_id: str, password: str | None = None, *, answermode: AnswerMode = "auto",
                 regint: int | None = None, registrar: str = ASTERISK, trace: bool = False,
                 register: bool = True) -> None:
        if shutil.which(BARESIP) is None:
            raise BaresipError("baresip is not installed: apt-get install baresip-core (.ci/packages.sh --tests)")
        self.agent_id = agent_id
        self.registrar = registrar
        self.account = account_line(agent_id, password or default_password(agent_id), answermode=answermode,
                                    registrar=registrar, regint=regint)
        self.folder = Path(tempfile.mkdtemp(prefix=f"hotline-baresip-{agent_id}-"))  # 0700
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._answers: dict[str, dict[str, Any]] = {}
        self._send_lock = threading.Lock()
        self._output: deque[str] = deque(maxlen=200)
        self._log_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._ctrl_open = False  # while the ctrl_tcp reader runs
        self._threads: list[threading.Thread] = []
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._start(trace)
            if register:
                self.command("uanew", self.account)
        except BaseException:
            self.stop()
            raise

    def _start(self, trace: bool) -> None:
        voice = self.folder / "voice.wav"
        write_tone(voice)
        self.sip_port = _free_sip_port(int(self.agent_id) * 3 if self.agent_id.isdigit() else 0)
        self.ctrl_port = _free_tcp_port()
        config = render_config(self.folder, sip_port=self.sip_port, ctrl_port=self.ctrl_port, voice=voice)
        (self.folder / "config").write_text(config, encoding="utf-8")
        (self.folder / "accounts").write_text("# created over ctrl_tcp (uanew)\n", encoding="utf-8")
        self._log_file = (self.folder / "phone.log").open("a", encoding="utf-8")
        argv = ["stdbuf", "-oL", BARESIP, "-f", str(self.folder), *(["-s"] if trace else [])]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # stdbuf execs baresip
        self._spawn(self._read_output, "output")
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise BaresipError(f"baresip for agent {self.agent_id} exited {self.proc.returncode} at start\n"
                                   f"{self.output_tail()}")
            try:
                self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"baresip for agent {self.agent_id} did not open ctrl_tcp "
                                       f"{HOST}:{self.ctrl_port} within 10 s\n{self.output_tail()}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._ctrl_open = True
        self._spawn(self._read_ctrl, "ctrl")

    def _spawn(self, target: Any, what: str) -> None:
        t = threading.Thread(target=target, name=f"baresip-{self.agent_id}-{what}", daemon=True)
        t.start()
        self._threads.append(t)

    def _log(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        with self._log_lock:
            self._output.append(f"{stamp} {line}")
            if not self._log_file.closed:
                self._log_file.write(f"{stamp} {line}\n")
                self._log_file.flush()

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._log(raw.decode(errors="replace").rstrip("\n"))

    def _read_ctrl(self) -> None:
        assert self._sock is not None
        reader = NetstringReader()
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            try:
                messages = reader.feed(data)
            except BaresipError as exc:
                self._log(f"ctrl_tcp: {exc}")
                break
            for payload in messages:
                self._take(payload)
        with self._cond:
            self._ctrl_open = False
            self._cond.notify_all()

    def _take(self, payload: bytes) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            self._log(f"ctrl_tcp: not JSON: {payload[:200]!r}")
            return
        if not isinstance(msg, dict):
            return
        if msg.get("event"):
            kind = str(msg.get("type", ""))
            if kind.startswith("VU_"):
                return
            self._log(f"event {json.dumps(msg, ensure_ascii=False)}")
            with self._cond:
                self._events.append(Event(len(self._events), time.monotonic(), time.time(), kind, msg))
                self._cond.notify_all()
        elif msg.get("response"):
            with self._cond:
                self._answers[str(msg.get("token", ""))] = msg
                self._cond.notify_all()

    # -- commands ----------------------------------------------------------------

    def command(self, name: str, params: str | None = None, timeout: float = 5.0) -> str:
        """Run a baresip command (dial, accept, hangup, hold, resume, answermode, uanew, ...)
        and return its answer's text; BaresipError if it failed or did not answer."""
        if self._sock is None or not self.running():
            raise BaresipError(f"baresip for agent {self.agent_id} is not running")
        token = uuid.uuid4().hex[:12]
        body: dict[str, str] = {"command": name, "token": token}
        if params is not None:
            body["params"] = params
        with self._send_lock:
            self._sock.sendall(netstring(json.dumps(body).encode()))
        shown = name if name != "uanew" else "uanew <account>"  # the account line holds the password
        self._log(f"command {shown} {params if params is not None and name != 'uanew' else ''}".rstrip())
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._ctrl_open:
                    raise BaresipError(f"baresip for agent {self.agent_id}: no answer to {shown} within "
                                       f"{timeout} s\n{self.output_tail()}")
                self._cond.wait(left)
            answer = self._answers.pop(token)
        if not answer.get("ok"):
            raise BaresipError(f"baresip for agent {self.agent_id}: {shown} failed: {answer.get('data')!r}")
        return str(answer.get("data", ""))

    def dial(self, number: str) -> None:
        """Call a number at Asterisk (a feature code such as *2305)."""
        self.command("dial", f"sip:{number}@{self.registrar}")

    def accept(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        """End the current call; a call still ringing (answermode manual) is rejected: 486."""
        self.command("hangup")

    def hold(self) -> None:
        self.command("hold")

    def resume(self) -> None:
        self.command("resume")

    def answermode(self, mode: AnswerMode) -> None:
        self.command("answermode", mode)

    # -- events ------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[Event]:
        with self._cond:
            return [e for e in self._events if kind is None or e.kind == kind]

    def mark(self) -> int:
        """The index the next event will get: wait_event(kind, after=phone.mark()) waits
        for one that comes after now."""
        with self._cond:
            return len(self._events)

    def wait_event(self, kind: str, timeout: float = 10.0, *, after: int = 0) -> Event:
        """The first event of `kind` at index >= after, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self._events[after:]:
                    if e.kind == kind:
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or not self._ctrl_open:
                    seen = ", ".join(e.kind for e in self._events[after:]) or "none"
                    raise BaresipError(f"baresip for agent {self.agent_id}: no {kind} within {timeout} s "
                                       f"(events since: {seen})\n{self.output_tail()}")
                self._cond.wait(min(left, 0.5))

    def wait_registered(self, timeout: float = 10.0, *, after: int = 0) -> Event:
        """REGISTER_OK; a REGISTER_FAIL (wrong password, unknown agent) fails at once."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self._events[after:]:
                    if e.kind == "REGISTER_OK":
                        return e
                    if e.kind == "REGISTER_FAIL":
                        raise BaresipError(f"agent {self.agent_id} could not register: {e.data.get('param')}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BaresipError(f"agent {self.agent_id} not registered within {timeout} s\n"
                                       f"{self.output_tail()}")
                self._cond.wait(min(left, 0.5))

    # -- life ---------------------------------------------------------------------

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output_tail(self, lines: int = 40) -> str:
        with self._log_lock:
            tail = list(self._output)[-lines:]
        return "--- baresip output\n" + "\n".join(tail) if tail else "(baresip wrote nothing)"

    def kill(self) -> None:
        """The phone dies: SIGKILL, no unregistration; its binding stays in Asterisk."""
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._close_ctrl()

    def stop(self) -> None:
        """Quit (baresip unregisters first), SIGTERM, then SIGKILL; remove the folder. Safe twice."""
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(BaresipError, OSError):
                self.command("quit", timeout=2)
            for sig, wait_s in ((None, 3.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._close_ctrl()
        for t in self._threads:
            t.join(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        with self._log_lock:
            log_file = getattr(self, "_log_file", None)
            if log_file is not None:
                log_file.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _close_ctrl(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    def __enter__(self) -> Phone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

