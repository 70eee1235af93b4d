"""合同考核: points from the report's figures by the contract's rules, the payment band and the yuan,
and every mistake in assessment.yaml reported with its line."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from config.loader import ConfigError
from reports.assess import AssessError, ManualScore, Scheme, assess
from reports.assess_cli import cmd_assess, parse_manual, register_assess
from reports.assess_yaml import DEFAULT_FILE, load_scheme, parse_scheme
from reports.figures import Figure, rate
from reports.periods import parse
from reports.report import ReportOptions, build
from reports.versions import freeze
from tickets.db import migrate, open_engine

D = Decimal
PAYMENT = """\
payment:
  - {from: 90, to: 100, coefficient: 1.00}
  - {from: 80, to: 90, coefficient: [0.80, 0.90]}
  - {from: 70, to: 80, coefficient: [0.70, 0.80]}
  - {from: 60, to: 70, coefficient: [0.60, 0.70]}
  - {from: 50, to: 60, coefficient: [0.50, 0.60]}
  - {from: 40, to: 50, coefficient: [0.40, 0.50]}
  - {from: 0, to: 40, coefficient: 0}
"""


def scheme_text(indicators: str, contract: str = "total: 10000000\n  at_stake: 20%", payment: str = PAYMENT,
                head: str = "") -> str:
    return (f"contract:\n  name: 测试合同\n  {contract}\n{head}indicators:\n"
            f"{textwrap.indent(textwrap.dedent(indicators), '  ')}{payment}")


def one(indicator: str, rest_manual: int | None = None) -> Scheme:
    """A scheme of one indicator, with a hand-scored remainder so the weights make 100."""
    extra = "" if rest_manual is None else (f"- {{key: rest, manual: true, label: 其余, weight: {rest_manual}, "
                                            "missing: zero}\n")
    return parse_scheme(scheme_text(textwrap.dedent(indicator) + extra), "test.yaml")


ON_TIME = """\
- key: tickets.on_time_rate
  weight: 20
  target: 95%
  direction: higher
  rule: {per: 1pp, lose: 1STEPS}
"""


ON_TIME_ = ON_TIME.replace("STEPS", "")


def on_time(steps: str = "", per: str = "1pp", extra: str = "", lose: str = "1") -> Scheme:
    rule = ON_TIME.replace("per: 1pp, lose: 1", f"per: {per}, lose: {lose}")
    rule = rule.replace("STEPS", f", steps: {steps}" if steps else "")
    return one(rule + extra, rest_manual=80)


def score(scheme: Scheme, figures: Mapping[str, Figure], key: str) -> Decimal:
    return next(s.score for s in assess(scheme, figures).scores if s.key == key)


def on_time_figure(done: int, of: int = 10000) -> dict[str, Figure]:
    return {"tickets.on_time_rate": rate("tickets.on_time_rate", done, of, "按期办结/应办结")}


# ---- an indicator's points ---------------------------------------------------------------------

def test_lianyungang_on_time_rate_of_89_82_scores_14_82_of_20_at_one_point_per_pp() -> None:
    # 95 - 89.82 = 5.18 pp short, 1 point each: 20 - 5.18.
    assert score(on_time(), on_time_figure(8982), "tickets.on_time_rate") == D("14.82")


@pytest.mark.parametrize(("steps", "expected"), [
    ("round", "15.00"),  # 5.18 steps -> 5
    ("up", "14.00"),  # any part of a step is a whole one -> 6
    ("down", "15.00"),  # whole steps only -> 5
])
def test_whole_steps_of_one_pp(steps: str, expected: str) -> None:
    assert score(on_time(steps), on_time_figure(8982), "tickets.on_time_rate") == D(expected)


def test_steps_of_a_tenth_of_a_pp_rounded() -> None:
    # 5.18 pp = 51.8 steps of 0.1 pp -> 52 steps, 0.1 point each = 5.2 lost.
    scheme = on_time("round", per="0.1pp", lose="0.1")
    rule = scheme.indicators[0].rule
    assert rule is not None and rule.per == D("0.001")
    assert score(scheme, on_time_figure(8982), "tickets.on_time_rate") == D("14.80")


def test_meeting_the_target_loses_nothing_and_the_published_rounding_counts() -> None:
    assert score(on_time(), on_time_figure(9900), "tickets.on_time_rate") == D("20.00")
    # 94.995% is printed 95.00%: it meets the target as the report shows it.
    assert score(on_time(), on_time_figure(18999, 20000), "tickets.on_time_rate") == D("20.00")
    # 94.994% is printed 94.99%: 0.01 pp short.
    assert score(on_time(), {"tickets.on_time_rate": Figure("tickets.on_time_rate", 0.94994)},
                 "tickets.on_time_rate") == D("19.99")


def test_the_published_rounding_is_half_up_not_half_even() -> None:
    # 94.995% cannot tell them apart (both give 95.00%); 94.985% can: half up 94.99%, half even 94.98%.
    assert score(on_time(), on_time_figure(18997, 20000), "tickets.on_time_rate") == D("19.99")
    scored = assess(on_time(), on_time_figure(18997, 20000)).scores[0]
    assert scored.actual == D("0.9499")


def test_points_never_go_below_zero() -> None:
    assert score(on_time(), on_time_figure(5000), "tickets.on_time_rate") == D("0.00")  # 45 pp short


def test_below_the_floor_scores_zero_and_at_the_floor_the_rule_applies() -> None:
    scheme = on_time(extra="  floor: 80%\n")
    assert score(scheme, on_time_figure(7999), "tickets.on_time_rate") == D("0.00")
    assert score(scheme, on_time_figure(8000), "tickets.on_time_rate") == D("5.00")  # 15 pp short


def test_a_cap_limits_what_the_rule_takes_off_but_not_the_floor() -> None:
    scheme = on_time(extra="  cap: 5\n  floor: 60%\n")
    assert score(scheme, on_time_figure(8000), "tickets.on_time_rate") == D("15.00")
    assert score(scheme, on_time_figure(5999), "tickets.on_time_rate") == D("0.00")


def test_lower_is_better_in_seconds_with_a_floor() -> None:
    scheme = one("""\
        - key: calls.asa
          weight: 20
          target: 20s
          direction: lower
          rule: {per: 1s, lose: 1}
          floor: 60s
        """, rest_manual=80)
    asa = "calls.asa"
    assert score(scheme, {asa: Figure(asa, 25.4, 254.0, 10.0)}, asa) == D("14.60")  # 5.4 s over
    assert score(scheme, {asa: Figure(asa, 18.0)}, asa) == D("20.00")
    assert score(scheme, {asa: Figure(asa, 60.01)}, asa) == D("0.00")


def test_the_evidence_is_the_figures_own_numerator_denominator_and_note() -> None:
    s = assess(on_time(), on_time_figure(8982)).scores[0]
    assert (s.actual, s.target, s.lost) == (D("0.8982"), D("0.95"), D("5.18"))
    assert (s.numerator, s.denominator, s.note) == (8982, 10000, "按期办结/应办结")
    assert s.basis.startswith("8982/10000；目标 95.00%，每低于 1 个百分点扣 1 分")


# ---- the total, the band, the coefficient, the payment ----------------------------------------------

HAND = "- {key: all, manual: true, label: 全部, weight: 100}\n"


@pytest.mark.parametrize(("total", "coefficient", "payment"), [
    ("100", "1.00", "2000000.00"),
    ("90", "1.00", "2000000.00"),  # 90 is in the top band
    ("89.99", "0.8999", "1799800.00"),  # linear in 80-90: total/100
    ("85.5", "0.855", "1710000.00"),
    ("80", "0.80", "1600000.00"),
    ("40", "0.40", "800000.00"),
    ("39.99", "0", "0.00"),
    ("0", "0", "0.00"),
])
def test_the_payment_of_a_ten_million_contract_with_20_percent_at_stake(total: str, coefficient: str,
                                                                        payment: str) -> None:
    a = assess(parse_scheme(scheme_text(HAND), "t.yaml"), {}, {"all": ManualScore(D(total), "考核组")})
    assert a.total == D(total)
    assert a.coefficient == D(coefficient)
    assert a.at_stake == D("2000000.00")
    assert a.payment == D(payment)
    assert a.withheld == D("2000000.00") - D(payment)


def test_money_is_rounded_half_up_to_the_fen() -> None:
    scheme = parse_scheme(scheme_text(HAND, contract="total: 1000000.05\n  at_stake: 10%"), "t.yaml")
    a = assess(scheme, {}, {"all": ManualScore(D(95), "考核组")})
    assert a.payment == D("100000.01")  # 100000.005: half up, not to even


def test_the_total_adds_every_indicators_points() -> None:
    a = assess(on_time(), on_time_figure(8982), {"rest": ManualScore(D("70.5"), "考核组")})
    assert a.total == D("85.32")  # 14.82 + 70.5
    assert a.coefficient == D("0.8532")
    assert a.payment == D("1706400.00")


# ---- no value to score ---------------------------------------------------------------------------

def test_a_figure_without_value_stops_the_assessment_by_default_and_says_what_to_do() -> None:
    with pytest.raises(AssessError) as exc:
        assess(on_time(), {"tickets.on_time_rate": Figure("tickets.on_time_rate", None)})
    # Line 6: contract's name, total and at_stake are lines 1-4, indicators: is 5.
    assert "test.yaml:6" in str(exc.value) and "missing: full" in str(exc.value)
    with pytest.raises(AssessError, match="按时办结率"):
        assess(on_time(), {})  # not in the report at all


@pytest.mark.parametrize(("policy", "expected"), [("full", "20.00"), ("zero", "0.00")])
def test_a_figure_without_value_scores_by_the_missing_policy(policy: str, expected: str) -> None:
    s = assess(on_time(extra=f"  missing: {policy}\n"), {"tickets.on_time_rate": Figure("tickets.on_time_rate", None)})
    assert (s.scores[0].score, s.scores[0].missing) == (D(expected), True)
    assert "本期无数据" in s.scores[0].basis


def test_the_scheme_wide_missing_policy_applies_unless_an_indicator_says_otherwise() -> None:
    text = scheme_text(ON_TIME_ + "- {key: rest, manual: true, label: 其余, weight: 80, missing: error}\n",
                       head="missing: full\n")
    a = assess(parse_scheme(text, "t.yaml"), {}, {"rest": ManualScore(D(80), "考核组")})
    assert a.scores[0].score == D("20.00")
    with pytest.raises(AssessError, match="--manual"):
        assess(parse_scheme(text, "t.yaml"), {})


# ---- hand-given scores ---------------------------------------------------------------------------

def test_a_hand_score_on_the_command_line_overrides_the_schemes_and_names_who_gave_it() -> None:
    scheme = parse_scheme(scheme_text("- {key: org, manual: true, label: 组织机构建设, weight: 100, value: 95, "
                                      "by: 李四}\n"), "t.yaml")
    assert assess(scheme, {}).scores[0].basis == "人工评分：李四"
    s = assess(scheme, {}, {"org": ManualScore(D("88.5"), "张三")}).scores[0]
    assert (s.score, s.by, s.basis) == (D("88.50"), "张三", "人工评分：张三")


def test_a_hand_score_for_an_unknown_key_or_above_the_weight_is_refused() -> None:
    scheme = parse_scheme(scheme_text("- {key: org_building, manual: true, label: 组织机构建设, weight: 100}\n"),
                          "t.yaml")
    with pytest.raises(AssessError, match="did you mean org_building"):
        assess(scheme, {}, {"org_buildng": ManualScore(D(9), "张三")})
    with pytest.raises(AssessError, match="0-100"):
        assess(scheme, {}, {"org_building": ManualScore(D(101), "张三")})


# ---- the YAML: every mistake with its line --------------------------------------------------------

def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_scheme(text, "a.yaml")
    return [str(p) for p in exc.value.problems]


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_the_shipped_example_loads_with_weights_of_100() -> None:
    scheme = load_scheme(DEFAULT_FILE)
    assert sum(i.weight for i in scheme.indicators) == 100
    assert scheme.contract.share == D("0.20")
    assert [b.low for b in scheme.bands] == [0, 40, 50, 60, 70, 80, 90]


def test_an_unknown_figure_key_names_its_line_and_the_near_matches() -> None:
    text = scheme_text(ON_TIME_.replace("tickets.on_time_rate", "tickets.ontime_rate") +
                       "- {key: rest, manual: true, label: 其余, weight: 80}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'ontime')}: ")
    assert "did you mean tickets.on_time_rate" in p and "manual: true" in p


def test_an_unknown_field_names_its_line_and_the_near_match() -> None:
    text = scheme_text(ON_TIME_.replace("weight: 20", "weight: 20\n  wieght: 20") +
                       "- {key: rest, manual: true, label: 其余, weight: 80}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'wieght')}: indicators.0.wieght: ")
    assert "did you mean weight" in p


def test_weights_that_do_not_add_up_to_100_are_reported_at_the_indicators_line() -> None:
    text = scheme_text(ON_TIME_ + "- {key: rest, manual: true, label: 其余, weight: 75}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'indicators:')}: ")
    assert "权重合计 95，应为 100" in p and "20 + 75" in p


def test_a_negative_weight_is_refused_at_its_line() -> None:
    text = scheme_text(ON_TIME_.replace("weight: 20", "weight: -20") +
                       "- {key: rest, manual: true, label: 其余, weight: 120}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'weight: -20')}: indicators.0.weight: ")
    assert "权重须大于 0" in p


@pytest.mark.parametrize(("per", "says"), [
    ("0pp", "步长须大于 0"),
    ("-1pp", "步长须大于 0"),
    ("1%", "write pp"),
    ("1", "1pp or 0.1pp"),
    ("abc", "1pp or 0.1pp"),
])
def test_a_bad_step_is_refused_at_its_line(per: str, says: str) -> None:
    text = scheme_text(ON_TIME_.replace("per: 1pp", f"per: {per}") +
                       "- {key: rest, manual: true, label: 其余, weight: 80}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'rule:')}: indicators.0.rule.per: ")
    assert says in p


def test_a_rate_target_without_percent_sign_is_refused() -> None:
    text = scheme_text(ON_TIME_.replace("target: 95%", "target: 95") +
                       "- {key: rest, manual: true, label: 其余, weight: 80}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'target: 95')}: indicators.0.target: ")
    assert "95%" in p


def test_a_floor_better_than_the_target_is_refused() -> None:
    text = scheme_text(ON_TIME_ + "  floor: 96%\n" + "- {key: rest, manual: true, label: 其余, weight: 80}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'floor')}: ")


def test_a_hand_score_in_the_scheme_must_say_who_gave_it() -> None:
    text = scheme_text("- {key: org, manual: true, label: 组织机构建设, weight: 100, value: 9}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'value: 9')}: ") and "by" in p


def test_the_same_indicator_twice_is_refused_naming_the_first() -> None:
    text = scheme_text("- {key: a, manual: true, label: 甲, weight: 50}\n"
                       "- {key: a, manual: true, label: 乙, weight: 50}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, '乙')}: ") and f"line {line_of(text, '甲')}" in p


def test_overlapping_payment_bands_are_refused_at_the_later_band() -> None:
    payment = PAYMENT.replace("{from: 80, to: 90,", "{from: 80, to: 91,").replace("{from: 90,", "{from: 90.5,")
    text = scheme_text(HAND, payment=payment)
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'from: 90.5')}: ")
    assert "档位重叠" in p and f"line {line_of(text, 'to: 91')}" in p


def test_a_gap_in_the_payment_bands_is_refused_at_the_band_after_it() -> None:
    text = scheme_text(HAND, payment=PAYMENT.replace("{from: 50, to: 60,", "{from: 55, to: 60,"))
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'from: 55')}: ")
    assert "档位间有空档" in p and "50 to 55" in p


def test_payment_bands_must_start_at_0_and_end_at_100() -> None:
    text = scheme_text(HAND, payment=PAYMENT.replace("{from: 0, to: 40,", "{from: 10, to: 40,")
                       .replace("to: 100,", "to: 99,"))
    found = problems(text)
    assert any(p.startswith(f"a.yaml:{line_of(text, 'from: 10')}: ") and "0 分起" in p for p in found)
    assert any(p.startswith(f"a.yaml:{line_of(text, 'to: 99')}: ") and "100 分止" in p for p in found)


def test_a_coefficient_above_one_is_refused() -> None:
    text = scheme_text(HAND, payment=PAYMENT.replace("coefficient: 1.00", "coefficient: 1.2"))
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, '1.2')}: ") and "0 到 1" in p


def test_every_problem_is_reported_at_once() -> None:
    text = scheme_text(ON_TIME_.replace("target: 95%", "target: 95").replace("per: 1pp", "per: 0pp") +
                       "- {key: rest, manual: true, label: 其余, weight: 70}\n")
    assert len(problems(text)) == 3  # the target, the step, the weights


def test_a_key_written_twice_in_yaml_is_refused_with_its_line() -> None:
    text = scheme_text(ON_TIME_ + "  weight: 30\n" + "- {key: rest, manual: true, label: 其余, weight: 80}\n")
    [p] = problems(text)
    assert p.startswith(f"a.yaml:{line_of(text, 'weight: 30')}: ") and "twice" in p


# ---- the command ----------------------------------------------------------------------------------

FIGURES = {
    "calls.answer_rate": rate("calls.answer_rate", 9612, 10000, "接通量/(呼入量-速挂量)"),
    "calls.sl_rate": rate("calls.sl_rate", 8012, 10000),
    "tickets.timely_accept_rate": rate("tickets.timely_accept_rate", 800, 1000),
    "tickets.on_time_rate": rate("tickets.on_time_rate", 8982, 10000),
    "tickets.satisfaction_rate": rate("tickets.satisfaction_rate", 990, 1000),
    "tickets.direct_answer_rate": rate("tickets.direct_answer_rate", 123, 200),
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    p = argparse.ArgumentParser()
    register_assess(p.add_subparsers())
    seen: list[str] = []

    def figures_for(args: argparse.Namespace, period: str) -> tuple[Mapping[str, Figure], str]:
        seen.append(period)
        return FIGURES, "测试数据"

    code = cmd_assess(p.parse_args(argv), figures_for)
    out, err = capsys.readouterr()
    if code == 0:
        assert seen == [argv[1]]
    return code, out, err


def test_the_command_prints_the_zh_cn_table_and_the_payment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["assess", "2026-11", "--manual", "org_building=9:张三"], capsys)
    assert code == 0
    assert "内置示例" in err
    header, *rows = [line for line in out.splitlines() if line.startswith(("指标", "接通率", "按时办结率", "组织"))]
    assert header.split() == ["指标", "目标", "实际", "得分/满分", "依据"]
    assert rows[0].split()[:4] == ["接通率", "95.00%", "96.12%", "20.00/20"]
    assert rows[1].split()[:4] == ["按时办结率", "95.00%", "89.82%", "14.82/20"]
    assert rows[2].split()[:5] == ["组织机构建设", "人工评分", "—", "9.00/10", "人工评分：张三"]
    # 20 + 7.56 (80.12%: 4.88 pp × 0.5) + 0 (80%) + 14.82 + 20 + 10 + 9 = 81.38 -> 0.8138 × 2,000,000.
    assert "总分        81.38" in out
    assert "付款系数    0.8138" in out
    assert "应付金额    1,627,600.00 元" in out


def test_a_hand_given_minus_zero_is_printed_as_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["assess", "2026-11", "--manual", "org_building=-0:x"], capsys)
    assert code == 0 and "-0" not in out
    row = next(line for line in out.splitlines() if line.startswith("组织"))
    assert row.split()[:5] == ["组织机构建设", "人工评分", "—", "0.00/10", "人工评分：x"]
    code, out, _ = run(["assess", "2026-11", "--manual", "org_building=-0.00:x", "--json"], capsys)
    hand = next(i for i in json.loads(out)["indicators"] if i["key"] == "org_building")
    assert (hand["score"], hand["lost"]) == ("0.00", "10.00")


def test_the_command_in_json_gives_exact_decimals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["assess", "2026-11", "--manual", "org_building=9:张三", "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert (data["period"], data["total"], data["payment"]) == ("2026-11", "81.38", "1627600.00")
    assert data["indicators"][3]["score"] == "14.82"


def test_the_command_reads_the_config_folders_scheme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "assessment.yaml").write_text(scheme_text(HAND), encoding="utf-8")
    code, out, err = run(["assess", "2026", "--config", str(tmp_path), "--manual", "all=90:考核组"], capsys)
    assert code == 0 and "内置示例" not in err
    assert "测试合同" in out and "应付金额    2,000,000.00 元" in out


def test_the_command_refuses_a_bad_scheme_with_its_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text(scheme_text("- {key: all, manual: true, label: 全部, weight: 90}\n"), encoding="utf-8")
    code, _, err = run(["assess", "2026-11", "--scheme", str(bad)], capsys)
    assert code == 2
    assert f"{bad}:5: indicators: 权重合计 90" in err


def test_the_command_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["assess", "2026-11"], capsys)
    assert code == 2 and "组织机构建设" in err and "--manual" in err


@pytest.mark.parametrize(("item", "says"), [
    ("org_building=9", "KEY=VALUE:WHO"),  # who gave it?
    ("org_building:张三", "KEY=VALUE:WHO"),
    ("=9:张三", "KEY=VALUE:WHO"),
    ("org_building=9:", "KEY=VALUE:WHO"),
    ("org_building=x:张三", "不是分数"),
    ("org_building=NaN:张三", "不是分数"),
])
def test_a_hand_score_on_the_command_line_needs_key_value_and_who(item: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_manual([item])


def test_a_hand_score_given_twice_on_the_command_line_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        parse_manual(["org=9:张三", "org=8:李四"])


def test_parse_manual_reads_key_points_and_who() -> None:
    found = parse_manual(["org_building=9.5:张三（考核组）"])
    assert found == {"org_building": ManualScore(D("9.5"), "张三（考核组）")}


# ---- the store: the published (frozen) figures first ------------------------------------------------

STORE_SCHEME = """\
contract: {name: 测试合同, total: 1000000, at_stake: 20%}
missing: zero
indicators:
  - {key: calls.answer_rate, weight: 50, target: 95%, direction: higher, rule: {per: 1pp, lose: 1}}
  - {key: org, manual: true, label: 组织机构建设, weight: 50, value: 45, by: 考核组}
payment:
  - {from: 0, to: 100, coefficient: [0, 1]}
"""


def test_a_frozen_period_is_scored_from_its_frozen_figures_unless_live(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = open_engine(url)
    migrate(db)
    (tmp_path / "s.yaml").write_text(STORE_SCHEME, encoding="utf-8")
    p = argparse.ArgumentParser()
    register_assess(p.add_subparsers())
    argv = ["assess", "2026-11", "--store", url, "--scheme", str(tmp_path / "s.yaml"), "--json"]

    def run_json(*extra: str) -> dict[str, object]:
        assert cmd_assess(p.parse_args(argv + list(extra))) == 0
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    live = run_json()  # nothing frozen, no calls: the answer rate has no value, `missing: zero`
    assert (live["total"], live["payment"]) == ("45.00", "90000.00")
    assert "未冻结" in str(live["source"])
    now = datetime(2026, 12, 2, tzinfo=UTC)
    snap = build(db, parse("2026-11"), ReportOptions(), now).snapshot()
    published = {**snap.figures, "calls.answer_rate": rate("calls.answer_rate", 96, 100)}
    freeze(db, replace(snap, figures=published), by="王五", reason="月度发布", now=now)
    frozen = run_json()  # 50 (96% meets 95%) + 45 = 95 -> 0.95 × 200,000
    assert (frozen["total"], frozen["payment"]) == ("95.00", "190000.00")
    assert "第 1 版冻结报表" in str(frozen["source"]) and "王五" in str(frozen["source"])
    assert run_json("--live")["total"] == "45.00"
    db.dispose()
