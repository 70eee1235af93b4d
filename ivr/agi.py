"""A FastAGI server (Asterisk AGI over TCP): one task per call, a header read that cannot
spin or hang, and a reply reader that keeps every reply with its own command.

Asterisk (res_agi.c) sends `agi_<name>: <value>` lines and an empty line, then answers each
command line with `200 result=<n> [(data)] [key=value ...]`, `510 ...`, `511 ...` (dead
channel), a multi-line `520-...` usage ending in `520 ...`, sometimes `100 ...` first. When
the channel hangs up it also writes a bare `HANGUP` line, between replies or before one.

One reader task per call reads every line. `HANGUP` (or end of stream) is an event, never a
reply: it marks the channel hung up and fails the command in flight. Each final reply goes
to the oldest command still owed one, so a command that timed out keeps its slot and its
late reply is dropped instead of being handed to the next command. A line that is no reply
at all leaves the stream out of step: the channel then refuses further commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("ivr.agi")

__all__ = [
    "AgiChannel", "AgiError", "AgiHangup", "AgiProtocolError", "AgiReply", "AgiTimeout",
    "FastAgiServer", "parse_reply", "quote",
]


class AgiError(Exception):
    """Base of every AGI failure."""


class AgiHangup(AgiError):
    """The channel hung up: a HANGUP line, a 511 reply, or the connection closed."""


class AgiTimeout(AgiError):
    """No reply within the command's timeout."""


class AgiProtocolError(AgiError):
    """A reply we cannot use: 510, 520 usage, another code, or a line that is no reply."""


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str
    data: str | None
    extra: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def digit(self) -> str:
        """The key pressed (STREAM FILE, WAIT FOR DIGIT): "" for 0, a negative or no number."""
        try:
            n = int(self.result)
        except ValueError:
            return ""
        return chr(n) if 0 < n < 0x110000 else ""


_STATUS = re.compile(r"(\d{3})([ -])(.*)\Z", re.S)
_RESULT = re.compile(r"result=(\S*)(.*)\Z", re.S)
_PAIRS_ONLY = re.compile(r"(?:\s+[A-Za-z_][\w-]*=\S*)*\s*")
_PAIR = re.compile(r"([A-Za-z_][\w-]*)=(\S*)")
_DIGITS = frozenset("0123456789*#ABCD")


def parse_reply(raw: str) -> AgiReply:
    """One final reply (for a 520 block, `raw` holds all its lines). A 200 without `result=`
    gets code 0, which the caller reports as a protocol error."""
    m = _STATUS.match(raw)
    if m is None:
        return AgiReply(0, "", None, {}, raw)
    code = int(m[1])
    r = _RESULT.match(m[3]) if code == 200 else None
    if r is None:
        return AgiReply(code if code != 200 else 0, "", None, {}, raw)
    tail = r[2].lstrip()
    data: str | None = None
    if tail.startswith("("):
        # The data may hold spaces and parentheses: it ends at the last ")" that only key=value
        # pairs follow.
        end = next((i for i in range(len(tail) - 1, 0, -1)
                    if tail[i] == ")" and _PAIRS_ONLY.fullmatch(tail, i + 1)), len(tail))
        data, tail = tail[1:end], tail[end + 1:]
    return AgiReply(code, r[1], data, dict(_PAIR.findall(tail)), raw)


def quote(text: str) -> str:
    """`text` as one double-quoted AGI argument. A line break would end the command and start
    another one, and a NUL would cut it short in Asterisk: both raise ValueError."""
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError("an AGI argument cannot hold a line break or NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiChannel:
    """One call's AGI session. Commands run one at a time (a lock); each has a timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 headers: dict[str, str], *, peer: str = "", logger: Any = None) -> None:
        self.headers = headers
        path = headers.get("network_script") or _request_path(headers.get("request", ""))
        script, _, self.query = path.partition("?")
        self.script = script.lstrip("/")
        numbered = [(int(k[4:]), v) for k, v in headers.items() if k.startswith("arg_") and k[4:].isdigit()]
        self.args: tuple[str, ...] = tuple(v for _, v in sorted(numbered))
        self.hung_up = False
        self.peer = peer
        self._reader, self._writer = reader, writer
        self._log = (logger if logger is not None else log).bind(uniqueid=self.uniqueid, peer=peer)
        self._owed: deque[asyncio.Future[AgiReply]] = deque()  # one per command written, oldest first
        self._lock = asyncio.Lock()
        self._broken: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def uniqueid(self) -> str:
        return self.headers.get("uniqueid", "")

    async def command(self, line: str, timeout: float = 10.0) -> AgiReply:
        """Send one command line and return its 200 reply. AgiHangup: the channel hung up
        (also at once, without writing, when it already had); AgiTimeout; AgiProtocolError."""
        if "\n" in line or "\r" in line or "\0" in line:
            raise ValueError("an AGI command is one line: no line break or NUL")
        verb = line.split(" ", 1)[0].upper()
        self._check_usable()
        try:
            async with asyncio.timeout(timeout), self._lock:
                self._check_usable()
                owed: asyncio.Future[AgiReply] = asyncio.get_running_loop().create_future()
                self._owed.append(owed)  # with the write, no await between: the slot is this command's
                try:
                    self._writer.write(line.encode() + b"\n")
                    await self._writer.drain()
                    reply = await owed
                finally:
                    owed.cancel()  # given up (timed out while draining): its reply, when it comes, is dropped
        except TimeoutError:
            raise AgiTimeout(f"{verb}: no reply within {timeout:g} s") from None
        except ConnectionError as e:
            self._hangup(f"write failed: {e!r}")
            raise AgiHangup(f"{verb}: connection lost") from None
        if reply.code == 200:
            return reply
        if reply.code == 511:
            self._hangup("511 reply")
            raise AgiHangup(f"{verb}: {reply.raw}")
        raise AgiProtocolError(f"{verb}: {reply.raw}")

    async def answer(self, timeout: float = 10.0) -> AgiReply:
        return await self.command("ANSWER", timeout)

    async def hangup(self, timeout: float = 10.0) -> AgiReply:
        return await self.command("HANGUP", timeout)

    async def stream_file(self, name: str, escape: str = "", timeout: float = 60.0) -> str:
        """Play `name`; the escape digit that stopped it, or "" (none, missing file, hang-up)."""
        _check_digits(escape)
        return (await self.command(f"STREAM FILE {quote(name)} {quote(escape)}", timeout)).digit

    async def wait_for_digit(self, seconds: float, timeout: float | None = None) -> str:
        """The key pressed within `seconds`, or "" on time-out."""
        if seconds < 0:
            raise ValueError("wait_for_digit needs seconds >= 0")
        reply = await self.command(f"WAIT FOR DIGIT {round(seconds * 1000)}",
                                   seconds + 10.0 if timeout is None else timeout)
        return reply.digit

    async def get_data(self, prompt: str, seconds: float = 5.0, max_digits: int = 0,
                       timeout: float | None = None) -> str:
        """Play `prompt` and collect digits (at most `max_digits`; 0: until # or time-out)."""
        line = f"GET DATA {quote(prompt)} {round(seconds * 1000)}" + (f" {max_digits}" if max_digits > 0 else "")
        reply = await self.command(line, 60.0 + seconds if timeout is None else timeout)
        return reply.result if reply.result and set(reply.result) <= _DIGITS else ""

    async def get_variable(self, name: str, timeout: float = 10.0) -> str | None:
        """The variable's value, or None when it is not set."""
        reply = await self.command(f"GET VARIABLE {quote(name)}", timeout)
        return None if reply.result != "1" else (reply.data or "")

    async def set_variable(self, name: str, value: str, timeout: float = 10.0) -> None:
        await self.command(f"SET VARIABLE {quote(name)} {quote(value)}", timeout)

    async def exec(self, app: str, args: str = "", timeout: float = 60.0) -> AgiReply:
        """Run a dialplan application. result "-2": no such application."""
        if not re.fullmatch(r"[A-Za-z0-9_]+", app):
            raise ValueError(f"not an application name: {app!r}")
        return await self.command(f"EXEC {app} {quote(args)}", timeout)

    async def verbose(self, text: str, level: int = 1, timeout: float = 10.0) -> None:
        await self.command(f"VERBOSE {quote(text)} {level}", timeout)

    # -- the reader ------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.hung_up:
            raise AgiHangup("the channel has hung up")
        if self._broken is not None:
            raise AgiProtocolError(f"the reply stream is out of step: {self._broken}")

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"agi-reader-{self.uniqueid}")

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_owed(AgiHangup("the session ended"))

    async def _read_loop(self) -> None:
        try:
            await self._read_lines()
        except Exception as e:  # a bug here must not leave commands waiting for their time-outs
            self._log.exception("agi_reader_failed")
            self._desync(f"reader failed: {e!r}")

    async def _read_lines(self) -> None:
        block: list[str] = []  # a multi-line (NNN-) reply in progress
        while True:
            try:
                raw = await self._reader.readline()
            except ValueError:  # a line longer than the stream's limit: its rest follows as a "line"
                self._desync("over-long reply line")
                return
            except OSError as e:
                raw = b""
                self._log.info("agi_read_failed", error=repr(e))
            if not raw.endswith(b"\n"):  # end of stream (a partial last line is no reply)
                self._hangup("connection closed")
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == "HANGUP":
                self._hangup("HANGUP line")
            elif block:
                block.append(line)
                if line.startswith(block[0][:3] + " "):
                    self._deliver(parse_reply("\n".join(block)))
                    block = []
            elif (m := _STATUS.match(line)) is None:
                if line.strip():
                    self._desync(f"not a reply: {line[:80]!r}")
            elif m[2] == "-":
                block = [line]
            elif m[1] != "100":  # "100 result=0 Trying..." precedes the final reply
                self._deliver(parse_reply(line))

    def _deliver(self, reply: AgiReply) -> None:
        if not self._owed:
            if not self.hung_up:  # after a hang-up, replies to commands we gave up on are expected
                self._log.warning("agi_unexpected_reply", code=reply.code)
            return
        owed = self._owed.popleft()
        if owed.done():  # its command timed out or was cancelled: the reply is still its own
            self._log.info("agi_late_reply_dropped", code=reply.code)
        else:
            owed.set_result(reply)

    def _hangup(self, why: str) -> None:
        if not self.hung_up:
            self.hung_up = True
            self._log.info("agi_hangup", why=why)
        self._fail_owed(AgiHangup(why))

    def _desync(self, why: str) -> None:
        if self._broken is None:
            self._broken = why
            self._log.warning("agi_reply_stream_broken", why=why)
        self._fail_owed(AgiProtocolError(why))

    def _fail_owed(self, error: AgiError) -> None:
        while self._owed:
            owed = self._owed.popleft()
            if not owed.done():
                owed.set_exception(error)
                owed.exception()  # its command may be gone: no "exception never retrieved"


class FastAgiServer:
    """Accepts Asterisk's FastAGI connections and runs `handler(channel)` for each, in its
    own task. Counters: sessions_started, sessions_failed (the handler raised anything but
    AgiHangup), sessions_hung_up (AgiHangup left the handler), bad_headers, refused."""

    def __init__(self, handler: Callable[[AgiChannel], Awaitable[None]], *, header_timeout: float = 5.0,
                 max_header_bytes: int = 16384, max_connections: int = 512, logger: Any = None,
                 max_reply_bytes: int = 65536, close_timeout: float = 2.0) -> None:
        self._handler = handler
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.max_connections = max_connections
        self.max_reply_bytes = max_reply_bytes
        self.close_timeout = close_timeout
        self._log = logger if logger is not None else log
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._closing = False
        self.sessions_started = 0
        self.sessions_failed = 0
        self.sessions_hung_up = 0
        self.bad_headers = 0
        self.refused = 0

    @property
    def active(self) -> int:
        return self._active

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (port 0: any free one)."""
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=max(self.max_header_bytes, self.max_reply_bytes))
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, cancel every session and wait for them (up to close_timeout)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=self.close_timeout)
            if stuck:
                self._log.error("agi_sessions_not_ended", count=len(stuck))
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback: the tasks are ours to track, cancel and wait for.
        if self._closing or self._active >= self.max_connections:
            self.refused += 1
            self._log.warning("agi_connection_refused", peer=_peer(writer), active=self._active)
            task = asyncio.get_running_loop().create_task(_close(writer, self.close_timeout))
        else:
            self._active += 1
            task = asyncio.get_running_loop().create_task(self._session(reader, writer))
            task.add_done_callback(self._session_ended)  # also when cancelled before it ran
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _session_ended(self, _: asyncio.Task[None]) -> None:
        self._active -= 1

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        channel: AgiChannel | None = None
        try:
            headers = await self._read_header(reader, peer)
            if headers is None:
                self.bad_headers += 1
                return
            channel = AgiChannel(reader, writer, headers, peer=peer, logger=self._log)
            self.sessions_started += 1
            channel._start()
            try:
                await self._handler(channel)
            except AgiHangup as e:
                self.sessions_hung_up += 1
                self._log.info("agi_session_hung_up", uniqueid=channel.uniqueid, script=channel.script, why=str(e))
            except Exception:
                self.sessions_failed += 1
                self._log.exception("agi_handler_failed", uniqueid=channel.uniqueid, script=channel.script, peer=peer)
        finally:
            if channel is not None:
                await channel._stop()
            await _close(writer, self.close_timeout)

    async def _read_header(self, reader: asyncio.StreamReader, peer: str) -> dict[str, str] | None:
        """The `agi_*` lines up to the empty one (\\n or \\r\\n line ends), or None, logged: end
        of stream, time-out, too big, or a line that is no AGI header."""
        headers: dict[str, str] = {}
        size = 0
        try:
            async with asyncio.timeout(self.header_timeout):
                while True:
                    raw = await reader.readline()
                    size += len(raw)
                    if size > self.max_header_bytes:
                        raise _BadHeader("too big")
                    if not raw.endswith(b"\n"):
                        raise _BadHeader("closed before its end")
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if not line:
                        if not headers:
                            raise _BadHeader("empty")
                        return headers
                    name, sep, value = line.partition(":")
                    if not sep or not name.startswith("agi_") or " " in name:
                        raise _BadHeader("not an AGI header")
                    headers[name[4:]] = value.removeprefix(" ")
        except (_BadHeader, TimeoutError, ValueError, ConnectionError) as e:
            why = {TimeoutError: "timed out", ValueError: "too big"}.get(type(e), str(e) or repr(e))
            self._log.warning("agi_bad_header", peer=peer, why=why, bytes=size)
            return None


class _BadHeader(Exception):
    pass


def _check_digits(escape: str) -> None:
    if not set(escape) <= _DIGITS:
        raise ValueError(f"escape digits are 0-9 * # A-D: {escape!r}")


def _request_path(request: str) -> str:
    """`agi://host:port/intake?x` -> `intake?x`."""
    rest = request.split("://", 1)[-1]
    return rest.partition("/")[2]


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)


async def _close(writer: asyncio.StreamWriter, timeout: float) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), timeout)
