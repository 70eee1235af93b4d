"""Report periods: each form parsed to Beijing-time bounds and their UTC equivalents, the zh-CN
label, the previous period for 环比, which period a moment belongs to, and bad input refused
with the accepted forms."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reports import periods
from reports.periods import SHANGHAI, parse


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI)


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def test_a_month_runs_from_beijing_midnight_on_the_first_to_midnight_after_the_last_day() -> None:
    p = parse("2026-11")
    assert (p.kind, p.key, p.label) == ("month", "month:2026-11", "2026年11月")
    assert (p.start, p.end) == (bj(2026, 11, 1), bj(2026, 12, 1))
    assert (p.start_utc, p.end_utc) == (utc(2026, 10, 31, 16), utc(2026, 11, 30, 16))
    assert p.start.tzinfo is SHANGHAI and p.start_utc.tzinfo is UTC
    assert (len(p.days), p.hours) == (30, 720)


def test_a_quarter_and_a_year() -> None:
    q = parse("2026Q4")
    assert (q.key, q.label) == ("quarter:2026Q4", "2026年第四季度")
    assert (q.first, q.last) == (date(2026, 10, 1), date(2026, 12, 31))
    assert q.end_utc == utc(2026, 12, 31, 16)
    assert parse("2026q1").label == "2026年第一季度"
    y = parse("2026")
    assert (y.key, y.label, y.start_utc, y.end_utc) == ("year:2026", "2026年", utc(2025, 12, 31, 16),
                                                        utc(2026, 12, 31, 16))
    assert y.hours == 365 * 24


def test_a_range_takes_both_days_whole() -> None:
    r = parse("2026-11-03..2026-11-17")
    assert (r.key, r.label) == ("range:2026-11-03..2026-11-17", "2026年11月3日至2026年11月17日")
    assert (r.start, r.end) == (bj(2026, 11, 3), bj(2026, 11, 18))
    assert len(r.days) == 15
    assert parse("2026-11-03..2026-11-03").hours == 24


@pytest.mark.parametrize(("given", "previous"), [
    ("2026-11", "month:2026-10"),
    ("2026-01", "month:2025-12"),
    ("2026-03", "month:2026-02"),  # the calendar month before, though shorter
    ("2026Q1", "quarter:2025Q4"),
    ("2026Q3", "quarter:2026Q2"),
    ("2026", "year:2025"),
    ("2026-11-03..2026-11-17", "range:2026-10-19..2026-11-02"),  # as many days, ending the day before
])
def test_the_previous_period_for_the_period_on_period_comparison(given: str, previous: str) -> None:
    assert parse(given).previous().key == previous


def test_a_call_belongs_to_the_period_of_its_arrival_in_beijing_not_in_utc() -> None:
    nov, dec = parse("2026-11"), parse("2026-12")
    late_on_the_last_day = bj(2026, 11, 30, 23, 59)  # UTC says 15:59 on the 30th: both agree here
    assert late_on_the_last_day.astimezone(UTC) == utc(2026, 11, 30, 15, 59)
    assert nov.contains(late_on_the_last_day) and not dec.contains(late_on_the_last_day)
    just_after = utc(2026, 11, 30, 16, 30)  # UTC says 30 November; Beijing says 00:30 on 1 December
    assert dec.contains(just_after) and not nov.contains(just_after)
    first_minute = utc(2026, 10, 31, 16, 0)  # UTC says 31 October; Beijing says 00:00 on 1 November
    assert nov.contains(first_minute) and not parse("2026-10").contains(first_minute)
    with pytest.raises(ValueError, match="aware"):
        nov.contains(datetime(2026, 11, 5))


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026Q5", "2026Q0", "26", "202611", "nov", "",
                                 "2026-11-17..2026-11-03", "2026-02-30..2026-03-01", "2026-11-03...2026-11-04",
                                 "0000", "9999-12"])
def test_bad_input_is_refused_naming_the_accepted_forms(bad: str) -> None:
    with pytest.raises(ValueError, match=r"2026-11（月）、2026Q4（季度）、2026（年）、2026-11-03\.\.2026-11-17"):
        parse(bad)


def test_an_action_takes_only_its_own_form() -> None:
    assert parse("2026", "year").key == "year:2026"
    with pytest.raises(ValueError, match="此处需要月份"):
        parse("2026", "month")
    with pytest.raises(ValueError, match="此处需要季度"):
        parse("2026-11", "quarter")


@pytest.mark.parametrize("text", ["2026-11", "2026Q4", "2026", "2026-11-03..2026-11-17"])
def test_a_key_names_its_period_again(text: str) -> None:
    p = parse(text)
    assert periods.from_key(p.key) == p
    assert parse(p.text) == p
