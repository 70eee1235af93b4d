"""The planner's Erlang A answer rate against the real engine.

One queue of N agents (no wrap-up, no IVR, short_abandon 0 so every hang-up before an answer
counts, max_wait 20 minutes so nobody times out) on the sandbox Asterisk with our engine as its
own process. Citizens call at random (testbed/random_callers.py): a Poisson stream of rate λ
drawn by this bench with --seed, each call with an exponential talk time (mean h) and an
exponential patience (mean 1/θ), each its own SIPp with a scenario written for it. The agents
are the rig's one SIPp UAS, answering every ring after 100 ms.

Measured: the answer rate as the ENGINE counts it (its call records through metrics/kpi.py,
matched to the plan by caller number; the /metrics counters over the whole run must give the
same totals), over the calls after a warm-up (the queue fills from empty) and before a
cool-down (the last calls). Its 95% confidence interval is by batch means over consecutive
blocks of calls: queue outcomes of neighbouring callers are correlated, so a binomial interval
would be too narrow (shown beside it).

Predicted: planner.erlang's Erlang A for (λ, h_eff, N, θ). An agent is held longer than the
talk: h_eff = h + (ring + the rest of the leg beyond the talk: the answer delay, SIP and the
bridge, measured per answered leg on Asterisk's clock) + (the engine's hand-off: an agent's leg
hung up -> the engine sees it free -> its next ring, measured while callers were waiting).
Also shown: the same model with the measured latencies, simulated (the ring window: a caller
whose patience ends in the ~0.1 s from INVITE to answer hangs up even with an agent ringing);
a replay of these very callers through an ideal FCFS queue (without and with the measured
latencies: what the same random draws give without the engine), and the engine's difference
from it call by call; and Erlang C for reference.

Run as root: python3 bench/erlang_engine.py [--agents 4 --aht 4 --rate 0.9 --patience 6
             --calls 660 --warmup 40 --cooldown 20 --seed 1 --json]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from bench.ami_watch import BENCH_SECRET, BENCH_USER
from bench.rig import Rig, percentile, rig
from metrics import kpi
from planner.erlang import Load, erlang_a, erlang_c
from testbed.blocking_ami import BlockingAmi
from testbed.lock import SandboxLock
from testbed.random_callers import PlannedCall, RandomCallers, index_of, plan_calls
from testbed.sandbox import Sandbox
from tickets.store import read_records

UAS_PORT = 6310
QUEUE = {"wrapup": 0, "ring_timeout": 15, "max_wait": 1200, "short_abandon": 0}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- Asterisk's events, per call and per agent leg ------------------------------------------


@dataclass
class Leg:
    channel: str  # PJSIP/agent1001-0000002a
    agent: str  # PJSIP/agent1001
    linkedid: str
    begin: float  # DialBegin
    end: float | None = None  # DialEnd
    status: str = ""
    hangup: float | None = None


@dataclass
class Trace:
    linkedid: str = ""
    number: str = ""
    new: float | None = None  # the caller channel's Newchannel: the INVITE reached Asterisk
    join: float | None = None  # HotlineJoin: in the queue
    dial: float | None = None  # first DialBegin to an agent
    answer: float | None = None  # DialEnd ANSWER
    leg: Leg | None = None  # the answered leg
    hangup: float | None = None  # the caller channel's Hangup


@dataclass
class Tracer:
    """A passive AMI listener: every call's and every agent leg's moments, on Asterisk's clock."""

    calls: dict[str, Trace] = field(default_factory=dict)
    legs: dict[str, Leg] = field(default_factory=dict)  # by agent channel name

    def __post_init__(self) -> None:
        self._ami = BlockingAmi("127.0.0.1", 5038, BENCH_USER, BENCH_SECRET)
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                messages = self._ami.read(0.5)
            except OSError:
                return
            if messages is None:
                return
            with self._lock:
                for msg in messages:
                    self._on(msg)

    def _on(self, msg: Any) -> None:
        name, linkedid, stamp = msg.get("Event"), msg.get("Linkedid"), msg.get("Timestamp")
        if not (name and linkedid and stamp):
            return
        t = float(stamp)
        if name == "Newchannel" and msg.get("Uniqueid") == linkedid:
            self.calls[linkedid] = Trace(linkedid, str(msg.get("CallerIDNum", "")), new=t)
            return
        call = self.calls.get(linkedid)
        if call is None:
            return
        dest = str(msg.get("DestChannel", ""))
        if name == "UserEvent" and msg.get("UserEvent") == "HotlineJoin":
            call.join = call.join or t
        elif name == "DialBegin" and dest.startswith("PJSIP/agent"):
            self.legs[dest] = Leg(dest, dest.split("-", 1)[0], linkedid, t)
            call.dial = call.dial or t
        elif name == "DialEnd" and dest in self.legs:
            leg = self.legs[dest]
            leg.end, leg.status = t, str(msg.get("DialStatus", ""))
            if leg.status == "ANSWER":
                call.answer, call.leg = t, leg
        elif name == "Hangup":
            channel = str(msg.get("Channel", ""))
            if channel in self.legs:
                self.legs[channel].hangup = t
            elif msg.get("Uniqueid") == linkedid:
                call.hangup = t

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._ami.close()

    def by_index(self) -> dict[int, Trace]:
        with self._lock:
            out: dict[int, Trace] = {}
            for trace in self.calls.values():
                i = index_of(trace.number)
                if i is not None:
                    out[i] = trace
            return out

    def all_legs(self) -> list[Leg]:
        with self._lock:
            return list(self.legs.values())


# ---- Statistics -------------------------------------------------------------------------------


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile by bisection on its CDF (Simpson's rule on the density): no SciPy here."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        s = density(0) + density(x) + sum((4 if k % 2 else 2) * density(k * h) for k in range(1, steps))
        return 0.5 + s * h / 3

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def batch_means(outcomes: list[bool], batches: int) -> dict[str, Any]:
    """The rate over all, and its 95% interval from the spread of the rates of `batches`
    consecutive blocks (sizes differing by at most one)."""
    n = len(outcomes)
    bounds = [round(k * n / batches) for k in range(batches + 1)]
    rates = [sum(outcomes[a:b]) / (b - a) for a, b in itertools.pairwise(bounds) if b > a]
    rate = sum(outcomes) / n
    half = t_quantile(0.975, len(rates) - 1) * statistics.stdev(rates) / math.sqrt(len(rates))
    binomial = 1.96 * math.sqrt(rate * (1 - rate) / n)
    # Lag-1 correlation of the batch rates: near 0 when the blocks are long enough to be independent.
    mean = statistics.fmean(rates)
    var = sum((r - mean) ** 2 for r in rates)
    lag1 = sum((a - mean) * (b - mean) for a, b in itertools.pairwise(rates)) / var if var else 0.0
    return {"rate": rate, "ci": [rate - half, rate + half], "half_width": half, "batches": len(rates),
            "batch_size": n / len(rates), "binomial_half_width": binomial, "batch_lag1_corr": lag1}


def paired_difference(engine: list[bool], model: list[bool], batches: int) -> dict[str, Any]:
    """engine - model answer rate over the same calls, with its batch-means 95% interval."""
    d = [int(x) - int(y) for x, y in zip(engine, model, strict=True)]
    n = len(d)
    bounds = [round(k * n / batches) for k in range(batches + 1)]
    rates = [sum(d[a:b]) / (b - a) for a, b in itertools.pairwise(bounds) if b > a]
    half = t_quantile(0.975, len(rates) - 1) * statistics.stdev(rates) / math.sqrt(len(rates))
    diff = sum(d) / n
    return {"difference": diff, "ci": [diff - half, diff + half], "half_width": half}


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- The ideal queue, fed the same callers ---------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Seconds. pre: INVITE -> in the queue; dispatch: in the queue, an agent free -> its ring;
    ring: its ring -> the answer; extra: the answered leg beyond the talk (ring included);
    post: the leg hung up -> the engine may ring the agent again (hand-off minus dispatch)."""

    pre: float = 0.0
    dispatch: float = 0.0
    ring: float = 0.0
    extra: float = 0.0
    post: float = 0.0


def replay(arrivals: list[float], calls: list[PlannedCall], agents: int, lat: Latency) -> list[bool]:
    """Answered or not, per call, in an ideal FCFS queue of `agents`: what Erlang A's model does
    with exactly these arrival times, talk times and patiences (with all latencies 0), or with the
    engine's measured latencies. FCFS makes it exact in one pass: a caller's fate depends only on
    those before it. A caller whose patience ends during its ring hangs up and frees the agent."""
    free = [0.0] * agents  # when each agent may be rung next
    heapq.heapify(free)
    out: list[bool] = []
    for t, call in zip(arrivals, calls, strict=True):
        deadline = t + call.patience_ms / 1000
        start = max(t + lat.pre, free[0])
        dial = start + lat.dispatch
        if dial >= deadline:  # gone before an agent was rung: holds nobody
            out.append(False)
            continue
        heapq.heappop(free)
        if dial + lat.ring < deadline:
            heapq.heappush(free, dial + lat.extra + call.talk_ms / 1000 + lat.post)
            out.append(True)
        else:
            heapq.heappush(free, deadline + lat.post)
            out.append(False)
    return out


# ---- The run -----------------------------------------------------------------------------------


def counters(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("hotline_calls_offered_total", "hotline_calls_answered_total",
                               "hotline_calls_abandoned_total", "hotline_calls_timed_out_total",
                               "hotline_store_pending_records"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def wait_for_sandbox(limit: float) -> None:
    """Block until nobody holds the sandbox (the lock serialises us with other users)."""
    box = Sandbox()
    lock = SandboxLock(box.lock_dir)
    deadline, told = time.monotonic() + limit, 0.0
    while lock.locked() or box.pid() is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench erlang_engine: the sandbox stayed busy for {limit:.0f} s: {box.status()}")
        if time.monotonic() - told > 300:
            owner = lock.read_owner()
            say(f"bench: waiting for the sandbox ({owner.describe() if owner else 'Asterisk running'})")
            told = time.monotonic()
        time.sleep(10)


@dataclass(frozen=True)
class Rec:
    """What the analysis needs of a call record (a kpi.RecordLike)."""

    caller_num: str
    queue: str
    offered_queue: str
    outcome: str
    wait_seconds: float
    service_level: float
    short_abandon: float


@dataclass
class RunResult:
    t0: float
    placed: int
    sipp_failed: list[str]
    traces: dict[int, Trace]
    legs: list[Leg]
    records: dict[int, Rec]
    live: dict[str, float]  # counter deltas over the run
    stored: kpi.Totals  # the same calls from the store
    seconds: float

    def to_json(self) -> dict[str, Any]:
        traces = {i: {**{k: v for k, v in asdict(t).items() if k != "leg"}, "leg": t.leg.channel if t.leg else None}
                  for i, t in self.traces.items()}
        return {"t0": self.t0, "placed": self.placed, "sipp_failed": self.sipp_failed, "traces": traces,
                "legs": [asdict(g) for g in self.legs], "records": {i: asdict(r) for i, r in self.records.items()},
                "live": self.live, "stored": asdict(self.stored), "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunResult:
        legs = [Leg(**g) for g in d["legs"]]
        by_channel = {g.channel: g for g in legs}
        traces = {int(i): Trace(**{**t, "leg": by_channel.get(t["leg"]) if t["leg"] else None})
                  for i, t in d["traces"].items()}
        return cls(d["t0"], d["placed"], d["sipp_failed"], traces, legs,
                   {int(i): Rec(**r) for i, r in d["records"].items()}, d["live"], kpi.Totals(**d["stored"]),
                   d["seconds"])


def run_calls(r: Rig, calls: list[PlannedCall], tracer: Tracer) -> RunResult:
    number = r.settings.queue.number or "12345"
    before = counters(r.metrics())
    callers = RandomCallers(calls, number=number)
    started = time.monotonic()
    callers.start()
    assert callers.t0 is not None
    try:
        last = calls[-1]
        limit = last.at + (last.patience_ms + last.talk_ms) / 1000 + callers.overrun + 60
        while not callers.wait(30):
            placed, running, bad = callers.counts()
            c = counters(r.metrics())
            say(f"  {time.monotonic() - started:5.0f} s: {placed}/{len(calls)} calls placed, {running} SIPp running, "
                f"{bad} failed; engine: offered {c.get('hotline_calls_offered_total', 0):.0f}, "
                f"answered {c.get('hotline_calls_answered_total', 0):.0f}")
            if time.monotonic() - started > limit:
                raise SystemExit(f"bench erlang_engine: the calls did not end within {limit:.0f} s")
    finally:
        callers.stop()
    failed = [f"call {p.call.index}: " + (p.error or f"SIPp exit {p.returncode}" + (" (stuck, stopped)" if p.overran
              else "") + (f", see {p.run.workdir}" if p.run else "")) for p in callers.placed
              if p.run is None or p.returncode != 0]
    # Every record in the store and the counters settled: the last hang-ups are a few ms old.
    deadline = time.monotonic() + 30
    while True:
        after = counters(r.metrics())
        rows = read_records(create_engine(r.settings.engine.store.url))
        if (after.get("hotline_store_pending_records", 0) == 0
                and len(rows) >= after.get("hotline_calls_offered_total", 0)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    records = {i: Rec(row.caller_num, row.queue, row.offered_queue, row.outcome, row.wait_seconds,
                      row.service_level, row.short_abandon)
               for row in rows if (i := index_of(row.caller_num)) is not None}
    live = {k: after.get(k, 0) - before.get(k, 0) for k in after if k.endswith("_total")}
    return RunResult(callers.t0, len(callers.placed), failed, tracer.by_index(), tracer.all_legs(), records,
                     live, kpi.totals(rows), time.monotonic() - started)


# ---- Analysis ------------------------------------------------------------------------------------


def analyse(args: argparse.Namespace, calls: list[PlannedCall], res: RunResult) -> dict[str, Any]:
    n_agents, h, rate, patience = args.agents, args.aht, args.rate, args.patience
    theta = 1 / patience
    measured = calls[args.warmup: len(calls) - args.cooldown]
    missing = [c.index for c in calls if c.index not in res.records]
    if missing:
        raise SystemExit(f"bench erlang_engine: {len(missing)} calls have no call record "
                         f"(first: {missing[:5]}); SIPp failures: {res.sipp_failed[:5]}")
    rows = [res.records[c.index] for c in measured]
    totals = kpi.totals(rows)
    outcomes = [kpi.is_answered(row.outcome) for row in rows]
    other = {row.outcome for row in rows} - {"answered", "abandoned"}

    # Latencies, on Asterisk's clock.
    tr = res.traces
    pre = [t.join - t.new for t in tr.values() if t.join and t.new]
    ring = [t.answer - t.leg.begin for t in tr.values() if t.answer and t.leg]
    extra = [t.leg.hangup - t.leg.begin - calls[i].talk_ms / 1000 for i, t in tr.items()
             if t.leg and t.leg.hangup]

    def busy_at(x: float) -> int:
        return sum(1 for leg in res.legs if leg.begin <= x < (leg.hangup or math.inf))

    by_agent: dict[str, list[Leg]] = {}
    for leg in sorted(res.legs, key=lambda g: g.begin):
        by_agent.setdefault(leg.agent, []).append(leg)
    # Hand-off: an agent's leg hung up while the caller of its next leg was already in the queue.
    joined = {t.linkedid: t.join for t in tr.values()}
    handoff = [nxt.begin - prev.hangup for legs in by_agent.values() for prev, nxt in itertools.pairwise(legs)
               if prev.hangup is not None and (joined.get(nxt.linkedid) or math.inf) < prev.hangup]
    dispatch = [t.dial - t.join for t in tr.values() if t.dial and t.join and busy_at(t.join) < n_agents]
    lat = Latency(pre=mean(pre), dispatch=median(dispatch), ring=mean(ring), extra=mean(extra),
                  post=max(0.0, mean(handoff) - median(dispatch)))
    h_eff = h + lat.extra + mean(handoff)
    # SIPp's own timing, against the plan: arrival lag, patience and talk as Asterisk saw them.
    lag = [t.new - (res.t0 + calls[i].at) for i, t in tr.items() if t.new]
    rec = res.records
    patience_err = [t.hangup - t.new - calls[i].patience_ms / 1000 for i, t in tr.items()
                    if t.hangup and t.new and i in rec and rec[i].outcome == "abandoned"]
    talk_err = [t.hangup - t.answer - calls[i].talk_ms / 1000 for i, t in tr.items() if t.hangup and t.answer]
    ami_disagree = [i for i in (c.index for c in measured)
                    if (tr.get(i) is not None and tr[i].answer is not None) != kpi.is_answered(rec[i].outcome)]

    # Predictions.
    load = Load(calls_per_hour=rate * 3600, aht=h_eff, patience=patience)
    fig_a = erlang_a(load, n_agents, short_abandon=0.0)
    fig_a_nominal = erlang_a(Load(rate * 3600, h, patience), n_agents, short_abandon=0.0)
    fig_c = erlang_c(load, n_agents)
    # The same model with the engine's latencies, by simulation on fresh draws (no sampling noise
    # to speak of): the ring window (a caller whose patience ends in the ~0.1 s from INVITE to
    # answer hangs up with an agent ringing) on top of h_eff.
    synthetic = plan_calls(args.model_calls, rate, h, patience, f"{args.seed}:model")
    sim = replay([c.at for c in synthetic], synthetic, n_agents, lat)[len(synthetic) // 20:]
    with_latencies = sum(sim) / len(sim)
    naive_c = None
    if fig_c.stable:
        assert fig_c.p_wait is not None
        # The share whose patience would outlast an Erlang C wait (exponential, rate (N - A)μ).
        naive_c = 1 - fig_c.p_wait * theta / ((n_agents - load.erlangs) / h_eff + theta)

    # The same callers through an ideal queue (arrival = the INVITE as Asterisk saw it).
    arrivals = [tr[c.index].new or (res.t0 + c.at) if c.index in tr else res.t0 + c.at for c in calls]
    window = slice(args.warmup, len(calls) - args.cooldown)
    ideal = replay(arrivals, calls, n_agents, Latency())[window]
    ideal_lat = replay(arrivals, calls, n_agents, lat)[window]

    bm = batch_means(outcomes, args.batches)
    # Paired with the replay of the same callers: the random draws cancel, what is left is the
    # engine's own doing (per call +1 answered only by the engine, -1 only by the ideal queue).
    paired = paired_difference(outcomes, ideal_lat, args.batches)
    diff = bm["rate"] - fig_a.answer_rate
    span = [calls[args.warmup].at, calls[len(calls) - args.cooldown - 1].at]
    talks = [c.talk_ms / 1000 for c in measured]
    pats = [c.patience_ms / 1000 for c in measured]
    return {
        "parameters": {"agents": n_agents, "aht": h, "rate": rate, "patience": patience, "seed": args.seed,
                       "calls": len(calls), "warmup": args.warmup, "cooldown": args.cooldown,
                       "offered_erlangs": rate * h},
        "run": {"seconds": res.seconds, "calls_placed": res.placed, "sipp_failed": res.sipp_failed,
                "measured_window_s": span, "measured_calls": len(measured),
                "drawn_means": {"interarrival": (span[1] - span[0]) / max(1, len(measured) - 1),
                                "talk": mean(talks), "patience": mean(pats)}},
        "engine": {"offered": totals.offered, "answered": totals.answered, "abandoned": totals.abandoned,
                   "other_outcomes": sorted(other), "answer_rate": bm["rate"], "ci95": bm["ci"],
                   "ci_half_width": bm["half_width"], "batches": bm["batches"], "batch_size": bm["batch_size"],
                   "batch_lag1_corr": bm["batch_lag1_corr"], "binomial_half_width": bm["binomial_half_width"],
                   "whole_run_counters": res.live,
                   "whole_run_records": {"offered": res.stored.offered, "answered": res.stored.answered,
                                         "abandoned": res.stored.abandoned},
                   "counters_match_records": (res.live.get("hotline_calls_offered_total") == res.stored.offered
                                              and res.live.get("hotline_calls_answered_total") == res.stored.answered),
                   "ami_disagreements": ami_disagree},
        "latency_ms": {"invite_to_queue": 1000 * lat.pre, "dispatch_idle_agent_median": 1000 * lat.dispatch,
                       "ring": 1000 * lat.ring, "leg_beyond_talk": 1000 * lat.extra,
                       "handoff_mean": 1000 * mean(handoff), "handoff_p50": 1000 * median(handoff),
                       "handoff_p99": 1000 * percentile(sorted(handoff), 99), "handoffs": len(handoff),
                       "sipp_start_lag_p50": 1000 * median(lag),
                       "sipp_start_lag_p99": 1000 * percentile(sorted(lag), 99),
                       "patience_error_p50": 1000 * median(patience_err),
                       "patience_error_p99": 1000 * percentile(sorted(patience_err), 99),
                       "talk_error_p50": 1000 * median(talk_err),
                       "talk_error_p99": 1000 * percentile(sorted(talk_err), 99)},
        "prediction": {"h_eff": h_eff, "erlang_a_answer_rate": fig_a.answer_rate,
                       "erlang_a_answer_rate_nominal_h": fig_a_nominal.answer_rate,
                       "erlang_a_p_wait": fig_a.p_wait, "erlang_a_asa_answered": fig_a.asa_answered,
                       "model_with_latencies": with_latencies, "model_with_latencies_calls": len(sim),
                       "replay_ideal": sum(ideal) / len(ideal),
                       "replay_with_latencies": sum(ideal_lat) / len(ideal_lat),
                       "replay_same_outcome_share": sum(a == b for a, b in zip(ideal_lat, outcomes, strict=True))
                       / len(outcomes),
                       "erlang_c": {"stable": fig_c.stable, "p_wait": fig_c.p_wait, "asa": fig_c.asa,
                                    "answer_rate_if_waits_met_patience": naive_c}},
        "difference_pp": 100 * diff,
        "difference_with_latencies_pp": 100 * (bm["rate"] - with_latencies),
        "engine_minus_replay_pp": {"difference": 100 * paired["difference"],
                                   "ci95": [100 * x for x in paired["ci"]]},
        "agrees_within_3pp": abs(diff) <= 0.03,
        "agrees_with_latencies_within_3pp": abs(bm["rate"] - with_latencies) <= 0.03,
    }


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def report(out: dict[str, Any]) -> None:
    p, run, e, lat, pr = out["parameters"], out["run"], out["engine"], out["latency_ms"], out["prediction"]
    c = pr["erlang_c"]
    dm = run["drawn_means"]
    lo, hi = e["ci95"]
    print(f"erlang_engine: N={p['agents']} agents, h={p['aht']:g} s, λ={p['rate']:g}/s "
          f"(A={p['offered_erlangs']:.2f} erl), mean patience {p['patience']:g} s, seed {p['seed']}")
    print(f"  calls placed {run['calls_placed']} in {run['seconds']:.0f} s; measured {run['measured_calls']} "
          f"(first {p['warmup']} dropped as warm-up, last {p['cooldown']} as cool-down); "
          f"SIPp failures {len(run['sipp_failed'])}")
    print(f"  drawn over the measured calls: mean gap {dm['interarrival']:.3f} s, talk {dm['talk']:.2f} s, "
          f"patience {dm['patience']:.2f} s")
    print(f"  engine: offered {e['offered']}, answered {e['answered']}, abandoned {e['abandoned']}"
          + (f", other {e['other_outcomes']}" if e["other_outcomes"] else ""))
    print(f"  engine answer rate {pct(e['answer_rate'])}, 95% CI [{pct(lo)}, {pct(hi)}] (batch means, "
          f"{e['batches']} blocks of ~{e['batch_size']:.0f} consecutive calls, lag-1 corr {e['batch_lag1_corr']:+.2f}; "
          f"binomial would say ±{100 * e['binomial_half_width']:.2f} pp)")
    wr = e["whole_run_counters"]
    print(f"  whole run: /metrics offered {wr.get('hotline_calls_offered_total', 0):.0f} answered "
          f"{wr.get('hotline_calls_answered_total', 0):.0f}; records offered {e['whole_run_records']['offered']} "
          f"answered {e['whole_run_records']['answered']} ({'same' if e['counters_match_records'] else 'DIFFERENT'}); "
          f"engine vs Asterisk's DialEnd per call: {len(e['ami_disagreements'])} disagree")
    print(f"  latencies (Asterisk's clock): INVITE->queue {lat['invite_to_queue']:.1f} ms, dispatch to an idle agent "
          f"{lat['dispatch_idle_agent_median']:.1f} ms, ring {lat['ring']:.1f} ms, leg beyond the talk "
          f"{lat['leg_beyond_talk']:.1f} ms, hand-off {lat['handoff_mean']:.1f} ms mean / "
          f"{lat['handoff_p50']:.1f} p50 / {lat['handoff_p99']:.1f} p99 ({lat['handoffs']} with callers waiting)")
    print(f"  SIPp timing: start lag p50 {lat['sipp_start_lag_p50']:.1f} ms p99 {lat['sipp_start_lag_p99']:.1f}; "
          f"patience as seen by Asterisk minus plan p50 {lat['patience_error_p50']:+.1f} ms p99 "
          f"{lat['patience_error_p99']:+.1f}; talk minus plan p50 {lat['talk_error_p50']:+.1f} ms p99 "
          f"{lat['talk_error_p99']:+.1f}")
    print(f"  h_eff = {p['aht']:g} + {lat['leg_beyond_talk'] / 1000:.3f} (leg beyond talk: ring/answer delay) + "
          f"{lat['handoff_mean'] / 1000:.3f} (hand-off) = {pr['h_eff']:.3f} s")
    print(f"  Erlang A (λ, h_eff, N, θ) answer rate {pct(pr['erlang_a_answer_rate'])} "
          f"(P(wait) {pct(pr['erlang_a_p_wait'])}, ASA answered {pr['erlang_a_asa_answered']:.2f} s; "
          f"with h itself: {pct(pr['erlang_a_answer_rate_nominal_h'])})")
    print(f"  difference engine - Erlang A: {out['difference_pp']:+.2f} pp -> "
          f"{'AGREES' if out['agrees_within_3pp'] else 'DOES NOT agree'} within 3 pp")
    print(f"  the same model with the measured latencies (ring window included; simulated, "
          f"{pr['model_with_latencies_calls']} calls): {pct(pr['model_with_latencies'])}, "
          f"difference {out['difference_with_latencies_pp']:+.2f} pp")
    print(f"  same callers, ideal FCFS queue: {pct(pr['replay_ideal'])} without latencies, "
          f"{pct(pr['replay_with_latencies'])} with the measured ones "
          f"(same outcome as the engine for {pct(pr['replay_same_outcome_share'])} of the calls)")
    d = out["engine_minus_replay_pp"]
    print(f"  engine - that replay, call by call: {d['difference']:+.2f} pp, 95% CI [{d['ci95'][0]:+.2f}, "
          f"{d['ci95'][1]:+.2f}] (the draws cancel: what is left is the engine's own doing)")
    if c["stable"]:
        print(f"  Erlang C (nobody hangs up; reference): P(wait) {pct(c['p_wait'])}, ASA {c['asa']:.1f} s; "
              f"answered if its waits met the same patience {pct(c['answer_rate_if_waits_met_patience'])}")
    else:
        print("  Erlang C (reference): unstable at this load (A >= N): every caller would wait for ever")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--aht", type=float, default=4.0, help="mean talk time h, seconds (exponential)")
    ap.add_argument("--rate", type=float, default=0.9, help="λ, calls per second (Poisson)")
    ap.add_argument("--patience", type=float, default=6.0, help="mean patience 1/θ, seconds (exponential)")
    ap.add_argument("--calls", type=int, default=660, help="calls placed, warm-up and cool-down included")
    ap.add_argument("--warmup", type=int, default=40, help="first calls left out (the queue fills from empty)")
    ap.add_argument("--cooldown", type=int, default=20, help="last calls left out")
    ap.add_argument("--batches", type=int, default=20, help="blocks of consecutive calls for the batch-means CI")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--model-calls", type=int, default=200_000,
                    help="calls simulated for the model with the measured latencies")
    ap.add_argument("--lock-wait", type=float, default=3 * 3600, help="seconds to wait for the sandbox")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    ap.add_argument("--save", type=Path, help="also write the run's raw events and records here (JSON)")
    ap.add_argument("--load", type=Path, help="analyse a run written by --save instead of running one "
                    "(give the same parameters)")
    args = ap.parse_args()
    if args.calls - args.warmup - args.cooldown < 2 * args.batches:
        ap.error("too few measured calls for the batches")

    calls = plan_calls(args.calls, args.rate, args.aht, args.patience, args.seed)
    say(f"bench: {args.calls} calls over ~{calls[-1].at:.0f} s, N={args.agents}, h={args.aht:g} s, "
        f"λ={args.rate:g}/s, patience {args.patience:g} s")
    if args.load:
        result = RunResult.from_json(json.loads(args.load.read_text(encoding="utf-8")))
    else:
        result = run(args, calls)
        if args.save:
            args.save.write_text(json.dumps(result.to_json()), encoding="utf-8")
    out = analyse(args, calls, result)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        report(out)
    return 0 if out["agrees_within_3pp"] else 1


def run(args: argparse.Namespace, calls: list[PlannedCall]) -> RunResult:
    wait_for_sandbox(args.lock_wait)
    # The rig reports on stdout; with --json stdout carries the JSON alone.
    with (contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout),
          rig("erlang_engine", args.agents, UAS_PORT, QUEUE) as r):
        tracer = Tracer()
        try:
            with r.engine():
                result = run_calls(r, calls, tracer)
        finally:
            with contextlib.suppress(OSError):
                tracer.close()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
