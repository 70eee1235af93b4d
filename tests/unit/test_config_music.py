"""queues.yaml `music:` and `announce:`: what a waiting caller hears, read and checked with the
file and line of a wrong value."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.model import Announce
from config.loader import ConfigError, load
from tests.unit.test_config_loader import write


def queue(tmp: Path, body: str) -> Path:
    return write(tmp, "queues.yaml", "queues:\n  - name: main\n    number: '12345'\n" + body)


def test_by_default_a_queue_plays_the_default_music_and_announces_nothing() -> None:
    (q,) = load().queues
    assert (q.music, q.announce) == ("default", None)
    core = q.to_core()
    assert (core.music, core.announce) == ("default", None)


@pytest.mark.parametrize("written", ["none", '""', "off", "false", ""])
def test_music_none_off_or_empty_means_ringback_only(tmp_path: Path, written: str) -> None:
    (q,) = load(queue(tmp_path, f"    music: {written}\n")).queues
    assert q.to_core().music == ""


def test_a_music_class_of_ones_own_is_kept(tmp_path: Path) -> None:
    (q,) = load(queue(tmp_path, "    music: night_shift-2\n")).queues
    assert q.to_core().music == "night_shift-2"


def test_an_announcement_mapping_reaches_the_core_settings(tmp_path: Path) -> None:
    (q,) = load(queue(tmp_path, "    announce: {first: 0, every: 45, wait: false}\n")).queues
    assert q.to_core().announce == Announce(first=0.0, every=45.0, position=True, wait=False)


@pytest.mark.parametrize(("written", "expected"), [("true", Announce()), ("false", None)])
def test_announce_true_takes_the_defaults_and_false_turns_it_off(tmp_path: Path, written: str,
                                                                 expected: Announce | None) -> None:
    (q,) = load(queue(tmp_path, f"    music: default\n    announce: {written}\n")).queues
    assert q.to_core().announce == expected


@pytest.mark.parametrize(("body", "line", "words"), [
    ("    music: 'hold music'\n", 4, "not a music-on-hold class"),
    ("    music: ../../etc\n", 4, "not a music-on-hold class"),
    ("    music: 7\n", 4, "not a music-on-hold class"),
    ("    announce:\n      first: 10\n      every: 10\n", 6, "greater than or equal to 20"),
    ("    announce:\n      first: -1\n", 5, "greater than or equal to 0"),
    ("    announce:\n      position: false\n      wait: false\n", 5, "says nothing"),
    ("    music: none\n    announce: {first: 30}\n", 5, "announce needs music"),
    ("    announce: {every: 60, loud: true}\n", 4, "Extra inputs"),
    ("    announce: often\n", 4, "valid dictionary"),
])
def test_a_wrong_music_or_announce_value_names_file_line_and_reason(tmp_path: Path, body: str, line: int,
                                                                    words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(queue(tmp_path, body))
    (problem,) = err.value.problems
    assert problem.file.endswith("queues.yaml")
    assert problem.line == line
    assert words in problem.message
