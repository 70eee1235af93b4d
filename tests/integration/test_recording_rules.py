"""The shipped recording rules (metrics/rules.yml) compute 接通率 and 15秒接通率 as metrics/kpi.py
does: `promtool test rules` evaluates them over series written here, and the expected values
are `kpi.Totals(...).answer_rate` / `.sl_rate` of the same counts, never numbers typed by hand.
Every rule is then broken on purpose (its value, its division guard, counting a queue once per
target) and the tests must fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from metrics import kpi

RULES = Path(__file__).resolve().parents[2] / "metrics" / "rules.yml"
ENGINE = {"job": "hotline", "instance": "engine:9108"}
RESTARTED = {"job": "hotline", "instance": "engine:19108"}  # the same store seen by a second target


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: `make test-deps` installs Prometheus, which brings it")
    return binary


def series(name: str, values: str | list[float], target: dict[str, str] = ENGINE, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted({**target, **labels}.items()))
    text = values if isinstance(values, str) else " ".join(f"{v:g}" for v in values)
    return {"series": f"{name}{{{inner}}}", "values": text}


def sample(rule: str, value: float | None, **labels: str) -> list[dict[str, Any]]:
    if value is None:  # kpi says "no rate" (no eligible call): Prometheus must record nothing
        return []
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return [{"labels": f"{rule}{{{inner}}}" if inner else rule, "value": value}]


def expect(rule: str, eval_time: str, by_queue: dict[str, kpi.Totals]) -> list[dict[str, Any]]:
    """The checks of one rule pair (hotline:... and hotline_queue:...) against kpi's figures."""
    rate = "answer_rate" if rule.startswith("answer_rate") else "sl_rate"
    total = sum(by_queue.values(), kpi.Totals())
    per_queue = [s for q, t in sorted(by_queue.items()) for s in sample(f"hotline_queue:{rule}", getattr(t, rate),
                                                                        queue=q)]
    return [{"expr": f"hotline:{rule}", "eval_time": eval_time,
             "exp_samples": sample(f"hotline:{rule}", getattr(total, rate))},
            {"expr": f"hotline_queue:{rule}", "eval_time": eval_time, "exp_samples": per_queue}]


def run(tmp_path: Path, tests: list[dict[str, Any]], rules: Path = RULES) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "rules_test.yml"
    spec.write_text(json.dumps({"rule_files": [str(rules)], "evaluation_interval": "1h", "tests": tests},
                               ensure_ascii=False), encoding="utf-8")
    return subprocess.run([promtool(), "test", "rules", str(spec)], capture_output=True, text=True, timeout=60,
                          check=False)


# --- month to date and rolling 24 h: the engine's store-derived gauges ------------------------

WINDOWS = {"month_to_date": "hotline_month_calls", "rolling_24h": "hotline_rolling_24h_calls"}
MONTH = {
    "main": kpi.Totals(offered=100, answered=90, answered_within_sl=80, abandoned=8, short_abandoned=4),
    "tax": kpi.Totals(offered=10, answered=9, answered_within_sl=5, abandoned=1),
    "night": kpi.Totals(offered=2, abandoned=2, short_abandoned=2),  # only short abandons: no rate
}
# The same store read a refresh earlier (a second engine, or the engine before its restart on
# another port): fewer calls of every kind, and other rates, so that counting a queue twice
# (`sum by` instead of `max by`) gives another figure than counting it once.
MONTH_EARLIER = {
    "main": kpi.Totals(offered=90, answered=84, answered_within_sl=76, abandoned=5, short_abandoned=2),
    "tax": kpi.Totals(offered=8, answered=7, answered_within_sl=3, abandoned=1),
    "night": kpi.Totals(offered=1, abandoned=1, short_abandoned=1),
}
ROLLING = {
    "main": kpi.Totals(offered=240, answered=190, answered_within_sl=150, abandoned=44, short_abandoned=24),
    "tax": kpi.Totals(offered=48, answered=46, answered_within_sl=24, abandoned=2),
    "night": kpi.Totals(offered=24, abandoned=24, short_abandoned=24),
}
ROLLING_EARLIER = {
    "main": kpi.Totals(offered=230, answered=186, answered_within_sl=140, abandoned=40, short_abandoned=20),
    "tax": kpi.Totals(offered=40, answered=39, answered_within_sl=16, abandoned=1),
    "night": kpi.Totals(offered=20, abandoned=20, short_abandoned=20),
}
KINDS = ("offered", "answered", "answered_within_sl", "short_abandoned", "abandoned")
Figures = dict[str, kpi.Totals]


def gauge_series(window: str, figures: Figures, target: dict[str, str] = ENGINE,
                 values: str = "x3", gap: int = 0) -> list[dict[str, str]]:
    """The gauges of `window` with these figures; `gap`: that many samples missing first."""
    missing = "_ " * gap
    return [series(WINDOWS[window], f"{missing}{getattr(t, kind)}{values}", target, queue=q, kind=kind)
            for q, t in figures.items() for kind in KINDS]


def gauge_tests(window: str, input_series: list[dict[str, str]], expected: Figures,
                at: str = "2h") -> dict[str, Any]:
    return {"interval": "1h", "input_series": input_series,
            "promql_expr_test": [*expect(f"answer_rate:{window}", at, expected),
                                 *expect(f"sl_rate:{window}", at, expected)]}


def window_tests(window: str, now: Figures, earlier: Figures) -> list[dict[str, Any]]:
    nothing = {q: kpi.Totals() for q in now}
    return [
        gauge_tests(window, gauge_series(window, now), now),
        # Two targets on one store, one a refresh behind: each queue counted once, at its
        # newest figures (`max by (queue)`), never summed over the targets.
        gauge_tests(window, gauge_series(window, now) + gauge_series(window, earlier, RESTARTED), now),
        # The engine restarts on another port: its old target's last sample is at 1 h, the new
        # target's first at 2 h (after its first refresh), with what the store says then.
        gauge_tests(window, gauge_series(window, earlier, values="x1")
                    + gauge_series(window, now, RESTARTED, values="x2", gap=2), now, at="4h"),
        gauge_tests(window, gauge_series(window, nothing), nothing),  # no call yet: no rate, not 0% or NaN
    ]


def all_tests() -> list[dict[str, Any]]:
    return [*window_tests("month_to_date", MONTH, MONTH_EARLIER),
            *window_tests("rolling_24h", ROLLING, ROLLING_EARLIER)]


def recorded() -> list[dict[str, str]]:
    loaded = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r for group in loaded["groups"] for r in group["rules"]]


def test_the_rules_file_passes_prometheus_checks() -> None:
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_recording_rule_is_tested_here() -> None:
    tested = {t["expr"] for test in all_tests() for t in test["promql_expr_test"]}
    assert {r["record"] for r in recorded()} == tested


def test_the_kpi_fields_the_rules_use_are_the_ones_the_month_gauges_export() -> None:
    from cti.month_to_date import KINDS as EXPORTED

    assert set(EXPORTED) == set(KINDS) <= {f.name for f in fields(kpi.Totals)}


def test_the_rates_equal_kpi_month_to_date_and_over_the_last_24_hours(tmp_path: Path) -> None:
    proc = run(tmp_path, all_tests())
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("now", "earlier"), [(MONTH, MONTH_EARLIER), (ROLLING, ROLLING_EARLIER)])
def test_the_two_targets_figures_tell_counting_once_from_counting_twice(now: Figures, earlier: Figures) -> None:
    # The test data means something: summed over both targets, every rate that exists differs.
    for q in ("main", "tax"):
        summed = now[q] + earlier[q]
        assert summed.answer_rate != now[q].answer_rate and summed.sl_rate != now[q].sl_rate, q
    assert all(getattr(earlier[q], k) <= getattr(now[q], k) for q in now for k in KINDS)  # older: fewer of each


def mutants() -> list[tuple[str, str]]:
    """(what was broken, the broken rules file's text): each rule's value off by half, each rule
    without its division guard (an empty period then records NaN), and each rule summing the
    targets that export one store instead of taking each queue once."""
    def halved(expr: str) -> str:
        return f"({expr}) * 0.5"

    def unguarded(expr: str) -> str:
        return re.sub(r"\s*>\s*0\)\s*$", ")", expr)

    def summed(expr: str) -> str:  # a queue counted once per target instead of once
        return expr.replace("max by (queue)", "sum by (queue)")

    text = RULES.read_text(encoding="utf-8")
    out = []
    for index, rule in enumerate(recorded()):
        for how, mutate in (("value", halved), ("guard", unguarded), ("targets", summed)):
            broken = yaml.safe_load(text)
            rules = [r for g in broken["groups"] for r in g["rules"]]
            rules[index]["expr"] = mutate(rule["expr"])
            assert rules[index]["expr"] != rule["expr"], f"{how} mutation of {rule['record']} changed nothing"
            out.append((f"{rule['record']} #{index} ({how})", yaml.safe_dump(broken, allow_unicode=True)))
    return out


def test_the_tests_fail_when_any_rule_is_broken(tmp_path: Path) -> None:
    control = tmp_path / "control.yml"  # the shipped rules through the same YAML round trip: they pass
    control.write_text(yaml.safe_dump(yaml.safe_load(RULES.read_text(encoding="utf-8")), allow_unicode=True),
                       encoding="utf-8")
    proc = run(tmp_path, all_tests(), control)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    survived = []
    for name, text in mutants():
        broken = tmp_path / "rules.yml"
        broken.write_text(text, encoding="utf-8")
        if run(tmp_path, all_tests(), broken).returncode == 0:
            survived.append(name)
    assert survived == []
