"""The shipped recording rules (metrics/rules.yml) compute 接通率 and 15秒接通率 as metrics/kpi.py
does: `promtool test rules` evaluates them over series written here, and the expected values
are `kpi.Totals(...).answer_rate` / `.sl_rate` of the same counts, never numbers typed by hand.
Every rule is then broken on purpose (its value, its division guard) and the tests must fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from itertools import accumulate
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


# --- month to date: the engine's store-derived gauges ------------------------------------------

MONTH = {
    "main": kpi.Totals(offered=100, answered=90, answered_within_sl=80, abandoned=8, short_abandoned=4),
    "tax": kpi.Totals(offered=10, answered=10, answered_within_sl=5),
    "night": kpi.Totals(offered=2, abandoned=2, short_abandoned=2),  # only short abandons: no rate
}
KINDS = ("offered", "answered", "answered_within_sl", "short_abandoned", "abandoned")


def month_series(month: dict[str, kpi.Totals], targets: tuple[dict[str, str], ...]) -> list[dict[str, str]]:
    return [series("hotline_month_calls", f"{getattr(t, kind)}x3", target, queue=q, kind=kind)
            for target in targets for q, t in month.items() for kind in KINDS]


def month_tests(month: dict[str, kpi.Totals], targets: tuple[dict[str, str], ...] = (ENGINE,)) -> dict[str, Any]:
    return {"interval": "1h", "input_series": month_series(month, targets),
            "promql_expr_test": [*expect("answer_rate:month_to_date", "2h", month),
                                 *expect("sl_rate:month_to_date", "2h", month)]}


# --- rolling 24 h: the engine's counters ------------------------------------------------------

HOURS = 30  # samples every hour for 30 hours; the rules look at the last 24 only


def per_hour(first_6h: kpi.Totals, then: kpi.Totals) -> list[kpi.Totals]:
    """What each hour (1..HOURS) added: a bad morning, then the day the 24-hour window sees."""
    return [first_6h if hour <= 6 else then for hour in range(1, HOURS + 1)]


ROLLING = {
    "main": per_hour(kpi.Totals(offered=10, answered=5, answered_within_sl=4, short_abandoned=1),
                     kpi.Totals(offered=10, answered=8, answered_within_sl=6, short_abandoned=1)),
    "tax": per_hour(kpi.Totals(offered=2, answered=2, answered_within_sl=1),
                    kpi.Totals(offered=2, answered=2, answered_within_sl=1)),
    "night": per_hour(kpi.Totals(offered=1, short_abandoned=1), kpi.Totals(offered=1, short_abandoned=1)),
}
COUNTERS = {"offered": "hotline_calls_offered_total", "answered": "hotline_calls_answered_total",
            "answered_within_sl": "hotline_calls_answered_within_service_level_total",
            "short_abandoned": "hotline_calls_short_abandoned_total"}


def counter_series(rolling: dict[str, list[kpi.Totals]], restart_at: int | None = None) -> list[dict[str, str]]:
    """Each counter's value every hour, from 0; `restart_at`: the engine restarts just before that
    hour's sample, and every counter starts again from 0 (Prometheus sees a reset)."""
    out = []
    for queue, hours in rolling.items():
        for field, name in COUNTERS.items():
            values = [0, *accumulate(getattr(t, field) for t in hours)]
            if restart_at is not None:
                values = values[:restart_at] + [v - values[restart_at - 1] for v in values[restart_at:]]
            out.append(series(name, values, queue=queue))
    return out


def window(rolling: dict[str, list[kpi.Totals]], last: int = 24) -> dict[str, kpi.Totals]:
    return {q: sum(hours[-last:], kpi.Totals()) for q, hours in rolling.items()}


def rolling_tests(rolling: dict[str, list[kpi.Totals]], restart_at: int | None = None) -> dict[str, Any]:
    expected = window(rolling)
    at = f"{HOURS}h"
    return {"interval": "1h", "input_series": counter_series(rolling, restart_at),
            "promql_expr_test": [*expect("answer_rate:rolling_24h", at, expected),
                                 *expect("sl_rate:rolling_24h", at, expected)]}


def all_tests() -> list[dict[str, Any]]:
    nothing = {q: kpi.Totals() for q in MONTH}
    quiet = {q: [kpi.Totals()] * HOURS for q in ROLLING}
    return [
        month_tests(MONTH),
        month_tests(MONTH, (ENGINE, RESTARTED)),  # two targets on one store: not counted twice
        month_tests(nothing),  # the 1st at 00:00: no rate anywhere, not 0% and not NaN
        rolling_tests(ROLLING),
        rolling_tests(ROLLING, restart_at=20),  # an engine restart inside the window loses nothing
        rolling_tests(quiet),
    ]


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


def test_the_24_hour_window_leaves_the_calls_before_it_out() -> None:
    # The test data means something: the morning's poor hours would change the figure.
    assert window(ROLLING)["main"].answer_rate != window(ROLLING, last=HOURS)["main"].answer_rate


def mutants() -> list[tuple[str, str]]:
    """(what was broken, the broken rules file's text): each rule's value off by half, and each
    rule without its division guard (an empty period then records NaN)."""
    def halved(expr: str) -> str:
        return f"({expr}) * 0.5"

    def unguarded(expr: str) -> str:
        return re.sub(r"\s*>\s*0\)\s*$", ")", expr)

    text = RULES.read_text(encoding="utf-8")
    out = []
    for index, rule in enumerate(recorded()):
        for how, mutate in (("value", halved), ("guard", unguarded)):
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
