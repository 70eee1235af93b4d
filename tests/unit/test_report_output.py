"""A report written out: CSV files (UTF-8 with a byte-order mark, CRLF, rates as published,
"—" for nothing) and an XLSX workbook read back with openpyxl (a 指标 sheet, one sheet per
table, numbers as numbers, rates in percent format), all created 0640."""

from __future__ import annotations

import csv
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from reports import output
from reports.figures import KEYS
from reports.periods import parse
from reports.report import ReportOptions, Snapshot, build
from tests.unit.report_helpers import bj, call, store, store_calls

NOW = datetime(2026, 12, 3, 2, tzinfo=UTC)


@pytest.fixture
def snap(tmp_path: Path) -> Snapshot:
    with store("sqlite", tmp_path) as db:
        at = bj(2026, 11, 10, 9)
        # Answer rate 2 / (4 - 1) = 66.67%; the queue "tax" has calls, "main" none answered.
        store_calls(db, [call(at, queue="tax"), call(at, queue="tax", wait=20.0), call(at, "abandoned", 2),
                         call(at, "abandoned", 30), call(bj(2026, 10, 3, 9), queue="tax")])
        return build(db, parse("2026-11"), ReportOptions(), NOW).snapshot()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_csv_files_carry_a_byte_order_mark_crlf_and_the_published_figures(snap: Snapshot, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    written = output.write_csv(snap, folder)
    assert [p.name for p in written] == ["month-2026-11_figures.csv", *(f"month-2026-11_{t}.csv" for t in (
        "by_queue", "by_day", "by_hour", "by_department", "by_category", "by_district"))]
    assert mode(folder) == 0o750 and all(mode(p) == 0o640 for p in written)
    raw = written[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    with written[0].open(encoding="utf-8-sig", newline="") as f:
        rows = {r["键"]: r for r in csv.DictReader(f)}
    assert list(rows)[: len(KEYS)] == list(KEYS)
    rate = rows["calls.answer_rate"]
    assert (rate["指标"], rate["数值"], rate["分子"], rate["分母"]) == ("接通率", "66.67%", "2", "3")
    assert rate["上期"] == "100.00%" and rate["环比"] == "-33.33个百分点"
    assert "速挂" in rate["说明"]
    assert rows["tickets.on_time_rate"]["数值"] == "—"  # no tickets: nothing, not 0%
    with written[1].open(encoding="utf-8-sig", newline="") as f:
        queue = list(csv.reader(f))
    assert queue[0][:6] == ["受理队列", "呼入量", "接通量", "放弃量", "速挂量", "接通率"]
    assert queue[1][:6] == ["main", "2", "0", "2", "1", "0.00%"]
    assert queue[-1][:6] == ["合计", "4", "2", "2", "1", "66.67%"]


def test_the_xlsx_has_a_figures_sheet_and_a_sheet_per_table_with_numbers_as_numbers(snap: Snapshot,
                                                                                     tmp_path: Path) -> None:
    path = output.write_xlsx(snap, tmp_path / "report.xlsx")
    assert mode(path) == 0o640
    wb = load_workbook(path)
    assert wb.sheetnames == ["指标", "按受理队列", "按日", "按时段", "按承办单位", "按诉求类别", "按区域"]
    ws = wb["指标"]
    assert [c.value for c in ws[2]] == list(output.FIGURE_HEADER)
    rows = {r[1].value: r for r in ws.iter_rows(min_row=3)}
    rate = rows["calls.answer_rate"]
    assert rate[2].value == 0.6667 and rate[2].number_format == "0.00%"  # stored as published
    assert (rate[3].value, rate[4].value) == (2, 3)
    assert rows["calls.offered"][2].value == 4 and isinstance(rows["calls.offered"][2].value, int)
    assert rows["calls.asa"][2].value == 15  # (10 + 20) / 2 and rows["calls.asa"][2].number_format == "0.0"
    assert rows["tickets.on_time_rate"][2].value == "—"
    assert "剔除" in rows["calls.answer_rate"][7].value
    queue = wb["按受理队列"]
    assert [c.value for c in queue[1]][:3] == ["受理队列", "呼入量", "接通量"]
    total = [c for c in queue[queue.max_row]]
    assert total[0].value == "合计" and total[1].value == 4 and total[5].value == 0.6667
    assert total[5].number_format == "0.00%"
    days = wb["按日"]
    assert days.max_row == 1 + 30 + 1  # every day of November and the total


def test_a_failed_write_leaves_no_file_behind(snap: Snapshot, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "report.xlsx"
    with pytest.raises(FileNotFoundError):
        output.write_xlsx(snap, target)
    assert not target.parent.exists()


def test_a_rate_is_stored_rounded_half_up_as_published() -> None:
    assert output.rounded_rate(0.966650) == 0.9667
    assert output.rounded_rate(2 / 3) == 0.6667
    assert output.text(None, "rate") == "—" and output.text(0.0, "rate") == "0.00%"
