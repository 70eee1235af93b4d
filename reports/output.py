"""A report written out: CSV files, an XLSX workbook, JSON, and the short summary a terminal shows.

- CSV is UTF-8 *with* a byte-order mark, as tickets/export.py explains: Excel reads a CSV
  without one in the Windows code page (GBK on Chinese Windows) and shows the Chinese as
  mojibake. One file per table plus one of the figures; RFC 4180 (CRLF, quotes doubled).
  Rates are written as published (percent, two decimals, half up), a figure with nothing to
  compute it from as "—" (never 0%).
- XLSX: a 指标 sheet (every figure with its numerator, denominator and note) then one sheet
  per table; numbers are numbers, rates carry a percent format (stored rounded as published,
  so the cell shows the published figure).
- Files are created 0640 (they may name departments' and districts' workloads; the lead's
  rule for everything the store writes), through a temporary file renamed into place: a
  failed write leaves no half file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from metrics.kpi import percent
from reports.figures import Figure
from reports.report import Cell, Kind, Snapshot, local_time

FILE_MODE = 0o640
DIR_MODE = 0o750
NONE = "—"
FIGURE_HEADER = ("指标", "键", "数值", "分子", "分母", "上期", "环比", "说明")


# ---- values ------------------------------------------------------------------------------------


def rounded_rate(value: float) -> float:
    """A rate as published (two decimals of a percent, half up), as a fraction."""
    return float((Decimal(repr(value)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) / 100)


def text(value: Cell, kind: Kind) -> str:
    """A cell as people read it."""
    if value is None:
        return NONE
    if kind == "rate" and isinstance(value, int | float):
        return percent(float(value))
    if kind == "seconds" and isinstance(value, int | float):
        return f"{value:.1f}"
    if kind == "count" and isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) and value != int(value) else str(int(value))
    return str(value)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert(value: str) -> str:
    """A name from the data (a district, a department, a queue) that a spreadsheet would run as a
    formula (=HYPERLINK(...), +cmd|...) gets a leading apostrophe: shown as text, never run."""
    return "'" + value if value.startswith(FORMULA_START) else value


def figure_kind(f: Figure) -> Kind:
    return f.unit


def change(now: Figure, before: Figure | None) -> str:
    """环比: percentage points for a rate, the relative change for a count or a time."""
    if before is None or now.value is None or before.value is None:
        return NONE
    if now.unit == "rate":
        diff = (Decimal(repr(now.value)) - Decimal(repr(before.value))) * 100
        return f"{diff.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):+}个百分点"
    if before.value == 0:
        return NONE
    rel = (Decimal(repr(now.value)) / Decimal(repr(before.value)) - 1) * 100
    return f"{rel.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):+}%"


def _part(value: float | None, f: Figure, sep: str = "") -> str:
    if value is None:
        return ""
    if f.unit == "seconds" and value != int(value):
        return f"{value:.1f}"
    return f"{value:g}" if value != int(value) else f"{int(value):{sep}}"


def figure_rows(snap: Snapshot) -> list[tuple[Figure, Figure | None]]:
    prev = snap.previous or {}
    return [(f, prev.get(k)) for k, f in {**snap.figures, **snap.extras}.items()]


# ---- files -------------------------------------------------------------------------------------


@contextlib.contextmanager
def private_file(path: Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Write `path` (0640) through a temporary file in the same folder, renamed when complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8-sig", newline="")) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def stem(snap: Snapshot) -> str:
    """A file-name stem for the period: "month-2026-11", "range-2026-11-03..2026-11-17"."""
    return re.sub(r"[^0-9A-Za-z.\-]", "-", snap.period.key)


def write_csv(snap: Snapshot, folder: Path) -> list[Path]:
    """The figures and every table as CSV files in `folder` (created 0750 if new)."""
    if not folder.exists():
        folder.mkdir(parents=True, mode=DIR_MODE)
    written = []
    path = folder / f"{stem(snap)}_figures.csv"
    with private_file(path) as out:
        w = csv.writer(out)
        w.writerow(FIGURE_HEADER)
        for f, before in figure_rows(snap):
            w.writerow((f.label, f.key, text(f.value, f.unit), _part(f.numerator, f), _part(f.denominator, f),
                        NONE if before is None else text(before.value, before.unit), change(f, before), f.note))
    written.append(path)
    for table in snap.tables.values():
        path = folder / f"{stem(snap)}_{table.name}.csv"
        with private_file(path) as out:
            w = csv.writer(out)
            w.writerow(table.header)
            for row in table.rows:
                w.writerow([inert(text(v, k)) if k == "text" else text(v, k)
                            for v, k in zip(row, table.kinds, strict=True)])
        written.append(path)
    return written


NUMBER_FORMATS: dict[str, str] = {"rate": "0.00%", "seconds": "0.0", "count": "#,##0"}


def _sheet_title(title: str, taken: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "-", title)[:31] or "表"
    name, n = base, 2
    while name in taken:
        name = f"{base[:28]}-{n}"
        n += 1
    taken.add(name)
    return name


def _xlsx_value(value: Cell, kind: Kind) -> Cell:
    if value is None:
        return NONE
    if kind == "rate" and isinstance(value, int | float):
        return rounded_rate(float(value))
    return inert(value) if isinstance(value, str) else value


def write_xlsx(snap: Snapshot, path: Path) -> Path:
    """The 指标 sheet and one sheet per table."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    taken: set[str] = set()
    ws.title = _sheet_title("指标", taken)
    bold = Font(bold=True)
    ws.append([f"{snap.period.label} 报表（{local_time(snap.period.start)} 至 {local_time(snap.period.end)}，北京时间；"
               f"生成于 {local_time(snap.generated_at)}）"])
    ws.append(list(FIGURE_HEADER))
    for cell in ws[2]:
        cell.font = bold
    for f, before in figure_rows(snap):
        kind = f.unit
        part_kind: Kind = "seconds" if kind == "seconds" else "count"
        ws.append([f.label, f.key, _xlsx_value(f.value, kind), f.numerator, f.denominator,
                   NONE if before is None else _xlsx_value(before.value, kind), change(f, before), f.note])
        row = ws.max_row
        for col, k in ((3, kind), (4, part_kind), (5, part_kind), (6, kind)):
            cell = ws.cell(row=row, column=col)
            if isinstance(cell.value, int | float):
                cell.number_format = NUMBER_FORMATS[k]
        ws.cell(row=row, column=8).alignment = Alignment(wrap_text=True, vertical="top")
    for letter, chars in zip("ABCDEFGH", (22, 30, 12, 12, 12, 12, 16, 90), strict=True):
        ws.column_dimensions[letter].width = chars
    ws.freeze_panes = "A3"
    for table in snap.tables.values():
        sheet = wb.create_sheet(_sheet_title(table.title, taken))
        sheet.append(list(table.header))
        for cell in sheet[1]:
            cell.font = bold
        for values in table.rows:
            sheet.append([_xlsx_value(v, k) for v, k in zip(values, table.kinds, strict=True)])
            row = sheet.max_row
            for col, k in enumerate(table.kinds, start=1):
                cell = sheet.cell(row=row, column=col)
                if k in NUMBER_FORMATS and isinstance(cell.value, int | float):
                    cell.number_format = NUMBER_FORMATS[k]
        for col in range(1, len(table.header) + 1):
            sheet.column_dimensions[get_column_letter(col)].width = max(10, 2 * len(table.header[col - 1]) + 2)
        sheet.freeze_panes = "B2"
    buffer = io.BytesIO()
    wb.save(buffer)
    with private_file(path, binary=True) as out:
        out.write(buffer.getvalue())
    return path


def json_text(snap: Snapshot) -> str:
    return json.dumps(snap.as_json(), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


# ---- the terminal ------------------------------------------------------------------------------


def width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def pad(s: str, n: int, right: bool = False) -> str:
    space = " " * max(0, n - width(s))
    return space + s if right else s + space


def grid(rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    widths = [max(width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(pad(c, widths[i], right=i >= right_from) for i, c in enumerate(r)).rstrip() for r in rows]


def _shown(f: Figure) -> str:
    return f"{f.value:,}" if f.unit == "count" and isinstance(f.value, int) else text(f.value, f.unit)


def summary(snap: Snapshot, frozen: str | None = None) -> str:
    """The concise zh-CN summary: one line per standard figure, then the exclusions that matter."""
    p = snap.period
    lines = [f"{p.label} 报表　{local_time(p.start)} 至 {local_time(p.end)}（北京时间，不含终点）"]
    if frozen:
        lines.append(frozen)
    else:
        lines.append(f"生成于 {local_time(snap.generated_at)}（即时统计，未冻结）")
    prev_label = snap.previous_period.label if snap.previous_period else "上期"
    rows = [["指标", "本期", "分子/分母", prev_label, "环比"]]
    prev = snap.previous or {}
    for f in snap.figures.values():
        parts = "" if f.numerator is None or f.denominator is None else \
            f"{_part(f.numerator, f, ',')}/{_part(f.denominator, f, ',')}"
        if f.unit == "seconds" and parts:
            parts = f"{f.numerator:,.0f}/{f.denominator:,.0f}"
        before = prev.get(f.key)
        rows.append([f.label, _shown(f), parts, NONE if before is None else _shown(before), change(f, before)])
    lines.extend(grid(rows))
    lines.append("")
    for key in ("calls.answer_rate", "calls.worst_24h_answer_rate"):
        shown = snap.figures.get(key)
        if shown is not None and shown.note:
            lines.append(shown.note if shown.note.startswith(shown.label) else f"{shown.label}：{shown.note}")
    lines.extend(snap.notes)
    lines.append("各指标的口径与剔除项见 --json / --xlsx（指标表的“说明”列）。")
    return "\n".join(lines)
