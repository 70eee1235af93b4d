"""The AMI link: connect, log in, reconnect with backoff, ping with a deadline,
actions with timeouts. Messages go to callbacks that only enqueue; nothing here
knows about calls.

panoramisk's `Message` and `Action` are reused for parsing and for matching
multi-part replies; its `Manager` is not (fixed 2 s reconnect, unchecked pings,
futures without timeouts, fire-and-forget coroutine dispatch).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from panoramisk.actions import Action
from panoramisk.message import Message

from cti.ami_frame import AmiFramer

log = structlog.get_logger("hotline.ami")


class AmiError(Exception):
    """An action failed, timed out, or the link is down."""


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


EventSink = Callable[[int, Message], None]


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
                self.client._on_message(message)
            except Exception:  # one bad message must not cost the link (asyncio would close it)
                log.exception("ami_message_failed", message=str(dict(message))[:500])
                self.client.handler_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        on_event: EventSink,
        on_up: Callable[[], None],
        on_down: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_up = on_up
        self.on_down = on_down
        self.connected = False
        self.handler_errors = 0
        self.reconnects = 0
        self._wire: _Wire | None = None
        self._pending: dict[str, Action] = {}
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._booted: asyncio.Event | None = None
        self._stopping = False

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest message read; events carry theirs."""
        return self._last_seq

    @property
    def framer(self) -> AmiFramer | None:
        return self._wire.framer if self._wire else None

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until `close()`; every drop is followed by a reconnect."""
        delay = self.settings.backoff_initial
        while not self._stopping:
            try:
                await self._session()
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

    def drop(self) -> None:
        """Cut the TCP link (used when a ping goes unanswered, and by tests)."""
        if self._wire and self._wire.transport:
            self._wire.transport.abort()

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        self._booted = asyncio.Event()
        _, wire = await asyncio.wait_for(
            loop.create_connection(lambda: _Wire(self), s.host, s.port), s.action_timeout
        )
        self._wire = wire
        pinger: asyncio.Task[None] | None = None
        try:
            reply = await self.action(
                {"Action": "Login", "Username": s.username, "Secret": s.secret, "Events": "on"}
            )
            if not isinstance(reply, Message) or not reply.success:
                raise AmiError(
                    f"AMI login as {s.username!r} refused: {getattr(reply, 'message', reply)}. "
                    "Check ami.username/ami.secret against manager.conf"
                )
            # Asterisk sends FullyBooted right after login once it has finished starting.
            await asyncio.wait_for(self._booted.wait(), 60)
            self.connected = True
            log.info("ami_connected", host=s.host, port=s.port, version=wire.framer.version)
            self.on_up()
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
                log.warning("ami_disconnected")
                self.on_down()

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            try:
                await self.action({"Action": "Ping"}, timeout=self.settings.ping_timeout)
            except AmiError:
                log.warning("ami_ping_unanswered", timeout=self.settings.ping_timeout)
                self.drop()
                return

    # -- messages ------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        seq = next(self._seq)
        self._last_seq = seq
        action_id = message.get("ActionID")
        if action_id and action_id in self._pending:
            action = self._pending[action_id]
            if action.add_message(message):
                self._pending.pop(action_id, None)
            return
        if "Event" in message:
            name = message["Event"]
            if name == "FullyBooted" and self._booted is not None:
                self._booted.set()
            elif name == "Shutdown":
                log.warning("asterisk_shutdown")
                self.drop()
            self.on_event(seq, message)

    def _fail_pending(self, exc: Exception) -> None:
        for action in self._pending.values():
            if not action.future.done():
                action.future.set_exception(exc)
                action.future.exception()  # mark retrieved: nobody may be waiting any more
        self._pending.clear()

    async def action(self, fields: dict[str, Any], timeout: float | None = None) -> Message | list[Message]:
        wire = self._wire
        if wire is None or wire.transport is None or wire.transport.is_closing():
            raise AmiError(f"AMI not connected (action {fields.get('Action')})")
        action = Action(dict(fields))
        self._pending[action.action_id] = action
        wire.transport.write(str(action).encode("utf-8"))
        try:
            result: Message | list[Message] = await asyncio.wait_for(
                asyncio.shield(action.future), timeout or self.settings.action_timeout
            )
        except TimeoutError:
            self._pending.pop(action.action_id, None)
            raise AmiError(f"AMI action {fields.get('Action')} timed out") from None
        return result

    async def checked(self, fields: dict[str, Any], timeout: float | None = None) -> Message:
        reply = await self.action(fields, timeout)
        first = reply[0] if isinstance(reply, list) else reply
        if not first.success:
            raise AmiError(f"AMI action {fields.get('Action')} failed: {first.get('Message', '')}")
        return first

    async def collect(self, fields: dict[str, Any], timeout: float | None = None) -> list[Message]:
        """Run a list action (CoreShowChannels, DeviceStateList) and return its events."""
        reply = await self.action(fields, timeout)
        if isinstance(reply, Message):
            if not reply.success:
                raise AmiError(f"AMI action {fields.get('Action')} failed: {reply.get('Message', '')}")
            return []
        return [m for m in reply if "Event" in m and not m["Event"].endswith("Complete")]
