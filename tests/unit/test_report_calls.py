"""The call figures of a period report, from stored call records, on SQLite and PostgreSQL:
the exclusions and their notes, an empty month, which month a call at midnight belongs to,
the worst 24 hours, overflow counted in the offered queue, the survey, the short-abandon
override. Every expectation is worked out by hand beside it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from metrics import kpi
from reports import calls
from reports.calls import Window, worst_window
from reports.periods import parse
from tests.unit.report_helpers import bj, call, store, store_calls

NOV = parse("2026-11")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with store(request.param, tmp_path) as engine:
        yield engine


def nov_mix() -> list[dict[str, object]]:
    """Six answered, four hung up (two within 5 s), one timed out, two in closed hours."""
    at = bj(2026, 11, 10, 9)
    return [
        *(call(at, "answered", w, talk=t) for w, t in ((3, 100), (10, 200), (15, 300), (16, 60), (20, 40), (30, 20))),
        call(at, "abandoned", 2), call(at, "abandoned", 4.9),  # short abandons: under 5 s
        call(at, "abandoned", 5), call(at, "abandoned", 40),  # 5 s itself is not short
        call(at, "timed_out", 300),
        call(at, "closed", 0), call(at, "closed", 0),
    ]


def test_short_abandons_leave_the_denominator_and_closed_hours_calls_are_not_offered(db: Engine) -> None:
    store_calls(db, nov_mix())
    figs = calls.period_stats(db, NOV).figures()
    assert figs["calls.offered"].value == 11  # 6 + 4 + 1; the 2 closed-hours calls are not offered
    assert (figs["calls.abandoned"].value, figs["calls.short_abandoned"].value) == (4, 2)
    rate = figs["calls.answer_rate"]
    assert (rate.numerator, rate.denominator) == (6, 9)  # 11 offered - 2 short abandons
    assert kpi.percent(rate.value) == "66.67%"
    assert "接通率 = 接通量 / (呼入量 − 速挂量)" in rate.note
    assert "共 2 通，已从分母中剔除" in rate.note and "闭馆时段来电 2 通不计入呼入量" in rate.note
    assert "本期为 5 秒" in rate.note  # the records' own threshold, named
    sl = figs["calls.sl_rate"]
    assert (sl.numerator, sl.denominator) == (3, 9)  # waits 3, 10 and 15 (the level itself counts)
    asa, aht = figs["calls.asa"], figs["calls.aht"]
    assert (asa.numerator, asa.denominator) == (94, 6)  # 3+10+15+16+20+30
    assert asa.value == pytest.approx(94 / 6)
    assert (aht.numerator, aht.value) == (720, 120)
    assert "话后处理" in aht.note  # wrap-up is not in the record: said so
    assert figs["calls.longest_wait"].value == 30  # answered calls
    assert "40 秒" in figs["calls.longest_wait"].note  # the abandoned calls' longest, beside it
    assert calls.period_stats(db, NOV).extras()["calls.longest_wait_abandoned"].value == 40


def test_a_short_abandon_threshold_from_the_command_line_applies_to_every_call_and_says_so(db: Engine) -> None:
    store_calls(db, nov_mix())
    three = calls.period_stats(db, NOV, short_abandon=3).figures()["calls.answer_rate"]
    assert (three.numerator, three.denominator) == (6, 10)  # only the 2 s hang-up is short now
    assert "统一按 3 秒计" in three.note and "命令行指定" in three.note
    off = calls.period_stats(db, NOV, short_abandon=0).figures()["calls.answer_rate"]
    assert off.denominator == 11


def test_the_records_own_thresholds_count_each_call_by_its_queue_then(db: Engine) -> None:
    at = bj(2026, 11, 10, 9)
    store_calls(db, [call(at, "abandoned", 6, short_abandon=8), call(at, "abandoned", 6, short_abandon=5),
                     call(at, "answered", 18, service_level=20), call(at, "answered", 18, service_level=15)])
    figs = calls.period_stats(db, NOV).figures()
    assert figs["calls.short_abandoned"].value == 1
    assert figs["calls.sl_rate"].numerator == 1
    assert "5–8 秒" in figs["calls.answer_rate"].note and "15–20 秒" in figs["calls.sl_rate"].note


def test_an_empty_month_has_counts_of_zero_and_rates_of_nothing_not_zero_percent(db: Engine) -> None:
    store_calls(db, [call(bj(2026, 10, 15, 9))])  # October's, not November's
    stats = calls.period_stats(db, NOV)
    figs = stats.figures()
    assert figs["calls.offered"].value == 0
    for key in ("calls.answer_rate", "calls.sl_rate", "calls.asa", "calls.aht", "calls.longest_wait",
                "calls.worst_24h_answer_rate", "calls.survey_response_rate", "calls.satisfaction_rate"):
        assert figs[key].value is None, key
    assert kpi.percent(figs["calls.answer_rate"].value) == "—"
    assert len(stats.by_day) == 30 and all(a.totals.answer_rate is None for a in stats.by_day.values())


def test_a_call_at_23_59_beijing_on_the_last_day_is_that_months_though_utc_says_15_59(db: Engine) -> None:
    last_minute = bj(2026, 11, 30, 23, 59)  # 15:59 UTC on the 30th
    first_of_dec = bj(2026, 12, 1, 0, 30)  # 16:30 UTC on 30 November: UTC would call it November's
    first_of_nov = bj(2026, 11, 1, 0, 0)  # 16:00 UTC on 31 October
    last_of_oct = bj(2026, 10, 31, 23, 59, 59)  # 15:59:59 UTC on 31 October
    store_calls(db, [call(last_minute), call(first_of_dec, "abandoned", 30), call(first_of_nov),
                     call(last_of_oct, "abandoned", 30)])
    nov = calls.period_stats(db, NOV)
    assert (nov.total.totals.offered, nov.total.totals.answered) == (2, 2)
    assert nov.by_day[last_minute.date()].totals.offered == 1
    assert nov.by_day[first_of_nov.date()].totals.offered == 1
    assert nov.by_hour[23].totals.offered == 1 and nov.by_hour[0].totals.offered == 1
    dec = calls.period_stats(db, parse("2026-12"))
    assert (dec.total.totals.offered, dec.total.totals.abandoned) == (1, 1)
    assert dec.by_day[first_of_dec.date()].totals.offered == 1 and dec.by_hour[0].totals.offered == 1
    oct_ = calls.period_stats(db, parse("2026-10"))
    assert (oct_.total.totals.offered, oct_.total.totals.abandoned) == (1, 1)


def test_the_worst_24_hours_slide_by_one_hour_skip_empty_windows_and_keep_the_earliest_tie() -> None:
    start = bj(2026, 11, 1)
    # 30 hours: nothing eligible in hours 0-4, then 10 eligible an hour, all answered but in
    # hour 20 (4 of 10) and hour 27 (4 of 10).
    hours = [(0, 0)] * 5 + [(10, 10)] * 25
    hours[20], hours[27] = (4, 10), (4, 10)
    worst, considered = worst_window(start, hours)
    # Windows start at 0..6 (7 of them); none is empty (each holds hours 5-23 at least).
    # Window 0: hours 0-23 = 19 eligible hours, 184/190; windows 4..6 hold both bad hours:
    # window 4: hours 4-27 = 23 eligible hours, 218/230 (94.78%); 5 and 6 the same 24 hours: 228/240 (95%).
    assert considered == 7
    assert worst == Window(start + timedelta(hours=4), 218, 230)
    empty_first, n = worst_window(start, [(0, 0)] * 24 + [(1, 2)])
    assert (empty_first, n) == (Window(start + timedelta(hours=1), 1, 2), 1)  # window 0 had no eligible call
    assert worst_window(start, [(5, 5)] * 23) == (None, 0)  # under 24 hours: no window
    equal, _ = worst_window(start, [(9, 10)] * 26)
    assert equal is not None and equal.start == start  # three equal windows: the earliest


def test_the_worst_24_hours_of_a_stored_range(db: Engine) -> None:
    two_days = parse("2026-11-03..2026-11-04")
    rows = [call(bj(2026, 11, 3, h, 15)) for h in range(24)] + [call(bj(2026, 11, 4, h, 15)) for h in range(24)]
    rows += [call(bj(2026, 11, 4, 2, 30), "abandoned", 60), call(bj(2026, 11, 4, 2, 40), "abandoned", 2)]
    store_calls(db, rows)
    stats = calls.period_stats(db, two_days)
    fig = stats.figures()["calls.worst_24h_answer_rate"]
    # 25 windows (hours 0..24 of 48); those holding 02:00-03:00 on the 4th (starts 3..24) have
    # 24 answered of 25 eligible (the 2 s hang-up is short); the earliest starts at 03:00 on the 3rd.
    assert stats.windows == 25
    assert (fig.numerator, fig.denominator) == (24, 25)
    assert stats.worst_24h is not None and stats.worst_24h.start == bj(2026, 11, 3, 3)
    assert "2026-11-03 03:00 至 2026-11-04 03:00" in fig.note


def test_an_overflowed_call_counts_in_the_queue_it_was_offered_in(db: Engine) -> None:
    at = bj(2026, 11, 10, 9)
    store_calls(db, [
        call(at, "answered", 8, queue="main", offered_queue="tax"),  # offered in tax, answered by main's agents
        call(at, "abandoned", 30, queue="main", offered_queue="tax"),
        call(at, "answered", 8, queue="main", offered_queue="main"),
        call(at, "answered", 8, queue="main", offered_queue=""),  # a record from before offered queues: main
    ])
    stats = calls.period_stats(db, NOV)
    assert {q: (a.totals.offered, a.totals.answered) for q, a in stats.by_queue.items()} == {
        "main": (2, 2), "tax": (2, 1)}
    tax = calls.period_stats(db, NOV, queues=("tax",))
    assert (tax.total.totals.offered, tax.total.totals.answered) == (2, 1)
    assert "仅统计受理队列 tax" in tax.figures()["calls.offered"].note
    main = calls.period_stats(db, NOV, queues=("main",))
    assert main.total.totals.offered == 2  # the legacy record with an empty offered queue included


def test_the_survey_response_rate_and_satisfaction_with_configurable_satisfied_levels(db: Engine) -> None:
    at = bj(2026, 11, 10, 9)
    store_calls(db, [call(at, surveyed=True, rating=r) for r in (1, 3, 5, 2)]
                + [call(at, surveyed=True, rating=None), call(at, surveyed=False)])
    figs = calls.period_stats(db, NOV).figures()
    resp, sat = figs["calls.survey_response_rate"], figs["calls.satisfaction_rate"]
    assert (resp.numerator, resp.denominator) == (4, 5)  # the one who pressed nothing is in the denominator
    assert (sat.numerator, sat.denominator) == (2, 4)  # 1 and 2 of four ratings
    assert "非常满意+满意" in sat.note and "未评价 1 通不计入分母" in sat.note
    basic = calls.period_stats(db, NOV, satisfied=(1, 2, 3)).figures()["calls.satisfaction_rate"]
    assert (basic.numerator, basic.denominator) == (3, 4)


def test_totals_by_queue_counts_a_plain_window_half_open(db: Engine) -> None:
    store_calls(db, [call(bj(2026, 11, 10, 9), queue="tax"), call(bj(2026, 11, 10, 10), "abandoned", 2),
                     call(bj(2026, 11, 10, 11))])
    got = calls.totals_by_queue(db, bj(2026, 11, 10, 9), bj(2026, 11, 10, 11))  # 11:00 itself is outside
    assert got == {"tax": kpi.Totals(1, 1, 1, 0, 0, 0), "main": kpi.Totals(1, 0, 0, 1, 1, 0)}
    with pytest.raises(ValueError, match="aware"):
        calls.totals_by_queue(db, bj(2026, 11, 10, 9).replace(tzinfo=None), bj(2026, 11, 10, 11))
