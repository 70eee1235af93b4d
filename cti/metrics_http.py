"""The read-only metrics listener: GET /metrics and /healthz, nothing else.

It is the port an operator opens to the Prometheus host, so it is written to be safe to
expose: one request per connection, the request head must arrive within a few seconds
and fit in 8 KB, and at most a few dozen connections are open at once. At the cap a new
connection pushes out the oldest one still waiting for its head (a scraper sends its head
at once; whoever holds connections open without a word loses them), and is refused only
when every connection is busy answering. A client that sends half a request, or opens
hundreds of connections, costs the engine nothing it needs for calls and cannot keep
Prometheus from scraping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import structlog

log = structlog.get_logger("hotline.metrics_http")

MAX_CONNECTIONS = 32
HEAD_TIMEOUT = 5.0
MAX_HEAD = 8192

Page = Callable[[], tuple[int, str, bytes]]  # -> (status, content type, body)

REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


def json_page(status: int, body: object) -> tuple[int, str, bytes]:
    return status, "application/json; charset=utf-8", json.dumps(body, ensure_ascii=False).encode()


class MetricsServer:
    def __init__(self, pages: dict[str, Page]) -> None:
        self.pages = pages
        self.active = 0
        self.refused = 0  # connections closed at once: over the cap
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        # Connections still waiting for their request head, oldest first (dicts keep order).
        self._waiting: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._client, host, port, limit=MAX_HEAD, backlog=64)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= MAX_CONNECTIONS:
            if not self._waiting:
                self.refused += 1
                writer.transport.abort()
                return
            oldest, silent = next(iter(self._waiting.items()))
            del self._waiting[oldest]
            self.refused += 1
            silent.transport.abort()
            oldest.cancel()
        self.active += 1
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
            self._waiting[task] = writer
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
                if task is not None:
                    self._waiting.pop(task, None)
                status, ctype, body = self._answer(head)
                send_body = not head.startswith(b"HEAD ")
            except asyncio.LimitOverrunError:  # a client that sent too much is told so, as aiohttp does
                status, ctype, body = 431, "text/plain", b"request header fields too large\n"
                send_body = True
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                return  # too slow, gone, or pushed out by a newer connection: no answer owed
            writer.write(
                f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + (body if send_body else b""))
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT)
        finally:
            self.active -= 1
            if task is not None:
                self._clients.discard(task)
                self._waiting.pop(task, None)
            writer.transport.abort() if writer.transport.is_closing() else writer.close()

    def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 404, "text/plain", b"not found\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        page = self.pages.get(target)
        if page is None:
            return 404, "text/plain", b"not found: this listener serves /metrics and /healthz only\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        return page()
