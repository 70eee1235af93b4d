"""The KPI definitions, each pinned once (metrics/kpi.py; README "Counting"): what a call counts
for by its outcome, where it counts, the short-abandon and service-level boundaries, and the
rates as ratios of sums, published rounded half up."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from acd.model import Outcome
from metrics import kpi


@dataclass(frozen=True)
class Rec:
    outcome: str
    wait_seconds: float = 10.0
    queue: str = "main"
    offered_queue: str = ""
    service_level: float = 15.0
    short_abandon: float = 5.0


COUNTS = [
    (Outcome.ANSWERED, True, True, False, False),
    (Outcome.ABANDONED, True, False, True, False),
    # Sent out of the agent queue: offered and not answered, and not an abandon either.
    (Outcome.TIMED_OUT, True, False, False, False),
    (Outcome.OVERFLOW, True, False, False, False),
    (Outcome.FORWARDED, True, False, False, False),
    (Outcome.CALLBACK, True, False, False, False),
    # Closed hours: never entered the agent queue.
    (Outcome.CLOSED, False, False, False, True),
]


def test_every_outcome_is_defined_here() -> None:
    assert sorted(row[0] for row in COUNTS) == sorted(Outcome)


@pytest.mark.parametrize(("outcome", "offered", "answered", "abandoned", "closed"), COUNTS)
def test_what_each_outcome_counts_for(outcome: Outcome, offered: bool, answered: bool, abandoned: bool,
                                      closed: bool) -> None:
    c = kpi.classify(Rec(outcome))
    assert (c.offered, c.answered, c.abandoned, c.closed) == (offered, answered, abandoned, closed)


def test_a_short_abandon_is_a_hang_up_strictly_under_the_threshold_of_its_record() -> None:
    assert kpi.classify(Rec(Outcome.ABANDONED, wait_seconds=4.999)).short_abandoned
    assert not kpi.classify(Rec(Outcome.ABANDONED, wait_seconds=5.0)).short_abandoned
    assert kpi.classify(Rec(Outcome.ABANDONED, wait_seconds=7.0, short_abandon=8.0)).short_abandoned
    assert not kpi.classify(Rec(Outcome.ABANDONED, wait_seconds=0.0, short_abandon=0.0)).short_abandoned  # 0: off
    assert not kpi.classify(Rec(Outcome.TIMED_OUT, wait_seconds=1.0)).short_abandoned  # only hang-ups


def test_answered_within_the_service_level_includes_the_level_itself() -> None:
    assert kpi.classify(Rec(Outcome.ANSWERED, wait_seconds=15.0)).answered_within_sl
    assert not kpi.classify(Rec(Outcome.ANSWERED, wait_seconds=15.001)).answered_within_sl
    assert not kpi.classify(Rec(Outcome.ABANDONED, wait_seconds=1.0)).answered_within_sl
    assert kpi.classify(Rec(Outcome.ANSWERED, wait_seconds=18.0, service_level=20.0)).answered_within_sl


def test_a_call_counts_in_the_queue_it_was_offered_in() -> None:
    overflowed = Rec(Outcome.ANSWERED, queue="overflow", offered_queue="main")
    old_record = Rec(Outcome.ANSWERED, queue="tax")  # from before offered_queue was kept
    assert set(kpi.by_queue([overflowed, old_record])) == {"main", "tax"}


def test_the_rates_exclude_short_abandons_from_the_denominator() -> None:
    records = ([Rec(Outcome.ANSWERED, wait_seconds=3.0)] * 6 + [Rec(Outcome.ANSWERED, wait_seconds=40.0)] * 2
               + [Rec(Outcome.ABANDONED, wait_seconds=2.0)] * 3  # short
               + [Rec(Outcome.ABANDONED, wait_seconds=30.0), Rec(Outcome.TIMED_OUT, wait_seconds=300.0)]
               + [Rec(Outcome.CLOSED, wait_seconds=0.0)] * 4)
    t = kpi.totals(records)
    assert (t.offered, t.answered, t.answered_within_sl, t.abandoned, t.short_abandoned, t.closed) == (
        13, 8, 6, 4, 3, 4)
    assert t.eligible == 10 and t.unanswered == 5
    assert t.answer_rate == pytest.approx(8 / 10)
    assert t.sl_rate == pytest.approx(6 / 10)  # offered-based: the strictest form
    assert t.sl_of_answered == pytest.approx(6 / 8)  # Asterisk's SL, for comparison only


def test_a_period_without_eligible_calls_has_no_rate_not_zero_or_a_division_error() -> None:
    for records in ([], [Rec(Outcome.CLOSED)], [Rec(Outcome.ABANDONED, wait_seconds=1.0)]):
        t = kpi.totals(records)
        assert (t.answer_rate, t.sl_rate) == (None, None)
        assert kpi.percent(t.answer_rate) == "—"


def test_a_months_rate_is_the_ratio_of_its_sums_not_the_average_of_daily_rates() -> None:
    busy_day = [Rec(Outcome.ANSWERED)] * 90 + [Rec(Outcome.ABANDONED, wait_seconds=60.0)] * 10  # 90%
    quiet_day = [Rec(Outcome.ANSWERED)]  # 100%
    month = kpi.totals(busy_day) + kpi.totals(quiet_day)
    assert month == kpi.totals(busy_day + quiet_day)
    assert month.answer_rate == pytest.approx(91 / 101)  # not (0.90 + 1.00) / 2


@pytest.mark.parametrize(("answered", "eligible", "shown"), [
    (2, 3, "66.67%"),
    (1, 8, "12.50%"),
    (19, 20, "95.00%"),  # exactly the target: no float artefact below it
    (1899, 2000, "94.95%"),
    (18991, 20000, "94.96%"),  # 94.955 rounds half up
    (1, 1, "100.00%"),
])
def test_rates_are_published_in_percent_with_two_decimals_rounded_half_up(answered: int, eligible: int,
                                                                          shown: str) -> None:
    assert kpi.percent(answered / eligible) == shown
