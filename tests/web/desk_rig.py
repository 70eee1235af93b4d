"""A switch for the desk's page tests: tests/fake_ami.py's AMI on an event loop of its own,
which the real engine (tests.web.harness) connects to as it would to Asterisk. A test plays
Asterisk's side with the events Asterisk sends (a phone registers, a caller joins, the Dial
begins, the agent picks up), so the desk is driven through the dispatcher's own path:
decide() rings the agent, the dispatcher carries out the ring, then tells the pages."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tests.fake_ami import FakeAmi, Fields

T = TypeVar("T")


class FakeSwitch:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-ami", daemon=True)
        self.thread.start()
        self.ami = FakeAmi()
        self._dialled: set[str] = set()
        self.port = self._run(self.ami.start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def push(self, *events: Fields) -> None:
        self.loop.call_soon_threadsafe(self.ami.push, *events)

    def register(self, agent: str, state: str = "NOT_INUSE") -> None:
        self.push({"Event": "DeviceStateChange", "Device": f"PJSIP/agent{agent}", "State": state})

    def join(self, call: str, *, number: str, name: str, restricted: bool = False, queue: str = "main") -> None:
        self.push({"Event": "UserEvent", "UserEvent": "HotlineJoin", "Queue": queue,
                   "Channel": f"PJSIP/carrier-{call}", "Linkedid": call, "Uniqueid": call, "CallerIDNum": number,
                   "CallerIDName": name, "Pres": "prohib" if restricted else "allowed"})

    def ring(self, call: str, timeout: float = 10) -> tuple[str, str]:
        """The engine's Redirect of `call` to ring an agent: (agent, the Dial's extension)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for a in list(self.ami.received):
                if a.get("Action") == "Redirect" and a.get("Context") == "hotline-connect" \
                        and a.get("Channel") == f"PJSIP/carrier-{call}":
                    exten = a["Exten"]
                    return exten.split("*")[0], exten
            time.sleep(0.02)
        raise AssertionError(f"the engine did not ring anyone for {call}")

    def dial(self, call: str) -> tuple[str, str, str]:
        """Asterisk begins the Dial the engine asked for: the agent's phone rings.
        (agent, extension, the agent's leg)"""
        agent, exten = self.ring(call)
        leg = f"PJSIP/agent{agent}-0{exten.split('*')[-1]}"
        self._dialled.add(leg)
        self.push({"Event": "DialBegin", "Linkedid": call, "Channel": f"PJSIP/carrier-{call}",
                   "Context": "hotline-connect", "Exten": exten, "DestChannel": leg})
        return agent, exten, leg

    def answer(self, call: str) -> str:
        """The rung agent picks up: their leg goes Up (the Dial begun first if it was not)."""
        agent, exten = self.ring(call)
        leg = f"PJSIP/agent{agent}-0{exten.split('*')[-1]}"
        if leg not in self._dialled:
            self.dial(call)
        self.push({"Event": "Newstate", "Channel": leg, "ChannelState": "6", "Linkedid": call, "Exten": exten})
        return agent

    def hang_up(self, call: str) -> None:
        self.push({"Event": "Hangup", "Linkedid": call, "Channel": f"PJSIP/carrier-{call}"})

    def close(self) -> None:
        self._run(self.ami.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def until(predicate: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
