"""`hotline report assess PERIOD`: score a period against the contract's assessment scheme.

The figures are the period report's own (reports.report.build(...).figures()), so the
evidence printed beside a score is the report's numerator and denominator. The store and the
report are imported only when the command runs, so that `hotline --help` stays instant.
"""
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reports.assess import Assessment, ManualScore
    from reports.figures import Figure

EXIT_FAILED = 1
EXIT_REFUSED = 2
SCHEME_FILE = "assessment.yaml"

# (args, period text) -> the period's figures and where they come from (zh-CN); tests pass their own.
FiguresFor = Callable[[argparse.Namespace, str], "tuple[Mapping[str, Figure], str]"]


class Refused(Exception):
    """The assessment cannot be made as asked; the text says why and what to do."""


def register_assess(report_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `assess` to the actions of `hotline report`."""
    p = report_subparsers.add_parser(
        "assess", help="合同考核：按考核方案给统计期打分，得出付款系数和应付金额 (score a period against the contract)",
        description="按考核方案（assessment.yaml）为统计期的各项指标打分：实际值取本期报表的数据（与报表同一分子、分母），"
        "按规则扣分，合计总分，查付款表得付款系数，应付金额 = 系数 × 考核挂钩比例 × 合同总额。 "
        "Scores each indicator of the scheme from the period report's own figures, adds the points, looks the "
        "total up in the payment table and prints the payment. Exit 2 when the scheme has errors (each as "
        "file:line), the period cannot be read, or an indicator has nothing to score it from.")
    p.add_argument("period", metavar="PERIOD", help="统计期 (period): 2026-11 (month), 2026Q4, 2026 (year), "
                   "2026-11-03..2026-11-17")
    p.add_argument("--scheme", metavar="FILE", help="考核方案 (the scheme; default: assessment.yaml of the "
                   "--config folder, else the embedded example)")
    p.add_argument("--manual", metavar="KEY=VALUE:WHO", action="append", default=[],
                   help="人工评分 (a hand-given score and who gave it), e.g. org_building=9:张三; repeatable; "
                   "overrides the scheme's value")
    p.add_argument("--json", action="store_true", help="print JSON (amounts and points as exact decimal strings)")
    p.add_argument("--live", action="store_true", help="按库中数据重新计算，即使本期报表已冻结 (compute from the "
                   "store even if the period's report is frozen; by default a frozen period is scored from its "
                   "latest frozen version, the figures that were published)")
    p.add_argument("--store", metavar="URL", help="the database: postgresql+psycopg://... or sqlite:////path "
                   "(default: store.url of the configuration)")
    p.add_argument("--config", metavar="DIR", help="the config folder: its engine.yaml names the store, its "
                   "assessment.yaml is the scheme")
    p.set_defaults(func=cmd_assess)


def parse_manual(items: list[str]) -> dict[str, ManualScore]:
    """['org_building=9:张三'] -> {'org_building': ManualScore(9, '张三')}; ValueError says what to write."""
    from reports.assess import ManualScore

    out: dict[str, ManualScore] = {}
    for item in items:
        key, eq, rest = item.partition("=")
        value, colon, who = rest.partition(":")
        if not eq or not key.strip() or not colon or not who.strip():
            raise ValueError(f"--manual {item!r}：写作 KEY=VALUE:WHO，如 org_building=9:张三 (say who gave the score)")
        try:
            points = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"--manual {item!r}：{value!r} 不是分数 (not a number of points)") from None
        if not points.is_finite():
            raise ValueError(f"--manual {item!r}：{value!r} 不是分数 (not a number of points)")
        if key.strip() in out:
            raise ValueError(f"--manual {key.strip()} 给了两次 (given twice; give it once)")
        out[key.strip()] = ManualScore(points, who.strip())
    return out


def scheme_path(args: argparse.Namespace) -> tuple[Path, bool]:
    """The scheme file, and whether it is the embedded example."""
    from reports.assess_yaml import DEFAULT_FILE

    if args.scheme:
        return Path(args.scheme), False
    config = getattr(args, "config", None)
    if config:
        mine = Path(config) / SCHEME_FILE
        if mine.exists() or mine.is_symlink():
            return mine, False
    return DEFAULT_FILE, True


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    """The report's own store opening (`--store URL` or the configuration's; a missing SQLite file
    is refused, not created: a typo must not score an empty store and pay on it)."""
    from reports import cli as report_cli

    try:
        with report_cli._engine(args) as db:
            yield db
    except report_cli.Refused as exc:
        raise Refused(str(exc)) from None


def store_figures(args: argparse.Namespace, period_text: str) -> tuple[Mapping[str, Figure], str]:
    """The period's official figures: its latest frozen version (what was published), or, when it
    is not frozen or with --live, the report computed now (no filters, no 环比)."""
    from reports.periods import parse
    from reports.report import ReportOptions, build, local_time
    from reports.versions import latest

    period = parse(period_text)
    with _engine(args) as db:
        frozen = None if args.live else latest(db, period.key)
        if frozen is not None:
            if not frozen.intact:
                raise Refused(f"{period.label} 第 {frozen.version} 版冻结报表校验失败：内容与冻结时的 SHA-256 不符 "
                              "(the frozen report does not match its hash: check the database; --live scores "
                              "figures computed from the store instead)")
            return frozen.snapshot().figures, (f"第 {frozen.version} 版冻结报表（{local_time(frozen.frozen_at)} "
                                               f"由 {frozen.frozen_by} 冻结）")
        now = datetime.now(UTC)
        source = "按库中数据实时计算（--live）" if args.live else "按库中数据实时计算（本期报表未冻结）"
        if now < period.end_utc:
            source += "；统计期尚未结束，得分为截至目前的中期结果，不能作为付款依据 (the period has not ended)"
        options = ReportOptions(compare=False, topics=False)
        return build(db, period, options, now).figures(), f"{source}，{local_time(now)}"


def cmd_assess(args: argparse.Namespace, figures_for: FiguresFor | None = None) -> int:
    from config.loader import ConfigError
    from reports.assess import AssessError, assess
    from reports.assess_yaml import load_scheme

    command = "hotline report assess"
    try:
        manual = parse_manual(args.manual)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    path, example = scheme_path(args)
    try:
        scheme = load_scheme(path)
    except ConfigError as exc:
        print(f"{command}: 考核方案有误 (the scheme has errors):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_REFUSED
    if example:
        print(f"{command}: 使用内置示例方案 {path} (the embedded EXAMPLE contract: copy it to your config folder as "
              f"{SCHEME_FILE} and write your contract's figures, or give --scheme FILE)", file=sys.stderr)
    try:
        figures, source = (figures_for or store_figures)(args, args.period)
    except (ValueError, Refused) as exc:  # the period, the store
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        result = assess(scheme, figures, manual)
    except AssessError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps({"period": args.period, "scheme": str(path), "source": source, **result.as_json()},
                         ensure_ascii=False, indent=2))
    else:
        print(render(result, args.period, source))
    return 0


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def render(a: Assessment, period: str, source: str = "") -> str:
    """The zh-CN table: 指标, 目标, 实际, 得分/满分, 依据; then the total and the payment."""
    from reports.assess import plain, show

    header = ("指标", "目标", "实际", "得分/满分", "依据")
    rows = [(s.label, "人工评分" if s.target is None else show(s.target, s.unit),
             "—" if s.actual is None else show(s.actual, s.unit), f"{s.score}/{plain(s.weight)}", s.basis)
            for s in a.scores]
    widths = [max(_width(r[i]) for r in (header, *rows)) for i in range(4)]
    lines = [f"{a.contract.name}  考核期 {period}"] + ([f"数据来源：{source}"] if source else []) + [""]
    for row in (header, *rows):
        lines.append("  ".join(_pad(cell, w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    lines += [
        "",
        f"总分        {a.total}",
        f"付款档位    {a.band.text}",
        f"付款系数    {a.coefficient}",
        f"考核金额    {a.at_stake:,.2f} 元（合同总额 {a.contract.total:,.2f} 元 × {plain(a.contract.share * 100)}%）",
        f"应付金额    {a.payment:,.2f} 元（付款系数 × 考核金额）",
        f"扣减金额    {a.withheld:,.2f} 元",
    ]
    notes = [f"  {s.label}：{s.note}" for s in a.scores if s.note]
    if notes:
        lines += ["", "数据口径：", *notes]
    return "\n".join(lines)
