"""Report periods: a month, a quarter, a year or a range of whole days, in Beijing time.

Pure: no clock, no I/O. A call belongs to the period of its arrival in Asia/Shanghai (the
reference's §5: "in the month of its arrival time"), so a call at 23:59 on 30 November in
Beijing (15:59 UTC) is November's, and one at 00:30 on 1 December (16:30 UTC on 30 November)
is December's. Periods are half-open: `start <= t < end`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
Kind = Literal["month", "quarter", "year", "range"]
QUARTER_NAMES = ("一", "二", "三", "四")
ACCEPTED = ("可用的统计期：2026-11（月）、2026Q4（季度）、2026（年）、2026-11-03..2026-11-17（起止日期，含两端）"
            " (accepted: YYYY-MM, YYYYQn, YYYY, YYYY-MM-DD..YYYY-MM-DD inclusive)")

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})[Qq]([1-4])")
_YEAR = re.compile(r"(\d{4})")
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Period:
    kind: Kind
    first: date  # the first day, in Beijing
    last: date  # the last day, inclusive

    @property
    def start(self) -> datetime:
        """00:00 of the first day, Asia/Shanghai."""
        return _local_midnight(self.first)

    @property
    def end(self) -> datetime:
        """00:00 of the day after the last, Asia/Shanghai (exclusive)."""
        return _local_midnight(self.last + timedelta(days=1))

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    @property
    def text(self) -> str:
        """The form it was given in (and `parse` reads back)."""
        if self.kind == "month":
            return f"{self.first:%Y-%m}"
        if self.kind == "quarter":
            return f"{self.first.year}Q{(self.first.month - 1) // 3 + 1}"
        if self.kind == "year":
            return f"{self.first.year}"
        return f"{self.first.isoformat()}..{self.last.isoformat()}"

    @property
    def key(self) -> str:
        """A stable name: "month:2026-11", "quarter:2026Q4", "year:2026", "range:2026-11-03..2026-11-17"."""
        return f"{self.kind}:{self.text}"

    @property
    def label(self) -> str:
        if self.kind == "month":
            return f"{self.first.year}年{self.first.month}月"
        if self.kind == "quarter":
            return f"{self.first.year}年第{QUARTER_NAMES[(self.first.month - 1) // 3]}季度"
        if self.kind == "year":
            return f"{self.first.year}年"
        return f"{_day_label(self.first)}至{_day_label(self.last)}"

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def hours(self) -> int:
        """Whole hours in the period (China keeps no summer time: 24 a day)."""
        return int((self.end_utc - self.start_utc).total_seconds()) // 3600

    def previous(self) -> Period:
        """The period before, for 环比: the previous month, quarter or year; for a range, as
        many days ending the day before it starts."""
        if self.kind == "month":
            return month(*_shift_months(self.first, -1))
        if self.kind == "quarter":
            return quarter(*((self.first.year - 1, 4) if self.first.month == 1 else
                             (self.first.year, (self.first.month - 1) // 3)))
        if self.kind == "year":
            return year(self.first.year - 1)
        length = (self.last - self.first).days + 1
        last = self.first - timedelta(days=1)
        return Period("range", last - timedelta(days=length - 1), last)

    def contains(self, moment: datetime) -> bool:
        """Whether a call arriving at `moment` (aware, any zone) belongs here."""
        if moment.tzinfo is None:
            raise ValueError("an aware datetime is needed: a naive one has no place in Beijing time")
        return self.start <= moment < self.end


def _day_label(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _shift_months(first: date, by: int) -> tuple[int, int]:
    index = first.year * 12 + first.month - 1 + by
    return index // 12, index % 12 + 1


def month(y: int, m: int) -> Period:
    first = date(y, m, 1)
    ny, nm = _shift_months(first, 1)
    return Period("month", first, date(ny, nm, 1) - timedelta(days=1))


def quarter(y: int, q: int) -> Period:
    if not 1 <= q <= 4:
        raise ValueError(f"季度只有 1-4 (quarter {q}). {ACCEPTED}")
    first = date(y, 3 * (q - 1) + 1, 1)
    return Period("quarter", first, month(*_shift_months(first, 2)).last)


def year(y: int) -> Period:
    return Period("year", date(y, 1, 1), date(y, 12, 31))


MAX_RANGE_DAYS = 3 * 366  # a report keeps a bucket per hour of its period: ten thousand years would not fit


def days(first: date, last: date) -> Period:
    if last < first:
        raise ValueError(f"起始日期 {first} 晚于结束日期 {last} (the range ends before it starts). {ACCEPTED}")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        length = (last - first).days + 1
        raise ValueError(f"统计期最长 {MAX_RANGE_DAYS} 天（{first}..{last} 共 {length} 天）；"
                         f"更长的时段请按年分别出报表 (at most {MAX_RANGE_DAYS} days: report year by year). {ACCEPTED}")
    return Period("range", first, last)


def parse(value: str, kind: Kind | None = None) -> Period:
    """"2026-11", "2026Q4", "2026" or "2026-11-03..2026-11-17"; with `kind`, only that form."""
    text = value.strip()
    if (y := re.match(r"\d{4}", text)) and not 1900 <= int(y[0]) <= 9998:
        raise ValueError(f"年份超出范围 (year {y[0]} out of 1900-9998)。{ACCEPTED}")
    try:
        if (m := _MONTH.fullmatch(text)) and kind in (None, "month"):
            return month(int(m[1]), int(m[2]))
        if (m := _QUARTER.fullmatch(text)) and kind in (None, "quarter"):
            return quarter(int(m[1]), int(m[2]))
        if (m := _YEAR.fullmatch(text)) and kind in (None, "year"):
            return year(int(m[1]))
        if (m := _RANGE.fullmatch(text)) and kind in (None, "range"):
            return days(date.fromisoformat(m[1]), date.fromisoformat(m[2]))
    except ValueError as exc:
        if ACCEPTED in str(exc):
            raise
        raise ValueError(f"无效的统计期 {value!r}：{exc}。{ACCEPTED}") from None
    what = {None: "", "month": "（此处需要月份）", "quarter": "（此处需要季度）", "year": "（此处需要年份）",
            "range": "（此处需要起止日期）"}[kind]
    raise ValueError(f"无法识别的统计期 {value!r}{what}。{ACCEPTED}")


KINDS: dict[str, Kind] = {"month": "month", "quarter": "quarter", "year": "year", "range": "range"}


def from_key(key: str) -> Period:
    """The period a `Period.key` names."""
    kind, _, text = key.partition(":")
    if kind not in KINDS:
        raise ValueError(f"无法识别的统计期 {key!r}。{ACCEPTED}")
    return parse(text, KINDS[kind])
