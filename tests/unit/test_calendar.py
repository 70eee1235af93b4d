"""Opening hours, China's public holidays and the working weekends (调休) that replace them."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from acd import State, decide
from acd.calendar import ALWAYS, Calendar, Hours, is_open
from acd.commands import CallOffered, CallRecord, SendOut
from acd.events import CallerHungUp, CallerJoined
from acd.model import LeaveReason, Outcome, QueueSettings
from config.loader import ConfigError, load

CST = timezone(timedelta(hours=8))


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CST).timestamp()


@pytest.fixture
def office(tmp_path: Path) -> tuple[object, object]:
    (tmp_path / "queues.yaml").write_text(
        "queues:\n  - name: main\n    number: '12345'\n"
        "    hours: {mon-fri: '08:30-12:00, 13:30-17:30', sat: '09:00-12:00'}\n", encoding="utf-8")
    (tmp_path / "agents.yaml").write_text("agents: []\n", encoding="utf-8")
    settings = load(tmp_path)  # the embedded calendar.yaml: 2026 holidays and 调休 days
    return settings.calendar.to_core(), settings.queues[0].core_hours()


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ("2026-11-25 08:29", False),  # Wednesday, before opening
        ("2026-11-25 08:30", True),
        ("2026-11-25 12:30", False),  # lunch
        ("2026-11-25 17:29", True),
        ("2026-11-25 17:30", False),  # the closing minute is closed
        ("2026-11-28 10:00", True),  # Saturday morning
        ("2026-11-29 10:00", False),  # Sunday
        ("2026-10-01 10:00", False),  # 国庆节, a Thursday
        ("2026-02-16 10:00", False),  # 春节, a Monday
        ("2026-02-14 10:00", True),  # Saturday worked for 春节: Monday's hours
        ("2026-02-14 15:00", True),  # ...including the afternoon a normal Saturday lacks
        ("2026-09-20 15:00", True),  # Sunday worked for 国庆节
        ("2026-01-04 08:00", False),  # worked Sunday, before opening
    ],
)
def test_opening_hours_follow_holidays_and_working_weekends(office: tuple[object, object], moment: str,
                                                            open_: bool) -> None:
    calendar, hours = office
    assert is_open(calendar, hours, at(moment)) is open_  # type: ignore[arg-type]


def test_a_7x24_queue_is_always_open(office: tuple[object, object]) -> None:
    calendar, _ = office
    assert is_open(calendar, ALWAYS, at("2026-02-17 03:00"))  # type: ignore[arg-type]


def test_a_caller_to_a_closed_queue_hears_the_closed_message(office: tuple[object, object]) -> None:
    calendar, hours = office
    state = State(queues={"main": QueueSettings(hours=hours)}, calendar=calendar, routing=True)  # type: ignore[arg-type]
    now = at("2026-10-02 10:00")
    _, out = decide(state, CallerJoined("c1", "chan-c1", "main"), now)
    assert [c for c in out if isinstance(c, SendOut)] == [SendOut("c1", "chan-c1", LeaveReason.CLOSED)]
    assert not [c for c in out if isinstance(c, CallOffered)]  # never entered the agent queue: not offered
    _, out = decide(state, CallerHungUp("c1", "chan-c1"), now + 8)
    assert [c.outcome for c in out if isinstance(c, CallRecord)] == [Outcome.CLOSED]


def test_a_bad_calendar_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: main\n", encoding="utf-8")
    (tmp_path / "agents.yaml").write_text("agents: []\n", encoding="utf-8")
    (tmp_path / "calendar.yaml").write_text("holidays:\n  - 2026-01-01\n  - 2026-13-01\nworkdays: []\n",
                                            encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.file.endswith("calendar.yaml") and "2026-13-01" in problem.message


def test_bad_hours_are_refused(tmp_path: Path) -> None:
    (tmp_path / "agents.yaml").write_text("agents: []\n", encoding="utf-8")
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: main\n    hours: {mon: '18:00-08:00'}\n",
                                          encoding="utf-8")
    with pytest.raises(ConfigError, match=r"queues\.yaml:3"):
        load(tmp_path)


def test_a_working_weekend_day_keeps_mondays_hours_even_where_tuesday_differs() -> None:
    saturday = datetime(2026, 2, 14, tzinfo=CST).date()
    calendar = Calendar(workdays=frozenset({saturday}))
    hours = Hours(weekly=(((time(9), time(12)),), ((time(13), time(17)),), (), (), (), (), ()))
    assert (is_open(calendar, hours, at("2026-02-14 10:00")), is_open(calendar, hours, at("2026-02-14 14:00"))) == (
        True, False)
