"""The hotline's call KPIs, defined once. Pure: no I/O, no clock, no Prometheus.

The live counters (metrics/exporter.py), the demo's summary and every report compute
from these functions, so the figure a supervisor watches and the figure the monthly
report proves are the same figure. Definitions (../shared/reference/hotline-domain-
and-kpis.md §3, §5, §6; choices written out in README "Counting"):

- A call is counted once, in the queue it was *offered* in: the first open queue it
  entered (`CallRecord.offered_queue`). An overflow moves the caller, not the count, so
  no queue's answer rate can pass 100%. Thresholds are that queue's, as recorded with
  the call (`service_level`, `short_abandon`): a later configuration change does not
  rewrite history.
- offered (呼入量): every call that entered an open queue. A caller who met closed hours
  never entered the agent queue: not offered (reported as `closed`). Queue full, nobody
  logged in, time-out, overflow to a message, a callback or an external number are all
  offered and not answered.
- answered (接通量): an agent answered (the dialplan's fallback counts: a human answered).
- abandoned (放弃量): hung up before an answer (short abandons included). Time-outs and
  overflows out of the agent queue (message, callback, external number) are not abandons
  but are not answered either: `unanswered` = offered - answered counts them all.
- short abandon (速挂): a caller who hung up before an answer within `short_abandon`
  seconds of joining. Excluded from the answer rate's denominator, reported.
- answered within the service level: answered with wait <= `service_level`.
- answer rate (接通率) = answered / (offered - short abandons).
- service-level rate (15秒接通率 when the level is 15 s) = answered within the level /
  (offered - short abandons): offered-based, the strictest form. The answered-based
  form (Asterisk's SL) is `sl_of_answered` for comparison only.
- Rates are ratios of sums over the period, never averages of daily rates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from acd.model import Outcome


class RecordLike(Protocol):
    """What a KPI needs of a call record (acd.commands.CallRecord or a stored row)."""

    @property
    def queue(self) -> str: ...
    @property
    def offered_queue(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def wait_seconds(self) -> float: ...
    @property
    def service_level(self) -> float: ...
    @property
    def short_abandon(self) -> float: ...


def offered_queue(rec: RecordLike) -> str:
    return rec.offered_queue or rec.queue


def is_offered(outcome: str) -> bool:
    return outcome != Outcome.CLOSED


def is_answered(outcome: str) -> bool:
    return outcome == Outcome.ANSWERED


def is_short_abandon(outcome: str, wait: float, threshold: float) -> bool:
    return outcome == Outcome.ABANDONED and wait < threshold


def within_service_level(wait: float, level: float) -> bool:
    return wait <= level


@dataclass(frozen=True)
class Classified:
    """What one call counts for."""

    queue: str  # where it counts (the offered queue)
    offered: bool
    answered: bool
    answered_within_sl: bool
    abandoned: bool  # hung up before an answer
    short_abandoned: bool
    closed: bool


def classify(rec: RecordLike) -> Classified:
    outcome = str(rec.outcome)
    offered = is_offered(outcome)
    answered = is_answered(outcome)
    return Classified(
        queue=offered_queue(rec),
        offered=offered,
        answered=answered,
        answered_within_sl=answered and within_service_level(rec.wait_seconds, rec.service_level),
        abandoned=outcome == Outcome.ABANDONED,
        short_abandoned=is_short_abandon(outcome, rec.wait_seconds, rec.short_abandon),
        closed=not offered,
    )


@dataclass(frozen=True)
class Totals:
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    closed: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))

    @property
    def unanswered(self) -> int:
        return self.offered - self.answered

    @property
    def eligible(self) -> int:
        """The answer rate's denominator: offered minus short abandons."""
        return self.offered - self.short_abandoned

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.eligible if self.eligible > 0 else None

    @property
    def sl_rate(self) -> float | None:
        return self.answered_within_sl / self.eligible if self.eligible > 0 else None

    @property
    def sl_of_answered(self) -> float | None:
        return self.answered_within_sl / self.answered if self.answered > 0 else None


def _fields(t: Totals) -> tuple[int, ...]:
    return (t.offered, t.answered, t.answered_within_sl, t.abandoned, t.short_abandoned, t.closed)


def of(c: Classified) -> Totals:
    return Totals(int(c.offered), int(c.answered), int(c.answered_within_sl), int(c.abandoned),
                  int(c.short_abandoned), int(c.closed))


def totals(records: Iterable[RecordLike]) -> Totals:
    out = Totals()
    for rec in records:
        out = out + of(classify(rec))
    return out


def by_queue(records: Iterable[RecordLike]) -> dict[str, Totals]:
    out: dict[str, Totals] = {}
    for rec in records:
        c = classify(rec)
        out[c.queue] = out.get(c.queue, Totals()) + of(c)
    return out


def percent(rate: float | None) -> str:
    """A rate as published: percent, two decimals, rounded half up ("—" with no calls)."""
    if rate is None:
        return "—"
    value = (Decimal(repr(rate)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{value}%"
