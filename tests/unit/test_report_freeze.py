"""Frozen reports: a freeze stores the report's JSON and its SHA-256; a restatement adds version 2
beside version 1, which stays byte for byte; the database refuses to rewrite or delete a
version; reading a frozen period through the CLI shows the latest version and lists the others.
Also the whole report: every standard figure, 环比, JSON that reads back as it was written."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError

from reports import cli, versions
from reports.figures import KEYS
from reports.periods import parse
from reports.report import ReportOptions, Snapshot, build
from tests.unit.report_helpers import bj, call, store, store_calls, ticket_world

NOV = parse("2026-11")
NOW = datetime(2026, 12, 3, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with store(request.param, tmp_path) as engine:
        yield engine


def some_calls(db: Engine) -> None:
    store_calls(db, [call(bj(2026, 11, 5, 10)), call(bj(2026, 11, 5, 11), "abandoned", 30),
                     call(bj(2026, 10, 5, 10))])


def test_a_report_has_every_standard_figure_and_the_previous_periods_for_comparison(db: Engine) -> None:
    some_calls(db)
    ticket_world(db)
    report = build(db, NOV, ReportOptions(), NOW)
    assert list(report.figures()) == list(KEYS)
    assert report.previous_period == parse("2026-10")
    assert report.previous is not None and list(report.previous) == list(KEYS)
    assert report.previous["calls.offered"].value == 1 and report.figures()["calls.offered"].value == 2
    assert set(report.tables()) == {"by_queue", "by_day", "by_hour", "by_department", "by_category", "by_district"}
    assert report.topics is not None and report.topics.current_tickets > 0  # 热点诉求 of the same tickets
    assert build(db, NOV, ReportOptions(topics=False), NOW).topics is None


def test_the_json_reads_back_as_it_was_written(db: Engine) -> None:
    some_calls(db)
    report = build(db, NOV, ReportOptions(), NOW)
    report.topics = {"terms": [["供暖", 12]]}  # what the hot-topics module puts there travels with it
    document = json.loads(json.dumps(report.as_json(), ensure_ascii=False))
    back = Snapshot.from_json(document)
    assert back.as_json() == report.as_json()
    assert back.figures == report.figures() and back.topics == {"terms": [["供暖", 12]]}


def test_a_restatement_adds_version_2_beside_version_1_which_stays_byte_for_byte(db: Engine) -> None:
    some_calls(db)
    first = versions.freeze(db, build(db, NOV, ReportOptions(), NOW), by="李科长", reason="11月月报发布", now=NOW)
    assert (first.period, first.version, first.intact) == ("month:2026-11", 1, True)
    assert first.snapshot().figures["calls.offered"].value == 2
    store_calls(db, [call(bj(2026, 11, 20, 10))])  # a call the engine recorded late (from Asterisk's account)
    later = NOW + timedelta(days=2)
    second = versions.freeze(db, build(db, NOV, ReportOptions(), later), by="李科长", reason="补录1通话单后更正",
                             now=later)
    assert second.version == 2 and second.snapshot().figures["calls.offered"].value == 3
    stored = versions.versions(db, "month:2026-11")
    assert [v.version for v in stored] == [1, 2]
    assert stored[0] == first  # every byte, the hash, who, when and why
    assert stored[0].content.encode() == first.content.encode() and stored[0].intact
    assert versions.latest(db, "month:2026-11") == second


def test_the_database_refuses_to_rewrite_or_delete_a_frozen_version(db: Engine) -> None:
    some_calls(db)
    versions.freeze(db, build(db, NOV, ReportOptions(), NOW), by="李科长", reason="发布", now=NOW)
    for statement in ("UPDATE report_versions SET content = '{}'", "DELETE FROM report_versions"):
        with pytest.raises(DatabaseError, match="never rewritten"), db.begin() as conn:
            conn.execute(text(statement))
    assert versions.latest(db, "month:2026-11") is not None


def test_a_freeze_needs_a_name_and_a_reason_and_no_filter(db: Engine) -> None:
    report = build(db, NOV, ReportOptions(), NOW)
    with pytest.raises(versions.FreezeRefused, match="--by"):
        versions.freeze(db, report, by=" ", reason="发布", now=NOW)
    with pytest.raises(versions.FreezeRefused, match="--reason"):
        versions.freeze(db, report, by="李科长", reason="", now=NOW)
    special = build(db, NOV, ReportOptions(queues=("tax",)), NOW)
    with pytest.raises(versions.FreezeRefused, match="专项分析"):
        versions.freeze(db, special, by="李科长", reason="发布", now=NOW)
    running = datetime(2026, 11, 30, 15, 59, tzinfo=UTC)  # 23:59 on the last day, Beijing
    with pytest.raises(versions.FreezeRefused, match="尚未结束"):
        versions.freeze(db, build(db, NOV, ReportOptions(), running), by="李科长", reason="发布", now=running)


def test_a_period_may_be_frozen_at_the_very_moment_it_ends_and_not_a_microsecond_before(db: Engine) -> None:
    end = NOV.end_utc  # 1 December 00:00 Beijing: the period [start, end) has ended
    before = end - timedelta(microseconds=1)
    with pytest.raises(versions.FreezeRefused, match="尚未结束"):
        versions.freeze(db, build(db, NOV, ReportOptions(), before), by="李科长", reason="发布", now=before)
    assert versions.latest(db, "month:2026-11") is None
    frozen = versions.freeze(db, build(db, NOV, ReportOptions(), end), by="李科长", reason="发布", now=end)
    assert (frozen.version, frozen.frozen_at) == (1, end)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hotline")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = int(args.func(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_shows_a_frozen_period_as_frozen_and_lists_the_other_versions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with store("sqlite", tmp_path) as db:
        some_calls(db)  # one call in October: a month that has ended whenever the test runs
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    code, out, err = run(["report", "month", "2026-10", "--store", url], capsys)
    assert code == 0 and "即时统计，未冻结" in out and "呼入量" in out and "汇总" in err
    assert run(["report", "freeze", "2026-10", "--store", url, "--by", "李科长", "--reason", "发布"], capsys)[0] == 0
    code, out, _ = run(["report", "freeze", "2026-10", "--store", url, "--by", "王主任", "--reason", "更正"], capsys)
    assert code == 0 and "第 2 版" in out and "旧版本保留不变" in out
    code, out, _ = run(["report", "month", "2026-10", "--store", url], capsys)
    assert "已冻结：第 2 版" in out and "王主任" in out and "其他版本：第 1 版" in out and "校验通过" in out
    code, out, _ = run(["report", "month", "2026-10", "--store", url, "--version", "1"], capsys)
    assert "已冻结：第 1 版" in out and "李科长" in out
    code, out, _ = run(["report", "month", "2026-10", "--store", url, "--json"], capsys)
    frozen = json.loads(out)
    assert frozen["frozen"]["version"] == 2 and frozen["frozen"]["intact"] is True
    assert frozen["figures"][0] == {"key": "calls.offered", "label": "呼入量", "unit": "count", "value": 1,
                                    "numerator": None, "denominator": None, "note": frozen["figures"][0]["note"]}
    code, out, _ = run(["report", "versions", "2026-10", "--store", url], capsys)
    assert code == 0 and out.index("王主任") < out.index("李科长")  # newest first
    code, out, _ = run(["report", "month", "2026-10", "--store", url, "--live", "--json"], capsys)
    assert json.loads(out)["period"]["key"] == "month:2026-10"


def test_the_cli_refuses_a_bad_period_with_the_accepted_forms(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with store("sqlite", tmp_path):
        pass
    code, out, err = run(["report", "month", "2026Q4", "--store", f"sqlite:///{tmp_path / 'hotline.db'}"], capsys)
    assert code == 2 and out == "" and "此处需要月份" in err and "2026Q4（季度）" in err


def test_the_cli_refuses_a_sqlite_store_that_does_not_exist_rather_than_report_zeros(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo.db"
    code, _, err = run(["report", "month", "2026-11", "--store", f"sqlite:///{missing}"], capsys)
    assert code == 2 and "不存在" in err and not missing.exists()
