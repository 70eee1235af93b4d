"""`hotline plan` (planner/cli.py), run through `main(argv)` and through a parent parser the way
cti/cli.py registers it: JSON parsed back, the zh-CN-first text, every bad input refused with
exit 2 and what to give, the store mode on SQLite, a store that cannot be read (exit 1)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from planner.cli import main, register
from planner.erlang import Load, erlang_a
from planner.history import CALLS, LOCAL
from tickets.db import migrate, open_engine

EXAMPLE = ["plan", "--calls-per-hour", "600", "--aht", "240", "--patience", "120"]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_the_plan_in_json_is_the_smallest_n_with_the_erlang_c_bound_and_the_roster(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, *EXAMPLE)
    assert (out["mode"], out["model"], out["agents"], out["scheduled"], out["erlang_c_agents"]) == (
        "plan", "erlang_a", 43, 62, 46)
    exact = erlang_a(Load(600, 240, 120), 43, 15, 5)
    assert out["erlang_a"]["answer_rate"] == pytest.approx(exact.answer_rate)
    assert out["erlang_a"]["answer_rate_excl_short"] == pytest.approx(exact.answer_rate_excl_short)
    assert out["erlang_c"]["stable"] is True and out["erlang_c"]["agents"] == 46
    assert out["load"]["erlangs"] == 40.0 and out["targets"]["shrinkage"] == 0.3


def test_the_text_says_it_in_chinese_first_then_english(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(EXAMPLE) == 0
    text = capsys.readouterr().out
    zh, _, en = text.partition("\n\n")
    assert zh.startswith("话务量 600 通/小时")
    assert "所需坐席 43 人（Erlang A）；Erlang C 上限 46 人；占用率 89.2%" in zh
    assert "排班 62 人（损耗率 30%" in zh
    assert "月度考核口径（不计 5 秒内速挂）：接通率 96.89%" in zh
    assert "Agents needed: 43 (Erlang A); Erlang C (nobody hangs up) asks 46" in en


def test_without_patience_it_plans_with_erlang_c_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "plan", "--calls-per-hour", "600", "--aht", "240")
    assert (out["model"], out["agents"], out["erlang_a"]) == ("erlang_c", 46, None)
    assert any("Erlang C only" in note for note in out["notes"])


def test_agents_n_evaluates_that_n_and_says_erlang_c_is_unstable_there(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, *EXAMPLE, "--agents", "40")
    assert (out["mode"], out["agents"], out["meets_targets"]) == ("evaluate", 40, False)
    assert round(out["erlang_a"]["p_wait"], 3) == 0.439
    assert out["erlang_c"]["stable"] is False and out["erlang_c"]["p_wait"] is None
    assert main([*EXAMPLE, "--agents", "40"]) == 0
    assert "队列不稳定" in capsys.readouterr().out
    assert run_json(capsys, *EXAMPLE, "--agents", "45")["meets_targets"] is True


def test_rates_may_be_written_as_percentages_and_a_target_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, *EXAMPLE, "--target-answer-rate", "95%", "--shrinkage", "30%", "--target-sl", "off")
    assert out["targets"]["answer_rate"] == 0.95 and out["targets"]["service_level"] is None
    assert out["agents"] == 43


def test_no_calls_need_no_agents(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "plan", "--calls-per-hour", "0", "--aht", "240", "--patience", "120")
    assert (out["agents"], out["scheduled"]) == (0, 0)


def test_simulate_adds_the_ciw_run_with_its_confidence_interval(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, *EXAMPLE, "--agents", "42", "--simulate", "--customers", "3000", "--seed", "3")
    sim = out["simulation"]
    assert (sim["agents"], sim["seed"]) == (42, 3)
    low, high = sim["answer_rate_ci"]
    assert low < sim["answer_rate"] < high


@pytest.mark.parametrize(("argv", "says"), [
    (["plan", "--calls-per-hour", "600", "--aht", "0"], "--aht: 须 > 0 / must be > 0"),
    (["plan", "--calls-per-hour", "600", "--aht", "four"], "--aht: 不是数字 / not a number"),
    (["plan", "--calls-per-hour", "-5", "--aht", "240"], "--calls-per-hour: 须 >= 0"),
    (["plan", "--calls-per-hour", "nan", "--aht", "240"], "--calls-per-hour: 须 >= 0"),
    ([*EXAMPLE, "--target-sl", "80"], "e.g. 0.95 or 95%"),
    ([*EXAMPLE, "--target-answer-rate", "1"], "between 0 and 1"),
    ([*EXAMPLE, "--shrinkage", "1"], "must be at least 0 and below 1"),
    ([*EXAMPLE, "--agents", "0"], "--agents: 须 >= 1"),
    ([*EXAMPLE, "--agents", "4.5"], "not a whole number"),
    (["plan", "--calls-per-hour", "600"], "give --calls-per-hour and --aht (or --from-store URL)"),
    ([*EXAMPLE, "--queue", "tax"], "--queue needs --from-store URL"),
    ([*EXAMPLE, "--customers", "5000"], "add --simulate"),
    (["plan", "--calls-per-hour", "600", "--aht", "240", "--simulate"], "--simulate needs --patience"),
    ([*EXAMPLE, "--target-sl", "off", "--target-answer-rate", "off"], "keep --target-answer-rate or --target-sl"),
    ([*EXAMPLE, "--from-store", "sqlite:///x.db"], "leave out --calls-per-hour"),
    (["plan", "--from-store", "sqlite:///x.db", "--agents", "3"], "--agents works on one load"),
    (["plan", "--from-store", "sqlite:///x.db", "--since", "2026-13-01"], "a date is YYYY-MM-DD"),
    ([*EXAMPLE, "--simulate", "--customers", "100"], "--customers: 须 >= 400"),
    # Bounds far beyond any hotline, refused at once instead of computed for minutes.
    (["plan", "--calls-per-hour", "1e12", "--aht", "240", "--patience", "120"],
     "--calls-per-hour: 须 <= 1,000,000（远超任何热线的规模，计算将耗时过长） / must be at most 1,000,000 (far beyond"),
    (["plan", "--calls-per-hour", "1000000.5", "--aht", "240"], "--calls-per-hour: 须 <= 1,000,000"),
    ([*EXAMPLE, "--agents", "100000000"], "--agents: 须 <= 100,000（远超任何热线的规模"),
    ([*EXAMPLE, "--agents", "100001"], "must be at most 100,000 (far beyond any hotline"),
    (["plan", "--calls-per-hour", "600", "--aht", "240", "--patience", "1e-20"],
     "--patience: 须 >= 0.001（短于 1 毫秒的耐心没有实际意义） / must be >= 0.001 (a patience under a millisecond"),
    (["plan", "--calls-per-hour", "600", "--aht", "240", "--patience", "0"], "--patience: 须 >= 0.001"),
])
def test_bad_arguments_exit_2_saying_what_to_give(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                  says: str) -> None:
    err = refused(capsys, argv)
    assert says in err
    assert err.startswith("usage: hotline plan")


def test_the_largest_load_and_agent_count_are_computed(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "plan", "--calls-per-hour", "1000000", "--aht", "240", "--patience", "120")
    assert 60_000 < out["agents"] <= out["erlang_c_agents"] <= 100_000  # 66 667 erlangs
    assert run_json(capsys, *EXAMPLE, "--agents", "100000")["meets_targets"] is True
    assert run_json(capsys, *EXAMPLE[:-1], "0.001", "--agents", "40")["erlang_a"]["p_wait"] > 0


def test_an_offered_load_beyond_the_limit_is_refused_saying_the_limit_and_why(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--calls-per-hour", "1000000", "--aht", "1e9", "--patience", "120"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotline plan: 话务量（来电量 × 平均处理时长 / 3600）不能超过 100,000 Erl")
    assert "must be at most 100,000 erlangs (far beyond any hotline" in err
    assert main(["plan", "--calls-per-hour", "1000000", "--aht", "360", "--patience", "120"]) == 2  # exactly 100 000
    assert "the targets need more than 100,000 agents" in capsys.readouterr().err


def test_every_default_the_help_states_is_the_default_the_parser_uses() -> None:
    parent = argparse.ArgumentParser(prog="hotline")
    sub = parent.add_subparsers(dest="command")
    register(sub)
    plan_parser = sub.choices["plan"]
    stated = 0
    for action in plan_parser._actions:
        if action.default in (None, False, argparse.SUPPRESS):
            continue  # --customers and --seed: the default is applied with --simulate, not by the parser
        match = re.search(r"\(default ([0-9.]+)", action.help or "")
        assert match, f"{action.dest}: the help does not state its default"
        assert float(match.group(1)) == action.default, action.dest
        stated += 1
    assert stated == 5  # the two targets, the two thresholds, the shrinkage
    assert "Exit status: 0 done; 2 bad arguments" in plan_parser.format_help()


def test_registered_on_a_parent_parser_the_command_runs(capsys: pytest.CaptureFixture[str]) -> None:
    parent = argparse.ArgumentParser(prog="hotline")
    register(parent.add_subparsers(dest="command", required=True))
    args = parent.parse_args([*EXAMPLE, "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["agents"] == 43


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A store with two weeks of Monday 09-10 calls in queue tax: 60 a Monday, 54 answered (talk 200 s,
    waits 10 s), 6 abandoned after 30 s."""
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    engine = open_engine(url)
    migrate(engine)
    rows = []
    for monday in (2, 9):
        for i in range(60):
            arrived = datetime(2026, 11, monday, 9, 0, tzinfo=LOCAL).astimezone(UTC) + timedelta(seconds=60 * i)
            answered = i % 10 != 0
            rows.append({"call_id": f"m{monday}-{i}", "queue": "tax", "offered_queue": "tax",
                         "outcome": "answered" if answered else "abandoned", "arrived": arrived,
                         "ended": arrived + timedelta(minutes=4), "wait_seconds": 10.0 if answered else 30.0,
                         "talk_seconds": 200.0 if answered else 0.0})
    with engine.begin() as conn:
        conn.execute(insert(CALLS), rows)
    engine.dispose()
    return url


def test_from_store_plans_every_hour_of_the_week(capsys: pytest.CaptureFixture[str], store: str) -> None:
    out = run_json(capsys, "plan", "--from-store", store, "--queue", "tax", "--since", "2026-11-02",
                   "--until", "2026-11-16")
    assert (out["mode"], out["since"], out["until"], len(out["hours"])) == ("forecast", "2026-11-02", "2026-11-16", 168)
    monday_9 = out["hours"][9]
    assert (monday_9["label"], monday_9["calls_per_hour"], monday_9["aht"], monday_9["aht_pooled"]) == (
        "周一 09-10", 60.0, 200.0, False)
    # Patience: (108 x 10 + 12 x 30) / 12 abandons = 120 s.
    assert out["patience"] == pytest.approx(120.0)
    expected = erlang_a(Load(60, 200, 120), monday_9["agents"], 15, 5)
    assert monday_9["answer_rate"] == pytest.approx(expected.answer_rate)
    assert out["hours"][10]["agents"] == 0 and out["hours"][10]["offered"] == 0
    assert any("AHT is talk only" in note for note in out["notes"])


def test_from_store_text_is_a_table_headed_by_the_store_and_the_period(
        capsys: pytest.CaptureFixture[str], store: str) -> None:
    assert main(["plan", "--from-store", store, "--aht", "260", "--patience", "90"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{store} 队列 全部，2026-11-02 至 2026-11-10（不含）")
    assert re.search(r"周一 09-10\s+60\.0\s+260\s+\d+", text)  # 120 calls over the 2 Mondays of 8 days
    assert "AHT 仅含通话时长" not in text  # --aht was given


def test_from_store_refuses_a_missing_sqlite_file_without_creating_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    assert main(["plan", "--from-store", f"sqlite:///{missing}"]) == 2
    assert "no database file at" in capsys.readouterr().err
    assert not missing.exists()


def test_from_store_says_when_the_database_cannot_be_reached_and_hides_the_password(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--from-store", "postgresql+psycopg://hotline:secret@127.0.0.1:1/hotline"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hotline plan: cannot read call_records from postgresql+psycopg://hotline:***@127.0.0.1:1/")
    assert "secret" not in err and "is the database running" in err


def test_from_store_with_no_matching_calls_says_what_to_check(capsys: pytest.CaptureFixture[str], store: str) -> None:
    assert main(["plan", "--from-store", store, "--queue", "nowhere"]) == 2
    assert "check --queue, --since and --until" in capsys.readouterr().err


def test_a_simulation_of_more_than_five_million_calls_is_refused_before_it_starts(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--calls-per-hour", "600", "--aht", "240", "--patience", "120", "--simulate",
              "--customers", "5000001"])
    assert exc.value.code == 2 and "5,000,000" in capsys.readouterr().err
