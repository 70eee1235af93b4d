"""What a period report shows, in what order: a frozen or live `Snapshot` laid out as a `Page`.

It works from the snapshot alone (figures, tables, topics as JSON), so a report frozen in
November prints in March exactly as it did, whatever the code computes by then. The answer
rate's target line (95% by default) is drawn on every rate chart: the contract's duty is
the first thing a reader looks for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from reports import browser, charts, html
from reports.charts import BLUE, GREEN, GREY, ORANGE, Series
from reports.figures import Figure
from reports.output import private_file
from reports.report import Cell, Kind, Snapshot, Table, local_time

TARGET = 0.95
HEADLINE = ("calls.answer_rate", "calls.sl_rate", "calls.offered", "calls.answered", "calls.abandoned",
            "calls.short_abandoned", "calls.asa", "calls.aht", "calls.longest_wait", "calls.worst_24h_answer_rate",
            "calls.survey_response_rate", "calls.satisfaction_rate")
TICKETS = ("tickets.registered", "tickets.direct_answer_rate", "tickets.timely_accept_rate", "tickets.on_time_rate",
           "tickets.completion_rate", "tickets.overdue", "tickets.followup_rate", "tickets.satisfaction_rate",
           "tickets.redo_rate")
MEETS_TARGET = frozenset({"calls.answer_rate", "calls.worst_24h_answer_rate"})  # judged against `target`
EXTRA_LABELS = {"calls.longest_wait_abandoned": "放弃来电最长等待", "calls.closed": "闭馆时段来电",
                "calls.unanswered": "未接通量", "calls.sl_of_answered": "15秒接起占接通量比例（诊断用）",
                "tickets.returns": "退单次数"}


def percent(value: float) -> str:
    """As published: percent, two decimals, half up (the KPI module's rule)."""
    return f"{(Decimal(repr(value)) * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def cell(value: Cell, kind: Kind) -> str:
    if value is None:
        return "—"
    if kind == "text" or isinstance(value, str):
        return str(value)
    if kind == "rate":
        return percent(float(value))
    if kind == "seconds":
        return f"{float(value):,.1f}"
    return f"{int(value):,}"


def figure_text(f: Figure) -> str:
    if f.value is None:
        return "—"
    if f.unit == "rate":
        return percent(f.value)
    if f.unit == "seconds":
        return f"{f.value:,.1f} 秒"
    return f"{int(f.value):,}"


def _card(f: Figure, previous: Mapping[str, Figure] | None, target: float) -> html.Card:
    # The card says the figure and the previous period's; the definitions are in 口径说明.
    before = previous.get(f.key) if previous else None
    note = "" if before is None else f"上期 {figure_text(before)}"
    verdict = None if f.key not in MEETS_TARGET or f.value is None else f.value >= target
    return html.Card(Figure(f.key, f.value, f.numerator, f.denominator, note), figure_text(f), verdict)


def _column(t: Table, name: str) -> list[float | None]:
    i = t.header.index(name)
    return [None if r[i] is None else float(r[i]) for r in t.rows if r[0] != "合计"]  # type: ignore[arg-type]


def _labels(t: Table, short: int = 0) -> list[str]:
    return [str(r[0])[short:] for r in t.rows if r[0] != "合计"]


def _table(t: Table) -> html.Table:
    return html.Table(t.title, t.header, [[cell(c, k) for c, k in zip(r, t.kinds, strict=True)] for r in t.rows])


def _call_charts(tables: Mapping[str, Table], target: float) -> list[str]:
    out: list[str] = []
    target_label = f"目标 {percent(target)}"
    queue = tables.get("by_queue")
    if queue is None or not any(r[1] for r in queue.rows):  # no call offered: axes with nothing on them say less
        return out
    day = tables.get("by_day")
    if day and len(day.rows) > 1:
        labels = _labels(day, short=5)  # "11-03"
        out.append(charts.lines("每日接通率与15秒接通率", labels,
                                [Series("接通率", _column(day, "接通率"), BLUE),
                                 Series("15秒接通率", _column(day, "15秒接通率"), ORANGE)],
                                percent=True, target=target, target_label=target_label))
        out.append(charts.bars("每日呼入量与接通量", labels,
                               [Series("呼入量", _column(day, "呼入量"), GREY),
                                Series("接通量", _column(day, "接通量"), GREEN)]))
    hour = tables.get("by_hour")
    if hour and len(hour.rows) > 1:
        hours = [str(r[0])[:2] + "时" for r in hour.rows if r[0] != "合计"]
        out.append(charts.bars("各时段呼入量与接通量（北京时间）", hours,
                               [Series("呼入量", _column(hour, "呼入量"), GREY),
                                Series("接通量", _column(hour, "接通量"), GREEN)]))
    if len(queue.rows) > 1:
        out.append(charts.bars("各受理队列接通率", _labels(queue), [Series("接通率", _column(queue, "接通率"), BLUE)],
                               percent=True, target=target, target_label=target_label))
    return out


def _ticket_charts(tables: Mapping[str, Table], target: float) -> list[str]:
    dept = tables.get("by_department")
    if not dept or len(dept.rows) <= 1:
        return []
    return [charts.bars("各承办单位按时办结率与及时签收率", _labels(dept),
                        [Series("按时办结率", _column(dept, "按时办结率"), BLUE),
                         Series("及时签收率", _column(dept, "及时签收率"), GREEN)],
                        percent=True, target=target, target_label=f"目标 {percent(target)}")]


def _rises(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[float], list[str]]:
    return ([str(r["term"]) for r in rows], [float(r["current"]) for r in rows],
            [f"本期 {r['current']} 件（上期 {r['previous']} 件）" for r in rows])


def _topics(topics: Mapping[str, Any] | None) -> html.Section | None:
    if not topics:
        return None
    s = html.Section("热点诉求（与上期相比上升最多）")
    for name, title, color in (("words", "诉求热词", BLUE), ("categories", "诉求类别", GREEN),
                               ("districts", "区域", ORANGE), ("streets", "街道/镇", GREY)):
        rows = topics.get(name) or []
        if rows:
            labels, values, notes = _rises(rows)
            s.charts.append(charts.hbars(title, labels, values, color=color, notes=notes))
    s.notes.append(f"本期工单 {topics.get('current_tickets', 0):,} 件，上期 {topics.get('previous_tickets', 0):,} 件；"
                   f"排序方法：{topics.get('measure', '')}。无效、重复、已并入的工单不计。")
    if not s.charts:
        s.notes.insert(0, "本期没有显著上升的诉求。")
    return s


def page(snap: Snapshot, *, target: float = TARGET, version: str = "") -> html.Page:
    p = snap.period
    meta = [f"统计期：{local_time(p.start)} 至 {local_time(p.end)}（北京时间，不含终点）",
            f"生成时间：{local_time(snap.generated_at)}" + (f"；{version}" if version else "；未冻结（实时数据）")]
    if snap.previous_period is not None:
        meta.append(f"环比上期：{snap.previous_period.label}")
    figs, prev = snap.figures, snap.previous
    quiet = [] if figs["calls.offered"].value else ["本期没有呼入来电。"]
    calls = html.Section("话务", notes=quiet, cards=[_card(figs[k], prev, target) for k in HEADLINE if k in figs],
                         charts=_call_charts(snap.tables, target),
                         tables=[_table(snap.tables[n]) for n in ("by_queue", "by_hour", "by_day") if n in snap.tables])
    tickets = html.Section("工单", cards=[_card(figs[k], prev, target) for k in TICKETS if k in figs],
                           charts=_ticket_charts(snap.tables, target),
                           tables=[_table(snap.tables[n]) for n in ("by_department", "by_category", "by_district")
                                   if n in snap.tables])
    sections = [calls, tickets]
    topics = _topics(snap.topics)
    if topics is not None:
        sections.append(topics)
    notes = html.Section("口径说明", notes=list(snap.notes))
    notes.notes.extend(f"{f.label}：{f.note}" for f in figs.values() if f.note)
    for f in snap.extras.values():
        notes.notes.append(f"{EXTRA_LABELS.get(f.key, f.key)}：{figure_text(f)}。{f.note}")
    sections.append(notes)
    return html.Page(f"12345政务服务便民热线 {p.label} 运行报告", meta, sections)


def write_html(snap: Snapshot, path: Path, *, target: float = TARGET, version: str = "") -> None:
    """Written 0640 through a temporary file renamed into place, like every report file."""
    with private_file(path, binary=True) as out:
        out.write(html.render(page(snap, target=target, version=version)).encode("utf-8"))


def write_pdf(snap: Snapshot, path: Path, *, target: float = TARGET, version: str = "") -> None:
    """The HTML printed by headless Chromium; the HTML is written beside the PDF's name first
    (a temporary sibling, removed after), since Chromium prints a file, not a string."""
    source = path.with_name(f".{path.name}.html")
    printed = path.with_name(f".{path.name}.printing")
    try:
        write_html(snap, source, target=target, version=version)
        browser.print_pdf(source, printed)
        os.chmod(printed, 0o640)
        os.replace(printed, path)
    finally:
        source.unlink(missing_ok=True)
        printed.unlink(missing_ok=True)
