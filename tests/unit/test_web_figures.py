"""How the live pages write times and rates (web/figures.py), and the wallboard's picture of
queues and agents drawn from the dispatcher's state (web/wall.py's pure part)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acd.agents import Activity, Agent, Presence
from acd.calls import Call, CallState
from acd.model import QueueSettings
from acd.state import State
from metrics import kpi
from web import figures
from web.wall import agent_rows, queue_rows

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (7.9, "0:07"), (725, "12:05"), (3723, "1:02:03"),
                                               (-3, "0:00")])
def test_durations_read_as_clock_times(seconds: float, text: str) -> None:
    assert figures.duration(seconds) == text


@pytest.mark.parametrize(("rate", "text", "css"), [
    (None, "—", ""), (1.0, "100.00%", "ok"), (0.95, "95.00%", "ok"),
    (0.94995, "95.00%", "ok"),  # shown as 95.00%: judged as shown, never red at 95.00%
    (0.9499, "94.99%", "bad"), (0.5, "50.00%", "bad")])
def test_rates_are_the_kpi_percent_judged_against_the_95_line_as_printed(rate: float | None, text: str,
                                                                         css: str) -> None:
    assert figures.rate(rate) == figures.Rate(text, css)


@pytest.mark.parametrize(("left", "text", "css"), [
    (timedelta(days=2, hours=3, minutes=5), "剩余 2天3小时", ""),
    (timedelta(hours=2, minutes=5, seconds=59), "剩余 2小时05分", "warn"),
    (timedelta(minutes=7, seconds=30), "剩余 7分钟", "warn"),
    (timedelta(seconds=0), "剩余 0分钟", "warn"),
    (timedelta(seconds=-10), "超期 1分钟", "bad"),  # ten seconds late is late: red with a non-zero figure
    (timedelta(hours=-26), "超期 1天2小时", "bad"),
])
def test_countdowns_say_time_left_or_how_far_past(left: timedelta, text: str, css: str) -> None:
    assert figures.countdown(NOW + left, NOW) == figures.Countdown(text, css)


def test_countdowns_in_english_and_without_a_deadline() -> None:
    assert figures.countdown(NOW + timedelta(hours=5, minutes=1), NOW, "en") == figures.Countdown("5h 01m left", "")
    assert figures.countdown(NOW - timedelta(minutes=90), NOW, "en").text == "1h 30m overdue"
    assert figures.countdown(None, NOW) == figures.Countdown("—", "")


def test_ages_and_local_times() -> None:
    assert figures.age(12.7) == "12 秒前"
    assert figures.age(185) == "3 分钟前"
    assert figures.age(7300, "en") == "2 h ago"
    assert figures.local_time("2026-11-27T02:00:00+00:00") == "2026-11-27 10:00"  # Beijing time
    assert figures.local_time(None) == "—"


def caller(call_id: str, arrived: float, **kw: Any) -> Call:
    return Call(call_id=call_id, channel=f"PJSIP/trunk-{call_id}", queue="main", arrived=arrived, arrived_wall=0.0,
                **kw)


def state_with(calls: list[Call], agents: list[Agent]) -> State:
    st = State(queues={"main": QueueSettings(name="main"), "tax": QueueSettings(name="tax")})
    st.calls = {c.call_id: c for c in calls}
    st.agents = {a.agent_id: a for a in agents}
    return st


def test_the_queue_rows_count_waiting_callers_the_longest_wait_and_agents_by_state() -> None:
    calls = [caller("a", 100.0), caller("b", 160.0), caller("c", 50.0, state=CallState.CONNECTED),
             caller("d", 10.0, callback="r1")]  # a callback's citizen is not on hold
    agents = [Agent("1001", registered=True, queues=frozenset({"main"})),
              Agent("1002", registered=True, presence=Presence.PAUSED, queues=frozenset({"main", "tax"})),
              Agent("1003", registered=True, activity=Activity.ON_CALL, queues=frozenset({"main"})),
              Agent("1004", registered=True, configured=False, queues=frozenset({"main"}))]  # removed
    today = {"main": kpi.Totals(offered=20, answered=19, answered_within_sl=18)}
    rows = {r.name: r for r in queue_rows(state_with(calls, agents), today, None, now=230.0)}
    main = rows["main"]
    assert (main.waiting, main.longest) == (2, "2:10")
    assert {k: v for k, v in main.agents.items() if v} == {"available": 1, "paused": 1, "on_call": 1}
    assert main.today is not None and main.today.rate == figures.Rate("95.00%", "ok")
    assert main.today.sl == figures.Rate("90.00%", "bad")
    assert main.month is None  # the store has not answered for this month: no figure, not a zero
    tax = rows["tax"]
    assert (tax.waiting, tax.longest, tax.agents["paused"]) == (0, "0:00", 1)
    assert tax.today is not None and tax.today.totals == kpi.Totals()  # configured, no call yet today


def test_an_agents_time_in_state_shows_only_when_the_engine_saw_it_enter_that_state() -> None:
    agents = [Agent("1001", registered=True, presence=Presence.PAUSED, pause_reason="supervisor"),
              Agent("1002", registered=True), Agent("1003")]
    since = {"1001": ("paused", 100.0), "1002": ("on_call", 50.0)}  # 1002's entry is stale
    rows = agent_rows(state_with([], agents), since, {"1001": "张三"}, now=165.0)
    assert [(r.agent_id, r.name, r.state, r.reason, r.in_state) for r in rows] == [
        ("1001", "张三", "paused", "supervisor", "1:05"), ("1002", "", "available", "", "—"),
        ("1003", "", "logged_out", "", "—")]
