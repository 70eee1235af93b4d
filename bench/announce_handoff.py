"""Position announcements never delay a ring: the hand-off time (an agent's call ends -> that
agent dialled for the next waiting caller) with announcements on against off, same run.

Load: --agents agents answered by one SIPp UAS, callers at --rate with 2 s conversations, a
little above what the agents can take, so that a short line forms and the caller at its head
has waited a few seconds: with announcements on (`announce: {first: 0, every: 20}`, so each
caller hears one as they join, about 5 s of Mandarin) that caller is often mid-prompt when an
agent frees up, and the engine's Redirect must cut the prompt off at once. Both conditions play
music; only the announcements differ. Order on, off, off, on (ABBA: a drift of Asterisk over the
run falls on both alike), --calls per phase.

Timed on Asterisk's clock (timestampevents=yes): the agent leg's Hangup -> the next DialBegin to
that agent. With the `dialplan` read class the watcher also sees whether the caller was in
Playback in the wait loop when the Redirect landed (Newexten): those hand-offs are reported on
their own, against all hand-offs with announcements off.

Run as root: python3 bench/announce_handoff.py [--agents 6 --calls 120 --rate 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ami_watch import MANAGER_USER, AmiWatch
from bench.rig import HTTP_PORT, METRICS_PORT, percentile, rig
from testbed import sipp
from testbed.configs import write_config

UAS_PORT = 6410
# The bench's observer also reads the dialplan class (Newexten) to see who was mid-prompt.
WATCHER = MANAGER_USER.replace("read = call,user,agent,agi", "read = call,user,agent,agi,dialplan")
QUEUE = {"wrapup": 0, "max_wait": 600, "music": "default"}
assert WATCHER != MANAGER_USER, "bench/ami_watch.py's observer changed: give it the dialplan class here"
ANNOUNCING = {**QUEUE, "announce": {"first": 0, "every": 20}}


def phase(watch: AmiWatch, n: int, rate: float, number: str) -> tuple[list[float], list[float], int]:
    watch.reset()
    run = sipp.callers(n, rate=rate, names=None, talk_ms=2000, number=number, limit=400)
    rc = run.wait(n / rate + 300)
    if rc != 0:
        print(f"  warning: SIPp exit {rc}, {run.stats()}; see {run.workdir}", flush=True)
    time.sleep(1)
    return list(watch.gaps), list(watch.cut_gaps), run.stats().successful


def line(name: str, gaps: list[float]) -> str:
    gaps = sorted(gaps)
    return (f"  {name:34s} n={len(gaps):4d}  p50 {percentile(gaps, 50):7.2f} ms  p90 {percentile(gaps, 90):7.2f} ms"
            f"  p99 {percentile(gaps, 99):7.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=6)
    ap.add_argument("--calls", type=int, default=120, help="calls per phase (4 phases)")
    ap.add_argument("--rate", type=float, default=3)
    args = ap.parse_args()
    with rig("announce_handoff", args.agents, UAS_PORT, ANNOUNCING, manager_user=WATCHER) as r:
        plain = write_config(r.workdir / "plain", agents=[str(1001 + i) for i in range(args.agents)], queue=QUEUE,
                             http_port=HTTP_PORT, metrics_port=METRICS_PORT)
        number = r.settings.queue.number or "12345"
        print(f"bench: {args.agents} agents, {args.calls} calls per phase at {args.rate:g}/s, 2 s calls; "
              "phases: announcements on, off, off, on", flush=True)
        on: list[float] = []
        off: list[float] = []
        cut: list[float] = []
        connected = {"on": 0, "off": 0}
        for name in ("on", "off", "off", "on"):
            with r.engine(None if name == "on" else plain):
                gaps, cut_gaps, ok = phase(r.watch, args.calls, args.rate, number)
            (on if name == "on" else off).extend(gaps)
            if name == "on":
                cut.extend(cut_gaps)
            connected[name] += ok
            print(f"  phase {name:3s}: {ok}/{args.calls} connected, {len(gaps)} hand-offs"
                  + (f", {len(cut_gaps)} of them mid-announcement" if name == "on" else ""), flush=True)
    print(line("announcements off: all hand-offs", off))
    print(line("announcements on: all hand-offs", on))
    print(line("on: agent freed mid-announcement", cut))
    if off and cut:
        for p in (50, 90, 99):
            print(f"  p{p} mid-announcement / off = {percentile(sorted(cut), p) / percentile(sorted(off), p):.3f}")
    else:
        print("  no hand-off happened mid-announcement: raise --rate (a longer line) or lower it (shorter waits)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
