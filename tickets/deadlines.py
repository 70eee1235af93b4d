"""When a ticket (工单) must be accepted (签收) and handled (办理): the deadline arithmetic.

Pure: time comes in and goes out as epoch float seconds, the zone and the holidays come
from `acd.calendar.Calendar`; nothing here reads a clock or does I/O.

Counting:
- minutes, hours, days: natural time, `start + amount` (a day is 24 h). Urgent matters are
  counted this way, on any day, holidays included.
- working_days: a working day is Monday-Friday unless it is a holiday (放假), or a weekend
  day the calendar lists as worked (调休上班); a holiday is never one. If the start's local
  day is a working day the clock starts at the start, otherwise at 00:00 of the next working
  day. The deadline is the same local clock time on the N-th working day after the day the
  clock started: dispatched Friday 16:00 with 1 working day, due Monday 16:00 (if Monday is
  worked); dispatched on a Saturday, due at 00:00 of the second working day, which is the end
  of the first.

Which limits apply to a ticket comes from a `RuleTable` keyed by (category, urgency), the
most specific rule winning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, get_args

from acd.calendar import Calendar

Unit = Literal["minutes", "hours", "days", "working_days"]
SUFFIX: dict[Unit, str] = {"minutes": "m", "hours": "h", "days": "d", "working_days": "wd"}
UNIT_OF = {suffix: unit for unit, suffix in SUFFIX.items()}
SECONDS: dict[Unit, int] = {"minutes": 60, "hours": 3600, "days": 86400}
# Longer spans are typing mistakes (a 12345 limit is days or weeks), and the working-day
# count below stays bounded whatever the calendar says.
MAX_AMOUNT: dict[Unit, int] = {"minutes": 366 * 24 * 60, "hours": 366 * 24, "days": 366, "working_days": 366}
# 366 working days take about 540 calendar days with China's holidays; a calendar that needs
# more to find them has (nearly) no working days at all.
MAX_SCAN_DAYS = 3 * 366
SPAN_HELP = "write a whole number and a unit: 15m (minutes), 8h (hours), 3d (natural days) or 13wd (working days)"
ANY = "*"


@dataclass(frozen=True)
class Span:
    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if self.unit not in get_args(Unit):
            raise ValueError(f"unknown unit {self.unit!r}; {SPAN_HELP}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ValueError(f"{self.amount!r} is not a whole number of {self.unit} (0 or more)")
        if self.amount > MAX_AMOUNT[self.unit]:
            raise ValueError(f"{self} is too long (at most {MAX_AMOUNT[self.unit]}{SUFFIX[self.unit]}); a ticket "
                             "limit is days or weeks: check the number")

    @classmethod
    def parse(cls, text: str) -> Span:
        """'15m', '24h', '3d', '13wd' -> Span; the inverse of str()."""
        body = text.strip()
        suffix = "wd" if body.endswith("wd") else body[-1:]
        digits = body[: -len(suffix)]
        if suffix not in UNIT_OF or not (digits.isascii() and digits.isdigit()) or len(digits) > 7:
            raise ValueError(f"{text!r} is not a span; {SPAN_HELP}")
        return cls(int(digits), UNIT_OF[suffix])

    def __str__(self) -> str:
        return f"{self.amount}{SUFFIX[self.unit]}"

    @property
    def natural(self) -> bool:
        return self.unit != "working_days"

    def seconds(self) -> float:
        """The length of a natural span; a working-day span has none (it depends on the start)."""
        if not self.natural:
            raise ValueError(f"{self} is counted in working days and has no fixed length in seconds")
        return float(self.amount * SECONDS[self.unit])


@dataclass(frozen=True)
class Limits:
    accept: Span  # 签收, counted from the dispatch (转办)
    handle: Span  # 办理, counted from the acceptance (签收)
    extensions: int  # how many extensions (延期) may be approved
    extension: Span  # what each approved extension adds

    def __post_init__(self) -> None:
        for name, span in (("accept", self.accept), ("handle", self.handle)):
            if span.amount == 0:
                raise ValueError(f"{name}: {span} leaves no time at all; give the unit a limit above 0")
        if self.extensions < 0:
            raise ValueError(f"extensions: {self.extensions} is below 0; write 0 for none")
        if self.extensions and self.extension.amount == 0:
            raise ValueError(f"extensions: {self.extensions} allowed, but each adds {self.extension}; "
                             "give `extension:` a length above 0, or write extensions: 0")


@dataclass(frozen=True)
class Rule:
    category: str  # 咨询, 投诉, ... or "*" for any
    urgency: str  # normal, urgent, critical or "*" for any
    limits: Limits


@dataclass(frozen=True)
class RuleTable:
    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        keys = [(r.category, r.urgency) for r in self.rules]
        if len(set(keys)) != len(keys):
            raise ValueError("two deadline rules have the same category and urgency; keep one of each")
        if (ANY, ANY) not in keys:
            raise ValueError("no catch-all deadline rule (category *, urgency *); every ticket needs a deadline")

    def limits(self, category: str, urgency: str) -> Limits:
        """The most specific rule: (category, urgency), then (category, *), (*, urgency), (*, *)."""
        by_key = {(r.category, r.urgency): r.limits for r in self.rules}
        for key in ((category, urgency), (category, ANY), (ANY, urgency)):
            if key in by_key:
                return by_key[key]
        return by_key[(ANY, ANY)]  # always there: checked when the table was made


def is_working_day(calendar: Calendar, day: date) -> bool:
    if day in calendar.holidays:
        return False
    return day in calendar.workdays or day.weekday() < 5


def _next_working_day(calendar: Calendar, after: date) -> date:
    for n in range(1, MAX_SCAN_DAYS + 1):
        day = after + timedelta(days=n)
        if is_working_day(calendar, day):
            return day
    raise ValueError(f"no working day within {MAX_SCAN_DAYS} days after {after}: the calendar's holidays cover "
                     "(nearly) every weekday; check calendar.yaml")


def due(calendar: Calendar, start: float, span: Span) -> float:
    """When a limit of `span` that starts at `start` runs out (epoch seconds)."""
    if span.natural:
        return start + span.seconds()
    if span.amount == 0:
        return start
    local = calendar.local(start)
    day = local.date()
    clock = start
    if not is_working_day(calendar, day):
        day = _next_working_day(calendar, day)
        clock = datetime(day.year, day.month, day.day, tzinfo=local.tzinfo).timestamp()
    first = day
    for _ in range(span.amount):
        day = _next_working_day(calendar, day)
    # A fixed UTC offset (no daylight saving) makes every local day 86,400 s long: the same
    # clock time N days on is exact in seconds, with no rounding through datetime.
    return clock + (day - first).days * 86400


def extend(calendar: Calendar, due_at: float, span: Span) -> float:
    """The due date after an approved extension (延期): counted on from the old due date, not
    from the approval, so asking early gains nothing and a late approval loses nothing."""
    return due(calendar, due_at, span)
