"""How the live pages write times and rates: pure functions, no clock (callers pass `now`).

Rates are written by `metrics.kpi.percent` (two decimals, rounded half up), and judged
against the 95% line as printed: 94.995% shows and counts as 95.00%, as the contract's
assessment reads it (reports/assess.py), so a cell is never red while showing 95.00%.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from metrics import kpi

SHANGHAI = ZoneInfo("Asia/Shanghai")
TARGET = Decimal("95")  # 月接通率 and GB/T 33358's 15-second rate: ≥ 95%


@dataclass(frozen=True)
class Rate:
    text: str  # "96.30%", or "—" with no eligible call
    css: str  # "ok" at or above the line, "bad" below it, "" without calls


def rate(value: float | None) -> Rate:
    text = kpi.percent(value)
    if value is None:
        return Rate(text, "")
    return Rate(text, "ok" if Decimal(text.rstrip("%")) >= TARGET else "bad")


def duration(seconds: float) -> str:
    """A time in a state or in line: 0:07, 12:05, 1:02:03 (whole seconds, never negative)."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def age(seconds: float, lang: str = "zh") -> str:
    """How old a figure is: "12 秒前", "3 分钟前" ("12 s ago" in English)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} 秒前" if lang != "en" else f"{s} s ago"
    if s < 3600:
        return f"{s // 60} 分钟前" if lang != "en" else f"{s // 60} min ago"
    return f"{s // 3600} 小时前" if lang != "en" else f"{s // 3600} h ago"


@dataclass(frozen=True)
class Countdown:
    text: str  # "剩余 2小时05分", "超期 1天3小时", "—"
    css: str  # "bad" when overdue, "warn" within `soon`, "" otherwise


def _span(seconds: int, lang: str) -> str:
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    if lang == "en":
        return f"{d}d {h}h" if d else f"{h}h {m:02d}m" if h else f"{m}m"
    return f"{d}天{h}小时" if d else f"{h}小时{m:02d}分" if h else f"{m}分钟"


def countdown(due: datetime | None, now: datetime, lang: str = "zh", soon_seconds: int = 4 * 3600) -> Countdown:
    """Time left to a deadline, or how far past it. Minutes are floored while time is left and
    rounded up once overdue, so the last minute before it reads 0 left, never "1 over" early."""
    if due is None:
        return Countdown("—", "")
    left = (due - now).total_seconds()
    if left >= 0:
        text = ("剩余 " if lang != "en" else "") + _span(int(left), lang) + (" left" if lang == "en" else "")
        return Countdown(text, "warn" if left < soon_seconds else "")
    over = int(-left) + 59  # 10 s overdue is "1 minute" overdue: red with a non-zero figure
    text = ("超期 " if lang != "en" else "") + _span(over, lang) + (" overdue" if lang == "en" else "")
    return Countdown(text, "bad")


def parse_time(value: str | None) -> datetime | None:
    """An ISO time from the ticket service's views (aware), or None."""
    return datetime.fromisoformat(value) if value else None


def local_time(value: str | None) -> str:
    """An ISO time from the ticket service as Beijing time people read ("2026-11-27 10:00"), or "—"."""
    when = parse_time(value)
    return "—" if when is None else when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
