"""The agent desk's pop: how soon the caller shows after the agent's phone starts to ring, and
what 60 open desks and 5 wallboards cost the engine's own ring dispatch.

Load: 60 registered agents answered by one SIPp UAS after 1 s, SIPp callers at --rate with 2 s
conversations. Two conditions, run in the order none, pages, pages, none (ABBA: a drift of
Asterisk over the run, latency-experiment §7, falls on both alike), --calls per condition:
  none:  no page connected;
  pages: every agent's desk (GET /live/desk, signed in as that agent) and 5 supervisors'
         wallboards (GET /live/wall) connected as event streams.
Timed:
  ring -> pop: Asterisk's DialBegin to the agent's channel (its own event clock,
         timestampevents=yes: the INVITE leaves for the phone) to the desk stream delivering
         the caller, on the same host clock;
  the engine's own ring dispatch: hotline_ring_dispatch_seconds (AMI event read -> Redirect
         written), and Asterisk's queue join -> agent DialBegin, per condition.
Goals (issue 10): ring -> pop p99 under 150 ms; ring dispatch with pages no worse than 1.1x.
The pages' clients run in this process at nice 19 (they stand for browsers on other machines).

Run as root: python3 bench/desk_pop.py [--calls 200 --rate 5 --agents 60 --walls 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from sqlalchemy.orm import Session

from bench.ami_watch import AmiWatch
from bench.rig import Rig, percentile, rig
from testbed import sipp
from tickets import auth
from tickets.db import migrate, open_engine

UAS_PORT = 6310
TICKETS_PORT = 9117
PASSWORD = "bench-desk-password-7"
# A pop's message: its event line, then its data lines holding the call id (the first one).
POP = re.compile(rb'event: pop\n(?:data: [^\n]*\n)*?data: [^\n]*data-call-id="([^"]+)"')


@dataclass
class Watchers:
    """The pages as event-stream clients on a loop of their own (a thread): what each desk
    received, and when."""

    url: str
    agents: list[str]
    walls: int
    pops: dict[str, float] = field(default_factory=dict)  # call id -> first pop seen (time.time())
    connected: int = 0
    errors: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    def start(self, timeout: float = 60) -> None:
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        want = len(self.agents) + self.walls
        while self.connected < want and time.monotonic() < deadline and not self.errors:
            time.sleep(0.1)
        if self.connected < want:
            raise SystemExit(f"only {self.connected} of {want} pages connected: {self.errors[:3]}")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        # The 65 pages stand for browsers on the agents' and supervisors' own machines: on this
        # host they must not take the two cores from the engine, Asterisk and SIPp, so their
        # thread runs at the lowest priority. The engine's own work for them (drawing, writing
        # to 65 sockets) is untouched and is what the comparison measures.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        self._stop = asyncio.Event()
        users = [(f"agent{a}", "/live/desk") for a in self.agents] + \
                [(f"boss{i}", "/live/wall") for i in range(self.walls)]
        tasks = [asyncio.create_task(self._watch(u, path)) for u, path in users]
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, user: str, path: str) -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # the pages are on 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=None)) as s:
            async with s.post(f"{self.url}/login", data={"username": user, "password": PASSWORD},
                              allow_redirects=False) as resp:
                if resp.status != 303:
                    self.errors.append(f"{user}: sign-in answered {resp.status}")
                    return
            async with s.get(f"{self.url}{path}", headers={"Accept": "text/event-stream"}) as resp:
                if resp.status != 200:
                    self.errors.append(f"{user}: {path} answered {resp.status}")
                    return
                self.connected += 1
                # Whole chunks, searched as bytes: the client shares the two cores with the engine,
                # Asterisk and SIPp, and must cost as little as it can. A message split across two
                # chunks is caught by keeping the tail of the previous one.
                tail = b""
                async for chunk in resp.content.iter_any():
                    seen = time.time()
                    data = tail + chunk
                    for found in POP.finditer(data):
                        self.pops.setdefault(found.group(1).decode(), seen)
                    tail = data[-4096:]


def seed_users(r: Rig, agents: list[str], walls: int) -> None:
    store = open_engine(f"sqlite:///{r.config / 'hotline.db'}")
    migrate(store)
    now = datetime.now(UTC)
    with Session(store) as s, s.begin():
        for a in agents:
            if auth.find_user(s, f"agent{a}") is None:
                auth.add_user(s, f"agent{a}", PASSWORD, "agent", now, agent_id=a)
        for i in range(walls):
            if auth.find_user(s, f"boss{i}") is None:
                auth.add_user(s, f"boss{i}", PASSWORD, "supervisor", now)
    store.dispose()


def dispatch_histogram(r: Rig) -> tuple[float, float, dict[float, float]]:
    """(count, sum, cumulative buckets) of the engine's own ring dispatch since it started."""
    count = total = 0.0
    buckets: dict[float, float] = {}
    for line in r.metrics().splitlines():
        if line.startswith("hotline_ring_dispatch_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith("hotline_ring_dispatch_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("hotline_ring_dispatch_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return count, total, buckets


def quantile_ms(buckets: dict[float, float], q: float) -> float:
    """The q-quantile of a cumulative histogram, interpolated linearly inside its bucket (as
    Prometheus's histogram_quantile does), in ms."""
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return float("nan")
    lower, below = 0.0, 0.0
    for le, n in sorted(buckets.items()):
        if n >= q * total:
            if le == float("inf"):
                return lower * 1000
            return (lower + (le - lower) * ((q * total - below) / (n - below) if n > below else 1.0)) * 1000
        lower, below = le, n
    return float("nan")


@dataclass
class Phase:
    join_dial: list[float] = field(default_factory=list)  # ms, Asterisk's clock
    dispatch_count: float = 0.0
    dispatch_sum: float = 0.0
    dispatch_buckets: dict[float, float] = field(default_factory=dict)
    ring_pop: list[float] = field(default_factory=list)  # ms
    connected: int = 0
    calls: int = 0


def run_phase(r: Rig, watch: AmiWatch, n: int, rate: float, pages: bool, agents: list[str], walls: int,
              into: Phase) -> None:
    with r.engine():
        watchers = Watchers(f"http://127.0.0.1:{TICKETS_PORT}", agents, walls) if pages else None
        if watchers is not None:
            watchers.start()
        try:
            watch.reset()
            run = sipp.callers(n, rate=rate, names=None, talk_ms=2000, number=r.settings.queue.number or "12345",
                               limit=200)
            rc = run.wait(n / rate + 120)
            time.sleep(1)
            stats = run.stats()
            if rc != 0:
                print(f"  warning: SIPp exit {rc}, {stats}", flush=True)
            into.calls += stats.successful
            into.join_dial += watch.latencies_ms()
            count, total, buckets = dispatch_histogram(r)
            into.dispatch_count += count
            into.dispatch_sum += total
            for le, c in buckets.items():
                into.dispatch_buckets[le] = into.dispatch_buckets.get(le, 0.0) + c
            if watchers is not None:
                into.connected = max(into.connected, watchers.connected)
                into.ring_pop += [(watchers.pops[k] - t) * 1000 for k, t in watch.dials.items() if k in watchers.pops]
                missing = sum(1 for k in watch.dials if k not in watchers.pops)
                if missing:
                    print(f"  warning: {missing} rung calls never popped on a desk", flush=True)
        finally:
            if watchers is not None:
                watchers.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="calls per condition (split over its two runs)")
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--agents", type=int, default=60)
    ap.add_argument("--walls", type=int, default=5)
    args = ap.parse_args()
    agents = [str(1001 + i) for i in range(args.agents)]
    half = max(1, args.calls // 2)
    queue = {"wrapup": 0, "ring_timeout": 15}
    with rig("desk_pop", args.agents, UAS_PORT, queue, tickets={"http": {"port": TICKETS_PORT}},
             answer_ms=1000) as r:
        seed_users(r, agents, args.walls)
        print(f"bench: {args.agents} agents, {args.walls} wallboards, {args.calls} calls per condition at "
              f"{args.rate:g}/s, order none, pages, pages, none", flush=True)
        none, pages = Phase(), Phase()
        for phase, with_pages in ((none, False), (pages, True), (pages, True), (none, False)):
            run_phase(r, r.watch, half, args.rate, with_pages, agents, args.walls, phase)
            print(f"  ... {'pages' if with_pages else 'none'}: {phase.calls} calls so far", flush=True)

    pops = sorted(pages.ring_pop)
    print(f"  ring -> pop on the desk: {len(pops)} calls, p50 {percentile(pops, 50):.1f} ms, "
          f"p99 {percentile(pops, 99):.1f} ms, max {max(pops, default=float('nan')):.1f} ms (goal p99 < 150 ms)",
          flush=True)
    def engine(ph: Phase, q: float) -> float:
        return quantile_ms(ph.dispatch_buckets, q)

    for name, ph in (("none", none), ("pages", pages)):
        jd = sorted(ph.join_dial)
        mean = ph.dispatch_sum / ph.dispatch_count * 1000 if ph.dispatch_count else float("nan")
        print(f"  {name:5s}: {ph.calls} calls, {ph.connected} pages; engine ring dispatch over "
              f"{int(ph.dispatch_count)} rings: p50 {engine(ph, 0.5):.3f} ms, p90 {engine(ph, 0.9):.3f} ms, "
              f"p99 {engine(ph, 0.99):.3f} ms, mean {mean:.3f} ms; Asterisk's join -> dial p50 "
              f"{percentile(jd, 50):.2f} ms, p90 {percentile(jd, 90):.2f} ms, p99 {percentile(jd, 99):.2f} ms",
              flush=True)
    ratios = ", ".join(f"p{round(q * 100)} {engine(pages, q) / engine(none, q):.2f}x" for q in (0.5, 0.9, 0.99))
    jd_ratios = ", ".join(f"p{q} {percentile(sorted(pages.join_dial), q) / percentile(sorted(none.join_dial), q):.2f}x"
                          for q in (50, 90, 99))
    print(f"  ratio pages/none: engine ring dispatch {ratios}; join -> dial {jd_ratios} (goal <= 1.1x)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
