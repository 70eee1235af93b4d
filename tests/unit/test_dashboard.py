"""The Grafana dashboard as code (metrics/dashboard.py): the shipped JSON and provisioning files
are exactly what the code generates (nobody edits them by hand), every panel queries
Prometheus, titles are zh-CN, and every PromQL expression of the dashboard, the recording
rules and the alerts is accepted by Prometheus' own parser and reads only series the engine
exports (or the recording rules record)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config.loader import load
from cti.engine import build
from cti.month_to_date import Figures, month_window
from metrics import dashboard, kpi
from testbed.configs import write_config

METRICS = Path(__file__).resolve().parents[2] / "metrics"
SHIPPED = METRICS / "grafana"
CJK = re.compile(r"[\u4e00-\u9fff]")
# Grafana's variables, as Prometheus would see them once Grafana filled them in.
VARIABLES = {"$__rate_interval": "5m", "$queue": ".*"}


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: `make test-deps` installs Prometheus, which brings it")
    return binary


def shipped_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SHIPPED / "dashboards" / "hotline.json").read_text(encoding="utf-8"))
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for panel in panels for p in (panel, *all_panels(panel.get("panels") or []))]


def rule_exprs(name: str) -> list[str]:
    loaded = yaml.safe_load((METRICS / name).read_text(encoding="utf-8"))
    return [r["expr"] for group in loaded["groups"] for r in group["rules"]]


def filled(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def promtool_accepts(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    rules = {"groups": [{"name": "check", "rules": [{"record": f"check:expr_{i}", "expr": filled(e)}
                                                    for i, e in enumerate(exprs)]}]}
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_shipped_files_are_exactly_what_the_code_generates(tmp_path: Path) -> None:
    dashboard.main(["--out", str(tmp_path)])
    generated = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    shipped = {p.relative_to(SHIPPED).as_posix(): p.read_bytes() for p in SHIPPED.rglob("*") if p.is_file()}
    assert set(generated) == set(shipped), "run `python -m metrics.dashboard --out metrics/grafana`"
    changed = [name for name in generated if generated[name] != shipped[name]]
    assert changed == [], f"{changed} differ: change metrics/dashboard.py and regenerate, never the files"


def test_every_panel_queries_prometheus_through_the_datasource_variable() -> None:
    panels = [p for p in all_panels(shipped_dashboard()["panels"]) if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_the_datasource_the_provisioning_creates_is_the_one_the_dashboard_selects() -> None:
    source = yaml.safe_load((SHIPPED / "provisioning/datasources/hotline-prometheus.yaml").read_text("utf-8"))
    (entry,) = source["datasources"]
    assert entry["type"] == "prometheus"
    assert entry["url"] == "${HOTLINE_PROMETHEUS_URL}"  # Grafana fills it in from its environment
    variable = next(v for v in shipped_dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == entry["uid"]


def test_every_title_is_zh_cn() -> None:
    board = shipped_dashboard()
    titles = [board["title"], *(p["title"] for p in all_panels(board["panels"]))]
    titles += [v["label"] for v in board["templating"]["list"]]
    assert [t for t in titles if not CJK.search(t)] == []


def test_the_answer_rate_panels_draw_the_95_percent_target() -> None:
    rates = [p for p in all_panels(shipped_dashboard()["panels"])
             if p["type"] == "timeseries" and p["fieldConfig"]["defaults"].get("unit") == "percentunit"]
    assert rates
    for panel in rates:
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", panel["title"]
        assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None, 0.95], panel["title"]
    shown = {t["expr"] for p in rates for t in p["targets"]}
    assert {"hotline:answer_rate:rolling_24h", "hotline:answer_rate:month_to_date", "hotline:sl_rate:rolling_24h",
            "hotline:sl_rate:month_to_date"} <= shown


def test_prometheus_accepts_every_expression_of_the_dashboard_the_rules_and_the_alerts(tmp_path: Path) -> None:
    exprs = [*dashboard.expressions(shipped_dashboard()), *rule_exprs("rules.yml"), *rule_exprs("alerts.yml")]
    proc = promtool_accepts(tmp_path, exprs)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_expression_check_refuses_a_broken_expression(tmp_path: Path) -> None:
    proc = promtool_accepts(tmp_path, ['sum(rate(hotline_calls_offered_total{queue=~"$queue"}[5m])'])
    assert proc.returncode != 0


def exported(tmp_path: Path) -> set[str]:
    """The series names a freshly built engine exposes, with its month and overdue figures in."""
    engine = build(load(write_config(tmp_path / "config", ami_port=1, account=False)), tmp_path / "config")
    assert engine.month is not None and engine.overdue is not None
    month, _, _ = month_window(datetime.fromtimestamp(engine.month.clock(), UTC))  # this month's: exported
    engine.month.figures = Figures(month, {"main": kpi.Totals()}, 0.0, {"main": kpi.Totals()})
    engine.overdue.overdue = 0
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",),
                "unknown": ("",)}
    return {family.name + s for family in text_string_to_metric_families(generate_latest(engine.registry).decode())
            for s in suffixes.get(family.type, ("",))}


def test_every_series_the_dashboard_the_rules_and_the_alerts_read_is_exported_or_recorded(tmp_path: Path) -> None:
    exprs = [*dashboard.expressions(shipped_dashboard()), *rule_exprs("rules.yml"), *rule_exprs("alerts.yml")]
    loaded = yaml.safe_load((METRICS / "rules.yml").read_text(encoding="utf-8"))
    recorded = {r["record"] for group in loaded["groups"] for r in group["rules"]}
    read = {m for e in exprs for m in re.findall(r"\bhotline[a-z_]*(?::[a-z_0-9]+)+|\bhotline_[a-z0-9_]+", e)}
    assert read - exported(tmp_path) - recorded == set()
