"""The IVR flow interpreter: every node type and branch, driven step by step without I/O."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path

import pytest

import ivr.flow
from ivr.flow import (
    MAX_STEPS,
    Callback,
    CallerIn,
    Collect,
    Condition,
    Context,
    Digits,
    Done,
    Enqueue,
    Finish,
    Flow,
    Flows,
    Goto,
    Hangup,
    IsOpen,
    Keys,
    Lookup,
    Menu,
    Play,
    Prompt,
    Rate,
    RequestCallback,
    Result,
    SayDate,
    SayDigits,
    SayNumber,
    SayTicket,
    SayVar,
    Session,
    Set,
    Sound,
    Step,
    Survey,
    TicketFound,
    TicketNotFound,
    TimeOfDay,
    Transfer,
    VarEquals,
    WaitOver,
    Weekday,
    deadline,
    hangup,
    resume,
    sounds,
    start,
    state_sound,
)

NOW = 1_000_000.0
WEDNESDAY_10AM = datetime(2026, 11, 25, 10, 0)


def context(caller: str = "13800000000", restricted: bool = False, at: datetime = WEDNESDAY_10AM,
            wait: float = 0.0, open_: bool = True, lists: dict[str, tuple[str, ...]] | None = None) -> Context:
    return Context(caller=caller, restricted=restricted, now_local=at, is_open=lambda _q: open_,
                   estimated_wait=lambda _q: wait, lists=lists or {})


def drive(flows: Flows, answers: Sequence[Result], ctx: Context | None = None, name: str = "main",
          gap: float = 1.0) -> tuple[Session, list[Step]]:
    """Start the flow and answer each step in turn, `gap` seconds apart."""
    c = ctx or context()
    session, step = start(flows, name, c, NOW)
    steps: list[Step] = [step]
    now = NOW
    for answer in answers:
        now += gap
        steps.append(resume(flows, session, answer, c, now))
    return session, steps


def one(*nodes: object, lists: dict[str, tuple[str, ...]] | None = None) -> Flows:
    return Flows.of(Flow.of("main", nodes), lists=lists)  # type: ignore[arg-type]


QUEUE = Enqueue(id="q")
BYE = Hangup(id="bye")
NO_KEY = Digits("")


def prompt_names(step: Step) -> list[str]:
    assert isinstance(step, Prompt), step
    return [i.name for i in step.items if isinstance(i, Sound)]


def rates(steps: list[Step]) -> list[Rate]:
    return [s for s in steps if isinstance(s, Rate)]


# -- play, set, enqueue, transfer, hangup, goto -----------------------------------------------

def test_play_plays_its_prompts_without_reading_keys_then_goes_on() -> None:
    flows = one(Play(id="hi", prompts=sounds("welcome"), next="q"), QUEUE)
    _, steps = drive(flows, [NO_KEY])
    assert steps == [Prompt((Sound("welcome"),), "zh", None), Finish(action="enqueue")]


def test_a_prompt_says_variables_as_digits_or_as_a_number_and_skips_unset_ones() -> None:
    flows = one(Set(id="s", vars=(("ticket", "2026112500001"), ("count", "12")), next="p"),
                Play(id="p", prompts=(Sound("ticket-ask"), SayVar("ticket"), SayVar("count", "number"),
                                      SayVar("nothing"), SayDigits("12345"), SayNumber(5), SayDate(date(2026, 11, 26))),
                     next="q"), QUEUE)
    _, steps = drive(flows, [])
    assert steps[0] == Prompt((Sound("ticket-ask"), SayDigits("2026112500001"), SayNumber(12), SayDigits("12345"),
                               SayNumber(5), SayDate(date(2026, 11, 26))), "zh", None)


def test_set_and_enqueue_hand_the_queue_priority_skills_and_keyed_vars_to_the_engine() -> None:
    flows = one(Set(id="s", priority=5, skills=(("enterprise", 60),), queue="sales", vars=(("kind", "b"),), next="q"),
                Enqueue(id="q", skills=(("mandarin", 50),)))
    _, steps = drive(flows, [])
    assert steps == [Finish(action="enqueue", queue="sales", priority=5,
                            skills=(("enterprise", 60), ("mandarin", 50)), vars=(("kind", "b"),))]


def test_the_enqueue_node_s_own_queue_and_priority_win_over_the_session_s() -> None:
    flows = one(Set(id="s", priority=5, queue="sales", next="q"), Enqueue(id="q", queue="main", priority=2))
    _, steps = drive(flows, [])
    assert steps == [Finish(action="enqueue", queue="main", priority=2)]


def test_with_nothing_set_the_queue_and_priority_are_left_to_the_dialled_number() -> None:
    _, steps = drive(one(QUEUE), [])
    assert steps == [Finish(action="enqueue", queue=None, priority=None)]


def test_set_language_en_switches_the_language_of_later_prompts_and_of_the_queue() -> None:
    flows = one(Play(id="a", prompts=sounds("welcome"), next="s"), Set(id="s", language="en", next="b"),
                Play(id="b", prompts=sounds("lang-en-chosen"), next="q"), QUEUE)
    _, steps = drive(flows, [NO_KEY, NO_KEY])
    assert [s.language for s in steps if isinstance(s, Prompt)] == ["zh", "en"]
    assert steps[-1] == Finish(action="enqueue", language="en")


def test_transfer_ends_the_flow_with_the_outside_number() -> None:
    _, steps = drive(one(Transfer(id="t", number="057188880000")), [])
    assert steps == [Finish(action="transfer", number="057188880000")]


def test_hangup_plays_its_prompts_first() -> None:
    _, steps = drive(one(Hangup(id="bye", prompts=sounds("goodbye"))), [NO_KEY])
    assert prompt_names(steps[0]) == ["goodbye"]
    assert steps[1] == Finish(action="hangup")


def test_hangup_without_prompts_ends_at_once() -> None:
    _, steps = drive(one(BYE), [])
    assert steps == [Finish(action="hangup")]


def test_goto_continues_at_the_start_of_another_flow() -> None:
    flows = Flows.of(Flow.of("main", [Set(id="s", priority=3, next="g"), Goto(id="g", flow="other")]),
                     Flow.of("other", [Play(id="p", prompts=sounds("connecting"), next="q"), QUEUE]))
    session, steps = drive(flows, [NO_KEY])
    assert prompt_names(steps[0]) == ["connecting"]
    assert steps[1] == Finish(action="enqueue", priority=3)
    assert session.flow == "other"


# -- menu -----------------------------------------------------------------------------------------

def menu(**kw: object) -> Flows:
    node = Menu(id="m", prompts=sounds("intake-menu"), options=(("1", "one"), ("2", "two")), on_fail="failed",
                no_input=sounds("no-input"), **kw)  # type: ignore[arg-type]
    return one(node, Transfer(id="one", number="111"), Transfer(id="two", number="222"),
               Transfer(id="failed", number="999"), Transfer(id="silence", number="000"))


def test_menu_waits_for_one_key_and_follows_the_option() -> None:
    _, steps = drive(menu(), [Digits("2")])
    assert steps[0] == Prompt((Sound("intake-menu"),), "zh", Keys(1, "", 5.0, 5.0))
    assert steps[1] == Finish(action="transfer", number="222")


def test_menu_after_a_wrong_key_plays_invalid_and_the_prompt_again() -> None:
    _, steps = drive(menu(), [Digits("7"), Digits("1")])
    assert prompt_names(steps[1]) == ["invalid-key", "intake-menu"]
    assert steps[2] == Finish(action="transfer", number="111")


def test_menu_after_no_key_plays_no_input_and_the_prompt_again() -> None:
    _, steps = drive(menu(), [NO_KEY, Digits("1")])
    assert prompt_names(steps[1]) == ["no-input", "intake-menu"]
    assert steps[2] == Finish(action="transfer", number="111")


def test_menu_with_on_timeout_goes_there_at_once_on_no_key() -> None:
    _, steps = drive(menu(on_timeout="silence", timeout=3.0), [NO_KEY])
    assert steps[0] == Prompt((Sound("intake-menu"),), "zh", Keys(1, "", 3.0, 3.0))
    assert steps[1] == Finish(action="transfer", number="000")


def test_menu_with_on_timeout_still_retries_a_wrong_key() -> None:
    _, steps = drive(menu(on_timeout="silence"), [Digits("5"), Digits("2")])
    assert prompt_names(steps[1]) == ["invalid-key", "intake-menu"]
    assert steps[2] == Finish(action="transfer", number="222")


@pytest.mark.parametrize("answer", [Digits("9"), NO_KEY])
def test_menu_goes_to_on_fail_when_its_tries_run_out(answer: Digits) -> None:
    _, steps = drive(menu(tries=3), [answer] * 3)
    assert sum(isinstance(s, Prompt) for s in steps) == 3  # the prompt is played 3 times in all
    assert steps[-1] == Finish(action="transfer", number="999")


def test_menu_whose_limit_passed_follows_on_fail_even_on_a_right_key() -> None:
    _, steps = drive(menu(limit=10.0), [Digits("1")], gap=11.0)
    assert steps[-1] == Finish(action="transfer", number="999")


def test_a_key_of_several_digits_is_not_a_menu_option() -> None:
    _, steps = drive(menu(), [Digits("12")])
    assert prompt_names(steps[1]) == ["invalid-key", "intake-menu"]


# -- collect --------------------------------------------------------------------------------------

def collect(**kw: object) -> Flows:
    node = Collect(id="c", prompts=sounds("ticket-ask"), var="ticket", min_digits=13, max_digits=13, next="say",
                   on_fail="failed", no_input=sounds("no-input"), **kw)  # type: ignore[arg-type]
    return one(node, Play(id="say", prompts=(SayVar("ticket"),), next="q"), QUEUE, Transfer(id="failed", number="999"))


def test_collect_reads_the_digits_into_its_variable_without_the_terminator() -> None:
    session, steps = drive(collect(), [Digits("2026112500001#"), NO_KEY])
    assert steps[0] == Prompt((Sound("ticket-ask"),), "zh", Keys(13, "#", 5.0, 8.0))
    assert steps[1] == Prompt((SayDigits("2026112500001"),), "zh", None)
    assert session.vars == {"ticket": "2026112500001"}
    assert steps[2] == Finish(action="enqueue", vars=(("ticket", "2026112500001"),))


@pytest.mark.parametrize("wrong", ["123#", "20261125000012", "20261125*0001", "#"])
def test_collect_asks_again_after_a_wrong_entry(wrong: str) -> None:
    session, steps = drive(collect(), [Digits(wrong), Digits("2026112500001")])
    assert prompt_names(steps[1]) == ["invalid-key", "ticket-ask"]
    assert session.vars["ticket"] == "2026112500001"


def test_collect_after_no_entry_plays_no_input_and_asks_again() -> None:
    _, steps = drive(collect(), [NO_KEY])
    assert prompt_names(steps[1]) == ["no-input", "ticket-ask"]


def test_collect_goes_to_on_fail_when_its_tries_run_out() -> None:
    _, steps = drive(collect(tries=2), [Digits("1"), NO_KEY])
    assert steps[-1] == Finish(action="transfer", number="999")


def test_collect_whose_limit_passed_follows_on_fail() -> None:
    _, steps = drive(collect(limit=30.0), [Digits("2026112500001")], gap=31.0)
    assert steps[-1] == Finish(action="transfer", number="999")


# -- condition ------------------------------------------------------------------------------------

def branch(test: object, ctx: Context, *before: object, lists: dict[str, tuple[str, ...]] | None = None) -> str:
    flows = one(*before, Condition(id="c", test=test, then="yes", else_="no"),  # type: ignore[arg-type]
                Transfer(id="yes", number="111"), Transfer(id="no", number="000"), lists=lists)
    _, steps = drive(flows, [], ctx)
    assert isinstance(steps[-1], Finish)
    return {"111": "then", "000": "else"}[steps[-1].number]


def test_open_asks_the_adapter_about_the_named_queue() -> None:
    asked: list[str] = []

    def is_open(queue: str) -> bool:
        asked.append(queue)
        return queue == "main"

    ctx = Context("138", False, WEDNESDAY_10AM, is_open=is_open)
    assert branch(IsOpen("main"), ctx) == "then"
    assert branch(IsOpen("night"), ctx) == "else"
    assert asked == ["main", "night"]


@pytest.mark.parametrize(
    ("start_", "end", "now", "expected"),
    [
        (time(8), time(20), time(8), "then"),
        (time(8), time(20), time(19, 59), "then"),
        (time(8), time(20), time(20), "else"),  # the end minute is outside
        (time(8), time(20), time(7, 59), "else"),
        (time(22), time(6), time(23, 30), "then"),  # wraps past midnight
        (time(22), time(6), time(5, 59), "then"),
        (time(22), time(6), time(6), "else"),
        (time(22), time(6), time(12), "else"),
        (time(18), time.max, time(23, 59), "then"),  # 18:00-24:00
        (time(18), time.max, time(17), "else"),
    ],
)
def test_time_compares_the_local_time_of_day(start_: time, end: time, now: time, expected: str) -> None:
    at = datetime.combine(date(2026, 11, 25), now)
    assert branch(TimeOfDay(start_, end), context(at=at)) == expected


def test_weekday_compares_the_local_day() -> None:
    assert branch(Weekday(frozenset({0, 1, 2, 3, 4})), context(at=datetime(2026, 11, 25, 10))) == "then"  # Wed
    assert branch(Weekday(frozenset({0, 1, 2, 3, 4})), context(at=datetime(2026, 11, 28, 10))) == "else"  # Sat


@pytest.mark.parametrize(
    ("caller", "restricted", "expected"),
    [
        ("13800000000", False, "then"),  # the exact number
        ("057188881234", False, "then"),  # the prefix 0571888*
        ("13900000000", False, "else"),
        ("13800000000", True, "else"),  # a withheld number is on no list
        ("", False, "else"),
    ],
)
def test_caller_in_matches_numbers_and_prefixes(caller: str, restricted: bool, expected: str) -> None:
    lists: dict[str, tuple[str, ...]] = {"vip": ("13800000000", "0571888*")}
    assert branch(CallerIn("vip"), context(caller, restricted), lists=lists) == expected


def test_caller_in_takes_the_adapter_s_list_before_the_flows_own() -> None:
    ctx = context("13900000000", lists={"vip": ("139*",)})
    assert branch(CallerIn("vip"), ctx, lists={"vip": ("13800000000",)}) == "then"


def test_caller_in_an_unknown_list_sends_the_caller_to_the_queue_with_an_error() -> None:
    _, steps = drive(one(Condition(id="c", test=CallerIn("nobody"), then="q", else_="q"), QUEUE), [])
    assert isinstance(steps[0], Finish) and steps[0].action == "enqueue"
    assert steps[0].error is not None and "nobody" in steps[0].error


def test_var_compares_a_session_variable() -> None:
    assert branch(VarEquals("kind", "b"), context(), Set(id="s", vars=(("kind", "b"),), next="c")) == "then"
    assert branch(VarEquals("kind", "b"), context(), Set(id="s", vars=(("kind", "a"),), next="c")) == "else"
    assert branch(VarEquals("unset", ""), context()) == "else"


def test_wait_over_compares_the_estimated_wait_of_the_queue() -> None:
    assert branch(WaitOver("main", 120), context(wait=121)) == "then"
    assert branch(WaitOver("main", 120), context(wait=120)) == "else"


# -- callback -------------------------------------------------------------------------------------

def callback_flows(**kw: object) -> Flows:
    return one(Set(id="s", priority=4, skills=(("mandarin", 50),), queue="main", next="cb"),
               Callback(id="cb", next="booked", declined="q", **kw),  # type: ignore[arg-type]
               Hangup(id="booked", prompts=sounds("callback-booked")), QUEUE)


def test_callback_on_the_calling_number() -> None:
    _, steps = drive(callback_flows(), [Digits("1"), Digits("1"), Done(True), NO_KEY, NO_KEY])
    assert prompt_names(steps[0]) == ["callback-offer"]
    assert prompt_names(steps[1]) == ["callback-own-number"]  # 1: this number, 2: another
    assert steps[2] == RequestCallback("13800000000", "main", 4, (("mandarin", 50),), "zh")
    assert steps[3] == Prompt((Sound("callback-confirm"), SayDigits("13800000000")), "zh", None)
    assert prompt_names(steps[4]) == ["callback-booked"]
    assert steps[5] == Finish(action="hangup", queue="main", priority=4, skills=(("mandarin", 50),))


def test_callback_on_a_keyed_number() -> None:
    _, steps = drive(callback_flows(), [Digits("1"), Digits("2"), Digits("057188880000#"), Done(True)])
    assert steps[2] == Prompt((Sound("callback-enter-number"),), "zh", Keys(20, "#", 5.0, 10.0))
    assert isinstance(steps[3], RequestCallback) and steps[3].number == "057188880000"
    assert steps[4] == Prompt((Sound("callback-confirm"), SayDigits("057188880000")), "zh", None)


@pytest.mark.parametrize(("caller", "restricted"), [("13800000000", True), ("", False), ("anonymous", False)])
def test_callback_for_a_withheld_or_absent_number_asks_for_one_at_once(caller: str, restricted: bool) -> None:
    _, steps = drive(callback_flows(), [Digits("1"), Digits("13912345678")], context(caller, restricted))
    assert prompt_names(steps[1]) == ["callback-enter-number"]
    assert isinstance(steps[2], RequestCallback) and steps[2].number == "13912345678"


@pytest.mark.parametrize("answer", [Digits("2"), Digits("#"), NO_KEY])
def test_callback_declined_by_another_key_or_none_keeps_the_caller_in_line(answer: Digits) -> None:
    _, steps = drive(callback_flows(), [answer])
    assert steps[-1] == Finish(action="enqueue", queue="main", priority=4, skills=(("mandarin", 50),))


def test_callback_asks_again_after_a_bad_number_and_gives_up_after_its_tries() -> None:
    _, steps = drive(callback_flows(tries=3), [Digits("1"), Digits("2"), Digits("123#"), NO_KEY, Digits("12")])
    assert prompt_names(steps[3]) == ["invalid-key", "callback-enter-number"]
    assert prompt_names(steps[4]) == ["no-input", "callback-enter-number"]
    assert isinstance(steps[-1], Finish) and steps[-1].action == "enqueue"
    assert not [s for s in steps if isinstance(s, RequestCallback)]


def test_callback_asks_again_after_a_wrong_key_at_the_own_number_question() -> None:
    _, steps = drive(callback_flows(), [Digits("1"), Digits("7"), Digits("1")])
    assert prompt_names(steps[2]) == ["invalid-key", "callback-own-number"]
    assert isinstance(steps[3], RequestCallback)


def test_callback_not_booked_keeps_the_caller_in_line() -> None:
    _, steps = drive(callback_flows(), [Digits("1"), Digits("1"), Done(False)])
    assert steps[-1] == Finish(action="enqueue", queue="main", priority=4, skills=(("mandarin", 50),))


def test_callback_booked_even_when_the_booking_came_back_late() -> None:
    _, steps = drive(callback_flows(limit=5.0), [Digits("1"), Digits("1"), Done(True)], gap=2.0)
    assert prompt_names(steps[3]) == ["callback-confirm"]  # the effect is what happened, whatever the time


def test_callback_whose_limit_passed_counts_as_declined() -> None:
    _, steps = drive(callback_flows(limit=5.0), [Digits("1"), Digits("1")], gap=3.0)
    assert isinstance(steps[-1], Finish) and steps[-1].action == "enqueue"


# -- survey ---------------------------------------------------------------------------------------

def survey_flows(**kw: object) -> Flows:
    return one(Survey(id="ask", next="bye", **kw), BYE)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5"])
def test_survey_records_the_key_pressed_once_then_thanks(key: str) -> None:
    _, steps = drive(survey_flows(), [Digits(key), Done(True), NO_KEY])
    assert steps[0] == Prompt((Sound("survey-ask"),), "zh", Keys(1, "", 5.0, 5.0))
    assert rates(steps) == [Rate(int(key), 5)]
    assert prompt_names(steps[2]) == ["survey-thanks"]
    assert steps[3] == Finish(action="hangup")


def test_survey_with_no_key_after_its_tries_records_no_rating_once() -> None:
    _, steps = drive(survey_flows(tries=2), [NO_KEY, NO_KEY, Done(True), NO_KEY])
    assert rates(steps) == [Rate(None, 5)]
    assert prompt_names(steps[3]) == ["survey-none"]
    assert steps[-1] == Finish(action="hangup")


def test_survey_asks_again_after_a_key_off_the_scale() -> None:
    _, steps = drive(survey_flows(scale=3), [Digits("4"), Digits("3"), Done(True)])
    assert prompt_names(steps[1]) == ["invalid-key", "survey-ask"]
    assert rates(steps) == [Rate(3, 3)]


def test_survey_whose_limit_passed_records_no_rating() -> None:
    _, steps = drive(survey_flows(limit=10.0), [Digits("1"), Done(True), NO_KEY], gap=11.0)
    assert rates(steps) == [Rate(None, 5)]


def test_a_hang_up_during_the_survey_records_no_rating_exactly_once() -> None:
    flows = survey_flows()
    session, _ = drive(flows, [Digits("9")])
    assert hangup(flows, session, NOW + 5) == (Rate(None, 5),)
    assert hangup(flows, session, NOW + 6) == ()
    assert resume(flows, session, NO_KEY, context(), NOW + 7) == Finish(action="hangup")


def test_a_hang_up_after_the_rating_was_handed_over_records_nothing_more() -> None:
    flows = survey_flows()
    session, steps = drive(flows, [Digits("4")])
    assert rates(steps) == [Rate(4, 5)]
    assert hangup(flows, session, NOW + 5) == ()


def test_a_hang_up_outside_a_survey_records_nothing() -> None:
    flows = menu()
    session, _ = drive(flows, [])
    assert hangup(flows, session, NOW + 1) == ()


def test_survey_scale_three_takes_keys_one_to_three() -> None:
    _, steps = drive(survey_flows(scale=3), [Digits("2"), Done(True)])
    assert rates(steps) == [Rate(2, 3)]


# -- say_ticket -----------------------------------------------------------------------------------

def ticket_flows() -> Flows:
    return one(Collect(id="ask", prompts=sounds("ticket-ask"), var="ticket", min_digits=13, max_digits=13,
                       next="say", on_fail="exhausted"),
               SayTicket(id="say", ask="ask", next="bye", on_fail="exhausted"),
               Hangup(id="exhausted", prompts=sounds("ticket-retry-exhausted")), BYE)


TICKET = Digits("2026112500001")


def test_say_ticket_reads_the_state_and_the_due_date() -> None:
    _, steps = drive(ticket_flows(), [TICKET, TicketFound("in_progress", date(2026, 12, 1)), NO_KEY])
    assert steps[1] == Lookup("2026112500001")
    assert steps[2] == Prompt((Sound("ticket-state-is"), Sound("state-in-progress"), Sound("ticket-due"),
                               SayDate(date(2026, 12, 1))), "zh", None)
    assert steps[3] == Finish(action="hangup", vars=(("ticket", "2026112500001"),))


def test_say_ticket_without_a_due_date_says_so() -> None:
    _, steps = drive(ticket_flows(), [TICKET, TicketFound("closed", None)])
    assert prompt_names(steps[2]) == ["ticket-state-is", "state-closed", "ticket-no-due"]


def test_say_ticket_not_found_asks_again_and_the_third_miss_ends_politely() -> None:
    answers: list[Result] = []
    for _ in range(2):
        answers += [TICKET, TicketNotFound(), NO_KEY]
    answers += [TICKET, TicketNotFound(), NO_KEY]
    _, steps = drive(ticket_flows(), answers)
    assert sum(isinstance(s, Lookup) for s in steps) == 3
    names = [prompt_names(s) for s in steps if isinstance(s, Prompt)]
    assert names == [["ticket-ask"], ["ticket-not-found"], ["ticket-ask"], ["ticket-not-found"], ["ticket-ask"],
                     ["ticket-retry-exhausted"]]
    assert steps[-1] == Finish(action="hangup", vars=(("ticket", "2026112500001"),))


def test_a_found_ticket_resets_the_misses() -> None:
    _, steps = drive(ticket_flows(), [TICKET, TicketNotFound(), NO_KEY, TICKET, TicketFound("closed", None)])
    assert prompt_names(steps[-1]) == ["ticket-state-is", "state-closed", "ticket-no-due"]


def test_a_failed_look_up_sends_the_caller_to_an_agent() -> None:
    _, steps = drive(ticket_flows(), [TICKET, Done(False)])
    assert isinstance(steps[-1], Finish) and steps[-1].action == "enqueue" and steps[-1].error


def test_a_look_up_slower_than_the_limit_sends_the_caller_to_an_agent() -> None:
    flows = ticket_flows()
    session, _ = drive(flows, [TICKET])
    step = resume(flows, session, TicketFound("closed", None), context(), NOW + 1 + 61)
    assert isinstance(step, Finish) and step.action == "enqueue" and step.error and "took longer" in step.error


def test_state_sounds_follow_the_prompt_naming() -> None:
    assert state_sound("extension_requested") == Sound("state-extension-requested")
    assert state_sound("") is None


# -- guards: nothing leaves a caller in silence ---------------------------------------------------

def test_a_loop_without_input_ends_in_the_queue_at_the_step_guard() -> None:
    flows = one(Condition(id="a", test=VarEquals("x", "y"), then="b", else_="b"), Set(id="b", next="a"))
    _, steps = drive(flows, [])
    assert isinstance(steps[0], Finish) and steps[0].action == "enqueue"
    assert steps[0].error is not None and steps[0].error.startswith("loop")


def test_a_caller_pressing_keys_forever_reaches_the_step_guard() -> None:
    flows = one(Menu(id="m", prompts=sounds("intake-menu"), options=(("1", "m"),), on_fail="q"), QUEUE)
    session, steps = drive(flows, [Digits("1")] * MAX_STEPS)
    assert isinstance(steps[-1], Finish) and steps[-1].error and steps[-1].error.startswith("loop")
    assert session.steps == MAX_STEPS + 1


def test_an_unknown_flow_sends_the_caller_to_the_queue() -> None:
    _, step = start(one(QUEUE), "nope", context(), NOW)
    assert isinstance(step, Finish) and step.action == "enqueue" and step.error and "nope" in step.error


def test_a_missing_node_sends_the_caller_to_the_queue() -> None:
    _, steps = drive(one(Play(id="p", prompts=sounds("welcome"), next="gone")), [NO_KEY])
    assert isinstance(steps[-1], Finish) and steps[-1].action == "enqueue" and "gone" in (steps[-1].error or "")


def test_a_goto_to_an_unknown_flow_sends_the_caller_to_the_queue() -> None:
    _, steps = drive(one(Goto(id="g", flow="gone")), [])
    assert isinstance(steps[0], Finish) and steps[0].action == "enqueue" and "gone" in (steps[0].error or "")


@pytest.mark.parametrize("wrong", [TicketNotFound(), Done(True)])
def test_a_result_of_the_wrong_kind_sends_the_caller_to_the_queue(wrong: Result) -> None:
    _, steps = drive(menu(), [wrong])
    assert isinstance(steps[-1], Finish) and steps[-1].action == "enqueue" and steps[-1].error


def test_resuming_a_finished_session_repeats_its_finish() -> None:
    flows = menu()
    session, steps = drive(flows, [Digits("1")])
    assert resume(flows, session, Digits("2"), context(), NOW + 10) == steps[-1]


def test_an_error_finish_keeps_what_the_flow_set() -> None:
    _, steps = drive(one(Set(id="s", language="en", priority=2, next="gone")), [])
    assert steps[0] == Finish(action="enqueue", priority=2, language="en", error="flow main: no node 'gone'")


def test_the_fallback_is_the_queue() -> None:
    assert Flows.fallback() == Finish(action="enqueue")
    assert Flows.fallback("no ivr.yaml").error == "no ivr.yaml"


def test_deadline_is_when_the_current_node_gives_up() -> None:
    flows = menu(limit=30.0)
    session, _ = drive(flows, [])
    assert deadline(flows, session) == NOW + 30.0
    drive_done, _ = drive(flows, [Digits("1")])
    assert deadline(flows, drive_done) is None


# -- purity ---------------------------------------------------------------------------------------

def test_the_flow_model_imports_no_io_and_reads_no_clock() -> None:
    tree = ast.parse(Path(ivr.flow.__file__).read_text(encoding="utf-8"))
    allowed = {"__future__", "dataclasses", "enum", "collections", "typing", "datetime"}
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= allowed
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in {"now", "utcnow", "today"}]
