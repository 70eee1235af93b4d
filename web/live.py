"""Live pages: one hub of topics, each page a server-sent-events stream of HTML fragments.

Why SSE and not a timer in the page: browsers run a hidden tab's timers once a minute
(Chrome's intensive throttling), which made VICIdial's polling agent screen miss its calls;
an EventSource is a network stream and keeps delivering. Why not WebSocket: the pages only
listen (their actions are plain POSTs, checked like any form), SSE goes through proxies as
an ordinary response, and EventSource reconnects by itself.

A page that (re)connects is sent its whole current picture first, so a dropped stream
catches up without a reload. A subscriber that cannot keep up (its queue full: a stalled
browser) is cut off rather than allowed to hold memory; its EventSource reconnects and
catches up the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

log = structlog.get_logger("hotline.web.live")
KEEPALIVE = 15.0  # a comment line every 15 s: proxies and NAT keep an idle stream open
QUEUE_SIZE = 256


@dataclass(frozen=True)
class Fragment:
    """One SSE message: the event name a page swaps on, and the HTML it swaps in."""

    event: str
    html: str


@dataclass(eq=False)
class Subscriber:
    topics: frozenset[str]
    queue: asyncio.Queue[Fragment | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class Hub:
    """Topics ("agent:1001", "wall", "dept:3") → the streams open on them. Owned by the event
    loop: publish is called from the dispatcher's task and never waits."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscriber]] = {}
        self.published = 0
        self.cut_off = 0

    def subscribe(self, topics: Iterable[str]) -> Subscriber:
        sub = Subscriber(frozenset(topics))
        for t in sub.topics:
            self._subs.setdefault(t, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        for t in sub.topics:
            subs = self._subs.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[t]

    def watching(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def topics(self) -> list[str]:
        return list(self._subs)

    def publish(self, topic: str, fragment: Fragment) -> None:
        for sub in tuple(self._subs.get(topic, ())):
            try:
                sub.queue.put_nowait(fragment)
            except asyncio.QueueFull:
                # A stalled page: cut it off (it reconnects and is sent its whole picture).
                self.unsubscribe(sub)
                sub.dropped = True
                self.cut_off += 1
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)
        self.published += 1

    def close_all(self) -> None:
        for subs in list(self._subs.values()):
            for sub in tuple(subs):
                self.unsubscribe(sub)
                try:
                    sub.queue.put_nowait(None)
                except asyncio.QueueFull:
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)


def _message(f: Fragment) -> bytes:
    # SSE data may not hold a bare newline: every line of the fragment is a data: line,
    # which EventSource joins back with "\n".
    lines = f.html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {f.event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def stream(request: web.Request, hub: Hub, topics: Iterable[str], first: list[Fragment]) -> web.StreamResponse:
    """Answer with an event stream: `first` (the page's current picture), then every fragment
    published on `topics` until the browser leaves, the subscriber is cut off or the hub closes."""
    sub = hub.subscribe(topics)  # before the picture is sent: nothing published between is lost
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        # EventSource waits this long before reconnecting after a drop (the default is 3 s).
        await resp.write(b"retry: 1000\n\n" + b"".join(_message(f) for f in first))
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), KEEPALIVE)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if item is None:
                break
            batch = [item]
            while not sub.queue.empty():  # a burst goes out in one write
                nxt = sub.queue.get_nowait()
                if nxt is None:
                    break
                batch.append(nxt)
            await resp.write(b"".join(_message(f) for f in batch))
    except ConnectionResetError:
        pass  # the browser left
    finally:
        hub.unsubscribe(sub)
    return resp
