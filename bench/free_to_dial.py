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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ami_watch import MANAGER_USER, AmiWatch
from bench.dispatch_latency import (
    APP_QUEUE_NUMBER,
    install_app_queue,
    percentile,
    remove_app_queue,
    wait_agents_available,
)
from config.loader import load
from cti import sipp
from cti.sandbox import Sandbox
from tests.integration.harness import password, write_config

UAS_PORT = 6400


def load_run(watch: AmiWatch, n: int, rate: float, number: str) -> tuple[list[float], int]:
    watch.reset()
    run = sipp.callers(n, rate=rate, names=None, talk_ms=2000, number=number, limit=400)
    run.wait(n / rate + 300)
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
    agent_ids = [str(1001 + i) for i in range(args.agents)]
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    config = write_config(tmp, agents=agent_ids, queue={"wrapup": 0, "max_wait": 600}, http_port=9119)
    settings = load(config)
    box = Sandbox()
    install_app_queue(box, agent_ids)
    box.up(settings, extra_manager_users=MANAGER_USER)
    box.rx("core reload")
    if "Running" not in box.rx("module show like app_queue").replace("Not Running", ""):
        box.rx("module load app_queue.so")
    watch = AmiWatch()
    creds = [(f"agent{a}", password(a)) for a in agent_ids]
    uas = sipp.agent_uas(UAS_PORT, answer_ms=100)
    try:
        sipp.register(creds, contact_port=UAS_PORT, timeout=60)
        print(f"bench: {args.agents} agents, {args.calls} calls at {args.rate:g}/s, 2 s calls (congested)", flush=True)
        engine = subprocess.Popen(
            [sys.executable, "-m", "cti.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "engine.log", "wb"),  # noqa: SIM115
        )
        try:
            wait_agents_available(settings.engine.http.port, args.agents)
            ours, ours_ok = load_run(watch, args.calls, args.rate, settings.queue.number or "12345")
        finally:
            engine.terminate()
            engine.wait(15)
        time.sleep(3)
        theirs, theirs_ok = load_run(watch, args.calls, args.rate, APP_QUEUE_NUMBER)
    finally:
        uas.stop()
        sipp.register(creds, contact_port=UAS_PORT, expires=0, timeout=60)
        watch.close()
        remove_app_queue(box)
    report("hotline", ours, ours_ok, args.calls)
    report("app_queue", theirs, theirs_ok, args.calls)
    print(f"  p99 hotline / app_queue = {percentile(ours, 99) / percentile(theirs, 99):.3f}; "
          f"hotline p99 / goal (20 ms) = {percentile(ours, 99) / 20:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
