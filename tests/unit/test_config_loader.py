"""Configuration errors name the file, the line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.model import OverflowTo, WhenClosed, WhenEmpty
from config.loader import ConfigError, load


def write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text, encoding="utf-8")
    return tmp


def test_the_embedded_defaults_load() -> None:
    settings = load()
    assert settings.queue.name == "main"
    assert len(settings.agents) == 5


def test_a_missing_file_takes_the_default(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", 'agents:\n  - id: "2001"\n    password: secret-2001\n')
    settings = load(tmp_path)
    assert [a.id for a in settings.agents] == ["2001"]
    assert settings.engine.ami.port == 5038


def test_a_wrong_value_names_file_line_and_field(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", "queues:\n  - name: main\n    ring_timeout: -3\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.file.endswith("queues.yaml")
    assert problem.line == 3
    assert "queues.0.ring_timeout" in problem.message
    assert "greater than 0" in problem.message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "ami:\n  host: 127.0.0.1\n  port: [5038\nhttp:\n  port: 1\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.file.endswith("engine.yaml")
    assert problem.line in (4, 5)
    assert "not valid YAML" in problem.message


def test_an_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "ami:\n  hots: 127.0.0.1\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert err.value.problems[0].line == 2
    assert "ami.hots" in err.value.problems[0].message


def test_every_error_of_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", 'agents:\n  - id: "1001; Dial"\n    password: short\n')
    write(tmp_path, "engine.yaml", "http:\n  port: 99999\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    where = sorted((Path(p.file).name, p.line) for p in err.value.problems)
    assert where == [("agents.yaml", 2), ("agents.yaml", 3), ("engine.yaml", 2)]


def test_duplicate_agent_ids_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", (
        'agents:\n  - {id: "1001", password: pw-aaaaaaa}\n  - {id: "1001", password: pw-bbbbbbb}\n'
    ))
    with pytest.raises(ConfigError, match="appears twice"):
        load(tmp_path)


def test_widening_and_overflow_are_read_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", (
        "queues:\n"
        "  - name: main\n    number: '12345'\n"
        "  - name: tax\n    number: '12366'\n    skills: {tax: 60}\n"
        "    widen:\n      - {after: 60, add_queues: [main]}\n      - {after: 20, min_level: 30}\n"
        "    overflow: {after: 120, to: queue, queue: main}\n    max_length: 5\n"
    ))
    tax = load(tmp_path).queues[1].to_core()
    assert [(w.after, w.min_level, w.add_queues) for w in tax.widen] == [(20, 30, ()), (60, None, ("main",))]
    assert (tax.overflow.after, tax.overflow.to, tax.overflow.target) == (120, "queue", "main")  # type: ignore[union-attr]


@pytest.mark.xfail(reason="config.settings.QueueConfig.to_core passes when_empty, when_closed and overflow.to as "
                          "plain strings; the core compares its enums by identity, so `when_empty: overflow` "
                          "and `when_closed: overflow` from YAML are ignored (left to the shell/config rewrite)")
def test_the_rule_vocabularies_reach_the_core_as_its_enums(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", (
        "queues:\n  - name: main\n    number: '12345'\n    when_empty: overflow\n    when_closed: overflow\n"
        "    overflow: {after: 60, to: callback}\n"
    ))
    q = load(tmp_path).queues[0].to_core()
    assert q.overflow is not None
    assert (type(q.when_empty), type(q.when_closed), type(q.overflow.to)) == (WhenEmpty, WhenClosed, OverflowTo)


def test_a_rule_pointing_at_an_unknown_queue_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", "queues:\n  - name: main\n    overflow: {after: 9, to: queue, queue: nowhere}\n")
    with pytest.raises(ConfigError, match="unknown queue 'nowhere'"):
        load(tmp_path)
