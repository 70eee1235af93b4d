"""check(): every rule, each triggered by a minimal ivr.yaml (or a flow built in code where
YAML cannot say it), with the line the admin must look at."""

from __future__ import annotations

import textwrap

import pytest

from config.loader import Problem
from ivr.check import Issue, check
from ivr.flow import Enqueue, Flow, Flows, Menu, sounds
from ivr.flows_yaml import as_problems, load_flows

HEAD = "survey: {enabled: false}\nflows:\n"


def issues(body: str, queues: frozenset[str] = frozenset({"main"}),
           prompts: dict[str, frozenset[str]] | None = None, head: str = HEAD) -> tuple[list[Issue], str]:
    text = head + textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", "  ")
    flows, _ = load_flows(text, "ivr.yaml")
    return check(flows, prompts, set(queues)), text


def line_of(text: str, needle: str, nth: int = 1) -> int:
    found = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return found[nth - 1]


def only(found: list[Issue]) -> Issue:
    assert len(found) == 1, found
    return found[0]


def test_good_flows_have_no_issues() -> None:
    found, _ = issues("""
        main:
          start: hi
          nodes:
            hi: {type: play, prompts: [welcome], next: q}
            q: {type: enqueue, queue: main}
    """)
    assert found == []


def test_an_undefined_target_names_the_node_the_missing_id_and_near_matches() -> None:
    found, text = issues("""
        main:
          start: hi
          nodes:
            hi:
              type: play
              prompts: [welcome]
              next: queu
            queue: {type: enqueue}
    """)
    issue, unreached = found  # and so `queue` is never reached
    assert (issue.flow, issue.node, issue.line) == ("main", "hi", line_of(text, "next: queu"))
    assert unreached.node == "queue" and "never reached" in unreached.message
    assert "'queu'" in issue.message and "did you mean 'queue'" in issue.message


def test_a_start_that_is_not_a_node() -> None:
    found, text = issues("""
        main:
          start: welcome
          nodes:
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "start: welcome") and issue.node == ""
    assert "'welcome'" in issue.message


def test_an_unreachable_node() -> None:
    found, text = issues("""
        main:
          start: q
          nodes:
            q: {type: enqueue}
            orphan: {type: hangup}
    """)
    issue = only(found)
    assert (issue.node, issue.line) == ("orphan", line_of(text, "orphan:"))
    assert "never reached" in issue.message


def test_a_goto_to_an_unknown_flow() -> None:
    found, text = issues("""
        main:
          start: g
          nodes:
            g:
              type: goto
              flow: progres
        progress:
          start: q
          nodes:
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "flow: progres") and "did you mean 'progress'" in issue.message


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        ("c: {type: enqueue, queue: sales}", "c:"),
        ("c:\n  type: set\n  queue: sales\n  next: q", "queue: sales"),
        ("c:\n  type: condition\n  open: sales\n  then: q\n  else: q", "open: sales"),
        ("c:\n  type: condition\n  wait_over: {queue: sales, seconds: 60}\n  then: q\n  else: q", "wait_over"),
    ],
)
def test_a_queue_that_is_not_configured(node: str, needle: str) -> None:
    body = "main:\n  start: c\n  nodes:\n" + textwrap.indent(node, "    ") + "\n    q: {type: enqueue}\n"
    found, text = issues(body)
    issue = only([i for i in found if "never reached" not in i.message])
    assert issue.line == line_of(text, needle) and "'sales' is not configured" in issue.message


ZH = frozenset({"welcome", "lang-en-chosen", "goodbye"})


def test_a_missing_prompt_in_chinese() -> None:
    found, text = issues("""
        main:
          start: hi
          nodes:
            hi:
              type: play
              prompts:
                - welcome
                - welcom
              next: q
            q: {type: enqueue}
    """, prompts={"zh": ZH})
    issue = only(found)
    assert issue.line == line_of(text, "- welcom", 2) and "'welcom' has no zh recording" in issue.message


def test_english_prompts_are_needed_only_after_a_set_language_en() -> None:
    found, text = issues("""
        main:
          start: hi
          nodes:
            hi: {type: play, prompts: [welcome], next: en}
            en: {type: set, language: en, next: chosen}
            chosen: {type: play, prompts: [lang-en-chosen], next: bye}
            bye: {type: hangup, prompts: [goodbye]}
    """, prompts={"zh": ZH, "en": frozenset({"lang-en-chosen"})})
    issue = only(found)  # welcome is only ever heard in Chinese
    assert (issue.node, issue.line) == ("bye", line_of(text, "bye: {type"))
    assert "'goodbye' has no en recording" in issue.message


def test_a_language_set_before_a_goto_follows_into_the_other_flow() -> None:
    found, _ = issues("""
        main:
          start: en
          nodes:
            en: {type: set, language: en, next: g}
            g: {type: goto, flow: other}
        other:
          start: bye
          nodes:
            bye: {type: hangup, prompts: [goodbye]}
    """, prompts={"zh": ZH, "en": frozenset()})
    assert [(i.flow, i.message) for i in found] == [("other", "prompt 'goodbye' has no en recording; add goodbye for "
                                                              "en to the prompts (or the override folder) or use "
                                                              "another prompt")]


def test_prompts_are_not_checked_when_none_are_given() -> None:
    found, _ = issues("""
        main:
          start: hi
          nodes:
            hi: {type: play, prompts: [no-such-prompt], next: q}
            q: {type: enqueue}
    """, prompts=None)
    assert found == []


def test_a_node_s_built_in_prompts_are_checked_too() -> None:
    found, text = issues("""
        main:
          start: m
          nodes:
            m:
              type: menu
              prompts: [welcome]
              options: {1: q}
              on_fail: q
            q: {type: enqueue}
    """, prompts={"zh": frozenset({"welcome"})})
    issue = only(found)
    assert issue.line == line_of(text, "m:") and "'invalid-key'" in issue.message


def test_a_loop_with_no_way_out() -> None:
    found, text = issues("""
        main:
          start: m
          nodes:
            m:
              type: menu
              prompts: [welcome]
              options: {1: again}
              on_fail: m
            again: {type: play, prompts: [welcome], next: m}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "m:") and "no way out" in issue.message and "again, m" in issue.message


def test_a_loop_without_an_input_node_would_spin() -> None:
    found, text = issues("""
        main:
          start: c
          nodes:
            c:
              type: condition
              open: main
              then: q
              else: closed
            closed: {type: play, prompts: [welcome], next: c}
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "c:") and "without a menu, collect, survey or callback" in issue.message


def test_a_goto_loop_between_flows_is_found() -> None:
    found, text = issues("""
        a:
          start: g
          nodes:
            g: {type: goto, flow: b}
        b:
          start: g
          nodes:
            g: {type: goto, flow: a}
    """)
    messages = [i.message for i in found]
    assert any("no way out" in m and "b.g" in m for m in messages)
    assert any("would go round" in m for m in messages)
    assert {i.line for i in found} == {line_of(text, "g: {type: goto, flow: b}")}


def test_a_menu_key_that_is_not_a_phone_key() -> None:
    found, text = issues("""
        main:
          start: m
          nodes:
            m:
              type: menu
              prompts: [welcome]
              options:
                1: q
                a: q
              on_fail: q
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "a: q") and "'a' is not a phone key" in issue.message


def test_min_digits_above_max_digits() -> None:
    found, text = issues("""
        main:
          start: c
          nodes:
            c:
              type: collect
              prompts: [welcome]
              var: ticket
              min_digits: 14
              max_digits: 13
              next: q
              on_fail: q
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "min_digits: 14") and "more than max_digits" in issue.message


def test_a_collect_terminator_that_is_not_hash_or_star() -> None:
    found, text = issues("""
        main:
          start: c
          nodes:
            c:
              type: collect
              prompts: [welcome]
              var: ticket
              terminator: 5
              next: q
              on_fail: q
            q: {type: enqueue}
    """)
    assert only(found).line == line_of(text, "terminator: 5")


def test_a_duplicated_menu_key_in_a_flow_built_in_code() -> None:
    # YAML itself refuses a key written twice (parse_yaml, with its line): see test_ivr_yaml.
    node = Menu(id="m", line=7, lines={"options.1": 9}, prompts=sounds("welcome"), options=(("1", "q"), ("1", "q")),
                on_fail="q")
    found = check(Flows.of(Flow.of("main", [node, Enqueue(id="q")])), None, {"main"})
    assert [(i.line, i.message) for i in found] == [(9, "key '1' is given twice; keep one")]


def test_a_callback_whose_accept_and_other_keys_are_the_same() -> None:
    found, text = issues("""
        main:
          start: cb
          nodes:
            cb:
              type: callback
              accept: 1
              other: 1
              next: q
              declined: q
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "other: 1") and "given twice" in issue.message


def test_a_survey_scale_other_than_three_or_five() -> None:
    found, text = issues("""
        survey:
          start: ask
          nodes:
            ask:
              type: survey
              scale: 4
              next: bye
            bye: {type: hangup}
    """, head="flows:\n")
    issue = only(found)
    assert issue.line == line_of(text, "scale: 4") and "use 3 or 5" in issue.message


def test_a_survey_outside_the_survey_flow_and_a_callback_inside_it() -> None:
    found, text = issues("""
        main:
          start: ask
          nodes:
            ask: {type: survey, next: q}
            q: {type: enqueue}
        survey:
          start: cb
          nodes:
            cb: {type: callback, next: bye, declined: bye}
            bye: {type: hangup}
    """, head="flows:\n")
    assert [(i.flow, i.line) for i in found] == [("main", line_of(text, "ask: {type: survey")),
                                                 ("survey", line_of(text, "cb: {type: callback"))]
    assert "only works in the survey flow" in found[0].message
    assert "after the call" in found[1].message


def test_a_caller_list_that_is_not_defined() -> None:
    found, text = issues("""
        main:
          start: c
          nodes:
            c:
              type: condition
              caller_in: vips
              then: q
              else: q
            q: {type: enqueue}
    """, head="lists: {vip: ['13800000000']}\n" + HEAD)
    issue = only(found)
    assert issue.line == line_of(text, "caller_in: vips") and "did you mean 'vip'" in issue.message


def test_say_ticket_reading_a_variable_nothing_stores() -> None:
    found, text = issues("""
        main:
          start: ask
          nodes:
            ask:
              type: collect
              prompts: [welcome]
              var: number
              next: say
              on_fail: q
            say:
              type: say_ticket
              var: ticket
              ask: ask
              next: q
              on_fail: q
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "var: ticket") and "`var: ticket`" in issue.message


def test_issues_come_in_line_order_and_read_as_problems_of_the_file() -> None:
    found, text = issues("""
        main:
          start: a
          nodes:
            a: {type: play, prompts: [welcome], next: b}
            b: {type: enqueue, queue: sales}
            c: {type: hangup}
    """)
    assert [i.line for i in found] == sorted(i.line for i in found) and len(found) == 2
    assert str(found[0]) == f"line {line_of(text, 'b:')}: flow main, node b: " + found[0].message
    problems = as_problems(found, "/etc/hotline/ivr.yaml")
    assert problems[0] == Problem("/etc/hotline/ivr.yaml", line_of(text, "b:"), "flows.main.nodes.b: "
                                  + found[0].message)
    assert str(problems[1]).startswith(f"/etc/hotline/ivr.yaml:{line_of(text, 'c:')}: flows.main.nodes.c: never")


def test_a_menu_whose_timeout_comes_back_to_itself_holds_a_silent_caller_for_ever() -> None:
    found, text = issues("""
        main:
          start: m
          nodes:
            m:
              type: menu
              prompts: [welcome]
              options: {1: q}
              on_timeout: m
              on_fail: q
            q: {type: enqueue}
    """)
    issue = only(found)
    assert issue.line == line_of(text, "m:") and "presses nothing" in issue.message


def test_a_menu_that_retries_on_timeout_and_then_ends_is_fine() -> None:
    found, _ = issues("""
        main:
          start: m
          nodes:
            m:
              type: menu
              prompts: [welcome]
              options: {1: q, 2: m}
              on_fail: q
            q: {type: enqueue}
    """)
    assert found == []
