"""What the core counts and records for the KPIs (review B9), and that a record already
produced is never lost when a handler fails half-way (review B12)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from acd import DecideError, lifecycle
from acd.calendar import Hours
from acd.commands import CallAnswered, CallOffered, CallRecord, SendOut, TagCaller
from acd.events import CallerHungUp
from acd.model import LeaveReason, Outcome, Overflow, OverflowTo, QueueSettings, WhenClosed
from metrics import kpi
from tests.unit.test_edge_cases import NEVER_OPEN
from tests.unit.world import World, chan, of_type, sendouts

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=timezone(timedelta(hours=8))).timestamp()  # a Wednesday
NIGHTS = Hours(weekly=(((time(0, 0), time(6, 0)),),) * 7)  # open 00:00-06:00 only: closed at noon


def test_an_overflowed_call_is_offered_once_and_answered_and_recorded_in_the_offered_queue() -> None:
    """B9: the old core counted the call offered in tax and answered in sales, with the
    first queue's service level for every queue. Fails on a copy of acd/lifecycle.py that
    offers the call again in every queue it enters."""
    tax = QueueSettings(name="tax", service_level=20, short_abandon=3,
                        overflow=Overflow(after=60, to=OverflowTo.QUEUE, target="sales"))
    sales = QueueSettings(name="sales", service_level=30, short_abandon=8)
    w = World((tax, sales), {"1001": ({"sales"}, {})})
    w.join("c1", "tax", at=1000)
    w.run_until(1060)
    assert w.call("c1").queue == "sales"
    w.register("1001", at=1070)
    answered = of_type(w.answer("c1", at=1072), CallAnswered)
    assert answered == [CallAnswered("c1", "tax", "1001", 72.0, 20.0, "sales")]
    w.hangup("c1", at=1100)
    assert of_type(w.out, CallOffered) == [CallOffered("c1", "tax")]
    (rec,) = w.records()
    assert (rec.queue, rec.offered_queue, rec.path) == ("sales", "tax", ("tax", "sales"))
    assert (rec.service_level, rec.short_abandon, rec.outcome) == (20.0, 3.0, Outcome.ANSWERED)


def test_a_caller_to_a_closed_queue_is_never_offered() -> None:
    """B9: the old core counted closed-hours callers as offered (and so unanswered).
    Fails on a copy of acd/lifecycle.py that offers the call whatever the admission."""
    w = World((QueueSettings(name="tax", hours=NIGHTS),), {}, wall_offset=NOON - 1000)
    out = w.join("c1", "tax", at=1000)
    assert sendouts(out) == [SendOut("c1", chan("c1"), LeaveReason.CLOSED)]
    assert of_type(out, CallOffered) == []
    w.hangup("c1", at=1008)
    assert [r.outcome for r in w.records()] == [Outcome.CLOSED]


def test_a_caller_overflowed_from_a_closed_queue_is_offered_in_the_first_open_one() -> None:
    """B9: offered once, in the first open queue the caller entered, with its thresholds."""
    tax = QueueSettings(name="tax", hours=NIGHTS, when_closed=WhenClosed.OVERFLOW, service_level=20,
                        overflow=Overflow(after=600, to=OverflowTo.QUEUE, target="sales"))
    sales = QueueSettings(name="sales", service_level=30, short_abandon=8)
    w = World((tax, sales), {}, wall_offset=NOON - 1000)
    out = w.join("c1", "tax", at=1000)
    assert of_type(out, CallOffered) == [CallOffered("c1", "sales")]
    w.hangup("c1", at=1004)
    (rec,) = w.records()
    assert (rec.offered_queue, rec.path, rec.service_level, rec.short_abandon) == ("sales", ("tax", "sales"), 30, 8)
    assert (rec.outcome, rec.wait_seconds) == (Outcome.ABANDONED, 4.0)  # a short abandon, by the KPI module


def test_a_handler_failing_half_way_still_hands_back_the_record_it_produced(monkeypatch: pytest.MonkeyPatch) -> None:
    """B12: the agent's wrap-up fails after the call's record was produced. The old core
    deleted the call before writing its record and lost every command of the event; here
    the record is in DecideError.commands for the shell to store. Fails on a copy of
    acd/lifecycle.py whose finish appends the record last."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000, caller_num="13800000000")
    w.answer("c1", at=1002)

    def wrap_up_lookup_fails(*_: object, **__: object) -> bool:
        raise RuntimeError("wrap-up lookup failed")

    monkeypatch.setattr(lifecycle, "agent_step", wrap_up_lookup_fails)
    with pytest.raises(DecideError) as failed:
        w.feed(CallerHungUp("c1", chan("c1")), at=1030)
    assert isinstance(failed.value.__cause__, RuntimeError)
    (rec,) = of_type(failed.value.commands, CallRecord)
    assert (rec.call_id, rec.outcome, rec.agent_id, rec.talk_seconds) == ("c1", Outcome.ANSWERED, "1001", 28.0)


def test_a_closed_hours_caller_forwarded_by_the_night_rule_is_not_offered_live_nor_in_the_record() -> None:
    """The usual night set-up: outside opening hours, `when_closed: overflow` forwards the
    caller to a duty number. The caller never entered an open queue: no CallOffered (the
    live counter says 0 offered), but the record says outcome `forwarded`, which
    kpi.is_offered() counts as offered and unanswered. Every night-time call then lowers
    the queue's answer rate in the reports while the live counters ignore it: the two
    must agree, and the reference says a caller who met closed hours was not offered."""
    night_forward = Overflow(after=600, to=OverflowTo.NUMBER, target="12345678")
    tax = QueueSettings(name="tax", hours=NEVER_OPEN, when_closed=WhenClosed.OVERFLOW, overflow=night_forward)
    w = World((tax,), {})
    out = w.join("c1", "tax", at=1000)
    assert of_type(out, CallOffered) == []  # the live counter: not offered
    # ...and the channel says so, for a restarted engine and Asterisk's account.
    assert [t.offered for t in of_type(out, TagCaller)] == ["-"]
    w.hangup("c1", at=1030)
    (rec,) = w.records()
    assert not kpi.by_queue([rec])["tax"].offered, f"record outcome {rec.outcome.value}: counted as offered"
