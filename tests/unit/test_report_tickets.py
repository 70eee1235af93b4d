"""The ticket figures of a period report over tickets driven through the real TicketService
(report_helpers.ticket_world, tickets A-I), on SQLite and PostgreSQL; every count worked out
by hand from the story of each ticket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from reports import ticket_stats
from reports.figures import Figure
from reports.periods import parse
from tests.unit.report_helpers import FORM, World, store, ticket_world, utc
from tickets.lifecycle import Action, State
from tickets.models import TicketRow

NOV = parse("2026-11")
AFTER = datetime(2026, 12, 10, 2, tzinfo=UTC)  # the report is made after November ended


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with store(request.param, tmp_path_factory.mktemp("tickets")) as engine:
        ticket_world(engine)
        yield engine


def parts(f: Figure) -> tuple[float | None, float | None]:
    return f.numerator, f.denominator


def test_registered_and_the_direct_answer_rate(db: Engine) -> None:
    figs = ticket_stats.period_stats(db, NOV, AFTER).figures()
    # Registered in November: A-G and I (H was registered in October); D was marked 无效.
    assert figs["tickets.registered"].value == 8
    assert "无效或重复 1 件" in figs["tickets.registered"].note
    # Answered directly and never dispatched: A (G was answered directly, then dispatched).
    assert parts(figs["tickets.direct_answer_rate"]) == (1, 7)


def test_timely_acceptance_counts_the_last_dispatch_of_each_ticket_and_leaves_out_a_returned_one(db: Engine) -> None:
    fig = ticket_stats.period_stats(db, NOV, AFTER).figures()["tickets.timely_accept_rate"]
    # Accept deadlines in November: B, C (accepted late), E (its second dispatch, never accepted),
    # F, G, I. E's first dispatch ended in a return: not in the cohort, but counted in the note.
    assert parts(fig) == (4, 6)
    assert "本期退单 1 次" in fig.note


def test_on_time_completion_counts_extensions_and_the_deadline_after_a_redo(db: Engine) -> None:
    fig = ticket_stats.period_stats(db, NOV, AFTER).figures()["tickets.on_time_rate"]
    # Handling deadlines in November: B (11-13, replied 11-11), C (11-18 after its 重办, replied
    # 11-16), F (11-14 with its extension, no reply), G (11-14, replied 11-12). I's is in December.
    assert parts(fig) == (3, 4)


def test_completion_is_the_cohort_dispatched_in_the_period(db: Engine) -> None:
    fig = ticket_stats.period_stats(db, NOV, AFTER).figures()["tickets.completion_rate"]
    # Last dispatched in November: B, C, E (11-20), F, G, I; closed: B and C. (H was dispatched in October.)
    assert parts(fig) == (2, 6)


def test_overdue_at_the_end_of_a_past_period_and_now_in_a_running_one(db: Engine) -> None:
    ended = ticket_stats.period_stats(db, NOV, AFTER).figures()["tickets.overdue"]
    assert ended.value == 2  # E not accepted, F not answered; G's reply stands, I is due in December
    running = ticket_stats.period_stats(db, NOV, utc(2026, 11, 25, 2))
    assert running.figures()["tickets.overdue"].value == 2  # due_at < now: E (11-20) and F (11-14)
    assert "统计期尚未结束" in running.figures()["tickets.overdue"].note
    # While November runs, a deadline still ahead is not judged: I's accept deadline (11-29) is out.
    assert parts(running.figures()["tickets.timely_accept_rate"]) == (3, 5)


def test_follow_up_satisfaction_and_redo_are_the_cohort_closed_in_the_period(db: Engine) -> None:
    figs = ticket_stats.period_stats(db, NOV, AFTER).figures()
    # Closed in November: A (direct, no follow-up needed), B (满意), C (基本满意, after one 重办), H (非常满意).
    assert parts(figs["tickets.followup_rate"]) == (3, 3)
    assert parts(figs["tickets.satisfaction_rate"]) == (2, 3)
    assert "非常满意+满意" in figs["tickets.satisfaction_rate"].note
    assert parts(figs["tickets.redo_rate"]) == (1, 4)
    basic = ticket_stats.period_stats(db, NOV, AFTER, satisfied=("非常满意", "满意", "基本满意")).figures()
    assert parts(basic["tickets.satisfaction_rate"]) == (3, 3)


def test_by_department_category_and_district(db: Engine) -> None:
    s = ticket_stats.period_stats(db, NOV, AFTER)
    assert set(s.by_department) == {"市住建局", "市水务局", ticket_stats.NO_DEPARTMENT}
    housing, water = s.by_department["市住建局"], s.by_department["市水务局"]
    assert (housing.accept_due, housing.accepted_in_time) == (4, 3)  # B, C late, G, I
    assert (water.accept_due, water.accepted_in_time, water.overdue) == (2, 1, 2)  # E, F
    assert (housing.closed, housing.reopened) == (3, 1)  # B, C, H
    assert s.by_category["咨询"].direct == 1 and s.by_category["咨询"].registered == 2  # A, G
    assert s.by_category["无效"].registered_not_valid == 1
    assert s.by_district["渭城区"].registered == 2  # C, F
    assert sum(a.registered for a in s.by_district.values()) == s.total.registered


def test_a_special_analysis_filters_by_department_category_or_district(db: Engine) -> None:
    water = ticket_stats.period_stats(db, NOV, AFTER, departments=("water",))
    assert (water.total.accept_due, water.total.overdue) == (2, 2)
    assert "专项分析：承办单位 water" in water.figures()["tickets.registered"].note
    help_ = ticket_stats.period_stats(db, NOV, AFTER, categories=("求助",))
    assert help_.total.registered == 2 and help_.returns == 1  # E and F; E's return
    district = ticket_stats.period_stats(db, NOV, AFTER, districts=("渭城区",))
    assert district.total.registered == 2 and district.returns == 0


def test_october_sees_its_own_tickets_only(db: Engine) -> None:
    figs = ticket_stats.period_stats(db, parse("2026-10"), AFTER).figures()
    assert figs["tickets.registered"].value == 1  # H
    assert parts(figs["tickets.on_time_rate"]) == (1, 1)
    assert parts(figs["tickets.completion_rate"]) == (1, 1)  # dispatched in October, closed (in November)
    assert parts(figs["tickets.redo_rate"]) == (0, 0) and figs["tickets.redo_rate"].value is None


def test_a_period_that_has_not_begun_has_nothing_overdue_and_no_deadline_judged(db: Engine) -> None:
    now = utc(2026, 11, 25, 2)  # E and F are overdue now, in November
    december = ticket_stats.period_stats(db, parse("2026-12"), now)
    figs = december.figures()
    assert figs["tickets.overdue"].value == 0 and december.total.overdue == 0
    assert "统计期尚未开始" in figs["tickets.overdue"].note
    assert parts(figs["tickets.timely_accept_rate"]) == (0, 0) and parts(figs["tickets.on_time_rate"]) == (0, 0)
    assert "统计期尚未开始" in figs["tickets.on_time_rate"].note
    assert all(a.overdue == 0 for a in december.by_department.values())
    assert ticket_stats.period_stats(db, parse("2027-01"), now).total.overdue == 0


# ---- the edges: deadlines met to the microsecond, returns that stay returned or move on ----------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives it back naive


def _deadline(db: Engine, number: str, column: Any) -> datetime:
    with db.connect() as conn:
        return _aware(conn.execute(select(column).where(TicketRow.number == number)).scalar_one())


def edge_tickets(db: Engine, w: World) -> dict[str, str]:
    """J, K and L beside A-I (urgent 投诉: accept within 30 min, handle within 72 h).

    J  housing: accepted exactly at its accept deadline, replied exactly at its handling deadline
    K  water returned it, dispatched again to housing 11-07, accepted in time, never replied (overdue)
    L  water returned it 11-08 and nobody dispatched it again: it ends in the returned state
    """
    numbers: dict[str, str] = {}

    def new(name: str, at: datetime) -> str:
        numbers[name] = w.svc.create(w.boss, dict(FORM), at)["number"]
        return numbers[name]

    j = new("J", utc(2026, 11, 5, 2))
    w.svc.act(w.boss, j, Action.DISPATCH, {"department": "housing"}, utc(2026, 11, 5, 2))
    w.svc.act(w.housing, j, Action.ACCEPT, {}, _deadline(db, j, TicketRow.accept_due))
    w.svc.act(w.housing, j, Action.REPLY, {"reply": "已处理"}, _deadline(db, j, TicketRow.handle_due))
    w.svc.act(w.boss, j, Action.APPROVE_REPLY, {}, utc(2026, 11, 9, 2))

    k = new("K", utc(2026, 11, 6, 2))
    w.svc.act(w.boss, k, Action.DISPATCH, {"department": "water"}, utc(2026, 11, 6, 2))
    w.svc.act(w.water, k, Action.RETURN, {"note": "不属本单位职责"}, utc(2026, 11, 6, 2, 10))
    w.svc.act(w.boss, k, Action.DISPATCH, {"department": "housing"}, utc(2026, 11, 7, 2))
    w.svc.act(w.housing, k, Action.ACCEPT, {}, utc(2026, 11, 7, 2, 5))

    m = new("L", utc(2026, 11, 8, 2))
    w.svc.act(w.boss, m, Action.DISPATCH, {"department": "water"}, utc(2026, 11, 8, 2))
    w.svc.act(w.water, m, Action.RETURN, {"note": "不属本单位职责"}, utc(2026, 11, 8, 2, 10))
    return numbers


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def edges(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with store(request.param, tmp_path_factory.mktemp("edges")) as engine:
        numbers = edge_tickets(engine, ticket_world(engine))
        with engine.connect() as conn:
            rows = {r.number: r for r in conn.execute(select(TicketRow).where(TicketRow.number.in_(numbers.values())))}
        j, k, m = (rows[numbers[name]] for name in "JKL")
        assert j.accepted_at == j.accept_due and j.replied_at == j.handle_due and not j.late  # to the microsecond
        assert _aware(j.handle_due) < NOV.end_utc and _aware(k.handle_due) < NOV.end_utc
        assert m.state == State.RETURNED.value and m.accept_due is not None  # the deadline stays on the ticket
        yield engine


def test_accepted_exactly_at_the_accept_deadline_is_in_time(edges: Engine) -> None:
    fig = ticket_stats.period_stats(edges, NOV, AFTER).figures()["tickets.timely_accept_rate"]
    # A-I's (4, 6), and J (at its deadline: in time) and K (its dispatch to housing, in time); L ended
    # in a return: its accept deadline, still on the ticket, is not in the cohort.
    assert parts(fig) == (6, 8)


def test_replied_exactly_at_the_handling_deadline_is_on_time(edges: Engine) -> None:
    fig = ticket_stats.period_stats(edges, NOV, AFTER).figures()["tickets.on_time_rate"]
    assert parts(fig) == (4, 6)  # A-I's (3, 4), J on time (at its deadline), K never replied


def test_a_ticket_left_returned_is_neither_judged_for_acceptance_nor_overdue(edges: Engine) -> None:
    s = ticket_stats.period_stats(edges, NOV, AFTER)
    assert s.total.overdue == 3  # E, F and K; not L, which no department holds
    assert s.by_department[ticket_stats.NO_DEPARTMENT].accept_due == 0  # L (its department cleared by the return)
    assert s.returns == 3  # E's, K's and L's


def test_a_department_filter_counts_the_returns_that_department_made(edges: Engine) -> None:
    housing = ticket_stats.period_stats(edges, NOV, AFTER, departments=("housing",))
    assert housing.returns == 0  # K is housing's now, but water returned it
    assert "本期退单 0 次" in housing.figures()["tickets.timely_accept_rate"].note
    water = ticket_stats.period_stats(edges, NOV, AFTER, departments=("water",))
    assert water.returns == 3  # E, K and L, wherever they are now
    assert "本期退单 3 次" in water.figures()["tickets.timely_accept_rate"].note
    assert ticket_stats.period_stats(edges, NOV, AFTER, departments=("water", "housing")).returns == 3
    assert ticket_stats.period_stats(edges, NOV, AFTER, departments=("nobody",)).returns == 0


def test_the_original_world_counts_a_departments_returns(db: Engine) -> None:
    assert ticket_stats.period_stats(db, NOV, AFTER, departments=("housing",)).returns == 0
    assert ticket_stats.period_stats(db, NOV, AFTER, departments=("water",)).returns == 1  # E's
