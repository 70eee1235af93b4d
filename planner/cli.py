"""`hotline plan`: how many agents a load needs (Erlang A, Erlang C), for one load, for a given
N, or for every hour of the week from the store's call records; optionally checked by simulation.

`register(sub)` adds the command to the `hotline` parser; `main(argv)` runs it on its own."""

# The store (SQLAlchemy, alembic: ~1 s) and ciw (numpy: ~0.5 s) are imported when used, so that
# `hotline --help` and a plain plan stay instant.

from __future__ import annotations

import argparse
import json
import math
import sys
import unicodedata
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from planner.erlang import (
    MAX_AGENTS,
    MAX_CALLS_PER_HOUR,
    MIN_PATIENCE,
    ErlangA,
    ErlangC,
    Load,
    Plan,
    PlanError,
    Targets,
    erlang_a,
    erlang_c,
    plan,
)

# A slot's own AHT is used from this many answered calls up; below it the period's pooled AHT
# (a mean of a handful of talk times is mostly noise).
MIN_ANSWERED_FOR_SLOT_AHT = 30

DESCRIPTION = """\
计算话务所需坐席人数 / How many agents a load of calls needs.

Models:
  Erlang A (M/M/N+M) when a mean patience is known (--patience, or estimated from the store):
    callers hang up after an exponential patience; exact, from the birth-death chain.
  Erlang C (M/M/N) otherwise: nobody hangs up; the queue is unstable (no figure) when N <= A,
    A = calls per hour x AHT / 3600 erlangs. Its N for the service-level target is shown beside
    Erlang A's as the usual upper bound.

Targets are judged on OFFERED calls (every hang-up counts against them):
  answer rate = answered / offered; service level = answered within --sl-seconds / offered.
  The monthly KPI form (接通率, 15秒接通率: short abandons under --short-abandon seconds dropped
  from the denominator, as metrics/kpi.py counts) is shown beside; it is at or above these.
  Judging on the KPI form would reward impatient callers: with a 1 s patience nearly every
  unanswered caller is a short abandon and 5 agents would "pass" 600 calls an hour.
Roster = agents on the phones / (1 - shrinkage), rounded up.

Modes:
  hotline plan --calls-per-hour 600 --aht 240 --patience 120       smallest N meeting the targets
  hotline plan --calls-per-hour 600 --aht 240 --patience 120 --agents 42   the figures at N = 42
  hotline plan ... --simulate                  also a ciw discrete-event simulation of that N
  hotline plan --from-store URL [--queue Q] [--since D] [--until D]   a plan per hour of the week

Exit status: 0 done; 2 bad arguments (the message says what to give); 1 the store could not be read.
"""

EPILOG = """\
--from-store reads the table call_records of the engine's store (SQLite or PostgreSQL URL, as
store.url in engine.yaml), per hour of the week in Asia/Shanghai (周一 00-01 ... 周日 23-24):
  calls per hour  offered calls of that hour / how many such hours the period holds (calls are
                  counted in their offered queue; calls that met closed hours are not offered)
  AHT             mean talk of that hour's answered calls, or the whole period's when the hour
                  has fewer than 30 answered calls (marked *); talk only, after-call work is not
                  in the records: give --aht to plan with the full handle time
  patience        one estimate for the whole period (per hour it is too noisy): exponential
                  patience with censoring, sum of the waits of every offered call / abandons;
                  --patience overrides it; without abandons Erlang C is used
  --since is the first local day counted, --until the first one NOT counted (default: the first
  and the day after the last stored call's day; give --until to leave out a partial day).
"""


def _why(text: str) -> tuple[str, str]:
    """A reason written "zh / en" as the two parenthesised texts (two empty ones for none)."""
    zh, _, en = text.partition(" / ")
    return (f"（{zh}）" if zh else "", f" ({en})" if en else "")


def _number(kind: str, low: float, *, low_ok: bool, integer: bool = False, high: float | None = None,
            why_low: str = "", why_high: str = "") -> Any:
    """A parser of a number >= (or >) `low` and at most `high`; `why_*` ("zh / en") say why a bound."""

    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"不是{'整数' if integer else '数字'} / not {kind}: {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not low_ok):
            sign = ">=" if low_ok else ">"
            zh, en = _why(why_low)
            raise argparse.ArgumentTypeError(f"须 {sign} {low:g}{zh} / must be {sign} {low:g}{en}: {text!r}")
        if high is not None and value > high:
            zh, en = _why(why_high)
            limit = f"{high:,.0f}" if float(high).is_integer() else f"{high:g}"
            raise argparse.ArgumentTypeError(f"须 <= {limit}{zh} / must be at most {limit}{en}: {text!r}")
        return value

    return parse


_BEYOND = "远超任何热线的规模，计算将耗时过长 / far beyond any hotline; the computation would take minutes"


def _rate(off_ok: bool) -> Any:
    def parse(text: str) -> float | None:
        if off_ok and text.strip().lower() == "off":
            return None
        raw = text.strip()
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"不是比例 / not a rate: {text!r}; write 0.95 or 95%") from None
        if not (0 < value < 1):
            raise argparse.ArgumentTypeError(f"须在 0 与 1 之间 / must be between 0 and 1 (exclusive), "
                                             f"e.g. 0.95 or 95%: {text!r}")
        return value

    return parse


def _shrinkage(text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"不是比例 / not a rate: {text!r}; write 0.3 or 30%") from None
    if not (0 <= value < 1):
        raise argparse.ArgumentTypeError(f"须在 [0, 1) 内 / must be at least 0 and below 1, e.g. 0.3 or 30%: {text!r}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"日期格式应为 YYYY-MM-DD / a date is YYYY-MM-DD: {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `plan` to the `hotline` parser's sub-commands."""
    p = sub.add_parser("plan", help="how many agents a load needs (Erlang A / Erlang C), per load or per hour "
                       "of the week from the store", description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    load = p.add_argument_group("the load (one interval)")
    load.add_argument("--calls-per-hour", type=_number("a number", 0, low_ok=True, high=MAX_CALLS_PER_HOUR,
                                                       why_high=_BEYOND), metavar="X",
                      help=f"offered calls an hour, at most {MAX_CALLS_PER_HOUR:,} (required unless --from-store)")
    load.add_argument("--aht", type=_number("a number", 0, low_ok=False), metavar="SECONDS",
                      help="average handle time per answered call: talk + hold + after-call work (required "
                      "unless --from-store; with it, replaces the store's talk-only AHT)")
    load.add_argument("--patience", type=_number("a number", MIN_PATIENCE, low_ok=True, why_low=(
                          "短于 1 毫秒的耐心没有实际意义 / a patience under a millisecond means nothing")),
                      metavar="SECONDS",
                      help=f"mean time callers wait before hanging up (exponential), at least {MIN_PATIENCE:g}; "
                      "absent: Erlang C only, where nobody hangs up (with --from-store: the store's estimate)")
    t = p.add_argument_group("targets")
    t.add_argument("--target-answer-rate", type=_rate(True), default=0.95, metavar="RATE",
                   help="answered / offered, e.g. 0.95 or 95%%; 'off' for none (default 0.95)")
    t.add_argument("--target-sl", type=_rate(True), default=0.80, metavar="RATE",
                   help="answered within --sl-seconds / offered; 'off' for none (default 0.80)")
    t.add_argument("--sl-seconds", type=_number("a number", 0, low_ok=True), default=15.0, metavar="T",
                   help="the service-level threshold, seconds of wait (default 15, as 15秒接通率)")
    t.add_argument("--short-abandon", type=_number("a number", 0, low_ok=True), default=5.0, metavar="S",
                   help="hang-ups within S seconds are short abandons (速挂), dropped from the KPI figures shown "
                   "beside the targets; 0 drops none (default 5)")
    t.add_argument("--shrinkage", type=_shrinkage, default=0.30, metavar="RATE",
                   help="share of paid time not on the phones (breaks, training, meetings): roster = agents / "
                   "(1 - shrinkage), rounded up; e.g. 0.3 or 30%% (default 0.30)")
    m = p.add_argument_group("what to compute")
    m.add_argument("--agents", type=_number("a whole number", 1, low_ok=True, integer=True, high=MAX_AGENTS,
                                            why_high=_BEYOND), metavar="N",
                   help=f"evaluate N agents on the phones (at most {MAX_AGENTS:,}) instead of searching for the "
                   "smallest N (one load, not with --from-store)")
    m.add_argument("--simulate", action="store_true",
                   help="also simulate the planned (or --agents) N with ciw: Poisson arrivals, exponential talk "
                   "and patience; prints the simulated rates with 95%% confidence intervals (needs --patience; "
                   "~3 s per 100 000 calls; one load, not with --from-store)")
    m.add_argument("--customers", type=_number("a whole number", 400, low_ok=True, integer=True, high=5_000_000,
                                               why_high="（约 3 分钟）/ (about 3 minutes)"), metavar="N",
                   help="with --simulate: offered calls to simulate after the warm-up (default 100000, at most "
                   "5000000)")
    m.add_argument("--seed", type=_number("a whole number", 0, low_ok=True, integer=True), metavar="N",
                   help="with --simulate: the random seed, a whole number >= 0 (default 1)")
    s = p.add_argument_group("from the store: a plan per hour of the week")
    s.add_argument("--from-store", metavar="URL",
                   help="the store's database URL, e.g. sqlite:////var/lib/hotline/hotline.db or "
                   "postgresql+psycopg://user:pass@host/hotline")
    s.add_argument("--queue", metavar="Q", help="only calls offered in queue Q (default: every queue)")
    s.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first local day counted")
    s.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="first local day NOT counted")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of text (rates as fractions, times in seconds)")
    p.set_defaults(func=run, plan_parser=p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args))


# ---- Running -------------------------------------------------------------------------------------


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with this combination of options, in the words of what to do."""
    if args.from_store is not None:
        if args.calls_per_hour is not None:
            return "--from-store 按时段读取来电量，不能同时给 --calls-per-hour / --from-store reads calls per hour " \
                   "from the store: leave out --calls-per-hour"
        for option, given in (("--agents", args.agents), ("--simulate", args.simulate)):
            if given:
                return f"{option} 只用于单个话务量 / {option} works on one load: leave out --from-store, or {option}"
    else:
        for option, given in (("--queue", args.queue), ("--since", args.since), ("--until", args.until)):
            if given is not None:
                return f"{option} 需配合 --from-store / {option} needs --from-store URL"
        if args.calls_per_hour is None or args.aht is None:
            return "请给出 --calls-per-hour 与 --aht，或 --from-store / give --calls-per-hour and --aht " \
                   "(or --from-store URL)"
    if not args.simulate and (args.customers is not None or args.seed is not None):
        return "--customers 与 --seed 只用于模拟 / --customers and --seed go with --simulate: add --simulate"
    if args.simulate and args.patience is None:
        return "模拟需要 --patience / --simulate needs --patience (the simulated callers hang up)"
    if args.target_answer_rate is None and args.target_sl is None:
        return "至少保留一个目标 / both targets are off: keep --target-answer-rate or --target-sl"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem is not None:
        args.plan_parser.error(problem)  # usage + message, exit 2
    try:
        targets = Targets(answer_rate=args.target_answer_rate, service_level=args.target_sl,
                          sl_seconds=args.sl_seconds, short_abandon=args.short_abandon, shrinkage=args.shrinkage)
        if args.from_store is not None:
            return _from_store(args, targets)
        return _one_load(args, Load(args.calls_per_hour, args.aht, args.patience), targets)
    except PlanError as exc:
        print(f"hotline plan: {exc}", file=sys.stderr)
        return 2


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _one_load(args: argparse.Namespace, load: Load, targets: Targets) -> int:
    out: dict[str, Any] = {"load": {**asdict(load), "erlangs": load.erlangs}, "targets": asdict(targets)}
    lines_zh, lines_en = [_load_line_zh(load, targets)], [_load_line_en(load, targets)]
    if args.agents is not None:
        n = args.agents
        fig_a = erlang_a(load, n, targets.sl_seconds, targets.short_abandon) if load.patience is not None else None
        fig_c = erlang_c(load, n, targets.sl_seconds)
        met = _meets(targets, fig_a, fig_c)
        out.update(mode="evaluate", agents=n, meets_targets=met, erlang_a=_a_json(fig_a), erlang_c=_c_json(fig_c))
        verdict_zh = "达到目标" if met else "未达目标"
        verdict_en = "meets the targets" if met else "misses the targets"
        model = "Erlang A" if fig_a is not None else "Erlang C"
        lines_zh.append(f"{n} 名坐席（{model}）{verdict_zh}；排班需 {math.ceil(n / (1 - targets.shrinkage) - 1e-9)} 人"
                        f"（损耗率 {_pct(targets.shrinkage, 0)}）")
        lines_en.append(f"{n} agents ({model}) {verdict_en}; roster "
                        f"{math.ceil(n / (1 - targets.shrinkage) - 1e-9)} (shrinkage {_pct(targets.shrinkage, 0)})")
        if load.patience is None:
            note = ("未给平均耐心时长：仅 Erlang C，接通率目标无从判断 / no patience given: Erlang C only, the "
                    "answer-rate target is not judged; give --patience for Erlang A")
            out["notes"] = [note]
            zh_note, _, en_note = note.partition(" / ")
            lines_zh.append(zh_note)
            lines_en.append(en_note)
        else:
            out["notes"] = []
        _figure_lines(lines_zh, lines_en, fig_a, fig_c, targets)
        sim_n = n
    else:
        p = plan(load, targets)
        out.update(mode="plan", model=p.model, agents=p.agents, scheduled=p.scheduled,
                   erlang_c_agents=p.erlang_c_agents, erlang_a=_a_json(p.erlang_a), erlang_c=_c_json(p.erlang_c),
                   notes=list(p.notes))
        _plan_lines(lines_zh, lines_en, p)
        sim_n = p.agents
    if args.simulate:
        from planner.simulate import simulate  # ciw loads in ~0.5 s: only when asked

        if sim_n < 1:
            raise PlanError("无来电，无需模拟 / no calls offered: nothing to simulate")
        customers = args.customers or 100_000
        seed = 1 if args.seed is None else args.seed
        sim = simulate(load, sim_n, customers=customers, seed=seed, sl_seconds=targets.sl_seconds,
                       short_abandon=targets.short_abandon)
        exact = erlang_a(load, sim_n, targets.sl_seconds, targets.short_abandon)
        out["simulation"] = asdict(sim)
        lo, hi = sim.answer_rate_ci
        slo, shi = sim.service_level_ci
        lines_zh.append(f"模拟（ciw，{sim.customers} 通，种子 {seed}，{sim_n} 人）：接通率 {_pct(sim.answer_rate)}"
                        f"（95% 置信区间 {_pct(lo)}–{_pct(hi)}；Erlang A {_pct(exact.answer_rate)}），"
                        f"{_secs(targets.sl_seconds)} 秒服务水平 {_pct(sim.service_level)}（{_pct(slo)}–{_pct(shi)}；"
                        f"Erlang A {_pct(exact.service_level)}）")
        lines_en.append(f"Simulated (ciw, {sim.customers} calls, seed {seed}, N = {sim_n}): answer rate "
                        f"{_pct(sim.answer_rate)} (95% CI {_pct(lo)}-{_pct(hi)}; Erlang A {_pct(exact.answer_rate)}), "
                        f"SL{_secs(targets.sl_seconds)} {_pct(sim.service_level)} ({_pct(slo)}-{_pct(shi)}; "
                        f"Erlang A {_pct(exact.service_level)})")
    _print(args, out, lines_zh, lines_en)
    return 0


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)  # 汉字 take two columns


def _secs(value: float) -> str:
    return f"{value:g}"


def _load_line_zh(load: Load, targets: Targets) -> str:
    patience = f"平均耐心 {_secs(load.patience)} 秒" if load.patience is not None else "未给平均耐心（Erlang C）"
    goals = [f"接通率 ≥ {_pct(targets.answer_rate)}" if targets.answer_rate is not None else "",
             f"{_secs(targets.sl_seconds)} 秒服务水平 ≥ {_pct(targets.service_level)}"
             if targets.service_level is not None else ""]
    return (f"话务量 {load.calls_per_hour:g} 通/小时 × 平均处理 {_secs(load.aht)} 秒 = {load.erlangs:.2f} Erl；"
            f"{patience}；目标：{'，'.join(g for g in goals if g)}（按呼入量计）")


def _load_line_en(load: Load, targets: Targets) -> str:
    patience = f"mean patience {_secs(load.patience)} s" if load.patience is not None else "no patience (Erlang C)"
    goals = [f"answer rate >= {_pct(targets.answer_rate)}" if targets.answer_rate is not None else "",
             f"SL{_secs(targets.sl_seconds)} >= {_pct(targets.service_level)}"
             if targets.service_level is not None else ""]
    return (f"Load {load.calls_per_hour:g} calls/h x AHT {_secs(load.aht)} s = {load.erlangs:.2f} erlangs; "
            f"{patience}; targets (of offered calls): {', '.join(g for g in goals if g)}")


def _plan_lines(zh: list[str], en: list[str], p: Plan) -> None:
    shrink = _pct(p.targets.shrinkage, 0)
    if p.model == "erlang_a":
        bound_zh = (f"Erlang C 上限 {p.erlang_c_agents} 人" if p.erlang_c_agents >= p.agents
                    else f"Erlang C {p.erlang_c_agents} 人（低于 Erlang A，见说明）")
        occ = p.erlang_a.occupancy if p.erlang_a is not None else None
        zh.append(f"所需坐席 {p.agents} 人（Erlang A）；{bound_zh}；占用率 {_pct(occ, 1)}")
        en.append(f"Agents needed: {p.agents} (Erlang A); Erlang C (nobody hangs up) asks {p.erlang_c_agents}; "
                  f"occupancy {_pct(occ, 1)}")
    else:
        occ = p.erlang_c.occupancy if p.erlang_c is not None else None
        zh.append(f"所需坐席 {p.agents} 人（Erlang C）；占用率 {_pct(occ, 1)}")
        en.append(f"Agents needed: {p.agents} (Erlang C); occupancy {_pct(occ, 1)}")
    zh.append(f"排班 {p.scheduled} 人（损耗率 {shrink}：{p.agents} ÷ (1 − {p.targets.shrinkage:g})，向上取整）")
    en.append(f"On the roster: {p.scheduled} (shrinkage {shrink}: {p.agents} / (1 - {p.targets.shrinkage:g}), "
              "rounded up)")
    if p.agents:
        _figure_lines(zh, en, p.erlang_a, p.erlang_c if p.model == "erlang_c" else None, p.targets)
    if p.model == "erlang_a" and p.erlang_c is not None and p.erlang_c.service_level is not None:
        c = p.erlang_c
        zh.append(f"Erlang C 在 {c.agents} 人时：等待概率 {c.p_wait:.3f}，{_secs(c.sl_seconds)} 秒服务水平 "
                  f"{_pct(c.service_level, 1)}，平均应答 {c.asa:.1f} 秒，占用率 {_pct(c.occupancy, 1)}")
        en.append(f"Erlang C at {c.agents}: P(wait) {c.p_wait:.3f}, SL{_secs(c.sl_seconds)} "
                  f"{_pct(c.service_level, 1)}, ASA {c.asa:.1f} s, occupancy {_pct(c.occupancy, 1)}")
    for note in p.notes:
        z, _, e = note.partition(" / ")
        zh.append(f"说明：{z}")
        en.append(f"Note: {e or z}")


def _figure_lines(zh: list[str], en: list[str], a: ErlangA | None, c: ErlangC | None, t: Targets) -> None:
    sl = _secs(t.sl_seconds)
    short = _secs(t.short_abandon)
    if a is not None:
        zh.append(f"{a.agents} 人时（Erlang A）：接通率 {_pct(a.answer_rate)}，"
                  f"{sl} 秒服务水平 {_pct(a.service_level)}，等待概率 {a.p_wait:.3f}，"
                  f"放弃率 {_pct(a.p_abandon)}（其中 {short} 秒内速挂 "
                  f"{_pct(a.p_short_abandon)}），平均应答 {a.asa_answered:.1f} 秒（已接通来电；全部来电平均等待 "
                  f"{a.asa_all:.1f} 秒），占用率 {_pct(a.occupancy, 1)}")
        zh.append(f"  月度考核口径（不计 {short} 秒内速挂）：接通率 {_pct(a.answer_rate_excl_short)}，"
                  f"{sl}秒接通率 {_pct(a.service_level_excl_short)}")
        en.append(f"At {a.agents} (Erlang A): answer rate {_pct(a.answer_rate)}, SL{sl} {_pct(a.service_level)}, "
                  f"P(wait) {a.p_wait:.3f}, abandoned {_pct(a.p_abandon)} (within {short} s: "
                  f"{_pct(a.p_short_abandon)}), ASA {a.asa_answered:.1f} s of answered calls ({a.asa_all:.1f} s "
                  f"over all callers), occupancy {_pct(a.occupancy, 1)}")
        en.append(f"  KPI form (short abandons under {short} s dropped): answer rate "
                  f"{_pct(a.answer_rate_excl_short)}, SL{sl} {_pct(a.service_level_excl_short)}")
    if c is not None:
        if c.stable:
            zh.append(f"{c.agents} 人时（Erlang C）：等待概率 {c.p_wait:.3f}，{sl} 秒服务水平 {_pct(c.service_level)}，"
                      f"平均应答 {c.asa:.1f} 秒，占用率 {_pct(c.occupancy, 1)}")
            en.append(f"At {c.agents} (Erlang C): P(wait) {c.p_wait:.3f}, SL{sl} {_pct(c.service_level)}, "
                      f"ASA {c.asa:.1f} s, occupancy {_pct(c.occupancy, 1)}")
        else:
            zh.append(f"Erlang C：{c.agents} 人 ≤ 话务量 {c.erlangs:.2f} Erl，队列不稳定（排队无限增长），无数值")
            en.append(f"Erlang C: {c.agents} agents <= {c.erlangs:.2f} erlangs: the queue is unstable (grows "
                      "without bound), no figures")


def _meets(t: Targets, a: ErlangA | None, c: ErlangC) -> bool:
    if a is not None:
        return ((t.answer_rate is None or a.answer_rate >= t.answer_rate)
                and (t.service_level is None or a.service_level >= t.service_level))
    return c.service_level is not None and (t.service_level is None or c.service_level >= t.service_level)


def _a_json(a: ErlangA | None) -> dict[str, Any] | None:
    return None if a is None else asdict(a)


def _c_json(c: ErlangC | None) -> dict[str, Any] | None:
    return None if c is None else {**asdict(c), "stable": c.stable}


def _print(args: argparse.Namespace, out: dict[str, Any], zh: list[str], en: list[str]) -> None:
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        print("\n".join([*zh, "", *en]))


# ---- From the store ------------------------------------------------------------------------------


def _from_store(args: argparse.Namespace, targets: Targets) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from planner.history import forecast
    from tickets.db import open_engine

    url: str = args.from_store
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise PlanError(f"不是数据库地址 / not a database URL: {url!r}; e.g. sqlite:////var/lib/hotline/hotline.db "
                        "or postgresql+psycopg://user:pass@host/hotline") from None
    shown = parsed.render_as_string(hide_password=True)
    # open_engine would create a missing SQLite file: a typo must not leave an empty database behind.
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
        raise PlanError(f"没有该数据库文件 / no database file at {shown}; check the path (store.url in "
                        "engine.yaml)")
    try:
        engine = open_engine(url)
        try:
            f = forecast(engine, queue=args.queue, since=args.since, until=args.until)
        finally:
            engine.dispose()
    except DBAPIError as exc:
        why = " ".join(str(exc.orig).split())
        print(f"hotline plan: cannot read call_records from {shown} ({why}); is the database running, and is this "
              "the hotline's store (store.url in engine.yaml)?", file=sys.stderr)
        return 1
    pooled_aht = f.total.aht
    patience = args.patience if args.patience is not None else f.total.patience
    if patience is not None and patience <= 0:
        raise PlanError("期内放弃来电的等待均为 0 秒，无法估计耐心 / every abandoned call in the period waited 0 s: "
                        "no patience can be estimated; give --patience")
    notes: list[str] = []
    if args.patience is None:
        notes.append(f"平均耐心（全期估计）{_secs(round(patience, 1))} 秒 / mean patience (whole period) "
                     f"{round(patience, 1):g} s" if patience is not None else
                     "期内无放弃来电：按 Erlang C 计算 / no abandoned calls in the period: Erlang C")
    if args.aht is None:
        notes.append("AHT 仅含通话时长（记录中无事后处理时长），可用 --aht 指定 / AHT is talk only (the records hold "
                     "no after-call work): give --aht for the full handle time")
    rows: list[dict[str, Any]] = []
    for s in f.slots:
        if args.aht is not None:
            aht, pooled = args.aht, False
        elif s.tally.answered >= MIN_ANSWERED_FOR_SLOT_AHT and s.tally.aht is not None:
            aht, pooled = s.tally.aht, False
        else:
            aht, pooled = pooled_aht, True
        calls = s.calls_per_hour
        if calls > 0 and aht is None:
            raise PlanError("期内没有已接通来电，无法估计 AHT / no answered calls in the period to take an AHT "
                            "from: give --aht")
        p = plan(Load(calls, aht or 1.0, patience), targets)
        rows.append({"weekday": s.weekday, "hour": s.hour, "label": s.label, "hours": s.hours,
                     "offered": s.tally.offered, "calls_per_hour": calls, "aht": aht if calls > 0 else None,
                     "aht_pooled": pooled and calls > 0, "model": p.model, "agents": p.agents,
                     "scheduled": p.scheduled, "erlang_c_agents": p.erlang_c_agents,
                     "answer_rate": p.erlang_a.answer_rate if p.erlang_a else None,
                     "service_level": (p.erlang_a.service_level if p.erlang_a else
                                       p.erlang_c.service_level if p.erlang_c else None)})
    out = {"mode": "forecast", "store": shown, "queue": f.queue, "since": f.since.isoformat(),
           "until": f.until.isoformat(), "targets": asdict(targets), "patience": patience,
           "total": {**asdict(f.total), "aht": f.total.aht, "patience": f.total.patience}, "notes": notes,
           "hours": rows}
    head_zh = (f"{shown} 队列 {f.queue or '全部'}，{f.since} 至 {f.until}（不含）：呼入 {f.total.offered} 通，"
               f"接通 {f.total.answered}，放弃 {f.total.abandoned}")
    head_en = (f"{shown} queue {f.queue or 'all'}, {f.since} to {f.until} (exclusive): {f.total.offered} offered, "
               f"{f.total.answered} answered, {f.total.abandoned} abandoned")
    sl = _secs(targets.sl_seconds)
    header = ["时段", "来电/时", "AHT秒", "所需坐席", "Erlang C", "排班", "接通率", f"{sl}秒服务水平"]
    table = [header]
    for r in rows:
        aht_text = "—" if r["aht"] is None else f"{r['aht']:.0f}{'*' if r['aht_pooled'] else ''}"
        table.append([r["label"], f"{r['calls_per_hour']:.1f}", aht_text, str(r["agents"]), str(r["erlang_c_agents"]),
                      str(r["scheduled"]), _pct(r["answer_rate"], 1), _pct(r["service_level"], 1)])
    widths = [max(_width(line[i]) for line in table) for i in range(len(header))]
    zh = [head_zh, *(n.partition(" / ")[0] for n in notes)]
    zh.extend("  ".join((cell if i == 0 else "") + " " * (w - _width(cell)) + ("" if i == 0 else cell)
                        for i, (cell, w) in enumerate(zip(line, widths, strict=True))) for line in table)
    if any(r["aht_pooled"] for r in rows):
        zh.append(f"* 该时段已接通来电少于 {MIN_ANSWERED_FOR_SLOT_AHT} 通，用全期 AHT")
    en = [head_en, *(n.partition(" / ")[2] for n in notes),
          f"Columns: hour of week (Asia/Shanghai), calls/h, AHT s, agents ({'Erlang A' if patience else 'Erlang C'}), "
          f"Erlang C agents, roster (shrinkage {_pct(targets.shrinkage, 0)}), answer rate and SL of offered calls"
          + (f"; * = fewer than {MIN_ANSWERED_FOR_SLOT_AHT} answered calls that hour: the period's AHT"
             if any(r["aht_pooled"] for r in rows) else "")]
    _print(args, out, zh, en)
    return 0
