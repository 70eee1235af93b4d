"""Charts of a report as inline SVG: drawn by the browser that shows or prints the page.

Pure string building, no plotting library and no script: the HTML report must open on a
hotline network with no internet, print to PDF in headless Chromium as it shows on screen,
and stay one self-contained file a city office can archive. Text is left to the browser so
that Chinese labels use the machine's CJK font.

Colours are fixed (`BLUE`, `GREEN`, `GREY`, `RED`): a reader learns them once, and the
render test finds the drawn bars and the 95% line by these colours in the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

BLUE = "#2f6fb0"
GREEN = "#2e9d5b"
GREY = "#9aa5b1"
ORANGE = "#e08a1e"
RED = "#d23c3c"  # the target line (95%) and nothing else

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 34, 44


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no value (drawn as a gap, never as 0)
    color: str = BLUE


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    if value >= 10_000:
        return f"{value / 10_000:.1f}万"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _scale(values: Sequence[float | None], percent: bool, target: float | None) -> tuple[float, float]:
    present = [v for v in values if v is not None]
    if target is not None:
        present.append(target)
    if percent:
        low = min(present, default=0.0)
        # A rate chart starts at a round floor under the lowest value, so that 93% and 97%
        # do not look alike; never below 0.
        floor = max(0.0, math.floor(low * 10) / 10 - 0.1) if low > 0.5 else 0.0
        return floor, 1.0
    top = max(present, default=0.0)
    if top <= 0:
        return 0.0, 4.0
    # Four gridline steps of 1, 2, 2.5 or 5 × 10^k, whole numbers (counts have no fractions).
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    steps = (1, 2, 2.5, 5, 10) if magnitude >= 10 else (1, 2, 5, 10)
    step = next(m * magnitude for m in steps if m * magnitude >= raw)
    return 0.0, 4 * max(1, step)


def _frame(title: str, lo: float, hi: float, percent: bool, body: list[str], legend: Sequence[Series],
           labels: Sequence[str], x_of: list[float]) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
           f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i in range(5):
        value = lo + (hi - lo) * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e3e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                   f'{_fmt(value, percent)}</text>')
    out.extend(body)
    step = max(1, math.ceil(len(labels) / 16))  # at most 16 axis labels: a month's days would overlap
    for i, (label, x) in enumerate(zip(labels, x_of, strict=True)):
        if i % step == 0:
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
                       f'text-anchor="middle">{escape(label)}</text>')
    lx = LEFT
    for s in legend:
        out.append(f'<rect x="{lx}" y="{HEIGHT - 16}" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 16}" y="{HEIGHT - 6}" font-size="12">{escape(s.name)}</text>')
        lx += 30 + 13 * len(s.name)
    out.append("</svg>")
    return "\n".join(out)


def _target_line(lo: float, hi: float, target: float, label: str) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    y = TOP + plot_h - plot_h * (target - lo) / (hi - lo)
    return [f'<line class="target" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{RED}" stroke-width="2" stroke-dasharray="6 3"/>',
            f'<text x="{LEFT + 4}" y="{y - 4:.1f}" font-size="11" fill="{RED}">{escape(label)}</text>']


def bars(title: str, labels: Sequence[str], series: Sequence[Series], *, percent: bool = False,
         target: float | None = None, target_label: str = "") -> str:
    """Grouped vertical bars, one group per label; an optional dashed target line."""
    lo, hi = _scale([v for s in series for v in s.values], percent, target)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    width = max(1.0, slot * 0.8 / max(1, len(series)))
    body: list[str] = []
    for k, s in enumerate(series):
        for i, value in enumerate(s.values):
            if value is None:
                continue
            h = plot_h * (max(value, lo) - lo) / (hi - lo)
            x = LEFT + slot * i + slot * 0.1 + width * k
            body.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                        f'fill="{s.color}"><title>{escape(labels[i])} {escape(s.name)}: '
                        f'{_fmt(value, percent)}</title></rect>')
    if target is not None:
        body.extend(_target_line(lo, hi, target, target_label))
    x_of = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    return _frame(title, lo, hi, percent, body, series, labels, x_of)


def lines(title: str, labels: Sequence[str], series: Sequence[Series], *, percent: bool = False,
          target: float | None = None, target_label: str = "") -> str:
    """Lines with a dot per value; a None breaks the line (a day with no calls has no rate)."""
    lo, hi = _scale([v for s in series for v in s.values], percent, target)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    x_of = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    body: list[str] = []
    if target is not None:
        body.extend(_target_line(lo, hi, target, target_label))
    for s in series:
        run: list[str] = []
        for i, value in enumerate(s.values):
            if value is None:
                if len(run) > 1:
                    body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.color}" '
                                f'stroke-width="2.5"/>')
                run = []
                continue
            y = TOP + plot_h - plot_h * (max(value, lo) - lo) / (hi - lo)
            run.append(f"{x_of[i]:.1f},{y:.1f}")
            body.append(f'<circle cx="{x_of[i]:.1f}" cy="{y:.1f}" r="3.5" fill="{s.color}"><title>'
                        f'{escape(labels[i])} {escape(s.name)}: {_fmt(value, percent)}</title></circle>')
        if len(run) > 1:
            body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.color}" stroke-width="2.5"/>')
    return _frame(title, lo, hi, percent, body, series, labels, x_of)


def hbars(title: str, labels: Sequence[str], values: Sequence[float], *, color: str = BLUE,
          notes: Sequence[str] = ()) -> str:
    """Horizontal bars, largest first as given: rankings (hot topics, departments)."""
    row = 24
    height = TOP + row * max(1, len(labels)) + 12
    label_w = 150
    plot_w = WIDTH - label_w - RIGHT - 120
    top = max(values, default=0.0) or 1.0
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + row * i
        w = plot_w * max(0.0, value) / top
        note = notes[i] if i < len(notes) else _fmt(value, False)
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{color}"/>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="11">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)
