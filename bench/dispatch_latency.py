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
import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ami_watch import MANAGER_USER, AmiWatch
from config.loader import load
from cti import sipp
from cti.sandbox import Sandbox
from tests.integration.harness import password, write_config

APP_QUEUE_NUMBER = "12399"
UAS_PORT = 6300


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(p / 100 * len(values) + 0.5)))
    return values[rank - 1]


def install_app_queue(box: Sandbox, agent_ids: list[str]) -> None:
    etc = box.root / "etc/asterisk"
    members = "\n".join(f"member => PJSIP/agent{a}" for a in agent_ids)
    (etc / "queues.conf").write_text(
        "[general]\npersistentmembers = no\n\n[benchq]\nstrategy = leastrecent\ntimeout = 15\nretry = 1\n"
        f"wrapuptime = 0\nringinuse = no\nautopause = no\nautofill = yes\njoinempty = yes\n{members}\n"
    )
    (etc / "extensions_local.conf").write_text(
        f"[hotline-inbound](+)\nexten => {APP_QUEUE_NUMBER},1,Queue(benchq,r)\n same => n,Hangup()\n"
    )


def remove_app_queue(box: Sandbox) -> None:
    for name in ("queues.conf", "extensions_local.conf"):
        (box.root / "etc/asterisk" / name).unlink(missing_ok=True)
    box.rx("core reload")


def wait_agents_available(port: int, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            text = ""
        if f'hotline_agents{{state="available"}} {float(n)}' in text:
            return
        time.sleep(0.2)
    raise SystemExit(f"the engine did not see {n} available agents within {timeout:.0f} s")


def dispatch_buckets(port: int) -> str:
    """The engine's own share (AMI event read -> Redirect written) from its histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets = []
    for line in text.splitlines():
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
        print(f"  warning: SIPp exit {rc}, {stats}", flush=True)
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

    agent_ids = [str(1001 + i) for i in range(args.agents)]
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    config = write_config(tmp, agents=agent_ids, queue={"wrapup": 0, "ring_timeout": 15}, http_port=9119)
    settings = load(config)
    box = Sandbox()
    install_app_queue(box, agent_ids)
    box.up(settings, extra_manager_users=MANAGER_USER)
    box.rx("core reload")
    # app_queue declines to load while there is no queues.conf, and a reload does not retry it.
    if "Running" not in box.rx("module show like app_queue").replace("Not Running", ""):
        with contextlib.suppress(Exception):
            box.rx("module unload app_queue.so")
        box.rx("module load app_queue.so")
    watch = AmiWatch()
    creds = [(f"agent{a}", password(a)) for a in agent_ids]
    uas = sipp.agent_uas(UAS_PORT, answer_ms=100)
    try:
        sipp.register(creds, contact_port=UAS_PORT, timeout=60)
        print(f"bench: {args.agents} agents, {args.calls} calls at {args.rate:g}/s, 2 s calls", flush=True)

        # The engine runs as its own process, as in production (in this process it would
        # share the GIL with the AMI listener and wait for it in 5 ms slices).
        engine = subprocess.Popen(
            [sys.executable, "-m", "cti.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "engine.log", "wb"),  # noqa: SIM115
        )
        try:
            wait_agents_available(settings.engine.http.port, args.agents)
            ours, ours_ok = run_load(watch, args.calls, args.rate, settings.queue.number)
            engine_share = dispatch_buckets(settings.engine.http.port)
        finally:
            engine.terminate()
            engine.wait(15)
        time.sleep(3)
        theirs, theirs_ok = run_load(watch, args.calls, args.rate, APP_QUEUE_NUMBER)
    finally:
        uas.stop()
        sipp.register(creds, contact_port=UAS_PORT, expires=0, timeout=60)
        watch.close()
        remove_app_queue(box)

    report("hotline", ours, ours_ok, args.calls)
    report("app_queue", theirs, theirs_ok, args.calls)
    ratio = percentile(ours, 99) / percentile(theirs, 99)
    print(f"  hotline's own share (event read -> Redirect written): {engine_share}", flush=True)
    print(f"  p99 ratio hotline/app_queue = {ratio:.2f} (goal <= 1.5)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
