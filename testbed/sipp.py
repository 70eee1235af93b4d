"""Run SIPp scenarios (testbed/sipp_scenarios/*.xml) against the sandbox Asterisk.

SIPp lives in the sandbox chroot, so every run copies its scenario and injection CSV into
a fresh directory under <root>/var/lib/hotline-sipp/ and runs `chroot <root> sipp ...` in
the foreground (never `-bg`, which detaches) in its own session, so `stop()` can signal the
whole group. SIPp's own files (errors, statistics, final screen, stdout) land in that
directory too; `SippRun.workdir` is the host-side path. Once SIPp has exited its final
counts are kept in memory; the directory is removed if the run succeeded, and kept if it
failed, with the error naming it.

Addresses (see asterisk-conf/pjsip.conf.in): Asterisk listens on 127.0.0.1:5060; agents
REGISTER and receive calls on 127.0.0.1; the carrier (citizens' calls) sends from
127.0.0.2. Asterisk's RTP range is 10000-20000, so SIPp media ports are taken above it.

Typical use:

    register([("agent1001", "pw-1001-hotline")], contact_port=6001)
    agent = agent_uas(6001)
    try:
        run = callers(3, rate=1, names=[("王小明", "13800000001")], talk_ms=2000)
        assert run.wait(60) == 0 and run.stats().successful == 3
    finally:
        agent.stop()
        register([("agent1001", "pw-1001-hotline")], contact_port=6001, expires=0)
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.sandbox import DEFAULT_ROOT, SIPP_DIR

SCENARIOS = Path(__file__).resolve().parent / "sipp_scenarios"

ASTERISK_HOST = "127.0.0.1"
ASTERISK_PORT = 5060
AGENT_IP = "127.0.0.1"
CARRIER_IP = "127.0.0.2"

# SIPp media ports: above Asterisk's rtpstart/rtpend (10000-20000). With -rtp_echo SIPp
# also binds media_port + 2, so ports are handed out in steps of 4.
MEDIA_PORT_MIN = 30000
MEDIA_PORT_MAX = 60000

# SIPp exit codes (sipp -h): 0 all calls succeeded, 1 at least one failed, 97 exit on
# internal command, 99 normal exit without calls processed, 255 (-1) fatal, 254 (-2) bind.
EXIT_OK = 0
EXIT_CALLS_FAILED = 1
EXIT_NO_CALLS = 99

# How SIPp's error log reports a call it aborted on stop: date, time, epoch, message.
ABORTED = re.compile(r"\S+\t\S+\t(\d+(?:\.\d+)?): Aborted call with Call-ID ")


class SippError(Exception):
    """SIPp failed to start, exited badly or reported failed calls; the message says where.
    `workdir` is the run directory kept for a look (a test expecting the failure removes it)."""

    def __init__(self, message: str, workdir: Path | None = None) -> None:
        super().__init__(message)
        self.workdir = workdir


@dataclass(frozen=True)
class SippStats:
    """Cumulative counts from SIPp's statistics file (-trace_stat, written every second
    and at exit). For a UAS, `created` counts incoming calls."""

    created: int
    current: int
    successful: int
    failed: int


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# Handed out in turn (from a per-process offset, so two test processes rarely collide),
# skipping any port that is taken.
_media_ports = itertools.cycle(range(MEDIA_PORT_MIN, MEDIA_PORT_MAX, 4))
for _ in range(os.getpid() % 1000):
    next(_media_ports)


def media_port(host: str) -> int:
    """A media port p on host with p .. p + 3 free (-rtp_echo also binds p + 2), above
    Asterisk's RTP range."""
    for _ in range((MEDIA_PORT_MAX - MEDIA_PORT_MIN) // 4):
        port = next(_media_ports)
        if all(_udp_free(host, p) for p in (port, port + 1, port + 2, port + 3)):
            return port
    raise SippError(f"no free SIPp media port on {host} in {MEDIA_PORT_MIN}-{MEDIA_PORT_MAX}")


def endpoint(host: str, port: int | None = None, media: int | None = None) -> list[str]:
    """SIPp arguments for where a run lives: SIP and media on `host`, the SIP port (a free
    one unless given) and the media port (above Asterisk's RTP range unless given)."""
    sip_port = port if port is not None else _free_udp_port(host)
    media_p = media if media is not None else media_port(host)
    return ["-i", host, "-mi", host, "-p", str(sip_port), "-mp", str(media_p)]


def _injection_csv(rows: Sequence[Sequence[str]]) -> str:
    """SIPp's -inf file: one row per call, read in order."""
    buf = io.StringIO()
    buf.write("SEQUENTIAL\n")
    w = csv.writer(buf, delimiter=";", lineterminator="\n", quoting=csv.QUOTE_NONE)
    for row in rows:
        for field in row:
            if ";" in field or "\n" in field:
                raise SippError(f"SIPp CSV field {field!r} contains ';' or a newline")
        w.writerow(row)
    return buf.getvalue()


_live: weakref.WeakSet[SippRun] = weakref.WeakSet()


def stop_all() -> None:
    """Stop every SIPp this process started and has not stopped yet."""
    for run in list(_live):
        run.stop()


class SippRun:
    """One SIPp process running a scenario from testbed/sipp_scenarios/ inside the sandbox chroot.

    The process starts in the constructor. `wait()` for runs that end by themselves (-m),
    `stop()` for servers (UAS) and for giving up; both are safe to call more than once.
    Use as a context manager to stop on exit.
    """

    def __init__(
        self,
        scenario: str,
        args: Sequence[str],
        *,
        inf_rows: Sequence[Sequence[str]] | None = None,
        remote: str = f"{ASTERISK_HOST}:{ASTERISK_PORT}",
        root: Path | None = None,
        trace_msg: bool = False,
        text: str | None = None,
    ) -> None:
        """text: the scenario itself, written under the name `scenario` (a scenario made for
        one test, e.g. testbed.ivr_caller's key presses); None: the shipped file of that name."""
        self.root = root or DEFAULT_ROOT
        src = SCENARIOS / scenario
        if text is None and not src.is_file():
            raise SippError(f"no SIPp scenario {src}")
        if not (self.root / "usr/bin/sipp").exists():
            raise SippError(f"no sipp in the sandbox at {self.root}; build it with `hotline sandbox build`")
        data = _injection_csv(inf_rows) if inf_rows is not None else None  # checked before any file is made
        name = f"{src.stem}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.chroot_dir = Path("/") / SIPP_DIR / name  # as SIPp sees it
        self.workdir = self.root / SIPP_DIR / name  # as we see it
        self.workdir.mkdir(parents=True)
        if text is None:
            shutil.copyfile(src, self.workdir / src.name)
        else:
            (self.workdir / src.name).write_text(text, encoding="utf-8")
        self.scenario = src.name
        self.stat_file = self.workdir / "stat.csv"
        self.error_file = self.workdir / "errors.log"
        self.out_file = self.workdir / "sipp.out"

        c = self.chroot_dir
        argv = ["chroot", str(self.root), "sipp", "-sf", str(c / src.name)]
        if data is not None:
            (self.workdir / "data.csv").write_text(data, encoding="utf-8")
            argv += ["-inf", str(c / "data.csv")]
        argv += [
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(c / "errors.log"),
            "-trace_stat",
            "-stf",
            str(c / "stat.csv"),
            "-fd",
            "1",
            "-trace_screen",
            "-screen_file",
            str(c / "screen.log"),
        ]
        if trace_msg:
            argv += ["-trace_msg", "-message_file", str(c / "messages.log")]
        argv += list(args)
        argv.append(remote)
        self.argv = argv
        (self.workdir / "argv.txt").write_text(" ".join(argv) + "\n", encoding="utf-8")
        with open(self.out_file, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # `chroot` execs sipp, so this pid (and process group) is SIPp itself.
        self.returncode: int | None = None
        self._final: SippStats | None = None  # the counts once SIPp has exited
        self._failed = False  # a failed run keeps its directory
        self._only_stopped_calls_failed = False
        _live.add(self)

    # -- lifecycle ---------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for SIPp to exit; its exit code (0 = every call succeeded).

        On timeout SIPp is stopped and TimeoutError carries the tail of its error log.
        """
        rc = self._wait(timeout)
        self._ended()
        return rc

    def _wait(self, timeout: float) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.abandon()
            raise TimeoutError(
                f"SIPp {self.scenario} still running after {timeout:.0f} s "
                f"(stats {self._stats_text()}); see {self.workdir}\n{self.error_tail()}"
            ) from None
        return self.returncode

    def stop(self, grace: float = 3.0) -> int:
        """End SIPp and all its calls; its exit code.

        SIGTERM or SIGINT make SIPp exit at once without ending its calls, which leaves
        Asterisk with channels (a caller's keeps waiting in the hold loop). SIGUSR1 asks
        SIPp to quit: a second one (or the first, once -m is reached) aborts the open calls
        the way a time-out does, a UAC sending CANCEL before the answer and BYE after, and
        SIPp exits. A UAS sends nothing on abort (its calls end when the caller hangs up or
        Asterisk's ring time runs out). Whatever is left after `grace` seconds gets SIGTERM,
        then SIGKILL, so no sipp process outlives this call.
        """
        stopping_at = time.time() if self.proc.poll() is None else None
        steps = (
            (signal.SIGUSR1, 0.3),
            (signal.SIGUSR1, grace),
            (signal.SIGTERM, 2.0),
            (signal.SIGKILL, 5.0),
        )
        for sig, wait_s in steps:
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.returncode = self.proc.wait()
        if stopping_at is not None and self.returncode == EXIT_CALLS_FAILED:
            self._only_stopped_calls_failed = self._only_aborted_since(stopping_at)
        self._ended()
        return self.returncode

    def _only_aborted_since(self, stopping_at: float) -> bool:
        """Whether every error SIPp logged is a call it aborted because we stopped it. SIPp
        counts those as failed, even one in the scenario's closing timewait; ending them is
        what stop() was asked for, not a failure of the run."""
        try:
            lines = self.error_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return False
        events = [ln for ln in lines if ln.strip() and not ln.startswith("The following events occurred")]
        for line in events:
            m = ABORTED.match(line)
            if m is None or float(m.group(1)) < stopping_at:
                return False
        return bool(events)

    def abandon(self) -> None:
        """Stop a run we gave up on; its directory is kept, and the caller's error names it."""
        self._failed = True
        self.stop()

    def discard(self) -> None:
        """Stop, and remove the run directory whatever its calls did. For an agent UAS in a
        test that judges the calls by other means (the call records): the SIP races a fault
        provokes (a CANCEL crossing the agent's 200 OK, then a BYE) fail some of its calls."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SippRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check(self, timeout: float, expect: int | None = None) -> SippStats:
        """wait(), then raise SippError unless SIPp exited 0 (and, if given, `expect` calls
        succeeded); the final stats."""
        rc = self._wait(timeout)
        stats = self._read_stats()
        self._failed = rc != EXIT_OK or (expect is not None and stats.successful != expect)
        self._ended()
        if self._failed:
            what = f"exited {rc}" if rc != EXIT_OK else f"had {stats.successful} of {expect} calls succeed"
            raise SippError(
                f"SIPp {self.scenario} {what} (stats {self._stats_text()}); see {self.workdir}\n{self.error_tail()}",
                self.workdir,
            )
        return stats

    def _ended(self) -> None:
        """SIPp has exited: keep its final counts, and remove its run directory unless the
        run failed. Runs once."""
        if self._final is not None:
            return
        self._final = self._read_stats()
        succeeded = self.returncode == EXIT_OK or self._only_stopped_calls_failed
        if succeeded and not self._failed:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif not self._failed:  # no exception will name this run: say where its files are
            print(f"[sipp] {self.scenario} exited {self.returncode} ({self._stats_text()}); see {self.workdir}",
                  file=sys.stderr, flush=True)

    # -- results -----------------------------------------------------------

    def stats(self) -> SippStats:
        """Counts from the last line of SIPp's statistics file (updated every second), or the
        final counts once SIPp has exited.

        Before SIPp has written its first line (about one second after start) all are 0.
        """
        return self._final if self._final is not None else self._read_stats()

    def _read_stats(self) -> SippStats:
        try:
            lines = self.stat_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return SippStats(0, 0, 0, 0)
        rows = [ln for ln in lines if ln.strip()]
        if len(rows) < 2:
            return SippStats(0, 0, 0, 0)
        header = rows[0].rstrip(";").split(";")
        values = rows[-1].rstrip(";").split(";")
        row = dict(zip(header, values, strict=False))

        def num(key: str) -> int:
            try:
                return int(row.get(key, "0") or 0)
            except ValueError:
                return 0

        return SippStats(
            created=num("TotalCallCreated"),
            current=num("CurrentCall"),
            successful=num("SuccessfulCall(C)"),
            failed=num("FailedCall(C)"),
        )

    def _stats_text(self) -> str:
        s = self.stats()
        return f"created={s.created} current={s.current} ok={s.successful} failed={s.failed}"

    def error_tail(self, lines: int = 30) -> str:
        """The last lines of SIPp's error log and stdout, for failure messages."""
        parts: list[str] = []
        for path in (self.error_file, self.out_file):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
            if tail:
                parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts) or "(SIPp wrote no errors)"


# -- helpers -------------------------------------------------------------


def register(
    agents: Sequence[tuple[str, str]],
    contact_port: int,
    expires: int = 3600,
    *,
    timeout: float = 20.0,
    root: Path | None = None,
) -> None:
    """REGISTER each (user, password) with Contact sip:user@127.0.0.1:contact_port.

    expires=0 unregisters (Contact: *, so every binding of the AOR goes). Raises SippError
    unless every REGISTER got its 200.
    """
    if not agents:
        return
    rows = [(user, password, str(contact_port)) for user, password in agents]
    run = SippRun(
        "register.xml",
        [*endpoint(AGENT_IP), "-set", "expires", str(expires), "-m", str(len(rows)), "-r", "50",
         "-recv_timeout", "5000"],
        inf_rows=rows,
        root=root,
    )
    run.check(timeout, expect=len(rows))


def agent_uas(
    port: int,
    scenario: str = "agent_answer.xml",
    answer_ms: int = 200,
    *,
    media: int | None = None,
    root: Path | None = None,
    trace_msg: bool = False,
    host: str = AGENT_IP,
    talk_ms: int | None = None,
    speak_after_ms: int | None = None,
) -> SippRun:
    """Start an agent softphone UAS on host:port (127.0.0.1 and the port the agent
    registered as its Contact; or the carrier's address, to answer forwarded calls) with
    -rtp_echo. It serves calls until stop(). The media port is chosen above Asterisk's
    RTP range unless given. talk_ms, speak_after_ms: for agent_hangup.xml, how long the
    agent talks before it hangs up, and when it starts to speak."""
    if not _udp_free(host, port):
        raise SippError(f"UDP {host}:{port} is taken; is another agent UAS still running?")
    run = SippRun(
        scenario,
        [*endpoint(host, port, media), "-rtp_echo", "-aa",
         *scenario_params(scenario, {"answer_ms": answer_ms, "talk_ms": talk_ms, "speak_after_ms": speak_after_ms})],
        root=root,
        trace_msg=trace_msg,
    )
    _wait_bound(run, host, port)
    return run


def callers(
    n: int,
    rate: float,
    names: Sequence[tuple[str, str]] | None,
    talk_ms: int,
    scenario: str = "caller.xml",
    limit: int | None = None,
    extra: Sequence[str] = (),
    *,
    wait_ms: int = 120_000,
    hold_ms: int | None = None,
    root: Path | None = None,
    trace_msg: bool = False,
    number: str = "12345",
) -> SippRun:
    """Start n citizens' calls to `number` (default 12345) from 127.0.0.2 at `rate` calls/s (at most `limit`
    at once). names: (display name, caller number) per call, reused in turn if shorter
    than n; None gives 测试来电N / 1390000NNNN. talk_ms is the conversation length
    (caller.xml), hold_ms the time to the CANCEL (caller_abandon.xml), wait_ms how long
    a caller waits for the answer. `extra` goes to SIPp as is. Returns the running SippRun:
    wait() / check() for the result."""
    if n < 1:
        raise ValueError("callers: n must be at least 1")
    rows: list[tuple[str, str]] = (
        list(names) if names else [(f"测试来电{i + 1}", f"1390000{i + 1:04d}") for i in range(n)]
    )
    if not rows:
        raise ValueError("callers: names is empty")
    rows = [rows[i % len(rows)] for i in range(n)]
    args = [*endpoint(CARRIER_IP), "-m", str(n), "-r", f"{rate:g}", "-s", number]
    args += scenario_params(scenario, {"talk_ms": talk_ms, "hold_ms": hold_ms, "wait_ms": wait_ms})
    if limit is not None:
        args += ["-l", str(limit)]
    args += list(extra)
    return SippRun(scenario, args, inf_rows=rows, root=root, trace_msg=trace_msg)


def scenario_params(scenario: str, values: dict[str, int | None]) -> list[str]:
    """SIPp arguments for the values a scenario takes: `-set name v` for each name in its
    <Global variables="..."/> (SIPp refuses -set of an undeclared variable) and
    `-key name v` for each [name] keyword it uses (SIPp refuses to load a scenario whose
    keyword is not supplied). None values are left out (the scenario's default applies)."""
    text = (SCENARIOS / scenario).read_text(encoding="utf-8")
    declared: set[str] = set()
    for m in re.finditer(r'<Global\s+variables="([^"]*)"', text):
        declared.update(v.strip() for v in m.group(1).split(",") if v.strip())
    args: list[str] = []
    for name, value in values.items():
        if name in declared and value is not None:
            args += ["-set", name, str(value)]
        elif f"[{name}]" in text:
            if value is None:
                raise SippError(f"{scenario} needs -key {name}")
            args += ["-key", name, str(value)]
    return args


def _wait_bound(run: SippRun, host: str, port: int, timeout: float = 5.0) -> None:
    """Return once SIPp has bound its SIP port (so an INVITE right after start is not lost)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not run.running():
            run.abandon()
            raise SippError(
                f"SIPp {run.scenario} exited {run.returncode} at start; see {run.workdir}\n{run.error_tail()}",
                run.workdir,
            )
        if not _udp_free(host, port):
            return
        time.sleep(0.05)
    run.abandon()
    raise SippError(f"SIPp {run.scenario} did not bind {host}:{port} within {timeout} s; see {run.workdir}",
                    run.workdir)


def agent_dial(
    user: str,
    password: str,
    number: str,
    *,
    timeout: float = 20.0,
    root: Path | None = None,
) -> None:
    """The agent softphone `user` dials `number` (a feature code such as *21 or *2305) from
    127.0.0.1 with digest auth, once (agent_dial.xml).

    The call succeeds when Asterisk answers; the dialplan is expected to hang up by itself
    (otherwise the agent hangs up after 10 s). Raises SippError, with SIPp's error tail,
    unless the call succeeded: a rejection (wrong password, unknown number, ...) or no
    result within `timeout` seconds.
    """
    run = SippRun(
        "agent_dial.xml",
        [*endpoint(AGENT_IP), "-s", number, "-m", "1", "-aa", "-recv_timeout", "8000"],
        inf_rows=[(user, password)],
        root=root,
    )
    try:
        run.check(timeout, expect=1)
    except (TimeoutError, SippError) as e:
        raise SippError(f"agent_dial {user} -> {number}: {e}", run.workdir) from None
