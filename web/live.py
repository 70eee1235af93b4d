"""Live pages: one hub of topics, each page a server-sent-events stream of HTML fragments.

Why SSE and not a timer in the page: browsers run a hidden tab's timers once a minute
(Chrome's intensive throttling), which made VICIdial's polling agent screen miss its calls;
an EventSource is a network stream and keeps delivering. Why not WebSocket: the pages only
listen (their actions are plain POSTs, checked like any form), SSE goes through proxies as
an ordinary response, and EventSource reconnects by itself.

A page that (re)connects is sent its whole current picture first, so a dropped stream
catches up without a reload.

Why a subscriber keeps only the latest fragment of each event, and no queue: every fragment is
the whole picture of its part of the page (the desk's state, pop, history, ticket, parties and
corner; the wallboard's live part and ticket lists; a department's inbox), swapped in whole
(sse-swap, innerHTML), so an older one still waiting to be written is worth nothing once a
newer one of the same event exists. A subscriber's memory is thus bounded by the number of
event names, a slow browser needs no cutting off (TCP backpressure blocks only its own
writer, which then writes the newest picture of each part), and a burst goes out as one write.

Streams end when the hub closes them: at shutdown, when the session signs out
(`Hub.close_token`), or when the session's periodic re-check (`RECHECK`) finds it no longer
valid. Closing ends the response at once, without writing what is pending: a page whose
session is still good reconnects (EventSource does so by itself) and is sent its whole
picture; one whose session is gone is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

log = structlog.get_logger("hotline.web.live")
KEEPALIVE = 15.0  # a comment line every 15 s: proxies and NAT keep an idle stream open
# Seconds between two re-checks of an open stream's session (signed out elsewhere, expired,
# the user disabled, a role or department changed): the stream ends when it no longer holds.
RECHECK = 60.0


@dataclass(frozen=True)
class Fragment:
    """One SSE message: the event name a page swaps on, and the HTML it swaps in."""

    event: str
    html: str


@dataclass(eq=False)
class Subscriber:
    """One open stream: the newest fragment of each event not written yet, in the order their
    events were first published since the last write (an event published again keeps its
    place, so a part that changes all the time cannot hold back the others)."""

    topics: frozenset[str]
    token_key: str | None = None
    pending: dict[str, Fragment] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def offer(self, fragment: Fragment) -> None:
        if not self.closed:
            self.pending[fragment.event] = fragment
            self.wake.set()

    def take(self) -> list[Fragment]:
        self.wake.clear()
        batch = list(self.pending.values())
        self.pending.clear()
        return batch


class Hub:
    """Topics ("agent:1001", "wall", "dept:3") → the streams open on them. Owned by the event
    loop: publish is called from the dispatcher's task and never waits."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscriber]] = {}
        self._by_token: dict[str, set[Subscriber]] = {}
        self.published = 0

    def subscribe(self, topics: Iterable[str], token_key: str | None = None) -> Subscriber:
        """`token_key`: the session's key (web.session.token_key), so that signing out closes
        the session's streams (`close_token`)."""
        sub = Subscriber(frozenset(topics), token_key)
        for t in sub.topics:
            self._subs.setdefault(t, set()).add(sub)
        if token_key is not None:
            self._by_token.setdefault(token_key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        for t in sub.topics:
            subs = self._subs.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[t]
        if sub.token_key is not None:
            mine = self._by_token.get(sub.token_key)
            if mine is not None:
                mine.discard(sub)
                if not mine:
                    del self._by_token[sub.token_key]

    def watching(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def topics(self) -> list[str]:
        return list(self._subs)

    def subscribers(self, topic: str) -> list[Subscriber]:
        return list(self._subs.get(topic, ()))

    def publish(self, topic: str, fragment: Fragment) -> None:
        for sub in tuple(self._subs.get(topic, ())):
            sub.offer(fragment)
        self.published += 1

    def close(self, sub: Subscriber) -> None:
        """End this stream now: its writer stops without writing what is pending."""
        self.unsubscribe(sub)
        sub.closed = True
        sub.pending.clear()
        sub.wake.set()

    def close_token(self, token_key: str) -> int:
        """End every stream of one session (it signed out); how many there were."""
        subs = tuple(self._by_token.get(token_key, ()))
        for sub in subs:
            self.close(sub)
        return len(subs)

    def close_all(self) -> None:
        for subs in list(self._subs.values()):
            for sub in tuple(subs):
                self.close(sub)


def _message(f: Fragment) -> bytes:
    # SSE data may not hold a bare newline: every line of the fragment is a data: line,
    # which EventSource joins back with "\n".
    lines = f.html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {f.event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def stream(request: web.Request, hub: Hub, topics: Iterable[str], first: list[Fragment], *,
                 token_key: str | None = None,
                 still_valid: Callable[[], Awaitable[bool]] | None = None) -> web.StreamResponse:
    """Answer with an event stream: `first` (the page's current picture), then the newest
    fragment of each event published on `topics`, until the browser leaves or the stream is
    closed (the hub closes, the session `token_key` signs out, or `still_valid`, asked every
    RECHECK seconds, says the session no longer holds)."""
    sub = hub.subscribe(topics, token_key)  # before the picture is sent: nothing published between is lost
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    loop = asyncio.get_running_loop()
    try:
        await resp.prepare(request)
        # EventSource waits this long before reconnecting after a drop (the default is 3 s).
        await resp.write(b"retry: 1000\n\n" + b"".join(_message(f) for f in first))
        written = loop.time()
        # Spread over the period: after a mass reconnect (an engine restart) the streams must not
        # all ask the store in the same second, every minute.
        recheck_at = written + RECHECK * random.uniform(0.5, 1.0)
        while not sub.closed:
            if not sub.pending:
                wait = min(written + KEEPALIVE, recheck_at if still_valid else math.inf) - loop.time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.wake.wait(), max(0.0, wait))
            if sub.closed:
                break
            if still_valid is not None and loop.time() >= recheck_at:
                if not await still_valid():
                    log.info("web_stream_session_ended", topics=sorted(sub.topics))
                    break
                recheck_at = loop.time() + RECHECK
                continue  # the closed flag may have been set while the check ran
            batch = sub.take()
            if batch:
                await resp.write(b"".join(_message(f) for f in batch))  # a burst goes out in one write
                written = loop.time()
            elif loop.time() >= written + KEEPALIVE:
                await resp.write(b": keep-alive\n\n")
                written = loop.time()
    except ConnectionResetError:
        pass  # the browser left
    finally:
        hub.unsubscribe(sub)
    return resp
