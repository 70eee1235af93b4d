"""One reported figure with its evidence: the value, what it was computed from, what was left out.

Every rate a report prints, the contract assessment scores and a script reads with `--json`
is a `Figure`, so the evidence behind a score is the report's own numerator and denominator,
never a second computation. Keys are stable names scripts and the assessment YAML refer to
(`calls.answer_rate`, `tickets.on_time_rate`, ...); `KEYS` lists them with their zh-CN label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Unit = Literal["rate", "count", "seconds"]

# The figures a period report always has, in the order a report prints them.
KEYS: dict[str, tuple[str, Unit]] = {
    "calls.offered": ("呼入量", "count"),
    "calls.answered": ("接通量", "count"),
    "calls.abandoned": ("放弃量", "count"),
    "calls.short_abandoned": ("速挂量", "count"),
    "calls.answer_rate": ("接通率", "rate"),
    "calls.sl_rate": ("15秒接通率", "rate"),
    "calls.asa": ("平均应答时长", "seconds"),
    "calls.aht": ("平均通话时长", "seconds"),
    "calls.longest_wait": ("最长等待时长", "seconds"),
    "calls.worst_24h_answer_rate": ("最差连续24小时接通率", "rate"),
    "calls.survey_response_rate": ("满意度评价参与率", "rate"),
    "calls.satisfaction_rate": ("通话满意率", "rate"),
    "tickets.registered": ("登记工单量", "count"),
    "tickets.direct_answer_rate": ("直接答复率", "rate"),
    "tickets.timely_accept_rate": ("及时签收率", "rate"),
    "tickets.on_time_rate": ("按时办结率", "rate"),
    "tickets.completion_rate": ("办结率", "rate"),
    "tickets.overdue": ("超期件数", "count"),
    "tickets.followup_rate": ("回访率", "rate"),
    "tickets.satisfaction_rate": ("满意率", "rate"),
    "tickets.redo_rate": ("重办率", "rate"),
}


@dataclass(frozen=True)
class Figure:
    key: str
    value: float | None  # None: nothing to compute it from (an empty period), printed "—"
    numerator: float | None = None  # a rate's or an average's parts; None for a plain count
    denominator: float | None = None
    note: str = ""  # zh-CN: the definition and every exclusion, printed beside the figure

    @property
    def label(self) -> str:
        return KEYS[self.key][0] if self.key in KEYS else self.key

    @property
    def unit(self) -> Unit:
        return KEYS[self.key][1] if self.key in KEYS else "count"

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "value": self.value,
                "numerator": self.numerator, "denominator": self.denominator, "note": self.note}


def rate(key: str, numerator: float, denominator: float, note: str = "") -> Figure:
    """A ratio of sums; no value when the denominator is empty (never 0% or 100% by default)."""
    return Figure(key, numerator / denominator if denominator > 0 else None, numerator, denominator, note)
