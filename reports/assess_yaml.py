"""assessment.yaml -> reports.assess.Scheme, every error as file:line and what to fix.

The YAML is read as config/loader.py reads the hotline's configuration (parse_yaml: no
anchors, no duplicate keys, lines kept), then checked here field by field, so a file with
five mistakes gets five messages at once. Numbers become Decimal through their text
(0.1 stays 0.1). Rates are written as percentages (95%, 1pp): a bare 95 or 0.95 for a rate
is refused, since either could be meant.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast, get_args

import yaml

from config.loader import DEFAULTS_DIR, ConfigError, Problem, parse_yaml
from reports.assess import HUNDRED, ZERO, Band, Contract, Direction, Indicator, Missing, Rule, Scheme, Steps, plain
from reports.figures import KEYS, Unit

DEFAULT_FILE = DEFAULTS_DIR / "assessment.yaml"
MAX_BYTES = 1024 * 1024

Loc = tuple[str | int, ...]
TOP = ("contract", "missing", "indicators", "payment")
CONTRACT = ("name", "total", "at_stake")
FIGURE_FIELDS = ("key", "label", "weight", "target", "direction", "rule", "floor", "cap", "missing")
MANUAL_FIELDS = ("key", "label", "weight", "manual", "missing", "value", "by")
RULE = ("per", "lose", "steps")
BAND = ("from", "to", "coefficient", "label")
MANUAL_KEY = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


class _Bad(Exception):
    """One value that cannot be read; the message says what to write."""


@dataclass
class _Reader:
    name: str
    lines: dict[Loc, int]
    problems: list[Problem] = field(default_factory=list)

    def line(self, loc: Loc) -> int:
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1

    def problem(self, loc: Loc, message: str) -> None:
        where = ".".join(str(p) for p in loc)
        self.problems.append(Problem(self.name, self.line(loc), f"{where}: {message}" if where else message))

    def keys(self, data: dict[str, Any], loc: Loc, allowed: tuple[str, ...], what: str) -> None:
        for key in data:
            if key not in allowed:
                near = difflib.get_close_matches(str(key), allowed, n=2)
                hint = f"did you mean {' or '.join(near)}? " if near else ""
                self.problem((*loc, key), f"不认识的字段 (not a key of {what}: {hint}keys: {', '.join(allowed)})")

    def get(self, data: dict[str, Any], loc: Loc, key: str, read: Any, *, required: bool = True) -> Any:
        """data[key] through `read`, or None with a problem recorded."""
        if key not in data:
            if required:
                self.problem(loc, f"缺少 {key} (missing `{key}:`)")
            return None
        try:
            return read(data[key])
        except _Bad as exc:
            self.problem((*loc, key), str(exc))
            return None


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad(f"{what}: {value!r} is not a number")
    text = str(value).strip().replace(",", "")
    if not _NUMBER.fullmatch(text):
        raise _Bad(f"{what}: {value!r} is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise _Bad(f"{what}: {value!r} is not a number") from None


def _quiet_weight(value: Any) -> Decimal | None:
    try:
        return _weight(value)
    except _Bad:
        return None


def _points(value: Any) -> Decimal:
    d = _decimal(value, "points")
    if d < 0:
        raise _Bad(f"分值不能为负 (points cannot be negative: {value})")
    return d


def _weight(value: Any) -> Decimal:
    d = _decimal(value, "weight")
    if d <= 0:
        raise _Bad(f"权重须大于 0 (a weight is the indicator's full points, more than 0; got {value}); "
                   "leave an indicator that counts for nothing out of the scheme")
    return d


def _percent(value: Any, what: str) -> Decimal:
    """'95%' -> 0.95."""
    if not isinstance(value, str) or not value.strip().endswith("%"):
        raise _Bad(f"{what} 是百分比，写作 95% (a rate is written as a percentage, e.g. 95% or 99.5%; {value!r} "
                   "could mean 95% or 0.95%)")
    d = _decimal(value.strip()[:-1], what)
    if not ZERO <= d <= HUNDRED:
        raise _Bad(f"{what}: {value} is not between 0% and 100%")
    return d / HUNDRED


def _in_unit(value: Any, unit: Unit, what: str) -> Decimal:
    """A target or floor in the figure's unit: a percentage for a rate, seconds, or a count."""
    if unit == "rate":
        return _percent(value, what)
    text = str(value).strip()
    d = _decimal(text.removesuffix("s") if unit == "seconds" else value, what)
    if d < 0:
        raise _Bad(f"{what}: {value} is negative")
    return d


def _step(value: Any, unit: Unit) -> Decimal:
    """`per`: 1pp / 0.1pp for a rate, 5s (or 5) for seconds, a number for a count; more than 0."""
    forms = {"rate": "1pp or 0.1pp (percentage points)", "seconds": "a number of seconds, e.g. 5s",
             "count": "a number, e.g. 1"}[unit]
    text = str(value).strip()
    if unit == "rate":
        if not text.endswith("pp"):
            hint = " (1% could be read as 1% of the target: write pp, percentage points)" if text.endswith("%") else ""
            raise _Bad(f"步长写作 {forms} (a rate's step is {forms}; got {value!r}{hint})")
        text = text[:-2]
    elif unit == "seconds":
        text = text.removesuffix("s")
    try:
        d = _decimal(text, "per")
    except _Bad:
        raise _Bad(f"步长写作 {forms} (per: {value!r} is not a step; write {forms})") from None
    if d <= 0:
        raise _Bad(f"步长须大于 0 (per: the step must be more than 0; got {value!r})")
    return d / HUNDRED if unit == "rate" else d


def _choice(options: tuple[str, ...], what: str) -> Any:
    def read(value: Any) -> str:
        if value not in options:
            raise _Bad(f"{what}: {value!r} is not one of {', '.join(options)}")
        return str(value)
    return read


def _text(what: str) -> Any:
    def read(value: Any) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
            raise _Bad(f"{what}: write some text")
        return str(value).strip()
    return read


def _key_lines(text: str) -> dict[Loc, int]:
    """The line of every key, for messages about a key whose value is a block (parse_yaml's map
    holds where each value starts, which for a block is the line below its key)."""
    out: dict[Loc, int] = {}

    def walk(node: yaml.Node, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                out[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                out[(*path, i)] = value.start_mark.line + 1
                walk(value, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)  # parse_yaml has refused aliases and deep nesting
    if root is not None:
        walk(root, ())
    return out


def parse_scheme(text: str, name: str) -> Scheme:
    """Read assessment.yaml's text; ConfigError lists every problem with `name` and its line."""
    data, lines = parse_yaml(text, name)
    r = _Reader(name, {**lines, **_key_lines(text)})
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, 1, "考核方案是一个映射 (the scheme is a mapping: contract, missing, "
                                            "indicators, payment)")])
    r.keys(data, (), TOP, "the scheme")
    missing = r.get(data, (), "missing", _choice(get_args(Missing), "missing"), required=False) or "error"
    contract = _contract(r, data)
    indicators = _indicators(r, data, cast(Missing, missing))
    bands = _bands(r, data)
    if r.problems:
        raise ConfigError(r.problems)
    assert contract is not None
    return Scheme(contract, indicators, bands, name)


def load_scheme(path: Path | None = None) -> Scheme:
    """The scheme in `path` (the embedded example by default)."""
    path = path or DEFAULT_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Problem(str(path), 0, f"无法读取 (cannot read: {exc.strerror or exc})")]) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError([Problem(str(path), 0, "larger than 1 MB: is this the assessment scheme?")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    return parse_scheme(text, str(path))


def _mapping(r: _Reader, value: Any, loc: Loc, what: str) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        r.problem(loc, f"{what} is a mapping (key: value lines)")
        return None
    return value


def _contract(r: _Reader, data: dict[str, Any]) -> Contract | None:
    if "contract" not in data:
        r.problem((), "缺少 contract (missing `contract:` with name, total and at_stake)")
        return None
    c = _mapping(r, data["contract"], ("contract",), "contract")
    if c is None:
        return None
    loc: Loc = ("contract",)
    r.keys(c, loc, CONTRACT, "contract")
    name = r.get(c, loc, "name", _text("name"))
    total = r.get(c, loc, "total", lambda v: _decimal(v, "total"))
    if total is not None and (total <= 0 or total != total.quantize(Decimal("0.01"))):
        r.problem((*loc, "total"), f"合同总额以元计，大于 0，最多两位小数 (the contract total in yuan: more than 0, "
                                   f"at most 2 decimals; got {c['total']})")
        total = None
    share = r.get(c, loc, "at_stake", lambda v: _percent(v, "at_stake"))
    if share is not None and share <= 0:
        r.problem((*loc, "at_stake"), "at_stake: the share of the total the score decides, more than 0%")
        share = None
    if name is None or total is None or share is None:
        return None
    return Contract(name, total.quantize(Decimal("0.01")), share)


def _indicators(r: _Reader, data: dict[str, Any], missing: Missing) -> tuple[Indicator, ...]:
    raw = data.get("indicators")
    if not isinstance(raw, list) or not raw:
        r.problem(("indicators",), "考核指标列表 (indicators: a list of indicators, each `- key: ...`)")
        return ()
    out: list[Indicator] = []
    weights: list[Decimal | None] = []  # read apart from the rest: the sum is checked whatever else is wrong
    first: dict[str, int] = {}
    for i, item in enumerate(raw):
        loc: Loc = ("indicators", i)
        d = _mapping(r, item, loc, "an indicator")
        if d is None:
            continue
        weights.append(_quiet_weight(d.get("weight")))
        key = d.get("key")
        if not isinstance(key, str):
            r.problem(loc, "缺少 key (each indicator has a key: a figure of reports.figures such as "
                           "calls.answer_rate, or a name with `manual: true`)")
            continue
        if key in first:
            r.problem((*loc, "key"), f"{key} 重复 (already an indicator at line {first[key]}; keep one)")
            continue
        first[key] = r.line(loc)
        ind = _manual(r, d, loc, key, missing) if "manual" in d else _figure(r, d, loc, key, missing)
        if ind is not None:
            out.append(ind)
    known = [w for w in weights if w is not None]
    if len(known) == len(raw) and sum(known, ZERO) != HUNDRED:
        listed = " + ".join(plain(w) for w in known)
        r.problem(("indicators",), f"权重合计 {plain(sum(known, ZERO))}，应为 100 (the weights add up to "
                                   f"{plain(sum(known, ZERO))}, not 100: {listed})")
    return tuple(out)


def _manual(r: _Reader, d: dict[str, Any], loc: Loc, key: str, missing: Missing) -> Indicator | None:
    r.keys(d, loc, MANUAL_FIELDS, "a hand-scored indicator (manual: true)")
    ok = True
    if d.get("manual") is not True:
        r.problem((*loc, "manual"), "manual: write `manual: true` for an indicator scored by hand, or leave it out")
        ok = False
    if key in KEYS:
        r.problem((*loc, "key"), f"{key} 是报表数据 (a figure of the report: score it with target and rule, "
                                 "without `manual: true`)")
        ok = False
    elif not MANUAL_KEY.fullmatch(key):
        r.problem((*loc, "key"), f"{key!r}: a hand-scored indicator's key is lower-case letters, digits, _ and ., "
                                 "e.g. org_building")
        ok = False
    label = r.get(d, loc, "label", _text("label"))
    weight = r.get(d, loc, "weight", _weight)
    miss = r.get(d, loc, "missing", _choice(get_args(Missing), "missing"), required=False) or missing
    value = r.get(d, loc, "value", _points, required=False)
    by = r.get(d, loc, "by", _text("by"), required=value is not None) or ""
    if value is not None and weight is not None and value > weight:
        r.problem((*loc, "value"), f"人工评分 {value} 高于权重 {weight} (a hand-given score is at most the weight)")
        ok = False
    if not ok or label is None or weight is None:
        return None
    return Indicator(key, label, weight, manual=True, missing=miss, value=value, by=by, line=r.line(loc))


def _figure(r: _Reader, d: dict[str, Any], loc: Loc, key: str, missing: Missing) -> Indicator | None:
    if key not in KEYS:
        near = difflib.get_close_matches(key, KEYS, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        r.problem((*loc, "key"), f"不认识的指标 {key} (not a figure of the report: {hint}the figures are "
                                 "reports.figures KEYS; an indicator scored by hand needs `manual: true`)")
        return None
    r.keys(d, loc, FIGURE_FIELDS, "an indicator (a hand-scored one has `manual: true`)")
    label, unit = KEYS[key]
    label = r.get(d, loc, "label", _text("label"), required=False) or label
    weight = r.get(d, loc, "weight", _weight)
    target = r.get(d, loc, "target", lambda v: _in_unit(v, unit, "target"))
    direction = r.get(d, loc, "direction", _choice(get_args(Direction), "direction"))
    rule = _rule(r, d, loc, unit)
    floor = r.get(d, loc, "floor", lambda v: _in_unit(v, unit, "floor"), required=False)
    cap = r.get(d, loc, "cap", _points, required=False)
    miss = r.get(d, loc, "missing", _choice(get_args(Missing), "missing"), required=False) or missing
    if floor is not None and target is not None and direction is not None and (
            floor > target if direction == "higher" else floor < target):
        r.problem((*loc, "floor"), "底线须不优于目标 (the floor is where the score drops to 0: it cannot be better "
                                   "than the target)")
        return None
    if cap is not None and weight is not None and not ZERO < cap <= weight:
        r.problem((*loc, "cap"), f"cap: the most points the rule takes off, more than 0 and at most the weight "
                                 f"({weight})")
        return None
    if None in (weight, target, direction, rule):
        return None
    return Indicator(key, label, weight, target=target, direction=direction, rule=rule, floor=floor, cap=cap,
                     missing=miss, line=r.line(loc))


def _rule(r: _Reader, d: dict[str, Any], loc: Loc, unit: Unit) -> Rule | None:
    if "rule" not in d:
        r.problem(loc, "缺少 rule (missing `rule: {per: 1pp, lose: 1}`: points lost per step short of the target)")
        return None
    rule = _mapping(r, d["rule"], (*loc, "rule"), "rule ({per: 1pp, lose: 1})")
    if rule is None:
        return None
    rloc: Loc = (*loc, "rule")
    r.keys(rule, rloc, RULE, "rule")
    per = r.get(rule, rloc, "per", lambda v: _step(v, unit))
    lose = r.get(rule, rloc, "lose", _points)
    steps = r.get(rule, rloc, "steps", _choice(get_args(Steps), "steps"), required=False) or "continuous"
    if lose is not None and lose == 0:
        r.problem((*rloc, "lose"), "lose: points lost per step, more than 0")
        return None
    if per is None or lose is None:
        return None
    return Rule(per, lose, cast(Steps, steps))


def _bands(r: _Reader, data: dict[str, Any]) -> tuple[Band, ...]:
    raw = data.get("payment")
    if not isinstance(raw, list) or not raw:
        r.problem(("payment",), "付款表 (payment: a list of bands `- {from: 90, to: 100, coefficient: 1.00}` "
                                "covering totals from 0 to 100)")
        return ()
    bands: list[tuple[Band, Loc]] = []
    for i, item in enumerate(raw):
        loc: Loc = ("payment", i)
        d = _mapping(r, item, loc, "a payment band")
        if d is None:
            continue
        r.keys(d, loc, BAND, "a payment band")
        low = r.get(d, loc, "from", _points)
        high = r.get(d, loc, "to", _points)
        coefficient = r.get(d, loc, "coefficient", _coefficient)
        label = r.get(d, loc, "label", _text("label"), required=False) or ""
        if low is None or high is None or coefficient is None:
            continue
        if low >= high or high > HUNDRED:
            r.problem(loc, f"from {low} to {high}: a band runs from a lower total to a higher one, within 0-100")
            continue
        bands.append((Band(low, high, coefficient[0], coefficient[1], label), loc))
    if len(bands) != len(raw):
        return ()
    bands.sort(key=lambda b: b[0].low)
    if bands[0][0].low != 0:
        r.problem(bands[0][1], f"付款表须从 0 分起 (the lowest band starts at {bands[0][0].low}: totals below it have "
                               "no coefficient; add a band from 0)")
    if bands[-1][0].high != HUNDRED:
        r.problem(bands[-1][1], f"付款表须到 100 分止 (the highest band ends at {bands[-1][0].high}, not 100)")
    for (before, bloc), (band, loc) in itertools.pairwise(bands):
        if band.low < before.high:
            r.problem(loc, f"档位重叠 (from {band.low} overlaps the band from {before.low} to {before.high} at line "
                           f"{r.line(bloc)}: a total of {band.low} would be in both)")
        elif band.low > before.high:
            r.problem(loc, f"档位间有空档 (a gap: no band holds totals from {before.high} to {band.low}; the band "
                           f"at line {r.line(bloc)} ends at {before.high})")
        elif band.at_low < before.at_high:
            r.problem(loc, f"coefficient {band.at_low} at {band.low} is less than the band below pays towards it "
                           f"({before.at_high}): a higher total must never pay less")
    return tuple(b for b, _ in bands)


def _coefficient(value: Any) -> tuple[Decimal, Decimal]:
    """1.00 (fixed) or [0.80, 0.90] (linear from the band's `from` towards its `to`)."""
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2:
        raise _Bad("coefficient: a number (fixed), or [at from, towards to] for linear, e.g. [0.80, 0.90]")
    low, high = (_decimal(v, "coefficient") for v in pair)
    if not (ZERO <= low <= 1 and ZERO <= high <= 1):
        raise _Bad(f"付款系数在 0 到 1 之间 (a coefficient is a share of the amount at stake, 0 to 1; got {value})")
    if high < low:
        raise _Bad(f"coefficient {value}: the coefficient towards `to` is less than at `from`")
    return low, high
