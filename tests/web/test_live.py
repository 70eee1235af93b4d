"""The live hub and its event streams (web/live.py) over a real aiohttp server and client, no
browser: a stream keeps only the newest fragment of each event, so a stalled browser holds no
more than one picture per part and then gets the newest; closing ends the response at once;
the session re-check ends a stream that no longer holds.

Each test runs its own event loop in a thread (`on_own_loop`): the browser tests' Playwright
keeps a loop running in the main thread for the whole session, where no other may run.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from web import live
from web.live import Fragment, Hub

TOPIC = "agent:1001"
BIG = 64 * 1024  # one fragment's size in the stalled test: a few hundred of them overflow every buffer


Check = Callable[[], Awaitable[bool]]
Client = TestClient[web.Request, web.Application]


def on_own_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="live-test") as pool:
            pool.submit(asyncio.run, test(*args, **kwargs)).result(60)

    return run


@asynccontextmanager
async def started(hub: Hub, still_valid: Check | None = None) -> AsyncIterator[Client]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await live.stream(request, hub, [TOPIC], [Fragment("state", "first")], token_key="k",
                                 still_valid=still_valid)

    app = web.Application()
    app.router.add_get("/live", handler)
    async with TestClient(TestServer(app)) as client:
        yield client


class Reader:
    """The browser's side: SSE messages as (event, data), read as they arrive."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.buffer = ""
        self.comments = 0

    async def next(self, timeout: float = 10) -> tuple[str, str] | None:
        """The next message, or None at the end of the stream."""
        while "\n\n" not in self.buffer:
            chunk = await asyncio.wait_for(self.resp.content.readany(), timeout)
            if not chunk:
                return None
            self.buffer += chunk.decode()
        block, self.buffer = self.buffer.split("\n\n", 1)
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            self.comments += 1
            return ("comment", block)
        event = next((line[len("event: "):] for line in lines if line.startswith("event: ")), "")
        data = "\n".join(line[len("data: "):] for line in lines if line.startswith("data: "))
        return (event, data) if event else await self.next(timeout)  # the retry: line

    async def until(self, wanted: Callable[[tuple[str, str]], bool], timeout: float = 10) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        while True:
            msg = await self.next(timeout)
            assert msg is not None, f"the stream ended before the wanted message; seen {len(seen)}"
            seen.append(msg)
            if wanted(msg):
                return seen

    async def ends(self, timeout: float = 5) -> None:
        """Read to the end of the stream; fails if it does not end within `timeout`."""
        async with asyncio.timeout(timeout):
            while await self.resp.content.readany():
                pass


async def opened(client: Client, hub: Hub) -> Reader:
    resp = await client.get("/live")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    reader = Reader(resp)
    assert await reader.next() == ("state", "first")
    assert hub.watching(TOPIC) == 1
    return reader


@on_own_loop
async def test_a_stalled_reader_holds_one_fragment_per_event_and_then_gets_the_latest_picture() -> None:
    hub = Hub()
    async with started(hub) as client:
        reader = await opened(client, hub)
        (sub,) = hub.subscribers(TOPIC)
        # The page stops reading (a frozen tab): far more is published than any socket buffer
        # holds, so the stream's writer ends up blocked on the socket.
        for i in range(400):
            hub.publish(TOPIC, Fragment("pop" if i % 2 else "history", f"{i}:" + "x" * BIG))
            assert len(sub.pending) <= 2  # bounded by the events, whatever the browser does
            await asyncio.sleep(0)  # the writer runs between publishes, as it would between commands
        assert sub.pending, "the reader was never stalled: the test proves nothing"
        assert hub.watching(TOPIC) == 1  # not cut off: it is not holding anything extra
        hub.publish(TOPIC, Fragment("pop", "latest pop"))
        hub.publish(TOPIC, Fragment("history", "latest history"))
        seen = await reader.until(lambda m: m == ("history", "latest history"))
        assert ("pop", "latest pop") in seen
        assert len(seen) < 400  # superseded pictures were never written


@on_own_loop
async def test_close_ends_the_response_even_with_fragments_pending() -> None:
    hub = Hub()
    async with started(hub) as client:
        reader = await opened(client, hub)
        (sub,) = hub.subscribers(TOPIC)
        hub.publish(TOPIC, Fragment("pop", "not yet written"))
        assert sub.pending  # the writer has not run since
        hub.close_all()
        await reader.ends()  # EOF: the browser's EventSource reconnects and is sent the whole picture
        assert hub.watching(TOPIC) == 0


@on_own_loop
async def test_closing_a_sessions_streams_ends_them_and_no_other() -> None:
    hub = Hub()
    async with started(hub) as client:
        mine = await opened(client, hub)
        other_sub = hub.subscribe([TOPIC], token_key="someone else")
        hub.publish(TOPIC, Fragment("pop", "pending at sign-out"))
        assert hub.close_token("k") == 1
        await mine.ends()
        assert not other_sub.closed and hub.watching(TOPIC) == 1
        hub.unsubscribe(other_sub)


@on_own_loop
async def test_a_burst_of_a_thousand_publishes_of_one_event_delivers_the_last() -> None:
    hub = Hub()
    async with started(hub) as client:
        reader = await opened(client, hub)
        for i in range(1000):
            hub.publish(TOPIC, Fragment("corner", f"waiting {i}"))
        seen = await reader.until(lambda m: m == ("corner", "waiting 999"))
        assert seen == [("corner", "waiting 999")]  # one write of the newest, none of the others
        assert hub.watching(TOPIC) == 1


def test_an_idle_stream_sends_keep_alive_comments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "KEEPALIVE", 0.05)
    idle_then_published()


@on_own_loop
async def idle_then_published() -> None:
    hub = Hub()
    async with started(hub) as client:
        reader = await opened(client, hub)
        assert await reader.next() == ("comment", ": keep-alive")
        hub.publish(TOPIC, Fragment("state", "after the comment"))
        assert (await reader.until(lambda m: m[0] == "state"))[-1] == ("state", "after the comment")


def test_a_stream_ends_when_its_session_recheck_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "RECHECK", 0.05)
    rechecked_until_refused()


@on_own_loop
async def rechecked_until_refused() -> None:
    hub = Hub()
    valid = asyncio.Event()
    valid.set()
    checked = asyncio.Event()

    async def still_valid() -> bool:
        checked.set()
        return valid.is_set()

    async with started(hub, still_valid) as client:
        reader = await opened(client, hub)
        await asyncio.wait_for(checked.wait(), 5)  # re-checked, still valid: the stream goes on
        assert hub.watching(TOPIC) == 1
        hub.publish(TOPIC, Fragment("pop", "after a re-check"))
        assert await reader.until(lambda m: m[0] == "pop") == [("pop", "after a re-check")]
        valid.clear()
        await reader.ends()
        assert hub.watching(TOPIC) == 0
