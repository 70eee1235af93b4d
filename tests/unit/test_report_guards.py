"""What `hotline report` refuses, so that nobody is shown (or paid on) a report that looks right and is
not: a store that does not exist, a period too long to hold, an unknown department, a frozen version
mixed with a live filter, a frozen report with an overridden threshold, a wiped history; and what a
spreadsheet must never run."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reports import cli, output, periods
from reports.report import ReportOptions, build
from reports.versions import freeze
from tests.unit.report_helpers import bj, call, store, store_calls, utc
from tickets import auth


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hotline")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = int(args.func(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def url(tmp_path: Path) -> str:
    with store("sqlite", tmp_path) as db:
        store_calls(db, [call(bj(2026, 10, 5, 10)), call(bj(2026, 10, 5, 11), "abandoned", 30)])
        with Session(db) as s, s.begin():
            auth.add_department(s, "housing", "市住建局", "02933000001", utc(2026, 10, 1))
    return f"sqlite:///{tmp_path / 'hotline.db'}"


def test_assess_refuses_a_store_that_does_not_exist_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "typo.db"
    code, out, err = run(["report", "assess", "2026-10", "--store", f"sqlite:///{missing}"], capsys)
    assert code == 2 and "不存在" in err and "应付金额" not in out
    assert not (tmp_path / "no").exists()


def test_a_range_longer_than_three_years_is_refused_not_computed() -> None:
    assert len(periods.parse("2024-01-01..2026-12-31").days) == 1096
    with pytest.raises(ValueError, match="最长 1098 天"):
        periods.parse("1900-01-01..9998-12-31")


def test_an_unknown_department_is_refused_with_the_known_codes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["report", "month", "2026-10", "--store", url, "--department", "watr"], capsys)
    assert code == 2 and out == "" and "watr" in err and "housing" in err
    assert run(["report", "month", "2026-10", "--store", url, "--department", "housing", "--no-topics"],
               capsys)[0] == 0


def test_a_frozen_version_is_not_mixed_with_a_filter_or_a_threshold(url: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", "freeze", "2026-10", "--store", url, "--by", "李科长", "--reason", "发布"], capsys)[0] == 0
    for extra in (["--queue", "main"], ["--short-abandon", "3"], ["--basic-satisfied"], ["--live"]):
        code, out, err = run(["report", "month", "2026-10", "--store", url, "--version", "1", *extra], capsys)
        assert code == 2 and out == "" and "--version" in err, extra
    assert run(["report", "month", "2026-10", "--store", url, "--version", "1"], capsys)[0] == 0


def test_the_official_report_is_not_frozen_with_an_overridden_short_abandon(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["report", "freeze", "2026-10", "--store", url, "--by", "李科长", "--reason", "发布",
                        "--short-abandon", "3"], capsys)
    assert code == 2 and "--short-abandon" in err
    code, out, _ = run(["report", "versions", "2026-10", "--store", url], capsys)
    assert "尚未冻结" in out


def test_postgresql_refuses_to_truncate_the_frozen_reports_and_the_ticket_history(tmp_path: Path) -> None:
    with store("postgresql", tmp_path) as db:
        store_calls(db, [call(bj(2026, 10, 5, 10))])
        october = periods.parse("2026-10")
        freeze(db, build(db, october, ReportOptions(topics=False), utc(2026, 11, 2)), by="李科长", reason="发布",
               now=utc(2026, 11, 2))
        for table in ("report_versions", "ticket_events"):
            with pytest.raises(DBAPIError, match=r"never rewritten|append"), db.begin() as conn:
                conn.execute(text(f"TRUNCATE {table}"))
        assert _count(db, "report_versions") == 1


def _count(db: Engine, table: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_name_a_spreadsheet_would_run_is_written_as_text(tmp_path: Path) -> None:
    with store("sqlite", tmp_path) as db:
        store_calls(db, [call(bj(2026, 10, 5, 10), queue="=HYPERLINK(\"http://x\")"),
                         call(bj(2026, 10, 5, 11), queue="+cmd|' /C calc'!A0")])
        snap = build(db, periods.parse("2026-10"), ReportOptions(topics=False), utc(2026, 11, 2)).snapshot()
    written = output.write_csv(snap, tmp_path / "csv")
    by_queue = next(p for p in written if p.name.endswith("_by_queue.csv"))
    with by_queue.open(encoding="utf-8-sig", newline="") as f:
        names = [row[0] for row in csv.reader(f)][1:]
    assert "'=HYPERLINK(\"http://x\")" in names and "'+cmd|' /C calc'!A0" in names
    book = load_workbook(output.write_xlsx(snap, tmp_path / "r.xlsx"))
    sheet = book["按受理队列"]
    cells = [sheet.cell(row=r, column=1) for r in range(2, sheet.max_row + 1)]
    assert all(c.data_type == "s" for c in cells), [(c.value, c.data_type) for c in cells]
    assert "'=HYPERLINK(\"http://x\")" in [c.value for c in cells]
