"""ivr/announce.py: the prompt names of a position announcement (位置播报), what they say in
either language, and that every name is shipped and safe for the dialplan's FILTER."""

from __future__ import annotations

import re

import pytest

from ivr import announce, prompts

CATALOGUE = prompts.load_catalogue()


def spoken(names: tuple[str, ...], lang: str) -> str:
    """The announcement as one text, the way the caller hears it (parts joined)."""
    sep = "" if lang == "zh" else " "
    return sep.join(CATALOGUE[name][lang] for name in names)


@pytest.mark.parametrize(("ahead", "minutes", "zh", "en"), [
    (0, None, "您是下一位，请稍候。感谢您的耐心等待，请不要挂机。",
     "You are next in line. Please hold. Thank you for your patience. Please stay on the line."),
    (1, 1, "您前面还有一位来电者。预计等待约一分钟。感谢您的耐心等待，请不要挂机。",
     "There is one caller ahead of you. The expected wait is about one minute. Thank you for your patience. "
     "Please stay on the line."),
    (2, 2, "您前面还有两位来电者。预计等待约两分钟。感谢您的耐心等待，请不要挂机。",
     "There are two callers ahead of you. The expected wait is about two minutes. Thank you for your patience. "
     "Please stay on the line."),
    (3, 5, "您前面还有三位来电者。预计等待约五分钟。感谢您的耐心等待，请不要挂机。",
     "There are three callers ahead of you. The expected wait is about five minutes. Thank you for your "
     "patience. Please stay on the line."),
    (10, 12, "您前面还有十位来电者。预计等待约十二分钟。感谢您的耐心等待，请不要挂机。",
     "There are ten callers ahead of you. The expected wait is about twelve minutes. Thank you for your "
     "patience. Please stay on the line."),
    (20, 20, "您前面还有二十位来电者。预计等待约二十分钟。感谢您的耐心等待，请不要挂机。",
     "There are twenty callers ahead of you. The expected wait is about twenty minutes. Thank you for your "
     "patience. Please stay on the line."),
    (21, 21, "您前面排队的来电者较多。预计等待时间较长。感谢您的耐心等待，请不要挂机。",
     "Many callers are ahead of you. The wait may be long. Thank you for your patience. Please stay on the line."),
])
def test_an_announcement_reads_as_natural_mandarin_and_english(ahead: int, minutes: int | None, zh: str,
                                                               en: str) -> None:
    names = announce.prompt_names(ahead, minutes)
    assert spoken(names, "zh") == zh
    assert spoken(names, "en") == en


def test_two_is_liang_for_callers_and_minutes_never_er() -> None:
    assert announce.prompt_names(2, 2) == ("queue-ahead", "n-2l", "queue-callers", "queue-wait", "n-2l",
                                           "queue-minutes", "queue-thanks")
    assert "二位" not in spoken(announce.prompt_names(2, 2), "zh")


def test_without_a_promise_the_wait_is_not_said_and_without_a_position_only_the_wait() -> None:
    assert announce.prompt_names(4, None) == ("queue-ahead", "d-4", "queue-callers", "queue-thanks")
    assert announce.prompt_names(None, 3) == ("queue-wait", "d-3", "queue-minutes", "queue-thanks")
    assert announce.prompt_names(None, None) == ("queue-thanks",)  # still: you are in line


def test_under_a_minute_reads_as_about_one_minute() -> None:
    assert announce.prompt_names(0, 0) == ("queue-next", "queue-wait-1", "queue-thanks")


@pytest.mark.parametrize(("ahead", "minutes", "error"), [
    (-1, None, ValueError), (0, -5, ValueError), (True, None, TypeError), (1.5, None, TypeError),
    (0, "3", TypeError),
])
def test_nonsense_figures_are_refused(ahead: object, minutes: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        announce.prompt_names(ahead, minutes)  # type: ignore[arg-type]


def test_the_variable_value_joins_the_names_with_ampersands() -> None:
    assert announce.value(3, 5) == "queue-ahead&d-3&queue-callers&queue-wait&d-5&queue-minutes&queue-thanks"


def test_every_name_is_shipped_in_both_languages_and_passes_the_dialplans_filter() -> None:
    emitted = {n for a in [*range(0, 40), None] for m in [*range(0, 40), None] for n in announce.prompt_names(a, m)}
    assert emitted == announce.names()
    available = prompts.available(None)
    for lang in prompts.LANGS:
        assert announce.names() <= available[lang], f"{lang}: not shipped"
    for name in announce.names():
        assert name in CATALOGUE
        # The wait loop keeps only these characters of HOTLINE_ANNOUNCE (FILTER(-&0-9a-z,...)).
        assert re.fullmatch(r"[a-z0-9-]+", name)
    assert len(announce.value(20, 20)) < 200  # one AMI Setvar, one dialplan variable


def test_the_shipped_queue_prompts_are_fine() -> None:
    assert prompts.verify(names=sorted(n for n in announce.names() if n.startswith("queue-"))) == []
