"""tickets.yaml: the shipped defaults, an admin's own file, and every mistake named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load
from config.ticket_settings import XIANYANG, TicketsFile
from tests.unit.test_config_loader import write
from tickets.deadlines import Span

CATCH_ALL = '  - {category: "*", urgency: "*", accept: 1wd, handle: 5wd, extensions: 1, extension: 5wd}\n'


def test_the_shipped_file_loads_and_writes_out_exactly_the_defaults() -> None:
    settings = load()
    assert "tickets.yaml" in settings.from_defaults
    # "Every key is optional; these are the defaults": the file and the code agree.
    assert settings.tickets == TicketsFile()


@pytest.mark.parametrize(("category", "urgency", "limits"), [
    ("投诉", "critical", ("15m", "24h", 0)),  # a risk to life or property, whatever the request type
    ("咨询", "urgent", ("30m", "72h", 1, "24h")),
    ("咨询", "normal", ("1wd", "3wd", 1, "3wd")),
    ("求助", "normal", ("1wd", "3wd", 1, "3wd")),
    ("投诉", "normal", ("1wd", "13wd", 1, "10wd")),
    ("举报", "normal", ("1wd", "13wd", 1, "10wd")),
    ("建议", "normal", ("1wd", "13wd", 1, "10wd")),
    ("表扬", "normal", ("1wd", "5wd", 1, "5wd")),  # the catch-all
    ("其他", "normal", ("1wd", "5wd", 1, "5wd")),
])
def test_the_shipped_deadlines(category: str, urgency: str, limits: tuple[str | int, ...]) -> None:
    got = load().tickets.rule_table().limits(category, urgency)
    written = (str(got.accept), str(got.handle), got.extensions) + ((str(got.extension),) if got.extensions else ())
    assert written == limits


def test_the_shipped_settings_around_the_deadlines() -> None:
    tickets = load().tickets
    assert (tickets.max_returns, tickets.soon_due, tickets.max_body_bytes) == (3, Span(4, "hours"), 65536)
    assert list(tickets.locations) == list(XIANYANG) and len(XIANYANG) == 14
    assert all(streets == [] for streets in tickets.locations.values())  # streets are the admin's to add
    auth = tickets.auth
    assert (auth.token_ttl.seconds(), auth.max_failures, auth.failure_window.seconds(), auth.lockout.seconds()) == (
        8 * 3600, 5, 15 * 60, 15 * 60)
    assert (tickets.push.url, tickets.push.timeout_seconds, tickets.push.max_backoff_seconds) == ("", 10, 300)


def test_a_config_folders_own_tickets_yaml_replaces_the_default(tmp_path: Path) -> None:
    write(tmp_path, "tickets.yaml", "deadlines:\n" + CATCH_ALL + "  - {category: 投诉, urgency: normal, accept: 2wd, "
          "handle: 15wd}\nmax_returns: 2\nlocations:\n  秦都区: [街道甲, 街道乙]\n  渭城区:\n")
    settings = load(tmp_path)
    assert "tickets.yaml" not in settings.from_defaults
    table = settings.tickets.rule_table()
    assert (str(table.limits("投诉", "normal").handle), table.limits("投诉", "normal").extensions) == ("15wd", 0)
    assert str(table.limits("咨询", "critical").accept) == "1wd"  # the shipped critical rule is gone with the file
    assert settings.tickets.max_returns == 2
    assert settings.tickets.locations == {"秦都区": ["街道甲", "街道乙"], "渭城区": []}  # `渭城区:` alone: no streets


def test_keys_left_out_of_an_own_file_take_the_defaults(tmp_path: Path) -> None:
    write(tmp_path, "tickets.yaml", "max_returns: 5\nauth: {lockout: 1h}\n")
    tickets = load(tmp_path).tickets
    assert tickets.max_returns == 5
    assert tickets.auth.lockout == Span(1, "hours") and tickets.auth.token_ttl == Span(8, "hours")
    assert tickets.deadlines == TicketsFile().deadlines


RULE = "  - {category: 投诉, urgency: normal, accept: 1wd, handle: 13wd}\n"


@pytest.mark.parametrize(("text", "line", "message"), [
    # deadlines
    ("deadlines:\n" + CATCH_ALL + "  - {category: 投诉, urgency: normal, accept: 15x, handle: 13wd}\n", 3,
     "deadlines.1.accept: Value error, '15x' is not a span; write a whole number and a unit"),
    ("deadlines:\n" + CATCH_ALL + "  - category: 投诉\n    urgency: normal\n    accept: 1wd\n    handle: 15\n", 6,
     "deadlines.1.handle: Value error, 15 has no unit; write e.g. 15m"),
    ("deadlines:\n" + CATCH_ALL + "  - {category: 投述, urgency: normal, accept: 1wd, handle: 13wd}\n", 3,
     "unknown category '投述'; use one of 咨询 求助 投诉 举报 建议 表扬 其他, or \"*\" for any"),
    ("deadlines:\n" + CATCH_ALL + "  - category: 投诉\n    urgency: high\n    accept: 1wd\n    handle: 13wd\n", 4,
     "unknown urgency 'high'; use one of normal urgent critical"),
    ("deadlines:\n" + CATCH_ALL + RULE + "\n" + RULE, 5,
     "a second rule for category 投诉, urgency normal (the first is at line 3); keep one"),
    ("max_returns: 3\ndeadlines:\n" + RULE, 3, "deadlines: no catch-all rule; add {category: \"*\""),  # the list
    ("deadlines: []\n", 1, "no catch-all rule"),
    ("deadlines:\n  - {category: \"*\", urgency: \"*\", accept: 0wd, handle: 5wd}\n", 2,
     "accept: 0wd leaves no time at all"),
    ("deadlines:\n  - {category: \"*\", urgency: \"*\", accept: 1wd, handle: 5wd, extensions: 2}\n", 2,
     "give `extension:` a length above 0, or write extensions: 0"),
    ("deadlines:\n  - {category: \"*\", urgency: \"*\", accept: 1wd, handle: 400wd}\n", 2, "too long"),
    ("deadlines:\n  - {category: *, urgency: \"*\", accept: 1wd, handle: 5wd}\n", 2,
     'a bare * starts a YAML alias: write "*" in quotes'),
    ("deadlines:\n  - {category: \"*\", urgency: \"*\", accept: 1wd, handle: 5wd, extentions: 1}\n", 2,
     "deadlines.0.extentions: Extra inputs are not permitted"),
    # the other settings
    ("max_returns: 0\n", 1, "max_returns: Input should be greater than or equal to 1"),
    ("soon_due: 4\n", 1, "soon_due: Value error, 4 has no unit"),
    ("auth:\n  token_ttl: 8h\n  lockout: 1wd\n", 3, "auth.lockout: Value error, 1wd: write a length of natural time"),
    ("auth:\n  failure_window: 0m\n", 2, "above 0"),
    ("push:\n  url: ftp://12345.example.gov.cn/in\n", 2, "is not an http(s) URL"),
    ("push:\n  timeout_seconds: 0\n", 2, "push.timeout_seconds: Input should be greater than 0"),
    ("max_body_bytes: 10\n", 1, "max_body_bytes: Input should be greater than or equal to 1024"),
    # locations
    ("locations:\n  秦都区: []\n  [渭城区, 杨陵区]: []\n", 3, "a key must be a plain name, not a list or a mapping"),
    ("locations:\n  秦都区: []\n  秦都区: [街道甲]\n", 3, "'秦都区' is written twice here (first at line 2)"),
    ("locations:\n  - 秦都区\n  - 渭城区\n", 2, "locations: Input should be a valid dictionary"),
    ("locations:\n  秦都区: []\n  渭城区: 街道甲\n", 3, "locations.渭城区: Input should be a valid list"),
    ("locations:\n  秦都区: []\n  101: []\n", 3, "'101' is not a place name"),
    ("locations:\n  秦都区:\n    - 街道甲\n    - 12\n", 4, "12 is not a place name; write the name as text"),
    ("locations:\n  秦都区:\n    - 街道甲\n    - {name: 街道乙}\n", 4, "is not a place name"),
    ("locations:\n  秦都区:\n    - 街道甲\n    - 街道乙\n    - 街道甲\n", 5,
     "locations.秦都区: 街道甲 is listed twice"),
])
def test_a_mistake_in_tickets_yaml_names_file_line_and_fix(tmp_path: Path, text: str, line: int,
                                                          message: str) -> None:
    write(tmp_path, "tickets.yaml", text)
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / "tickets.yaml"), line)
    assert message in problem.message


def test_a_mistake_in_tickets_yaml_is_reported_beside_the_other_files_mistakes(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "http:\n  port: 99999\n")
    write(tmp_path, "tickets.yaml", "max_returns: 0\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert sorted((Path(p.file).name, p.line) for p in err.value.problems) == [("engine.yaml", 2),
                                                                              ("tickets.yaml", 1)]
