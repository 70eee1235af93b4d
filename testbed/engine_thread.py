"""Run the real engine in a thread of its own so that tests can block on SIPp."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from config.loader import load
from config.settings import Settings
from cti.engine import Engine, build, serve
from tickets.models import CallRecordRow
from tickets.store import read_records

T = TypeVar("T")


class RunningEngine:
    def __init__(self, settings: Settings, config_dir: Path | None = None) -> None:
        self.settings = settings
        self.config_dir = config_dir
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.engine: Engine | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="engine", daemon=True)
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("engine did not start")
        if self.error:
            raise self.error

    @classmethod
    def from_dir(cls, directory: Path) -> RunningEngine:
        return cls(load(directory), directory)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the test thread
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.engine = build(self.settings, self.config_dir)
        self._stop = asyncio.Event()
        task = asyncio.create_task(serve(self.engine, self._stop))
        # serve() exposes no "listening" event; its port turns non-zero once it listens.
        while (self.engine.http_port == 0 or self.engine.metrics_port == 0) and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self._ready.set()
        await task

    @property
    def e(self) -> Engine:
        assert self.engine is not None
        return self.engine

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        """Run `fn` on the engine's loop (where the state lives) and return its result."""

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def wait_for(self, predicate: Callable[[Engine], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call(lambda: predicate(self.e)):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_ready(self, timeout: float = 20) -> None:
        """Connected to AMI and the picture rebuilt: routing is on."""
        self.wait_for(lambda e: e.ami.connected and e.dispatcher.state.routing, timeout, "AMI connect + resync")

    def metrics(self) -> dict[str, float]:
        """Samples from /metrics as {'name{label=value,...}': value}."""
        url = f"http://127.0.0.1:{self.e.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def http(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """A request to the control API with the engine's token (or `token`): (status, JSON)."""
        hdrs = {"Authorization": f"Bearer {self.e.token if token is None else token}", **(headers or {})}
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(f"http://127.0.0.1:{self.e.http_port}{path}", data=body, method=method,
                                         headers=hdrs)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def records(self, wait_for: int | None = None, timeout: float = 20) -> list[CallRecordRow]:
        deadline = time.monotonic() + timeout
        while True:
            rows = read_records(self.e.outbox.engine)
            if wait_for is None or len(rows) >= wait_for or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)
