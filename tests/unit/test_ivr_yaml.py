"""ivr.yaml: the shipped default, every form the file takes, and errors with file:line."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, time
from pathlib import Path

import pytest

from config.loader import ConfigError
from ivr.check import check, needed_sounds
from ivr.flow import (
    CallerIn,
    Condition,
    Context,
    Digits,
    Done,
    Finish,
    Flows,
    Lookup,
    Menu,
    Play,
    Prompt,
    RequestCallback,
    SayDate,
    SayDigits,
    SayNumber,
    SayVar,
    Sound,
    Step,
    TicketNotFound,
    TimeOfDay,
    VarEquals,
    Weekday,
    resume,
    start,
)
from ivr.flows_yaml import DEFAULT_FILE, IvrSettings, load_flows

# The prompt names agreed with the prompts module, and survey-none it ships as well.
AGREED = frozenset({
    "welcome", "intake-menu", "urgent-noted", "connecting", "invalid-key", "no-input", "goodbye", "survey-ask",
    "survey-thanks", "survey-none", "ticket-ask", "ticket-not-found", "ticket-retry-exhausted", "ticket-state-is",
    "ticket-due", "ticket-no-due", "callback-offer", "callback-own-number", "callback-enter-number",
    "callback-confirm", "callback-booked", "lang-en-chosen",
})
HEAD = "survey: {enabled: false}\n"


def load(body: str, head: str = HEAD) -> Flows:
    return load_flows(head + textwrap.dedent(body), "ivr.yaml")[0]


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_flows(textwrap.dedent(text), "/etc/hotline/ivr.yaml")
    return [str(p) for p in err.value.problems]


def one_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def shipped() -> tuple[Flows, IvrSettings]:
    return load_flows(DEFAULT_FILE.read_text(encoding="utf-8"), str(DEFAULT_FILE))


# -- the shipped default ----------------------------------------------------------------------------

def test_the_shipped_ivr_yaml_passes_check_with_the_queue_main(shipped: tuple[Flows, IvrSettings]) -> None:
    flows, _ = shipped
    assert check(flows, None, {"main"}) == []


def test_the_shipped_flows_need_only_the_agreed_prompts(shipped: tuple[Flows, IvrSettings]) -> None:
    flows, _ = shipped
    assert check(flows, {"zh": AGREED, "en": frozenset({"lang-en-chosen"})}, {"main"}) == []
    used = {name for flow in flows.flows.values() for node in flow.nodes.values() for _, name in needed_sounds(node)}
    assert used <= AGREED


def test_the_shipped_settings(shipped: tuple[Flows, IvrSettings]) -> None:
    flows, settings = shipped
    assert settings.numbers == {"12345": "intake"}
    assert (settings.survey.flow, settings.survey.enabled, flows.survey) == ("survey", True, "survey")
    assert settings.prompts.override_dir == Path("/var/lib/hotline/prompts")
    assert (settings.callback.retries, settings.callback.retry_interval,
            settings.callback.ring_timeout) == (3, 300, 30)
    assert set(flows.flows) == {"intake", "progress", "survey"}
    assert settings.announce_agent is True


def caller(wait: float = 0.0) -> Context:
    return Context("13800000000", False, datetime(2026, 11, 25, 10), estimated_wait=lambda _q: wait)


def run(flows: Flows, name: str, answers: list[object], ctx: Context) -> list[Step]:
    session, step = start(flows, name, ctx, 0.0)
    steps = [step]
    for i, answer in enumerate(answers, 1):
        steps.append(resume(flows, session, answer, ctx, float(i)))  # type: ignore[arg-type]
    return steps


def test_shipped_intake_no_key_goes_to_the_queue_at_once(shipped: tuple[Flows, IvrSettings]) -> None:
    steps = run(shipped[0], "intake", [Digits(""), Digits("")], caller())
    assert isinstance(steps[1], Prompt) and steps[1].collect is not None and steps[1].collect.first_timeout == 3
    assert steps[-1] == Finish(action="enqueue", queue="main")


def test_shipped_intake_offers_a_callback_when_the_wait_is_long(shipped: tuple[Flows, IvrSettings]) -> None:
    steps = run(shipped[0], "intake", [Digits(""), Digits(""), Digits("1"), Digits("1"), Done(True), Digits(""),
                                       Digits("")], caller(wait=300))
    assert steps[2] == Prompt((Sound("callback-offer"),), "zh", steps[2].collect)  # type: ignore[union-attr]
    assert isinstance(steps[4], RequestCallback) and steps[4].number == "13800000000"
    assert steps[-1] == Finish(action="hangup")


def test_shipped_intake_urgent_key_raises_the_priority(shipped: tuple[Flows, IvrSettings]) -> None:
    steps = run(shipped[0], "intake", [Digits(""), Digits("1"), Digits("")], caller(wait=300))
    assert steps[-1] == Finish(action="enqueue", queue="main", priority=5)


def test_shipped_intake_key_9_continues_in_english(shipped: tuple[Flows, IvrSettings]) -> None:
    steps = run(shipped[0], "intake", [Digits(""), Digits("9"), Digits("")], caller())
    assert steps[2] == Prompt((Sound("lang-en-chosen"),), "en", None)
    assert steps[-1] == Finish(action="enqueue", queue="main", language="en")


def test_shipped_progress_ends_politely_after_three_unknown_tickets(shipped: tuple[Flows, IvrSettings]) -> None:
    answers: list[object] = [Digits(""), Digits("2")]
    for _ in range(3):
        answers += [Digits("2026112599999"), TicketNotFound(), Digits("")]
    steps = run(shipped[0], "intake", answers, caller())
    assert sum(isinstance(s, Lookup) for s in steps) == 3
    assert steps[-2] == Prompt((Sound("ticket-retry-exhausted"),), "zh", None)
    assert isinstance(steps[-1], Finish) and steps[-1].action == "hangup"


# -- the forms of the file ----------------------------------------------------------------------------

def test_every_form_of_prompt_item() -> None:
    flows = load("""
        flows:
          main:
            start: p
            nodes:
              p:
                type: play
                prompts:
                  - ticket-state-is
                  - {digits: "0571"}
                  - {number: 15}
                  - {date: 2026-11-26}
                  - {var: ticket}
                  - {var: count, as: number}
                next: q
              q: {type: enqueue}
    """)
    node = flows.flows["main"].nodes["p"]
    assert isinstance(node, Play)
    assert node.prompts == (Sound("ticket-state-is"), SayDigits("0571"), SayNumber(15), SayDate(date(2026, 11, 26)),
                            SayVar("ticket"), SayVar("count", "number"))


def test_a_single_prompt_may_be_written_without_a_list() -> None:
    flows = load("flows:\n  main:\n    start: p\n    nodes:\n      p: {type: play, prompts: welcome, next: q}\n"
                 "      q: {type: enqueue}\n")
    node = flows.flows["main"].nodes["p"]
    assert isinstance(node, Play) and node.prompts == (Sound("welcome"),)


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ('time: "22:00-06:00"', TimeOfDay(time(22), time(6))),
        ('time: "18:00-24:00"', TimeOfDay(time(18), time.max)),
        ("weekday: [mon-fri, sat]", Weekday(frozenset({0, 1, 2, 3, 4, 5}))),
        ("weekday: sun", Weekday(frozenset({6}))),
        ("caller_in: vip", CallerIn("vip")),
        ("{var: kind, equals: 1}", VarEquals("kind", "1")),
    ],
)
def test_condition_tests_as_written(test: str, expected: object) -> None:
    if test.startswith("{"):
        test = test.strip("{}").replace(", ", "\n                ")
    flows = load(f"""
        lists: {{vip: ["13800000000", "0571*"]}}
        flows:
          main:
            start: c
            nodes:
              c:
                type: condition
                {test}
                then: q
                else: q
              q: {{type: enqueue}}
    """)
    node = flows.flows["main"].nodes["c"]
    assert isinstance(node, Condition) and node.test == expected
    assert flows.lists == {"vip": ("13800000000", "0571*")}


def test_keys_left_out_take_the_flow_model_s_defaults_and_lines_point_into_the_file() -> None:
    flows = load("""
        flows:
          main:
            start: m
            nodes:
              m:
                type: menu
                prompts: [intake-menu]
                options: {1: q, "#": q}
                on_fail: q
              q: {type: enqueue}
    """)
    node = flows.flows["main"].nodes["m"]
    assert node == Menu(id="m", line=7, prompts=(Sound("intake-menu"),), options=(("1", "q"), ("#", "q")),
                        on_fail="q")
    assert (node.timeout, node.tries, node.invalid, node.limit) == (5.0, 3, (Sound("invalid-key"),), 120.0)
    assert (node.at("options.#"), node.at("on_fail"), node.at("nothing")) == (10, 11, 7)
    assert flows.flows["main"].lines["start"] == 5


def test_numbers_pick_the_first_flow_of_a_dialled_number() -> None:
    _, settings = load_flows('numbers: {"12345": main, "12346": main}\nsurvey: {enabled: false}\n'
                             "flows: {main: {start: q, nodes: {q: {type: enqueue}}}}\n", "ivr.yaml")
    assert settings.numbers == {"12345": "main", "12346": "main"}


# -- errors, with file and line -------------------------------------------------------------------

F = "/etc/hotline/ivr.yaml"
MAIN = """\
survey: {enabled: false}
flows:
  main:
    start: n
    nodes:
"""


def test_an_unknown_node_type() -> None:
    assert one_error(MAIN + "      n:\n        type: playy\n        next: n\n") == (
        f"{F}:7: flows.main.nodes.n: type 'playy' is not a node type; use one of play, menu, collect, condition, "
        "set, enqueue, callback, survey, say_ticket, transfer, hangup, goto")


def test_a_node_without_a_type() -> None:
    assert one_error(MAIN + "      n:\n        next: n\n").startswith(f"{F}:6: flows.main.nodes.n: `type:` is missing")


def test_an_unknown_key_names_the_keys_a_node_takes() -> None:
    assert one_error(MAIN + "      n:\n        type: hangup\n        prompt: [goodbye]\n") == (
        f"{F}:8: flows.main.nodes.n.prompt: not a key of a hangup node (keys: limit, prompts)")


def test_a_missing_key() -> None:
    assert one_error(MAIN + "      n:\n        type: play\n        prompts: [welcome]\n") == (
        f"{F}:6: flows.main.nodes.n.next: missing: a play node needs it")


def test_a_prompt_name_that_is_not_one() -> None:
    message = one_error(MAIN + "      n:\n        type: hangup\n        prompts:\n          - goodbye\n"
                               "          - Ticket_Ask\n")
    assert message.startswith(f"{F}:10: flows.main.nodes.n.prompts.1: 'Ticket_Ask' is not a prompt name")


def test_digits_must_be_quoted() -> None:
    message = one_error(MAIN + "      n:\n        type: hangup\n        prompts: [{digits: 0571}]\n")
    assert message.startswith(f"{F}:8: flows.main.nodes.n.prompts.0: digits: write the digits in quotes")


def test_a_transfer_number_must_be_quoted() -> None:
    assert one_error(MAIN + "      n:\n        type: transfer\n        number: 057112345\n") == (
        f"{F}:8: flows.main.nodes.n.number: write it in quotes: unquoted, YAML reads digits as a number (and a "
        "leading 0 changes it)")


def test_a_key_written_twice_in_a_menu() -> None:
    message = one_error(MAIN + "      n:\n        type: menu\n        prompts: [a]\n        options:\n"
                               "          1: n\n          '1': n\n        on_fail: n\n")
    assert message.startswith(f"{F}:11: '1' is written twice here (first at line 10)")


def test_a_condition_needs_exactly_one_test() -> None:
    assert one_error(MAIN + "      n:\n        type: condition\n        open: main\n        time: '08:00-20:00'\n"
                            "        then: n\n        else: n\n") == (
        f"{F}:6: flows.main.nodes.n: a condition needs exactly one test of open, time, weekday, caller_in, var, "
        "wait_over (here: open, time)")


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ("time: '25:00-08:00'", "8: flows.main.nodes.n.time: 25:00 is not a time of day"),
        ("time: '08:00-08:00'", "8: flows.main.nodes.n.time: 08:00-08:00 starts where it ends"),
        ("time: '8-20'", "8: flows.main.nodes.n.time: '8-20' is not HH:MM-HH:MM"),
        ("weekday: [mon, funday]", "8: flows.main.nodes.n.weekday: 'funday' is not a day"),
        ("var: kind", "6: flows.main.nodes.n: the var test needs both"),
    ],
)
def test_a_condition_test_that_is_not_one(test: str, message: str) -> None:
    found = one_error(MAIN + f"      n:\n        type: condition\n        {test}\n        then: n\n        else: n\n")
    assert found.startswith(f"{F}:{message}")


def test_a_dialled_number_running_a_flow_that_does_not_exist() -> None:
    text = 'numbers:\n  "12345": intak\n' + MAIN + "      n: {type: enqueue}\n"
    assert one_error(text) == (f"{F}:2: numbers.12345: there is no flow named 'intak' (flows: main); add it or "
                               "correct the name")


def test_a_survey_flow_that_does_not_exist() -> None:
    text = "survey:\n  flow: survey\nflows:\n  main:\n    start: n\n    nodes:\n      n: {type: enqueue}\n"
    assert one_error(text).startswith(f"{F}:2: survey.flow: there is no flow named 'survey'")


def test_the_override_folder_must_be_an_absolute_path() -> None:
    text = "prompts:\n  override_dir: prompts\n" + MAIN + "      n: {type: enqueue}\n"
    assert one_error(text) == f"{F}:2: prompts.override_dir: must be an absolute path"


def test_caller_list_entries_are_quoted_numbers_or_prefixes() -> None:
    text = "lists:\n  vip:\n    - '13800000000'\n    - 0571\n    - 'abc*'\n" + MAIN + "      n: {type: enqueue}\n"
    found = errors(text)
    assert [p.split(":")[1] for p in found] == ["4", "5"]
    assert "write it in quotes" in found[0]


def test_not_valid_yaml() -> None:
    assert one_error(MAIN + "      n: {type: enqueue\n").startswith(f"{F}:7: not valid YAML")


def test_a_bare_star_key_gets_the_quoting_hint() -> None:
    message = one_error(MAIN + "      n:\n        type: menu\n        prompts: [a]\n        options: {*: n}\n"
                               "        on_fail: n\n")
    assert message.startswith(f"{F}:9: not valid YAML") and 'write "*" in quotes' in message


def test_every_problem_of_the_file_is_reported_at_once() -> None:
    text = ("survey: {enabled: false}\ncallback: {retries: 99}\nflows:\n  main:\n    start: n\n    nodes:\n"
            "      n: {type: nothing}\n      m: {type: play, next: n}\n"
            "  Bad: {start: x, nodes: {x: {type: enqueue}}}\n")
    found = errors(text)
    assert [int(p.split(":")[1]) for p in found] == [2, 7, 8, 9]
    assert "callback.retries" in found[0] and "Bad: a flow name" in found[3]


def test_an_unknown_top_level_key() -> None:
    assert one_error("survey: {enabled: false}\nflow: {}\n") == (
        f"{F}:2: flow: not a key of ivr.yaml (keys: prompts, numbers, survey, callback, announce_agent, lists, flows)")


def test_the_file_must_be_a_mapping() -> None:
    assert one_error("- intake\n").startswith(f"{F}:1: ivr.yaml is a mapping")


def test_flows_must_be_a_mapping() -> None:
    assert one_error("survey: {enabled: false}\nflows: [intake]\n").startswith(f"{F}:2: flows: a mapping")


def test_a_node_must_be_a_mapping() -> None:
    assert one_error(MAIN + "      n: enqueue\n").startswith(f"{F}:6: flows.main.nodes.n: a node is a mapping")
