"""The report as one self-contained HTML page: figures first, charts, then the tables.

No script, no web font, no remote file: the page opens on a network with no internet, a
browser prints it to the PDF as shown (reports/browser.py), and an archive keeps one file.
The layout model is small on purpose (`Page` of `Section`s of cards, charts and tables);
reports/layout.py decides what a period report shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from reports.figures import Figure

CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif;
       color: #1d2733; margin: 0 auto; max-width: 1000px; padding: 16px; font-size: 13px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; border-bottom: 2px solid #33414f; padding-bottom: 4px; margin-top: 26px; }
.meta { color: #5b6775; margin-bottom: 12px; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; }
.card { border: 1px solid #d6dde4; border-radius: 6px; padding: 8px 10px; break-inside: avoid; }
.card .label { color: #5b6775; font-size: 12px; }
.card .value { font-size: 20px; font-weight: bold; margin: 2px 0; }
.card .note { color: #5b6775; font-size: 11px; line-height: 1.35; }
.card.pass .value { color: #1f7a45; } .card.fail .value { color: #a01c1c; }  /* not the charts' colours */
.chart { display: block; margin: 12px 0; max-width: 100%; height: auto; break-inside: avoid; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 12px; }
th, td { border: 1px solid #d6dde4; padding: 3px 6px; text-align: right; }
th { background: #eef2f6; } td:first-child, th:first-child { text-align: left; }
tr { break-inside: avoid; }
.caption { font-weight: bold; margin-top: 10px; break-after: avoid; }
.notes { color: #3c4856; font-size: 12px; line-height: 1.6; }
"""


@dataclass(frozen=True)
class Table:
    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Card:
    figure: Figure
    text: str  # the value as printed ("96.21%", "1,234", "12.3 秒", "—")
    verdict: bool | None = None  # True: meets its target, False: misses it, None: no target


@dataclass
class Section:
    title: str
    cards: list[Card] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)  # inline SVG (reports/charts.py)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Page:
    title: str
    meta: list[str]
    sections: list[Section]


def _card(card: Card) -> str:
    cls = "card" + ("" if card.verdict is None else " pass" if card.verdict else " fail")
    note = f'<div class="note">{escape(card.figure.note)}</div>' if card.figure.note else ""
    return (f'<div class="{cls}" data-key="{escape(card.figure.key)}"><div class="label">'
            f'{escape(card.figure.label)}</div><div class="value">{escape(card.text)}</div>{note}</div>')


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    return (f'<div class="caption">{escape(t.caption)}</div>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def render(page: Page) -> str:
    parts = ['<!DOCTYPE html>', '<html lang="zh-CN"><head><meta charset="utf-8">',
             f"<title>{escape(page.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(page.title)}</h1>",
             *(f'<div class="meta">{escape(m)}</div>' for m in page.meta)]
    for s in page.sections:
        parts.append(f"<section><h2>{escape(s.title)}</h2>")
        if s.cards:
            parts.append('<div class="cards">' + "".join(_card(c) for c in s.cards) + "</div>")
        parts.extend(s.charts)  # our own SVG, built with every text escaped
        parts.extend(_table(t) for t in s.tables)
        if s.notes:
            parts.append('<div class="notes">' + "".join(f"<p>{escape(n)}</p>" for n in s.notes) + "</div>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
