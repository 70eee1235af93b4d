"""A fake Asterisk manager (AMI) on 127.0.0.1 for the shell's unit tests.

It speaks the wire protocol (banner, Login, FullyBooted, ActionID, list actions with
EventList start/Complete), records every action it receives, answers each by a script
the test can change, and lets the test push events or drop the link. What it does not
do is anything a real Asterisk would do on its own: tests say what happens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

Fields = dict[str, str]
# An action handler: the action's fields -> the messages to send back (the Response first).
Script = Callable[[Fields], list[Fields]]


def frame(fields: Fields) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


def success(**extra: str) -> list[Fields]:
    return [{"Response": "Success", **extra}]


def error(message: str) -> list[Fields]:
    return [{"Response": "Error", "Message": message}]


def listing(event: str, rows: list[Fields]) -> list[Fields]:
    """A list action's answer: Response with EventList start, the rows, the Complete event."""
    return ([{"Response": "Success", "EventList": "start", "Message": f"{event} will follow"}]
            + [{"Event": event, **row} for row in rows]
            + [{"Event": f"{event}Complete", "EventList": "Complete", "ListItems": str(len(rows))}])


@dataclass
class FakeAmi:
    channels: list[Fields] = field(default_factory=list)  # rows of the Status listing
    devices: list[Fields] = field(default_factory=list)  # rows of DeviceStateList
    scripts: dict[str, Script] = field(default_factory=dict)  # per action name, overriding the defaults
    received: list[Fields] = field(default_factory=list)
    # Events written right after the answer to an action (same TCP write): stream order.
    after: dict[str, list[Fields]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)  # actions never answered
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    logins: int = 0
    globals: dict[str, str] = field(default_factory=dict)  # Setvar/Getvar without a channel

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            # A client that connected just before (a reconnect) may have its handler start only
            # now: its connection is dropped when it starts (see _client), and wait_closed (which
            # waits for every connection) is bounded all the same.
            await asyncio.sleep(0)
            self.drop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    def drop(self) -> None:
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    def push(self, *events: Fields) -> None:
        """Send events to every connected client, in one write."""
        data = b"".join(frame(e) for e in events)
        for w in self._writers:
            w.write(data)

    def actions(self, name: str) -> list[Fields]:
        return [a for a in self.received if a.get("Action") == name]

    def _answer(self, action: Fields) -> list[Fields]:
        name = action.get("Action", "")
        if name in self.scripts:
            return self.scripts[name](action)
        if name == "Login":
            self.logins += 1
            return [*success(Message="Authentication accepted"), {"Event": "FullyBooted", "Status": "Fully Booted"}]
        if name == "Status":
            rows = self.channels
            if "Channel" in action:
                rows = [r for r in self.channels if r.get("Channel") == action["Channel"]]
                if not rows:
                    return error("No such channel")
            return listing("Status", rows)
        if name == "DeviceStateList":
            return listing("DeviceStateChange", self.devices)
        if name == "Setvar" and "Channel" not in action:
            self.globals[action.get("Variable", "")] = action.get("Value", "")
        if name == "Getvar" and "Channel" not in action:
            variable = action.get("Variable", "")
            return success(Variable=variable, Value=self.globals.get(variable, ""))
        return success()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is not None and not self._server.is_serving():
            writer.transport.abort()  # accepted as the fake was closing: never served, never left open
            return
        self._writers.append(writer)
        try:
            await self._serve(reader, writer)
        finally:
            writer.transport.abort()  # the client went away (EOF): close our side too (no CLOSE-WAIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action: Fields = {}
                for line in raw.decode().split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        action[key] = value
                self.received.append(action)
                name = action.get("Action", "")
                if name in self.silent:
                    continue
                out = self._answer(action)
                action_id = action.get("ActionID", "")
                data = b"".join(frame({**m, "ActionID": action_id} if ("Response" in m or m.get("Event") in (
                    "Status", "StatusComplete", "DeviceStateChange", "DeviceStateChangeComplete")) else m)
                    for m in out)
                data += b"".join(frame(e) for e in self.after.pop(name, []))
                writer.write(data)
