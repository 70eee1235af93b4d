"""The ciw simulation (planner/simulate.py) agrees with the exact Erlang A figures. Seeded: the
same numbers every run. About 4 s on a 2-core machine: 100 000 simulated calls for the report's
example (~3 s) and 30 000 for the small case (~1 s).

Tolerances are about three standard deviations of a run of that size, measured over seeds 1-12 of
the report's example (the noisier case): answer rate 0.27 pp (the brief's 1 pp is wider), SL15
1.0 pp, P_w 1.2 pp, short abandons 0.06 pp, KPI answer rate 0.22 pp, ASA of answered 0.30 s. The
mean over those 12 seeds is within 0.05 pp of every exact rate (within 0.02 s of the ASA)."""

from __future__ import annotations

import random

import pytest

from planner.erlang import Load, PlanError, erlang_a
from planner.simulate import simulate


@pytest.mark.parametrize(("load", "agents", "customers"), [
    (Load(calls_per_hour=600, aht=240, patience=120), 42, 100_000),  # the report's worked example
    (Load(calls_per_hour=90, aht=100, patience=70), 3, 30_000),  # a small center, 18 % abandon
])
def test_simulated_answer_rate_agrees_with_erlang_a_within_one_point(load: Load, agents: int, customers: int) -> None:
    sim = simulate(load, agents, customers=customers, seed=1, sl_seconds=15, short_abandon=5)
    exact = erlang_a(load, agents, 15, 5)
    assert abs(sim.customers - customers) < 0.02 * customers  # Poisson: about as many as asked
    assert sim.answer_rate == pytest.approx(exact.answer_rate, abs=0.01)
    low, high = sim.answer_rate_ci
    assert low < sim.answer_rate < high and high - low < 0.02  # an interval narrow enough to judge by
    # The other figures, within what such a run can tell apart.
    assert sim.service_level == pytest.approx(exact.service_level, abs=0.03)
    assert sim.p_wait == pytest.approx(exact.p_wait, abs=0.036)
    assert sim.p_short_abandon == pytest.approx(exact.p_short_abandon, abs=0.002)
    assert sim.answer_rate_excl_short == pytest.approx(exact.answer_rate_excl_short, abs=0.007)
    assert sim.asa_answered == pytest.approx(exact.asa_answered, abs=0.9)
    assert sim.abandon_rate == pytest.approx(1 - sim.answer_rate)


def test_a_seed_gives_the_same_run_and_leaves_the_callers_random_numbers_alone() -> None:
    load = Load(90, 100, 70)
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    first = simulate(load, 3, customers=2_000, seed=5)
    assert random.random() == expected_next
    assert simulate(load, 3, customers=2_000, seed=5) == first
    assert simulate(load, 3, customers=2_000, seed=6) != first


def test_the_simulation_refuses_a_load_without_patience_or_too_few_customers() -> None:
    with pytest.raises(PlanError, match="--patience"):
        simulate(Load(600, 240), 42)
    with pytest.raises(PlanError, match="at least 400"):
        simulate(Load(600, 240, 120), 42, customers=100)
    with pytest.raises(PlanError, match="agents must be at most 100,000"):
        simulate(Load(600, 240, 120), 100_000_000, customers=400)
