"""The AMI link: connect, log in, reconnect with backoff, ping with a deadline, actions
with timeouts. Messages go to callbacks that only enqueue; nothing here knows about calls.

List actions (Status, DeviceStateList) can hand their result over *in stream order*: the
callback runs while the message that completes the list is being read, before any later
message of the stream is passed on. That is what lets the dispatcher apply a snapshot
exactly where it belongs among the events (every event before it is older).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from cti.ami_frame import AmiFramer, AmiMessage

log = structlog.get_logger("hotline.ami")


class AmiError(Exception):
    """An action failed, timed out, or the link is down. `refused`: Asterisk answered with
    an error, so the action certainly did not happen (a time-out or a lost link leaves
    that open)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "hotline"
    secret: str = ""
    action_timeout: float = 5.0
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0


@dataclass
class Reply:
    """An action's answer: the Response message, and for list actions the events of the list."""

    response: AmiMessage
    events: list[AmiMessage] = field(default_factory=list)


InOrder = Callable[[Reply | AmiError], None]


@dataclass
class _Pending:
    name: str
    future: asyncio.Future[Reply]
    in_order: InOrder | None = None
    reply: Reply | None = None  # a list in progress
    listing: bool = False

    def settle(self, outcome: Reply | AmiError) -> None:
        if self.in_order is not None:
            in_order, self.in_order = self.in_order, None
            try:
                in_order(outcome)
            except Exception:  # the caller's hand-over failed: its future still says what came
                log.exception("ami_in_order_failed", action=self.name)
        if self.future.done():
            return
        if isinstance(outcome, AmiError):
            self.future.set_exception(outcome)
            self.future.exception()  # nobody may be waiting any more: not "never retrieved"
        else:
            self.future.set_result(outcome)


EventSink = Callable[[AmiMessage], None]


class _Wire(asyncio.Protocol):
    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.framer = AmiFramer()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for message in self.framer.feed(data):
            try:
                self.client.on_message(message)
            except Exception:  # one bad message must not cost the link (asyncio would close it)
                log.exception("ami_message_failed", ami_event=message.event, action_id=message.action_id)
                self.client.handler_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        on_event: EventSink,
        on_up: Callable[[int], None],
        on_down: Callable[[int], None],
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_up = on_up
        self.on_down = on_down
        self.connected = False
        self.session = 0  # bumped at every login: tells one link's results from the next one's
        self.handler_errors = 0
        self.reconnects = 0
        self._wire: _Wire | None = None
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._booted: asyncio.Event | None = None
        self._stopping = False
        self._penalty = False

    @property
    def framer(self) -> AmiFramer | None:
        return self._wire.framer if self._wire else None

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until `close()`; every drop is followed by a reconnect. The backoff
        starts over only after a session that was not dropped as unusable (`drop(penalize=True)`),
        so an engine that can log in but never finish a resync does not flap at full speed."""
        delay = self.settings.backoff_initial
        while not self._stopping:
            self._penalty = False
            try:
                await self._session()
                if not self._penalty:
                    delay = self.settings.backoff_initial
            except (TimeoutError, OSError, AmiError) as exc:
                log.warning("ami_connect_failed", error=str(exc) or type(exc).__name__, retry_in=round(delay, 2))
            if self._stopping:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.backoff_max)
            self.reconnects += 1

    async def close(self) -> None:
        self._stopping = True
        if self._wire and self._wire.transport:
            self._wire.transport.close()

    def drop(self, penalize: bool = False) -> None:
        """Cut the TCP link (a ping unanswered, a failed resync, tests)."""
        self._penalty = self._penalty or penalize
        if self._wire and self._wire.transport:
            self._wire.transport.abort()

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        self._booted = asyncio.Event()
        _, wire = await asyncio.wait_for(loop.create_connection(lambda: _Wire(self), s.host, s.port), s.action_timeout)
        self._wire = wire
        pinger: asyncio.Task[None] | None = None
        try:
            try:
                await self.action({"Action": "Login", "Username": s.username, "Secret": s.secret, "Events": "on"})
            except AmiError as exc:
                raise AmiError(f"AMI login as {s.username!r} refused: {exc}. Check ami.username/ami.secret "
                               "against manager.conf") from None
            # Asterisk sends FullyBooted right after login once it has finished starting.
            await asyncio.wait_for(self._booted.wait(), 60)
            self.session += 1
            self.connected = True
            log.info("ami_connected", host=s.host, port=s.port, version=wire.framer.version, session=self.session)
            self.on_up(self.session)
            pinger = asyncio.create_task(self._ping_loop())
            await wire.lost
        finally:
            if pinger:
                pinger.cancel()
            was = self.connected
            self.connected = False
            self._wire = None
            if wire.transport:
                wire.transport.abort()
            self._fail_pending(AmiError("AMI connection lost"))
            if was:
                log.warning("ami_disconnected", session=self.session)
                self.on_down(self.session)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            try:
                await self.action({"Action": "Ping"}, timeout=self.settings.ping_timeout)
            except AmiError:
                log.warning("ami_ping_unanswered", timeout=self.settings.ping_timeout)
                self.drop()
                return

    # -- messages --------------------------------------------------------------

    def on_message(self, message: AmiMessage) -> None:
        action_id = message.action_id
        pending = self._pending.get(action_id) if action_id else None
        if pending is not None:
            self._answer(pending, message)
            return
        event = message.event
        if event is None:
            return
        if event == "FullyBooted" and self._booted is not None:
            self._booted.set()
        elif event == "Shutdown":
            log.warning("asterisk_shutdown")
            self.drop()
        self.on_event(message)

    def _answer(self, pending: _Pending, message: AmiMessage) -> None:
        action_id = message.action_id or ""
        if pending.reply is None:
            # The first message is the Response.
            if message.get("Response") != "Success":
                self._pending.pop(action_id, None)
                pending.settle(AmiError(f"AMI action {pending.name} failed: {message.get('Message', '')}",
                                        refused=True))
                return
            pending.reply = Reply(message)
            if message.get("EventList", "").lower() != "start":
                self._pending.pop(action_id, None)
                pending.settle(pending.reply)
            return
        if message.get("EventList", "").lower() == "complete":
            self._pending.pop(action_id, None)
            pending.settle(pending.reply)
            return
        pending.reply.events.append(message)

    def _fail_pending(self, exc: AmiError) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.settle(exc)

    def send(self, fields: Mapping[str, str], in_order: InOrder | None = None) -> asyncio.Future[Reply]:
        """Write an action now; its Reply (or AmiError) arrives in the future, and also
        through `in_order` at its place in the stream."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        name = fields.get("Action", "?")
        pending = _Pending(name, future, in_order)
        wire = self._wire
        if wire is None or wire.transport is None or wire.transport.is_closing():
            pending.settle(AmiError(f"AMI not connected (action {name})"))
            return future
        if any("\r" in v or "\n" in v for v in (*fields.keys(), *fields.values())):
            # A line break would let a value write headers of its own into the action.
            pending.settle(AmiError(f"AMI action {name} refused here: a field holds a line break", refused=True))
            return future
        action_id = f"hl-{next(self._ids)}"
        self._pending[action_id] = pending
        lines = [f"{k}: {v}" for k, v in fields.items()] + [f"ActionID: {action_id}"]
        wire.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        return future

    def expire(self, future: asyncio.Future[Reply], reason: str) -> None:
        """Give up on an action (its time ran out): settle it as failed, not refused."""
        for action_id, p in list(self._pending.items()):
            if p.future is future:
                del self._pending[action_id]
                p.settle(AmiError(reason))

    async def action(self, fields: Mapping[str, str], timeout: float | None = None,
                     in_order: InOrder | None = None) -> Reply:
        future = self.send(fields, in_order)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout or self.settings.action_timeout)
        except TimeoutError:
            self.expire(future, f"AMI action {fields.get('Action')} timed out")
            raise AmiError(f"AMI action {fields.get('Action')} timed out") from None
