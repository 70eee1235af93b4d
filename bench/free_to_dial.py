"""Under congestion: from an agent's call ending to that agent being dialled for the
next waiting caller, our engine against Asterisk's app_queue, same run.

More callers than agents (10 agents answered by one SIPp UAS, callers at 10/s with 2 s
conversations), so a caller is always waiting when an agent frees up. Timed on
Asterisk's clock: the agent leg's Hangup -> the next DialBegin to the same agent.
app_queue (wrapuptime 0, retry 1) only looks again after its retry period; issue 3's
goal for us is p99 under 20 ms.

Run as root: python3 bench/free_to_dial.py [--agents 10 --calls 150 --rate 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ami_watch import AmiWatch
from bench.rig import APP_QUEUE_NUMBER, percentile, rig
from testbed import sipp

UAS_PORT = 6400


def load_run(watch: AmiWatch, n: int, rate: float, number: str) -> tuple[list[float], int]:
    watch.reset()
    run = sipp.callers(n, rate=rate, names=None, talk_ms=2000, number=number, limit=400)
    rc = run.wait(n / rate + 300)
    if rc != 0:
        print(f"  warning: SIPp exit {rc}, {run.stats()}; see {run.workdir}", flush=True)
    time.sleep(1)
    return sorted(watch.gaps), run.stats().successful


def report(name: str, gaps: list[float], ok: int, n: int) -> None:
    print(f"  {name:10s} {ok}/{n} calls connected; agent freed -> next dial over {len(gaps)} hand-overs: "
          f"p50 {percentile(gaps, 50):8.2f} ms, p99 {percentile(gaps, 99):8.2f} ms", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--calls", type=int, default=150)
    ap.add_argument("--rate", type=float, default=10)
    args = ap.parse_args()
    with rig("free_to_dial", args.agents, UAS_PORT, {"wrapup": 0, "max_wait": 600}) as r:
        print(f"bench: {args.agents} agents, {args.calls} calls at {args.rate:g}/s, 2 s calls (congested)",
              flush=True)
        with r.engine():
            ours, ours_ok = load_run(r.watch, args.calls, args.rate, r.settings.queue.number or "12345")
        theirs, theirs_ok = load_run(r.watch, args.calls, args.rate, APP_QUEUE_NUMBER)
    report("hotline", ours, ours_ok, args.calls)
    report("app_queue", theirs, theirs_ok, args.calls)
    print(f"  p99 hotline / app_queue = {percentile(ours, 99) / percentile(theirs, 99):.3f}; "
          f"hotline p99 / goal (20 ms) = {percentile(ours, 99) / 20:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
