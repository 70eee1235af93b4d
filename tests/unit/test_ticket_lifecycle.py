"""The 工单 lifecycle table: every listed transition goes where the table says, everything
else is refused naming the allowed actions, guards hold, and every state is reachable and
can end in 归档."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickets.lifecycle import (
    FINAL,
    TABLE,
    Action,
    Clock,
    Facts,
    Limits,
    Refused,
    State,
    allowed,
    reachable,
    step,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LIMITS = Limits(max_returns=3, max_extensions=1)
FREE = Facts(state=State.NEW, has_department=True)  # guards pass


@pytest.mark.parametrize(("source", "action"), sorted(TABLE, key=str))
def test_every_listed_transition_goes_where_the_table_says(source: State, action: Action) -> None:
    result = step(Facts(state=source, has_department=True), action, NOW, LIMITS)
    assert (result.source, result.target, result.clock) == (source, *TABLE[(source, action)])


ILLEGAL = [(s, a) for s in State for a in Action if (s, a) not in TABLE]


@pytest.mark.parametrize(("source", "action"), ILLEGAL, ids=str)
def test_every_other_pair_is_refused_with_the_allowed_actions_named(source: State, action: Action) -> None:
    with pytest.raises(Refused) as refused:
        step(Facts(state=source, has_department=True), action, NOW, LIMITS)
    assert refused.value.allowed == tuple(a for (s, a) in TABLE if s is source)
    for a in refused.value.allowed:
        assert a.value in str(refused.value)


def test_the_happy_path_of_a_dispatched_ticket() -> None:
    path = [Action.OPEN_DRAFT, Action.REGISTER, Action.DISPATCH, Action.RETURN, Action.DISPATCH, Action.ACCEPT,
            Action.REQUEST_EXTENSION, Action.APPROVE_EXTENSION, Action.REPLY, Action.APPROVE_REPLY,
            Action.FOLLOW_UP, Action.CLOSE, Action.ARCHIVE]
    facts = Facts(state=State.NEW)
    for action in path:
        s = step(facts, action, NOW, LIMITS)
        facts = Facts(state=s.target, returns=s.returns, extensions=s.extensions,
                      has_department=facts.has_department or action is Action.DISPATCH)
    assert (facts.state, facts.returns, facts.extensions) == (State.ARCHIVED, 1, 1)


def test_after_the_last_allowed_return_only_designation_is_left() -> None:
    facts = Facts(state=State.RETURNED, returns=3)
    with pytest.raises(Refused, match="designates") as refused:
        step(facts, Action.DISPATCH, NOW, LIMITS)
    assert Action.DESIGNATE in refused.value.allowed and Action.DISPATCH not in refused.value.allowed
    assert step(Facts(state=State.RETURNED, returns=2), Action.DISPATCH, NOW, LIMITS).target is State.DISPATCHED


def test_a_designated_department_cannot_return_the_ticket() -> None:
    with pytest.raises(Refused):
        step(Facts(state=State.DESIGNATED, has_department=True), Action.RETURN, NOW, LIMITS)


def test_extensions_are_limited_by_the_rule() -> None:
    with pytest.raises(Refused, match="1 of 1 extensions"):
        step(Facts(state=State.IN_PROGRESS, extensions=1), Action.REQUEST_EXTENSION, NOW, LIMITS)
    none_allowed = Limits(max_returns=3, max_extensions=0)
    with pytest.raises(Refused):
        step(Facts(state=State.IN_PROGRESS), Action.REQUEST_EXTENSION, NOW, none_allowed)
    s = step(Facts(state=State.EXTENSION_REQUESTED), Action.APPROVE_EXTENSION, NOW, LIMITS)
    assert (s.extensions, s.clock) == (1, Clock.EXTEND_HANDLE)
    refused = step(Facts(state=State.EXTENSION_REQUESTED), Action.REFUSE_EXTENSION, NOW, LIMITS)
    assert (refused.extensions, refused.clock, refused.target) == (0, Clock.KEEP, State.IN_PROGRESS)


def test_a_direct_answer_that_did_not_satisfy_goes_to_dispatch_not_to_a_redo() -> None:
    with pytest.raises(Refused, match="submit it for dispatch"):
        step(Facts(state=State.FOLLOWED_UP, has_department=False), Action.REOPEN, NOW, LIMITS)
    assert step(Facts(state=State.FOLLOWED_UP), Action.SUBMIT, NOW, LIMITS).target is State.PENDING_DISPATCH
    redo = step(Facts(state=State.FOLLOWED_UP, has_department=True), Action.REOPEN, NOW, LIMITS)
    assert (redo.target, redo.redo, redo.clock) == (State.IN_PROGRESS, True, Clock.START_HANDLE)


def test_accepting_or_replying_after_the_deadline_is_marked_late() -> None:
    due = NOW - timedelta(seconds=1)
    assert step(Facts(state=State.DISPATCHED, accept_due=due), Action.ACCEPT, NOW, LIMITS).late
    assert not step(Facts(state=State.DISPATCHED, accept_due=NOW), Action.ACCEPT, NOW, LIMITS).late
    assert step(Facts(state=State.IN_PROGRESS, handle_due=due), Action.REPLY, NOW, LIMITS).late
    assert not step(Facts(state=State.IN_PROGRESS, handle_due=NOW + timedelta(hours=1)), Action.REPLY, NOW,
                    LIMITS).late


def test_duplicates_and_invalid_calls_close_at_registration() -> None:
    for source in (State.DRAFT, State.REGISTERED):
        assert step(Facts(state=source), Action.MARK_DUPLICATE, NOW, LIMITS).target is State.DUPLICATE
        assert step(Facts(state=source), Action.MARK_INVALID, NOW, LIMITS).target is State.INVALID
    with pytest.raises(Refused):
        step(Facts(state=State.DISPATCHED), Action.MARK_DUPLICATE, NOW, LIMITS)


def test_every_state_is_reachable_and_every_state_can_reach_the_archive() -> None:
    assert reachable() == frozenset(State)
    for state in State:
        assert State.ARCHIVED in reachable(state) or state in FINAL, state
    assert allowed(Facts(state=State.ARCHIVED), LIMITS) == ()


@given(st.lists(st.sampled_from(list(Action)), max_size=60), st.integers(0, 4), st.integers(0, 3))
def test_any_sequence_of_actions_moves_only_along_the_table(actions: list[Action], max_returns: int,
                                                           max_ext: int) -> None:
    limits = Limits(max_returns=max_returns, max_extensions=max_ext)
    facts = Facts(state=State.NEW)
    for action in actions:
        legal = allowed(facts, limits)
        try:
            s = step(facts, action, NOW, limits)
        except Refused as refused:
            assert action not in legal and refused.allowed == legal
            continue
        assert action in legal and TABLE[(facts.state, action)][0] is s.target
        assert s.returns <= max_returns + 1 and s.extensions <= max_ext
        facts = Facts(state=s.target, returns=s.returns, extensions=s.extensions,
                      has_department=facts.has_department or action in (Action.DISPATCH, Action.DESIGNATE))
    assert facts.state in reachable()
