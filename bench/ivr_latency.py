"""What the IVR (FastAGI) costs a caller: the time it adds before the queue join, and the
engine's FastAGI round trips under load. One Asterisk and one engine run, two phases.

Load: 60 registered agents answered by one SIPp UAS (as in dispatch_latency.py), so the
intake flow's wait check finds a free agent and goes on to the queue; with no agents the
estimated wait is infinite and every caller would be offered a callback first.

1. Ring -> queue join, on Asterisk's own event clock (timestampevents=yes), read by the
   passive AMI listener: the caller channel's Newchannel -> our UserEvent HotlineJoin.
     direct   12398, a number of queue main with no IVR: today's path (the baseline)
     IVR hop  12397, flow bench_hop: one enqueue node (queue main), so the FastAGI
              connection and the verdict's variables, nothing played, nothing answered
   Both at --hop-rate new calls/s each, at the same time (their calls interleave), with
   1 s conversations once an agent answers.
2. FastAGI round trips at --rate new calls/s through the shipped intake flow on 12345: the
   engine's histogram hotline_agi_round_trip_seconds (ANSWER and SET VARIABLE, the commands
   that play nothing), read from /metrics before and after the phase. The flow's two long
   prompts (welcome, intake-menu: ~17 s) are replaced by a 0.27 s fragment of the shipped
   prompts (zh/d-1) through prompts.override_dir, so each call spends ~3.6 s in the IVR (the
   menu waits 3 s for a key; the callers press none) and hangs up ~1 s after its join. The
   quantiles are interpolated within the histogram's buckets, so they are bucket-bound.
   For information, the same ring -> join for these calls, less the prompts and the key wait.

Beside the engine's figures, Asterisk's own (AGIExecStart -> AGIExecEnd, its clock): how
long it takes per command once the command has arrived, so that the rest of a round trip is
the socket and the engine; and where the IVR hop's time goes: ring -> its first command,
the commands, the last command -> the join. Asterisk's ANSWER waits for the caller's first
audio frame (up to 500 ms) before it replies: its round trips include the caller's media start.

Failures counted: SIPp failed calls, calls that never joined, IVR sessions that ended in
error (the caller went to the queue all the same) or hung up mid-flow, dropped FastAGI
connections. The sandbox's prompts are the shipped ones again at the end, and the run's
recordings (the agents answer, so Asterisk records) are removed.

Run as root: python3 -m bench.ivr_latency [--calls 200 --rate 20 --hop-calls 150 --hop-rate 10]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import shutil
import sys
import time
import wave
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rig import Rig, percentile, rig
from ivr.prompts import SHIPPED
from testbed import sipp
from testbed.configs import IVR_DEFAULTS, RECORDINGS

UAS_PORT = 6310
DIRECT = "12398"
HOP = "12397"
INTAKE = "12345"
SHORT_PROMPT = "d-1"  # the shortest shipped fragment (一, 0.27 s) stands in for the long prompts
REPLACED = ("welcome", "intake-menu")
TALK_MS = 1000  # phase 1: conversation once an agent answers
AFTER_JOIN_S = 1.0  # phase 2: the caller hangs up this long after the join (the IVR answered the call)
PROGRESS_S = 5.0

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def seconds_of(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def intake_ivr(workdir: Path) -> dict[str, Any]:
    """ivr.yaml: intake on 12345 with short prompts, bench_hop on 12397; 12398 has no flow."""
    override = workdir / "prompts"
    (override / "zh").mkdir(parents=True)
    for name in REPLACED:
        shutil.copyfile(SHIPPED / "zh" / f"{SHORT_PROMPT}.wav", override / "zh" / f"{name}.wav")
    flows = yaml.safe_load(IVR_DEFAULTS.read_text(encoding="utf-8"))["flows"]
    flows["bench_hop"] = {"start": "queue", "nodes": {"queue": {"type": "enqueue", "queue": "main"}}}
    return {"numbers": {INTAKE: "intake", HOP: "bench_hop"}, "flows": flows,
            "prompts": {"override_dir": str(override)}}


def menu_timeout() -> float:
    flows = yaml.safe_load(IVR_DEFAULTS.read_text(encoding="utf-8"))["flows"]
    return float(flows["intake"]["nodes"]["menu"]["timeout"])


# -- /metrics ----------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(r: Rig) -> Samples:
    out: Samples = {}
    for line in r.metrics().splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out[(m[1], frozenset(LABEL.findall(m[2] or "")))] = float(m[3])
    return out


def total(s: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in s.items() if n == name and want <= ls)


def trips(before: Samples, after: Samples) -> tuple[list[tuple[float, float]], float]:
    """The round-trip histogram between two scrapes: cumulative (upper bound, count), and the sum."""
    name = "hotline_agi_round_trip_seconds"
    bounds = sorted({float(dict(ls)["le"]) for (n, ls) in after if n == f"{name}_bucket"})
    buckets = [(le, total(after, f"{name}_bucket", le=_le(le)) - total(before, f"{name}_bucket", le=_le(le)))
               for le in bounds]
    return buckets, total(after, f"{name}_sum") - total(before, f"{name}_sum")


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(bound)


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> tuple[float, float, float]:
    """(estimate, bucket's lower bound, its upper bound), interpolated linearly within the
    bucket as Prometheus' histogram_quantile does. NaN with no observations."""
    count = buckets[-1][1] if buckets else 0
    if not count:
        return float("nan"), float("nan"), float("nan")
    target, lower, below = q * count, 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= target:
            if math.isinf(le):
                return lower, lower, le  # past the last bound: only "more than" is known
            share = (target - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (le - lower) * share, lower, le
        lower, below = le, cumulative
    return float("nan"), float("nan"), float("nan")


def trip_text(buckets: list[tuple[float, float]], q: float) -> str:
    est, lo, hi = bucket_quantile(buckets, q)
    if math.isnan(est):
        return f"{'-':>19s}"
    if math.isinf(hi):
        return f"  > {lo * 1000:g} ms (last bucket)"
    return f"{est * 1000:6.2f} ms ({lo * 1000:g}-{hi * 1000:g})"


# -- the calls ---------------------------------------------------------------------------------

def wait_all(r: Rig, runs: dict[str, sipp.SippRun], timeout: float) -> tuple[dict[str, sipp.SippStats], int]:
    """Wait for every run, with a progress line every few seconds; final stats per run, and
    the most IVR sessions live at those moments (/metrics is read only then: its collection
    holds the engine's interpreter lock, which would show in the round trips)."""
    deadline = time.monotonic() + timeout
    peak, shown = 0, time.monotonic()
    while any(run.running() for run in runs.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        if time.monotonic() - shown >= PROGRESS_S:
            shown = time.monotonic()
            with contextlib.suppress(OSError):
                peak = max(peak, int(total(scrape(r), "hotline_agi_sessions_active")))
            parts = [f"{name} {s.created} started, {s.current} on, {s.successful} ok, {s.failed} failed"
                     for name, s in ((n, run.stats()) for n, run in runs.items())]
            print(f"    ... {'; '.join(parts)}; {peak} IVR sessions live at most", flush=True)
    stats = {}
    for name, run in runs.items():
        try:
            rc = run.wait(max(1.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            print(f"  warning: {exc}", flush=True)
            rc = -1
        stats[name] = run.stats()
        if rc != 0:
            print(f"  warning: SIPp ({name}) exit {rc}, {stats[name]}", flush=True)
    time.sleep(1)  # the last events reach the listener
    return stats, peak


def row(name: str, lat: list[float], ok: int, n: int, rang: int) -> str:
    return (f"  {name:26s} {ok:4d}/{n:<4d} {len(lat):4d}/{rang:<4d} {percentile(lat, 50):9.2f} ms "
            f"{percentile(lat, 99):9.2f} ms {max(lat, default=float('nan')):9.2f} ms")


def split(r: Rig, number: str) -> tuple[list[float], list[float], list[float]]:
    """Per call to `number` that joined (ms, sorted): ring -> its first AGI command's start,
    that -> its last command's end, that -> the join."""
    w = r.watch
    ids = [k for k, n in w.dialled.items() if n == number and k in w.joins and k in w.agi_first and k in w.agi_last]
    return (sorted((w.agi_first[k] - w.rings[k]) * 1000 for k in ids),
            sorted((w.agi_last[k] - w.agi_first[k]) * 1000 for k in ids),
            sorted((w.joins[k] - w.agi_last[k]) * 1000 for k in ids))


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p):6.2f} ms" if values else f"{'-':>9s}"


def remove_recordings(calls: set[str]) -> int:
    """Remove the recordings of these calls (<dir>/YYYY/MM/DD/<Linkedid>.wav); how many."""
    removed = 0
    for path in RECORDINGS.rglob("*.wav"):
        if path.stem in calls:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def engine_trouble(r: Rig, limit: int = 5) -> list[str]:
    """The engine log's warnings and errors about the IVR, before the work directory goes."""
    try:
        lines = (r.workdir / "engine.log").read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ("error" in ln or "warning" in ln) and ("ivr" in ln or "agi" in ln)][:limit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="phase 2: calls through the intake flow (default 200)")
    ap.add_argument("--rate", type=float, default=20, help="phase 2: new calls per second (default 20)")
    ap.add_argument("--hop-calls", type=int, default=150,
                    help="phase 1: calls to each of the direct and the IVR hop number (default 150)")
    ap.add_argument("--hop-rate", type=float, default=10,
                    help="phase 1: new calls per second to each of the two numbers (default 10)")
    ap.add_argument("--agents", type=int, default=60, help="registered agents, one SIPp UAS (default 60)")
    args = ap.parse_args()

    short = seconds_of(SHIPPED / "zh" / f"{SHORT_PROMPT}.wav")
    in_ivr = len(REPLACED) * short + menu_timeout()  # what the intake flow plays and waits for, at the least
    queue = {"wrapup": 0, "ring_timeout": 15, "numbers": [{"number": DIRECT}, {"number": HOP}]}
    with rig("ivr_latency", args.agents, UAS_PORT, queue, ivr=intake_ivr) as r:
        print(f"bench: {args.agents} agents; phase 1: {args.hop_calls} calls each to {DIRECT} (direct) and "
              f"{HOP} (IVR hop) at {args.hop_rate:g}/s each; phase 2: {args.calls} calls to {INTAKE} (intake, "
              f"{in_ivr:.1f} s of prompts and key wait) at {args.rate:g}/s", flush=True)
        with r.engine():
            r.watch.reset()
            m0 = scrape(r)
            print("  phase 1: direct and IVR hop callers, interleaved", flush=True)
            runs = {
                "direct": sipp.callers(args.hop_calls, rate=args.hop_rate, names=None, talk_ms=TALK_MS,
                                       number=DIRECT, limit=200),
                "hop": sipp.callers(args.hop_calls, rate=args.hop_rate, names=None, talk_ms=TALK_MS,
                                    number=HOP, limit=200),
            }
            hop_stats, _ = wait_all(r, runs, args.hop_calls / args.hop_rate + 120)
            direct, hop = r.watch.ring_to_join_ms(DIRECT), r.watch.ring_to_join_ms(HOP)
            rang = {DIRECT: r.watch.rang(DIRECT), HOP: r.watch.rang(HOP)}
            hop_split = split(r, HOP)
            calls = set(r.watch.rings)  # Linkedids: the recordings' names
            asterisk = {"phase 1": {v: sorted(ms) for v, ms in r.watch.agi_ms.items()}}
            time.sleep(2)  # the last conversations end before phase 2
            m1 = scrape(r)

            print(f"  phase 2: intake callers at {args.rate:g}/s", flush=True)
            r.watch.reset()
            talk = round((in_ivr + AFTER_JOIN_S) * 1000)  # counted from the IVR's answer
            run = sipp.callers(args.calls, rate=args.rate, names=None, talk_ms=talk, number=INTAKE, limit=400)
            intake_stats, peak = wait_all(r, {"intake": run}, args.calls / args.rate + talk / 1000 + 120)
            intake = r.watch.ring_to_join_ms(INTAKE)
            rang[INTAKE] = r.watch.rang(INTAKE)
            asterisk["intake"] = {v: sorted(ms) for v, ms in r.watch.agi_ms.items()}
            calls |= set(r.watch.rings)
            time.sleep(1)
            m2 = scrape(r)
        trouble = engine_trouble(r)
    removed = remove_recordings(calls)

    hop_trips, hop_sum = trips(m0, m1)
    intake_trips, intake_sum = trips(m1, m2)

    def sessions(before: Samples, after: Samples, flow: str, end: str) -> int:
        name = "hotline_ivr_sessions_total"
        return int(total(after, name, flow=flow, end=end) - total(before, name, flow=flow, end=end))

    def dropped(before: Samples, after: Samples) -> int:
        name = "hotline_agi_connections_dropped_total"
        return int(total(after, name) - total(before, name))

    print("  ring -> queue join (Newchannel -> HotlineJoin, Asterisk's clock)", flush=True)
    print(f"  {'path':26s} {'connected':>9s} {'joined':>9s} {'p50':>12s} {'p99':>12s} {'max':>12s}", flush=True)
    print(row(f"direct ({DIRECT})", direct, hop_stats["direct"].successful, args.hop_calls, rang[DIRECT]), flush=True)
    print(row(f"IVR hop ({HOP})", hop, hop_stats["hop"].successful, args.hop_calls, rang[HOP]), flush=True)
    print(row(f"intake, short ({INTAKE})", intake, intake_stats["intake"].successful, args.calls, rang[INTAKE]),
          flush=True)
    p50_added = percentile(hop, 50) - percentile(direct, 50)
    p99_added = percentile(hop, 99) - percentile(direct, 99)
    ratio50 = percentile(hop, 50) / percentile(direct, 50)
    ratio99 = percentile(hop, 99) / percentile(direct, 99)
    overhead = [v - in_ivr * 1000 for v in intake]
    print(f"  intake beyond its {in_ivr * 1000:.0f} ms of prompts and key wait: p50 {percentile(overhead, 50):.1f} ms, "
          f"p99 {percentile(overhead, 99):.1f} ms (the whole flow, Asterisk's playback included)", flush=True)

    print("  FastAGI round trips (ANSWER, SET VARIABLE; engine -> Asterisk -> engine; bucket-bound)", flush=True)
    print(f"  {'phase':26s} {'commands':>8s} {'p50 (bucket)':>21s} {'p99 (bucket)':>21s} {'mean':>10s}", flush=True)
    for name, b, s in ((f"phase 1 (hop, {2 * args.hop_rate:g}/s)", hop_trips, hop_sum),
                       (f"intake at {args.rate:g}/s ({peak} live)", intake_trips, intake_sum)):
        n = int(b[-1][1]) if b else 0
        mean = f"{s / n * 1000:7.2f} ms" if n else "-"
        print(f"  {name:26s} {n:8d} {trip_text(b, 0.5):>21s} {trip_text(b, 0.99):>21s} {mean:>10s}", flush=True)

    print("  Asterisk's own time per command (AGIExecStart -> AGIExecEnd, its clock)", flush=True)
    print(f"  {'phase':26s} {'ANSWER':>8s} {'p50':>9s} {'p99':>9s} {'SET VAR':>8s} {'p50':>9s} {'p99':>9s}",
          flush=True)
    for name, verbs in asterisk.items():
        answer, setvar = verbs.get("ANSWER", []), verbs.get("SET VARIABLE", [])
        print(f"  {name:26s} {len(answer):8d} {ms(answer, 50)} {ms(answer, 99)} "
              f"{len(setvar):8d} {ms(setvar, 50)} {ms(setvar, 99)}", flush=True)
    first, commands, after = hop_split
    print(f"  IVR hop, where its time goes (p50 / p99, Asterisk's clock): ring -> first AGI command "
          f"{percentile(first, 50):.2f} / {percentile(first, 99):.2f} ms; the commands "
          f"{percentile(commands, 50):.2f} / {percentile(commands, 99):.2f} ms; last command -> join "
          f"{percentile(after, 50):.2f} / {percentile(after, 99):.2f} ms ({len(first)} calls)", flush=True)

    failed = (hop_stats["direct"].failed + hop_stats["hop"].failed + intake_stats["intake"].failed)
    errors = sessions(m0, m2, "intake", "error") + sessions(m0, m2, "bench_hop", "error")
    hung_up = sessions(m1, m2, "intake", "hung_up")
    no_join = sum(rang.values()) - len(direct) - len(hop) - len(intake)
    print(f"  IVR sessions: bench_hop {sessions(m0, m1, 'bench_hop', 'enqueue')} to the queue; intake "
          f"{sessions(m1, m2, 'intake', 'enqueue')} to the queue, {hung_up} hung up mid-flow; "
          f"{errors} ended in error; {dropped(m0, m2)} FastAGI connections dropped", flush=True)
    print(f"  failures: {failed} SIPp calls failed, {no_join} calls rang but never joined, {errors} IVR errors; "
          f"{removed} recordings of this run removed", flush=True)
    for line in trouble:
        print(f"  engine log: {line[:300]}", flush=True)
    print(f"  IVR hop adds p50 {p50_added:+.2f} ms, p99 {p99_added:+.2f} ms to ring->join (ratio hop/direct "
          f"p50 {ratio50:.2f}, p99 {ratio99:.2f}); FastAGI round trip at {args.rate:g} calls/s through intake: "
          f"p50 {trip_text(intake_trips, 0.5).strip()}, p99 {trip_text(intake_trips, 0.99).strip()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
