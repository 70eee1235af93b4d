"""ivr.agi, the FastAGI server, against a fake Asterisk written here (asyncio streams on
127.0.0.1). Each test is one of panoramisk 1.4's defects or one rule of the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from structlog.testing import capture_logs

from ivr.agi import (
    AgiChannel,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
    AgiTimeout,
    FastAgiServer,
    parse_reply,
    quote,
)

HEADER = (
    b"agi_network: yes\n"
    b"agi_network_script: intake?lang=zh\n"
    b"agi_request: agi://127.0.0.1:4573/intake?lang=zh\n"
    b"agi_channel: PJSIP/trunk-00000001\n"
    b"agi_language: zh\n"
    b"agi_uniqueid: 1700000000.1\n"
    b"agi_callerid: 13800138000\n"
    b"agi_calleridname: unknown\n"
    b"agi_context: hotline-in\n"
    b"agi_extension: 12345\n"
    b"agi_priority: 2\n"
    b"agi_arg_1: first\n"
    b"agi_arg_2: second arg\n"
    b"\n"
)


class FakeAsterisk:
    """Asterisk's side of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, header: bytes = HEADER) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(header)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def expect(self) -> str:
        """The next command line the server wrote."""
        raw = await asyncio.wait_for(self.reader.readline(), 2)
        assert raw.endswith(b"\n"), raw
        return raw.decode().removesuffix("\n")

    async def nothing_written(self, within: float = 0.1) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), within)
        except TimeoutError:
            return True
        return data == b""  # closed, and nothing written before

    async def closed_by_server(self, within: float = 1.0) -> bool:
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class Rig:
    """A server on a free port whose default handler hands each channel to the test and
    waits for `release`."""

    def __init__(self) -> None:
        self.channels: asyncio.Queue[AgiChannel] = asyncio.Queue()
        self.release = asyncio.Event()
        self.fakes: list[FakeAsterisk] = []
        self.server: FastAgiServer | None = None
        self.port = 0

    async def start(self, handler: Callable[[AgiChannel], Awaitable[None]] | None = None,
                    **options: Any) -> FastAgiServer:
        self.server = FastAgiServer(handler or self._park, **options)
        self.port = await self.server.start("127.0.0.1", 0)
        return self.server

    async def _park(self, channel: AgiChannel) -> None:
        self.channels.put_nowait(channel)
        await self.release.wait()

    async def connect(self, header: bytes = HEADER) -> FakeAsterisk:
        fake = await FakeAsterisk.connect(self.port, header)
        self.fakes.append(fake)
        return fake

    async def call(self, header: bytes = HEADER) -> tuple[FakeAsterisk, AgiChannel]:
        fake = await self.connect(header)
        return fake, await asyncio.wait_for(self.channels.get(), 2)

    async def aclose(self) -> None:
        self.release.set()
        if self.server is not None:  # first: a fake closing first would give EOF to sessions
            await self.server.close()
        for fake in self.fakes:
            await fake.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.aclose()


async def eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.005)


class LoopStalled(Exception):
    pass


@contextlib.contextmanager
def stall_alarm(last_tick: list[float], stalled: list[bool]) -> Iterator[None]:
    """SIGALRM every 0.25 s: when the loop has not ticked for 0.5 s, raise in whatever is
    running (a coroutine that never yields), so that a stall fails the test instead of
    hanging it."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if time.monotonic() - last_tick[0] > 0.5:
            stalled[0] = True
            last_tick[0] = time.monotonic()
            raise LoopStalled("the event loop did not run for 0.5 s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.25, 0.25)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- the header ---------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
async def test_a_session_gets_its_headers_script_and_arguments(rig: Rig, eol: bytes) -> None:
    await rig.start()
    _, ch = await rig.call(HEADER.replace(b"\n", eol))
    assert ch.headers["channel"] == "PJSIP/trunk-00000001"
    assert ch.headers["network"] == "yes"
    assert ch.uniqueid == "1700000000.1"
    assert ch.script == "intake"
    assert ch.query == "lang=zh"
    assert ch.args == ("first", "second arg")
    assert ch.hung_up is False
    assert rig.server is not None and rig.server.sessions_started == 1


async def test_a_client_closing_mid_header_does_not_spin_the_loop(rig: Rig) -> None:
    server = await rig.start()
    last_tick, stalled, ticks = [time.monotonic()], [False], [0]

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.02)
            ticks[0] += 1
            last_tick[0] = time.monotonic()

    with stall_alarm(last_tick, stalled):
        tick_task = asyncio.create_task(ticker())
        try:
            for _ in range(3):
                fake = await rig.connect(HEADER[:40])  # half a header, then gone
                await fake.close()
            await asyncio.sleep(0.5)
        finally:
            tick_task.cancel()
            await asyncio.gather(tick_task, return_exceptions=True)
    assert not stalled[0]
    assert ticks[0] >= 12, f"only {ticks[0]} ticks of 20 ms in 0.5 s"
    await eventually(lambda: server.bad_headers == 3)
    fake, ch = await rig.call()  # and the server still serves a call
    answer = asyncio.create_task(ch.answer())
    assert await fake.expect() == "ANSWER"
    fake.send(b"200 result=0\n")
    assert (await answer).result == "0"
    assert server.sessions_started == 1


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"".join(b"agi_var_%d: %s\n" % (i, b"x" * 60) for i in range(100)), id="endless-lines"),
        pytest.param(b"agi_channel: " + b"x" * 100_000, id="one-endless-line"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: pbx\r\n\r\n", id="junk"),
        pytest.param(b"\n", id="empty"),
    ],
)
async def test_an_oversized_or_junk_header_is_dropped_at_once(rig: Rig, header: bytes) -> None:
    server = await rig.start(header_timeout=5.0, max_header_bytes=1024)
    started = time.monotonic()
    fake = await rig.connect(header)
    assert await fake.closed_by_server(within=1.0)
    assert time.monotonic() - started < 1.0  # by size or content, not by the 5 s time-out
    await eventually(lambda: server.bad_headers == 1 and server.active == 0)
    assert server.sessions_started == 0


async def test_a_stalled_half_header_is_dropped_after_header_timeout(rig: Rig) -> None:
    server = await rig.start(header_timeout=0.2)
    with capture_logs() as logs:
        fake = await rig.connect(HEADER[:40])
        assert await fake.closed_by_server(within=1.0)
        await eventually(lambda: server.bad_headers == 1)
    (line,) = [e for e in logs if e["event"] == "agi_bad_header"]
    assert line["why"] == "timed out" and line["log_level"] == "warning"
    assert line["peer"].startswith("127.0.0.1:")
    assert server.sessions_started == 0


# -- HANGUP lines ---------------------------------------------------------------------------


async def test_hangup_before_a_reply_fails_the_pending_command(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    playing = asyncio.create_task(ch.stream_file("hotline/zh/welcome", "12"))
    assert await fake.expect() == 'STREAM FILE "hotline/zh/welcome" "12"'
    fake.send(b"HANGUP\n")
    with pytest.raises(AgiHangup):
        await playing
    assert ch.hung_up
    fake.send(b"200 result=-1 endpos=1234\n")  # the reply that follows is no later command's
    with pytest.raises(AgiHangup):
        await ch.get_variable("CALLER_TYPE")
    assert await fake.nothing_written()  # refused at once, without writing


async def test_a_hangup_line_between_replies_never_shifts_the_replies(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    got: list[str | None] = []
    for name in ("A", "B", "C"):
        pending = asyncio.create_task(ch.get_variable(name))
        assert await fake.expect() == f'GET VARIABLE "{name}"'
        # After B's reply the channel hangs up while the script is idle.
        fake.send(f"200 result=1 ({name.lower()})\n".encode() + (b"HANGUP\n" if name == "B" else b""))
        got.append(await pending)
        if name == "B":
            await eventually(lambda: ch.hung_up)
            break
    assert got == ["a", "b"]  # each command its own reply, the HANGUP line none of them
    with pytest.raises(AgiHangup):
        await ch.set_variable("C", "x")
    assert await fake.nothing_written()


async def test_a_reply_arriving_after_its_command_timed_out_goes_to_no_later_command(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    with pytest.raises(AgiTimeout):
        async with asyncio.timeout(1):  # a missing time-out fails here instead of hanging
            await ch.get_variable("SLOW", timeout=0.05)
    second = asyncio.create_task(ch.get_variable("FAST"))
    assert await fake.expect() == 'GET VARIABLE "SLOW"'
    assert await fake.expect() == 'GET VARIABLE "FAST"'
    fake.send(b"200 result=1 (slow)\n100 result=0 Trying...\n200 result=1 (fast)\n")
    assert await second == "fast"


async def test_the_connection_closed_by_asterisk_fails_the_pending_command(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    waiting = asyncio.create_task(ch.wait_for_digit(5))
    assert await fake.expect() == "WAIT FOR DIGIT 5000"
    fake.send(b"200 resu")  # half a reply, then the socket goes
    await fake.close()
    with pytest.raises(AgiHangup):
        await waiting
    assert ch.hung_up


# -- replies --------------------------------------------------------------------------------


async def test_non_utf8_bytes_in_headers_and_replies_do_not_end_the_session(rig: Rig) -> None:
    await rig.start()
    gbk_name = "张三".encode("gbk")
    fake, ch = await rig.call(HEADER.replace(b"agi_calleridname: unknown", b"agi_calleridname: " + gbk_name))
    assert "\ufffd" in ch.headers["calleridname"]
    assert ch.headers["channel"] == "PJSIP/trunk-00000001"
    name = asyncio.create_task(ch.get_variable("CALLERID(name)"))
    assert await fake.expect() == 'GET VARIABLE "CALLERID(name)"'
    fake.send(b"200 result=1 (" + gbk_name + b")\n")
    value = await name
    assert value is not None and "\ufffd" in value
    digit = asyncio.create_task(ch.wait_for_digit(3))
    assert await fake.expect() == "WAIT FOR DIGIT 3000"
    fake.send(b"200 result=49\n")
    assert await digit == "1"


async def test_100_trying_is_followed_by_the_final_reply(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    running = asyncio.create_task(ch.exec("Playback", "hotline/zh/welcome"))
    assert await fake.expect() == 'EXEC Playback "hotline/zh/welcome"'
    fake.send(b"100 result=0 Trying...\n")
    await asyncio.sleep(0.02)
    assert not running.done()
    fake.send(b"200 result=0\n")
    reply = await running
    assert (reply.code, reply.result) == (200, "0")


USAGE_520 = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n"
    b"\n"
    b"200 result=0 is how a reply looks\n"
    b"520 End of proper usage.\n"
)


@pytest.mark.parametrize("reply", [USAGE_520, b"510 Invalid or unknown command\n"], ids=["520-usage", "510"])
async def test_an_error_reply_raises_protocol_error_and_the_session_continues(rig: Rig, reply: bytes) -> None:
    await rig.start()
    fake, ch = await rig.call()
    bad = asyncio.create_task(ch.command("STREAM FILE"))
    assert await fake.expect() == "STREAM FILE"
    fake.send(reply)
    with pytest.raises(AgiProtocolError, match="520 End of proper usage" if reply is USAGE_520 else "510"):
        await bad
    good = asyncio.create_task(ch.stream_file("hotline/zh/menu", "0123456789*#"))
    assert await fake.expect() == 'STREAM FILE "hotline/zh/menu" "0123456789*#"'
    fake.send(b"200 result=50 endpos=8000\n")
    assert await good == "2"
    assert not ch.hung_up


async def test_a_511_reply_means_the_channel_hung_up(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    pending = asyncio.create_task(ch.answer())
    assert await fake.expect() == "ANSWER"
    fake.send(b"511 Command Not Permitted on a dead channel or intercepted\n")
    with pytest.raises(AgiHangup):
        await pending
    assert ch.hung_up


async def test_a_command_without_a_reply_raises_agi_timeout(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    started = time.monotonic()
    with pytest.raises(AgiTimeout):
        async with asyncio.timeout(1):
            await ch.command("ANSWER", timeout=0.1)
    assert 0.09 < time.monotonic() - started < 0.5
    assert await fake.expect() == "ANSWER"
    assert not ch.hung_up


def test_parse_reply_reads_result_data_and_pairs() -> None:
    r = parse_reply("200 result=1 (a (b) c) endpos=12")
    assert (r.code, r.result, r.data, r.extra) == (200, "1", "a (b) c", {"endpos": "12"})
    r = parse_reply("200 result= (timeout)")
    assert (r.result, r.data, r.digit) == ("", "timeout", "")
    r = parse_reply("200 result=35 (dtmf) endpos=400")
    assert (r.digit, r.data, r.extra) == ("#", "dtmf", {"endpos": "400"})
    assert parse_reply("200 result=-1 endpos=0").digit == ""
    assert parse_reply("200 result=0").digit == ""
    assert parse_reply("200 no result here").code == 0
    assert parse_reply("garbage").code == 0
    assert AgiReply(200, "49", None, {}, "").digit == "1"


# -- commands -------------------------------------------------------------------------------


async def test_a_line_break_in_a_command_is_refused_and_nothing_is_written(rig: Rig) -> None:
    await rig.start()
    fake, ch = await rig.call()
    with pytest.raises(ValueError, match="line break"):
        await ch.set_variable("NOTE", "ok\nEXEC System rm")
    with pytest.raises(ValueError, match="line break"):
        await ch.command("VERBOSE x\rEXEC System rm")
    with pytest.raises(ValueError, match="line break"):
        await ch.verbose("a\nb")
    assert await fake.nothing_written()
    assert quote('say "hi" C:\\x') == '"say \\"hi\\" C:\\\\x"'
    setting = asyncio.create_task(ch.set_variable("NOTE", '市民 "王"'))
    assert await fake.expect() == 'SET VARIABLE "NOTE" "市民 \\"王\\""'
    fake.send(b"200 result=1\n")
    await setting


# -- the server -----------------------------------------------------------------------------


async def test_a_failing_handler_does_not_stop_the_server(rig: Rig) -> None:
    served: list[str] = []

    async def handler(ch: AgiChannel) -> None:
        if ch.headers["extension"] == "boom":
            raise RuntimeError("handler bug")
        if ch.headers["extension"] == "gone":
            await ch.answer(timeout=1)  # the caller hangs up: not a failure
        served.append((await ch.answer()).result)

    server = await rig.start(handler)
    with capture_logs() as logs:
        boom = await rig.connect(HEADER.replace(b"agi_extension: 12345", b"agi_extension: boom"))
        assert await boom.closed_by_server()
        gone = await rig.connect(HEADER.replace(b"agi_extension: 12345", b"agi_extension: gone"))
        assert await gone.expect() == "ANSWER"
        gone.send(b"HANGUP\n")
        assert await gone.closed_by_server()
        fake = await rig.connect()
        assert await fake.expect() == "ANSWER"
        fake.send(b"200 result=0\n")
        assert await fake.closed_by_server()
    assert served == ["0"]
    assert (server.sessions_started, server.sessions_failed, server.sessions_hung_up) == (3, 1, 1)
    (failed,) = [e for e in logs if e["event"] == "agi_handler_failed"]
    assert failed["uniqueid"] == "1700000000.1" and failed["log_level"] == "error"
    assert failed["script"] == "intake" and "exc_info" in failed
    assert "13800138000" not in repr(logs)  # no caller number in the log


async def test_connections_over_max_connections_are_closed_at_once(rig: Rig) -> None:
    server = await rig.start(max_connections=2)
    await rig.call()
    await rig.call()
    extra = await rig.connect()
    assert await extra.closed_by_server(within=1.0)
    assert server.refused == 1
    assert server.sessions_started == 2
    rig.release.set()  # the two calls end ...
    await eventually(lambda: server.active == 0)
    rig.release.clear()
    await rig.call()  # ... and a new one is accepted
    assert server.sessions_started == 3


async def test_close_cancels_every_session_and_leaves_no_task_running(rig: Rig) -> None:
    server = await rig.start()
    fake, ch = await rig.call()
    pending = asyncio.create_task(ch.answer())
    assert await fake.expect() == "ANSWER"
    half = await rig.connect(HEADER[:40])  # a session still reading its header
    await rig.call()  # a parked handler
    await asyncio.sleep(0.02)
    await server.close()
    with pytest.raises(AgiHangup):
        await pending
    assert await fake.closed_by_server() and await half.closed_by_server()
    assert server.active == 0
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", rig.port)
