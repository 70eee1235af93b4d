"""Ticket (工单) deadlines: natural time for urgent matters, working days across holidays and 调休."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import tickets.deadlines
from acd.calendar import Calendar
from config.loader import load
from tests.unit.test_core_is_pure import impurities
from tickets.deadlines import Limits, Rule, RuleTable, Span, due, extend, is_working_day

CST = timezone(timedelta(hours=8))
# The shipped calendar.yaml, read as the engine reads it: the tests below prove the file.
SHIPPED = load().calendar.to_core()


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CST).timestamp()


def shown(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CST).strftime("%Y-%m-%d %a %H:%M")


def test_the_module_is_pure_like_the_routing_core() -> None:
    assert impurities(Path(tickets.deadlines.__file__).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(("start", "span", "expected"), [
    # 2026 春节: holidays 02-15..02-23; Saturday 02-14 and Saturday 02-28 are worked.
    ("2026-02-13 15:30", "1wd", "2026-02-14 Sat 15:30"),  # Friday -> the 调休 working Saturday
    ("2026-02-13 15:30", "2wd", "2026-02-24 Tue 15:30"),  # ...then over the whole holiday
    ("2026-02-13 15:30", "3wd", "2026-02-25 Wed 15:30"),
    ("2026-02-14 10:00", "1wd", "2026-02-24 Tue 10:00"),  # the working Saturday starts the clock at once
    ("2026-02-27 09:00", "1wd", "2026-02-28 Sat 09:00"),  # the second working Saturday counts too
    ("2026-01-30 11:00", "1wd", "2026-02-02 Mon 11:00"),  # month end: Friday -> Monday of the next month
    ("2026-01-02 09:00", "1wd", "2026-01-05 Mon 00:00"),  # 元旦 holiday start: from Sunday 01-04 (worked) 00:00
    # 2025 春节: holidays 01-28..02-04; Sunday 01-26 and Saturday 02-08 are worked.
    ("2025-01-24 17:00", "1wd", "2025-01-26 Sun 17:00"),
    ("2025-01-27 09:00", "1wd", "2025-02-05 Wed 09:00"),
    ("2025-02-07 09:00", "1wd", "2025-02-08 Sat 09:00"),
    # 2025 国庆/中秋: holidays 10-01..10-08; Sunday 09-28 and Saturday 10-11 are worked.
    ("2025-09-26 14:00", "1wd", "2025-09-28 Sun 14:00"),
    ("2025-09-30 14:00", "1wd", "2025-10-09 Thu 14:00"),
    ("2025-09-30 14:00", "3wd", "2025-10-11 Sat 14:00"),
    ("2025-05-30 08:00", "1wd", "2025-06-03 Tue 08:00"),  # 端午 05-31..06-02
])
def test_working_days_skip_holidays_and_count_the_worked_weekends(start: str, span: str, expected: str) -> None:
    assert shown(due(SHIPPED, at(start), Span.parse(span))) == expected


def test_a_friday_afternoon_ticket_with_one_working_day_is_due_monday_at_the_same_time() -> None:
    assert shown(due(SHIPPED, at("2026-03-06 16:00"), Span.parse("1wd"))) == "2026-03-09 Mon 16:00"


@pytest.mark.parametrize(("start", "span", "expected"), [
    # An ordinary Saturday: the clock starts Monday 00:00, so one working day ends with Monday.
    ("2026-03-07 10:00", "1wd", "2026-03-10 Tue 00:00"),
    ("2026-03-08 23:59", "2wd", "2026-03-11 Wed 00:00"),
    # 国庆 2026 (10-01..10-07): started on 10-03, counted from Thursday 10-08 00:00; Saturday 10-10 is worked.
    ("2026-10-03 10:00", "1wd", "2026-10-09 Fri 00:00"),
    ("2026-10-03 10:00", "3wd", "2026-10-12 Mon 00:00"),
])
def test_a_ticket_started_on_a_day_off_is_counted_from_the_next_working_days_midnight(start: str, span: str,
                                                                                       expected: str) -> None:
    assert shown(due(SHIPPED, at(start), Span.parse(span))) == expected


@pytest.mark.parametrize(("start", "span", "expected"), [
    ("2026-02-16 03:00", "15m", "2026-02-16 Mon 03:15"),  # 春节, in the night
    ("2026-02-16 03:00", "30m", "2026-02-16 Mon 03:30"),
    ("2026-02-16 03:00", "24h", "2026-02-17 Tue 03:00"),
    ("2026-02-21 20:00", "72h", "2026-02-24 Tue 20:00"),
    ("2026-09-30 12:00", "3d", "2026-10-03 Sat 12:00"),  # natural days run through 国庆
])
def test_urgent_matters_count_natural_time_through_holidays(start: str, span: str, expected: str) -> None:
    assert shown(due(SHIPPED, at(start), Span.parse(span))) == expected


def test_seconds_survive_working_day_counting_exactly() -> None:
    start = at("2026-03-06 16:00") + 12.25
    assert due(SHIPPED, start, Span.parse("1wd")) == at("2026-03-09 16:00") + 12.25


def test_an_extension_is_counted_on_from_the_old_due_date_not_from_its_approval() -> None:
    accepted = at("2026-02-02 10:00")  # Monday
    due_at = due(SHIPPED, accepted, Span.parse("3wd"))
    assert shown(due_at) == "2026-02-05 Thu 10:00"
    approved = at("2026-02-03 09:00")
    assert shown(extend(SHIPPED, due_at, Span.parse("3wd"))) == "2026-02-10 Tue 10:00"
    assert extend(SHIPPED, due_at, Span.parse("3wd")) != due(SHIPPED, approved, Span.parse("3wd"))


def test_an_extension_over_spring_festival_skips_the_holiday() -> None:
    assert shown(extend(SHIPPED, at("2026-02-13 15:30"), Span.parse("3wd"))) == "2026-02-25 Wed 15:30"
    assert shown(extend(SHIPPED, at("2026-02-16 03:00"), Span.parse("24h"))) == "2026-02-17 Tue 03:00"


def test_a_zero_extension_leaves_the_due_date_where_it_was_even_on_a_day_off() -> None:
    saturday = at("2026-03-07 10:00")  # e.g. an urgent ticket's due date in natural hours
    assert extend(SHIPPED, saturday, Span(0, "working_days")) == saturday


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 3, 6), True),  # Friday
    (date(2026, 3, 7), False),  # Saturday
    (date(2026, 2, 14), True),  # Saturday worked for 春节 (调休)
    (date(2026, 2, 16), False),  # Monday in 春节
    (date(2025, 1, 26), True),  # Sunday worked for 春节 2025
    (date(2025, 10, 8), False),  # Wednesday in 国庆 2025
    (date(2024, 12, 31), True),  # December 2024 has no holidays
])
def test_working_days_follow_the_shipped_calendar(day: date, working: bool) -> None:
    assert is_working_day(SHIPPED, day) is working


def test_a_holiday_is_never_a_working_day_even_if_also_listed_as_worked() -> None:
    sunday = date(2026, 3, 8)
    assert not is_working_day(Calendar(holidays=frozenset({sunday}), workdays=frozenset({sunday})), sunday)


def test_a_calendar_without_working_days_is_an_error_not_a_hang() -> None:
    every_day = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(5 * 366))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"no working day within .* check calendar\.yaml"):
        due(Calendar(holidays=every_day), at("2026-01-05 09:00"), Span.parse("1wd"))
    assert time.perf_counter() - started < 1


def test_the_utc_offset_decides_the_local_day() -> None:
    # 2026-03-06 20:00 UTC is Saturday 04:00 in Shanghai (a day off) but Friday in UTC.
    start = datetime(2026, 3, 6, 20, tzinfo=UTC).timestamp()
    assert shown(due(Calendar(8), start, Span.parse("1wd"))) == "2026-03-10 Tue 00:00"
    assert due(Calendar(0), start, Span.parse("1wd")) == datetime(2026, 3, 9, 20, tzinfo=UTC).timestamp()


# --- spans ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "span"), [
    ("15m", Span(15, "minutes")), ("24h", Span(24, "hours")), ("3d", Span(3, "days")),
    ("13wd", Span(13, "working_days")), ("0wd", Span(0, "working_days")),
])
def test_a_span_reads_and_writes_the_same_text(text: str, span: Span) -> None:
    assert Span.parse(text) == span
    assert str(span) == text


@pytest.mark.parametrize("text", ["", "15", "m", "wd", "1.5h", "3 wd", "-1d", "+5m", "15M", "1w", "1e3m",
                                  "١٢h", "99999999m"])
def test_a_span_that_is_not_number_and_unit_is_refused_with_the_forms_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a span; write a whole number and a unit: 15m"):
        Span.parse(text)


@pytest.mark.parametrize("text", ["367wd", "367d", "8785h", "527041m"])
def test_a_span_over_a_year_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        Span.parse(text)


def test_the_longest_span_allowed_still_counts() -> None:
    assert due(SHIPPED, at("2026-01-05 09:00"), Span.parse("366wd")) > at("2027-05-01 00:00")


def test_working_days_have_no_length_in_seconds() -> None:
    assert Span.parse("2h").seconds() == 7200
    with pytest.raises(ValueError, match="working days"):
        Span.parse("2wd").seconds()


# --- limits and the rule table --------------------------------------------------------------

def limits(accept: str, handle: str = "5wd", extensions: int = 1, extension: str = "5wd") -> Limits:
    return Limits(Span.parse(accept), Span.parse(handle), extensions, Span.parse(extension))


@pytest.mark.parametrize(("args", "message"), [
    (("0wd",), "accept: 0wd leaves no time"),
    (("1wd", "0h"), "handle: 0h leaves no time"),
    (("1wd", "5wd", 1, "0wd"), "give `extension:` a length above 0"),
    (("1wd", "5wd", -1), "below 0"),
])
def test_limits_that_leave_no_time_are_refused(args: tuple[str | int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        limits(*args)  # type: ignore[arg-type]


def test_no_extension_needs_no_extension_length() -> None:
    assert limits("15m", "24h", 0, "0wd").extensions == 0


TABLE = RuleTable((
    Rule("*", "*", limits("4wd")),
    Rule("*", "urgent", limits("3wd")),
    Rule("投诉", "*", limits("2wd")),
    Rule("投诉", "urgent", limits("1wd")),
))


@pytest.mark.parametrize(("category", "urgency", "accept"), [
    ("投诉", "urgent", "1wd"),  # (category, urgency)
    ("投诉", "normal", "2wd"),  # (category, *)
    ("咨询", "urgent", "3wd"),  # (*, urgency)
    ("咨询", "normal", "4wd"),  # (*, *)
    ("无效", "critical", "4wd"),  # anything at all has a deadline
])
def test_the_most_specific_rule_wins(category: str, urgency: str, accept: str) -> None:
    assert str(TABLE.limits(category, urgency).accept) == accept


def test_a_category_rule_beats_an_urgency_rule() -> None:
    table = RuleTable((Rule("*", "*", limits("4wd")), Rule("*", "critical", limits("15m")),
                       Rule("投诉", "*", limits("2wd"))))
    assert str(table.limits("投诉", "critical").accept) == "2wd"
    assert str(table.limits("举报", "critical").accept) == "15m"


def test_a_table_without_a_catch_all_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="no catch-all"):
        RuleTable((Rule("投诉", "*", limits("1wd")),))


def test_a_table_with_one_key_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="same category and urgency"):
        RuleTable((Rule("*", "*", limits("1wd")), Rule("*", "*", limits("2wd"))))
