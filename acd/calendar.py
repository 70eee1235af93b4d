"""Opening hours with China's public holidays and the working weekends that replace them (调休).

Pure: the time comes in as an epoch float and the zone as a fixed UTC offset
(China has no daylight saving; Asia/Shanghai is UTC+8 all year), so nothing here
reads tz files or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

Interval = tuple[time, time]  # [start, end) local time; end 24:00 is written as time.max


@dataclass(frozen=True)
class Calendar:
    utc_offset_hours: float = 8.0
    holidays: frozenset[date] = field(default_factory=frozenset)  # 放假 days
    workdays: frozenset[date] = field(default_factory=frozenset)  # weekend days worked instead (调休上班)

    def local(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, timezone(timedelta(hours=self.utc_offset_hours)))


@dataclass(frozen=True)
class Hours:
    """A queue's opening hours. No weekly intervals at all means 7x24."""

    # Monday=0 .. Sunday=6 -> intervals. A 调休 working weekend uses Monday's hours.
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7
    open_on_holidays: bool = False

    @property
    def always(self) -> bool:
        return not any(self.weekly)


ALWAYS = Hours()


def is_open(calendar: Calendar, hours: Hours, now: float) -> bool:
    if hours.always:
        return True
    local = calendar.local(now)
    day = local.date()
    if day in calendar.holidays and not hours.open_on_holidays:
        return False
    weekday = 0 if day in calendar.workdays else day.weekday()
    t = local.time()
    return any(start <= t < end or (end == time.max and t >= start) for start, end in hours.weekly[weekday])
