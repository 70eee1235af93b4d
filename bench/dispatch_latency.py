"""Queue-join to agent-dial latency: our engine against Asterisk's app_queue, same run.

Load (DESIGN.md): 60 registered agents answered by one SIPp UAS, SIPp callers at
20 calls/s with 2 s conversations. Both paths are timed on Asterisk's own event
clock (timestampevents=yes) by a passive AMI listener:
  ours:      UserEvent HotlineJoin  -> DialBegin to PJSIP/agentNNNN (engine Redirect)
  app_queue: QueueCallerJoin        -> DialBegin to PJSIP/agentNNNN (strategy leastrecent)
Goal (issue 2): our p99 no more than 1.5 x app_queue's.

Run as root: python3 bench/dispatch_latency.py [--calls 500 --rate 20 --agents 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ami_watch import AmiWatch
from bench.rig import APP_QUEUE_NUMBER, Rig, percentile, rig
from testbed import sipp

UAS_PORT = 6300


def dispatch_buckets(r: Rig) -> str:
    """The engine's own share (AMI event read -> Redirect written) from its histogram."""
    buckets = []
    for line in r.metrics().splitlines():
        if line.startswith("hotline_ring_dispatch_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    if not total:
        return "no rings observed"

    def upper(q: float) -> str:
        return next(f"<= {le * 1000:g} ms" for le, n in buckets if n >= q * total)

    return f"{int(total)} rings, p50 {upper(0.5)}, p99 {upper(0.99)}"


def run_load(watch: AmiWatch, n: int, rate: float, number: str) -> tuple[list[float], int]:
    watch.reset()
    run = sipp.callers(n, rate=rate, names=None, talk_ms=2000, number=number, limit=200)
    rc = run.wait(n / rate + 120)
    time.sleep(1)
    stats = run.stats()
    if rc != 0:
        print(f"  warning: SIPp exit {rc}, {stats}; see {run.workdir}", flush=True)
    return watch.latencies_ms(), stats.successful


def report(name: str, lat: list[float], ok: int, n: int) -> None:
    print(f"  {name:10s} {ok}/{n} calls connected, {len(lat)} timed; join->dial p50 {percentile(lat, 50):7.2f} ms, "
          f"p99 {percentile(lat, 99):7.2f} ms, max {max(lat, default=float('nan')):7.2f} ms", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--agents", type=int, default=60)
    args = ap.parse_args()

    with rig("dispatch_latency", args.agents, UAS_PORT, {"wrapup": 0, "ring_timeout": 15}) as r:
        print(f"bench: {args.agents} agents, {args.calls} calls at {args.rate:g}/s, 2 s calls", flush=True)
        with r.engine():
            ours, ours_ok = run_load(r.watch, args.calls, args.rate, r.settings.queue.number or "12345")
            engine_share = dispatch_buckets(r)
        theirs, theirs_ok = run_load(r.watch, args.calls, args.rate, APP_QUEUE_NUMBER)

    report("hotline", ours, ours_ok, args.calls)
    report("app_queue", theirs, theirs_ok, args.calls)
    ratio = percentile(ours, 99) / percentile(theirs, 99)
    print(f"  hotline's own share (event read -> Redirect written): {engine_share}", flush=True)
    print(f"  p99 ratio hotline/app_queue = {ratio:.2f} (goal <= 1.5)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
