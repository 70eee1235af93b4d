"""A discrete-event check of the Erlang A figures, with ciw (MIT; https://ciw.readthedocs.io):
Poisson arrivals, exponential service and patience (ciw's reneging), N agents, FCFS, seeded.

The formulas and the simulation share the model, not the code: if they agree, the formulas were
implemented right; neither says whether real callers are Poisson and exponentially patient.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import ciw  # type: ignore[import-untyped]

from planner.erlang import MAX_AGENTS, Load, PlanError

# Batch means: the counted calls, in arrival order, cut into BATCHES equal runs. A run of
# thousands of calls spans many busy periods, so the runs' rates are close to independent and the
# Student t interval over them is honest where a binomial one (calls are not independent) is not.
BATCHES = 20
T_975_19 = 2.093  # Student t, 97.5 % quantile, 19 degrees of freedom


@dataclass(frozen=True, slots=True)
class Simulated:
    """What the simulated callers got; rates are shares of offered calls unless named otherwise."""

    agents: int
    customers: int  # offered calls counted (arrived after the warm-up and before the end)
    seed: int
    answer_rate: float
    answer_rate_ci: tuple[float, float]  # 95 %, batch means
    service_level: float  # answered within sl_seconds
    service_level_ci: tuple[float, float]
    p_wait: float  # found every agent busy
    abandon_rate: float  # hung up before an answer
    p_short_abandon: float  # hung up within short_abandon seconds
    answer_rate_excl_short: float  # answered / (offered - short abandons)
    asa_answered: float  # seconds, mean wait of answered calls
    sl_seconds: float
    short_abandon: float


def _interval(values: list[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = T_975_19 * sd / math.sqrt(len(values))
    return mean - half, mean + half


def simulate(load: Load, agents: int, customers: int = 100_000, seed: int = 1, sl_seconds: float = 15.0,
             short_abandon: float = 5.0) -> Simulated:
    """Simulate about `customers` offered calls (after a warm-up of 10·(AHT + patience) from an
    empty center), then let everyone who arrived in the counted window leave the queue.

    ciw draws from the global `random` (and its own numpy generator): both are put back as they
    were, so a seeded run does not disturb the caller's random numbers."""
    if load.patience is None:
        raise PlanError("模拟需要平均耐心时长 / the simulation needs a mean patience (--patience)")
    if load.calls_per_hour <= 0:
        raise PlanError("模拟需要来电量 > 0 / the simulation needs calls per hour > 0")
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise PlanError(f"坐席数必须是 >= 1 的整数 / agents must be an integer >= 1, got {agents!r}")
    if agents > MAX_AGENTS:
        raise PlanError(f"坐席数不能超过 {MAX_AGENTS:,}：远超任何热线的规模 / agents must be at most {MAX_AGENTS:,} "
                        f"(far beyond any hotline), got {agents:,}")
    if customers < 20 * BATCHES:
        raise PlanError(f"模拟来电数至少 {20 * BATCHES} / simulate at least {20 * BATCHES} customers "
                        f"(a confidence interval needs {BATCHES} batches of 20), got {customers}")
    lam = load.calls_per_hour / 3600.0
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[ciw.dists.Exponential(rate=1.0 / load.aht)],
        number_of_servers=[agents],
        reneging_time_distributions=[ciw.dists.Exponential(rate=1.0 / load.patience)],
    )
    saved_state, saved_rng = random.getstate(), ciw.rng
    try:
        ciw.seed(seed)
        sim = ciw.Simulation(network)
        start = 10.0 * (load.aht + load.patience)
        end = start + customers / lam
        sim.simulate_until_max_time(end)
        # Those still waiting at the end: run on until the last of them is answered or hangs up.
        while any(ind.arrival_date <= end and not ind.server for ind in sim.nodes[1].all_individuals):
            sim.simulate_until_max_time(sim.current_time + load.patience)
        records: list[Any] = [r for r in sim.get_all_records(include_incomplete=True)
                              if start <= r.arrival_date <= end]
    finally:
        random.setstate(saved_state)
        ciw.rng = saved_rng
    records.sort(key=lambda r: r.arrival_date)
    return _summarise(records, agents, seed, sl_seconds, short_abandon)


def _summarise(records: list[Any], agents: int, seed: int, sl_seconds: float, short_abandon: float) -> Simulated:
    n = len(records)
    if n < BATCHES:
        raise PlanError(f"too few calls were simulated ({n}); simulate more customers")
    # A caller in service at the end has a waiting time and no service record yet: answered.
    answered = [r.record_type != "renege" for r in records]
    waits = [float(r.waiting_time) for r in records]
    within = [a and w <= sl_seconds for a, w in zip(answered, waits, strict=True)]
    short = [not a and w < short_abandon for a, w in zip(answered, waits, strict=True)]
    bounds = [n * b // BATCHES for b in range(BATCHES + 1)]
    batches = list(pairwise(bounds))
    n_answered = sum(answered)
    return Simulated(
        agents=agents,
        customers=n,
        seed=seed,
        answer_rate=n_answered / n,
        answer_rate_ci=_interval([sum(answered[i:j]) / (j - i) for i, j in batches]),
        service_level=sum(within) / n,
        service_level_ci=_interval([sum(within[i:j]) / (j - i) for i, j in batches]),
        p_wait=sum(w > 0 for w in waits) / n,
        abandon_rate=(n - n_answered) / n,
        p_short_abandon=sum(short) / n,
        answer_rate_excl_short=n_answered / (n - sum(short)) if n > sum(short) else 1.0,
        asa_answered=math.fsum(w for a, w in zip(answered, waits, strict=True) if a) / n_answered
        if n_answered else 0.0,
        sl_seconds=sl_seconds,
        short_abandon=short_abandon,
    )
