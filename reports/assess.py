"""Contract assessment (合同量化考核): a period's figures -> points -> the payment coefficient -> yuan.

Pure: the scheme (reports/assess_yaml.py reads it from assessment.yaml), the period's figures
(reports.figures, the report's own numbers) and the hand-given scores come in; `Assessment`
goes out with every indicator's evidence.

How an indicator is scored (the reference's §5.9: "score = max(0, full - k·steps)"):
- the actual value is the published one: a rate rounded half up to 0.01 percentage point, a
  number of seconds or a count to 0.01 (94.995% counts as 95.00%, as it is printed);
- shortfall = target - actual (higher is better) or actual - target (lower is better); none
  if the target is met;
- steps = shortfall / per, taken as is (`continuous`, the Lianyungang reading: 按时办结率
  89.82% against 95% at 1 point per pp from 20 gives 14.82), or rounded half up (`round`),
  up (`up`: any part of a step is a whole step) or down (`down`: only whole steps count);
- lost = steps * lose, at most `cap` if one is set; score = max(0, weight - lost);
- an actual worse than `floor` scores 0 whatever the rule says;
- points are rounded half up to 0.01; the total is their sum.

The payment table maps the total to a coefficient; inside a band the coefficient is fixed or
linear between the band's two ends. The default contract's "80-89分 → 0.80-0.89" is read as
coefficient = total/100 for any total from 80 up to (not including) 90, the table written
[0.80, 0.90] over [80, 90): 85.5 → 0.855, 89.99 → 0.8999. Payment = coefficient * share at
stake * contract total, in Decimal, rounded half up to 0.01 yuan.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Literal

from reports.figures import KEYS, Figure, Unit

Direction = Literal["higher", "lower"]
Steps = Literal["continuous", "round", "up", "down"]
Missing = Literal["full", "zero", "error"]

CENT = Decimal("0.01")
POINT = Decimal("0.01")  # points are given to 2 decimals
RATE_PLACES = Decimal("0.0001")  # a rate as a fraction, to 0.01 percentage point
COEFFICIENT_PLACES = Decimal("0.0001")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


class AssessError(Exception):
    """The assessment cannot be made as asked; the text says what to do."""


@dataclass(frozen=True)
class Rule:
    per: Decimal  # one step, in the figure's own unit (a rate as a fraction: 1 pp = 0.01)
    lose: Decimal  # points lost per step
    steps: Steps = "continuous"


@dataclass(frozen=True)
class Indicator:
    key: str  # a reports.figures KEYS key, or a name of a hand-scored indicator
    label: str
    weight: Decimal  # full points
    manual: bool = False  # scored by hand (组织机构建设 ...): no figure, no rule
    target: Decimal | None = None  # the figure's unit; a rate as a fraction
    direction: Direction = "higher"
    rule: Rule | None = None
    floor: Decimal | None = None  # worse than this: 0 points
    cap: Decimal | None = None  # the most points the rule takes off
    missing: Missing = "error"  # no value to score
    value: Decimal | None = None  # manual: the points the scheme gives...
    by: str = ""  # ...and who gave them
    line: int = 0  # where the scheme defines it (0: not from a file)

    @property
    def unit(self) -> Unit:
        return KEYS[self.key][1] if self.key in KEYS else "count"


@dataclass(frozen=True)
class Band:
    low: Decimal  # low <= total < high (the top band includes its high end)
    high: Decimal
    at_low: Decimal  # the coefficient at `low`...
    at_high: Decimal  # ...and towards `high`, linear between; equal: a fixed coefficient
    label: str = ""

    def coefficient(self, total: Decimal) -> Decimal:
        if self.at_low == self.at_high:
            return self.at_low.quantize(COEFFICIENT_PLACES, ROUND_HALF_UP)
        c = self.at_low + (self.at_high - self.at_low) * (total - self.low) / (self.high - self.low)
        return c.quantize(COEFFICIENT_PLACES, ROUND_HALF_UP)

    @property
    def text(self) -> str:
        top = "]" if self.high == HUNDRED else ")"
        span = f"[{plain(self.low)}, {plain(self.high)}{top}"
        return f"{self.label} {span}" if self.label else span


@dataclass(frozen=True)
class Contract:
    name: str
    total: Decimal  # yuan
    share: Decimal  # of the total, paid by the score (0.20)


@dataclass(frozen=True)
class Scheme:
    contract: Contract
    indicators: tuple[Indicator, ...]
    bands: tuple[Band, ...]  # ascending, covering 0-100
    file: str = ""  # for messages

    def where(self, ind: Indicator) -> str:
        return f"{self.file}:{ind.line}" if self.file and ind.line else (self.file or "the scheme")


@dataclass(frozen=True)
class ManualScore:
    points: Decimal
    by: str  # who gave them (a name, a meeting's minutes)


@dataclass(frozen=True)
class Score:
    key: str
    label: str
    unit: Unit
    weight: Decimal
    score: Decimal
    lost: Decimal
    target: Decimal | None  # None: a hand-scored indicator
    actual: Decimal | None  # as scored (rounded as published); None: no value
    direction: Direction
    basis: str  # zh-CN: where the score comes from (依据)
    numerator: float | None = None
    denominator: float | None = None
    note: str = ""  # the figure's own note (definition, exclusions)
    by: str = ""  # a hand-given score: who gave it
    missing: bool = False  # scored by the missing policy

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "weight": str(self.weight),
                "score": str(self.score), "lost": str(self.lost), "target": _opt(self.target),
                "actual": _opt(self.actual), "direction": self.direction, "basis": self.basis,
                "numerator": self.numerator, "denominator": self.denominator, "note": self.note, "by": self.by,
                "missing": self.missing}


@dataclass(frozen=True)
class Assessment:
    contract: Contract
    scores: tuple[Score, ...]
    total: Decimal  # points, 0-100
    band: Band
    coefficient: Decimal
    at_stake: Decimal  # yuan: share × contract total
    payment: Decimal  # yuan: coefficient × share × contract total
    withheld: Decimal  # yuan: at_stake - payment

    def as_json(self) -> dict[str, Any]:
        """Decimals are strings ("1799800.00"): exact, as a float would not be."""
        return {"contract": {"name": self.contract.name, "total": str(self.contract.total),
                             "share": str(self.contract.share)},
                "indicators": [s.as_json() for s in self.scores], "total": str(self.total),
                "band": self.band.text, "coefficient": str(self.coefficient), "at_stake": str(self.at_stake),
                "payment": str(self.payment), "withheld": str(self.withheld)}


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def plain(value: Decimal) -> str:
    """85.50 -> 85.5, 90.00 -> 90, 0.8999 -> 0.8999."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def show(value: Decimal | None, unit: Unit) -> str:
    """A value as a report prints it: 89.82%, 12.5 秒, 3."""
    if value is None:
        return "—"
    if unit == "rate":
        return f"{(value * HUNDRED).quantize(CENT, ROUND_HALF_UP)}%"
    return f"{plain(value)} 秒" if unit == "seconds" else plain(value)


def _step_text(per: Decimal, unit: Unit) -> str:
    if unit == "rate":
        return f"{plain(per * HUNDRED)} 个百分点"
    return f"{plain(per)} 秒" if unit == "seconds" else plain(per)


def published(value: float, unit: Unit) -> Decimal:
    """A figure's value as printed: the shortest decimal of the float, then rounded half up."""
    exact = Decimal(repr(value))
    return exact.quantize(RATE_PLACES if unit == "rate" else CENT, ROUND_HALF_UP)


def points_lost(ind: Indicator, actual: Decimal) -> Decimal:
    """The rule's deduction before the floor, unrounded."""
    assert ind.rule is not None and ind.target is not None
    short = ind.target - actual if ind.direction == "higher" else actual - ind.target
    if short <= 0:
        return ZERO
    steps = short / ind.rule.per
    match ind.rule.steps:
        case "round":
            steps = steps.quantize(Decimal(1), ROUND_HALF_UP)
        case "up":
            steps = steps.to_integral_value(ROUND_CEILING)
        case "down":
            steps = steps.to_integral_value(ROUND_FLOOR)
        case "continuous":
            pass
    lost = steps * ind.rule.lose
    return lost if ind.cap is None else min(lost, ind.cap)


def below_floor(ind: Indicator, actual: Decimal) -> bool:
    if ind.floor is None:
        return False
    return actual < ind.floor if ind.direction == "higher" else actual > ind.floor


def _points(value: Decimal) -> Decimal:
    """Points to 0.01, half up; a zero is always 0.00 (a hand-given "-0" would print -0.00)."""
    points = value.quantize(POINT, ROUND_HALF_UP)
    return points.copy_abs() if points.is_zero() else points


def _rule_text(ind: Indicator) -> str:
    assert ind.rule is not None and ind.target is not None
    worse = "低于" if ind.direction == "higher" else "高于"
    how = {"continuous": "", "round": "（按四舍五入取整步计）", "up": "（不足一步按一步计）",
           "down": "（不足一步不扣）"}[ind.rule.steps]
    text = (f"目标 {show(ind.target, ind.unit)}，每{worse} {_step_text(ind.rule.per, ind.unit)}"
            f"扣 {plain(ind.rule.lose)} 分{how}")
    if ind.cap is not None:
        text += f"，最多扣 {plain(ind.cap)} 分"
    if ind.floor is not None:
        text += f"，{worse} {show(ind.floor, ind.unit)} 得 0 分"
    return text


def _missing(scheme: Scheme, ind: Indicator, why: str) -> Score:
    if ind.missing == "error":
        need = ("give it with --manual KEY=VALUE:WHO, or value: and by: in the scheme" if ind.manual else
                "the report has no value for it in this period")
        raise AssessError(
            f"{ind.label}（{ind.key}）{why}，无法评分 (nothing to score it from: {need}). To score it anyway, say "
            f"how in {scheme.where(ind)}: `missing: full` (满分) or `missing: zero` (0 分)")
    score = _points(ind.weight if ind.missing == "full" else ZERO)
    how = "按满分计" if ind.missing == "full" else "按 0 分计"
    return Score(ind.key, ind.label, ind.unit, ind.weight, score, ind.weight - score, ind.target, None,
                 ind.direction, f"{why}，{how}（missing: {ind.missing}）", missing=True)


def _manual(scheme: Scheme, ind: Indicator, given: ManualScore | None) -> Score:
    if given is None and ind.value is not None:
        given = ManualScore(ind.value, ind.by)
    if given is None:
        return _missing(scheme, ind, "未给出人工评分")
    if not ZERO <= given.points <= ind.weight:
        raise AssessError(f"{ind.label}（{ind.key}）人工评分 {plain(given.points)} 超出 0-{plain(ind.weight)} 分 "
                          f"(a hand-given score is from 0 to the indicator's weight)")
    score = _points(given.points)
    return Score(ind.key, ind.label, ind.unit, ind.weight, score, ind.weight - score, None, None, ind.direction,
                 f"人工评分：{given.by}", by=given.by)


def _scored(scheme: Scheme, ind: Indicator, figure: Figure | None) -> Score:
    if figure is None:
        return _missing(scheme, ind, "报告中没有这一数据")
    if figure.value is None:
        return _missing(scheme, ind, "本期无数据（如无来电、无工单）")
    actual = published(figure.value, ind.unit)
    if below_floor(ind, actual):
        score = _points(ZERO)
        rule = f"{'低于' if ind.direction == 'higher' else '高于'}底线 {show(ind.floor, ind.unit)}，得 0 分"
    else:
        score = _points(max(ZERO, ind.weight - points_lost(ind, actual)))
        rule = _rule_text(ind)
    basis = rule
    if figure.numerator is not None and figure.denominator is not None:
        basis = f"{plain(Decimal(repr(figure.numerator)))}/{plain(Decimal(repr(figure.denominator)))}；{rule}"
    return Score(ind.key, ind.label, ind.unit, ind.weight, score, ind.weight - score, ind.target, actual,
                 ind.direction, basis, figure.numerator, figure.denominator, figure.note)


def band_of(bands: tuple[Band, ...], total: Decimal) -> Band:
    for band in bands:
        if band.low <= total < band.high or (total == band.high == HUNDRED):
            return band
    raise AssessError(f"总分 {total} 不在付款表的任何一档中 (no payment band holds a total of {total})")


def assess(scheme: Scheme, figures: Mapping[str, Figure],
           manual: Mapping[str, ManualScore] | None = None) -> Assessment:
    """Score every indicator of `scheme` from `figures`; `manual` gives (or overrides) hand scores."""
    manual = manual or {}
    by_key = {i.key: i for i in scheme.indicators}
    for key in manual:
        ind = by_key.get(key)
        if ind is None or not ind.manual:
            hands = [i.key for i in scheme.indicators if i.manual]
            near = difflib.get_close_matches(key, hands, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise AssessError(f"{key} 不是人工评分指标 (not a hand-scored indicator of the scheme{hint}; hand-scored: "
                              f"{', '.join(hands) or 'none'})")
    scores = tuple(_manual(scheme, i, manual.get(i.key)) if i.manual else _scored(scheme, i, figures.get(i.key))
                   for i in scheme.indicators)
    total = sum((s.score for s in scores), ZERO)
    band = band_of(scheme.bands, total)
    coefficient = band.coefficient(total)
    contract = scheme.contract
    at_stake = (contract.share * contract.total).quantize(CENT, ROUND_HALF_UP)
    payment = (coefficient * contract.share * contract.total).quantize(CENT, ROUND_HALF_UP)
    return Assessment(contract, scores, total, band, coefficient, at_stake, payment, at_stake - payment)
