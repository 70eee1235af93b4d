"""The desk's corner: the longest wait is shown in LONGEST_STEP-s steps, so a caller who has
waited less than one step is "<5 秒", not "0 秒" (which reads as nobody waiting)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from web.app import environment
from web.desk import LONGEST_STEP, DeskPage
from web.i18n import translator


def corner(waits: list[float], lang: str = "zh") -> str:
    """The corner of agent 1001 (queue main) with callers in line who have waited `waits` s, the
    head of the line first (the corner reads the head's wait)."""
    calls = {f"c{i}": SimpleNamespace(waited=lambda now, w=w: w) for i, w in enumerate(waits)}
    line = {(float(i), i, f"c{i}"): None for i in range(len(waits))}  # the dispatcher's line: call id third
    state = SimpleNamespace(agents={"1001": SimpleNamespace(queues={"main"})}, lines={"main": line}, calls=calls)
    w: Any = SimpleNamespace(engine=SimpleNamespace(dispatcher=SimpleNamespace(state=state, clock=lambda: 100.0)))
    figures = DeskPage(w)._corner("1001", rate=("80.00%", False))
    html = environment().get_template("desk_corner.html").render(t=translator(lang), lang=lang, corner=figures)
    return html.split('class="longest">', 1)[1].split("</dd>", 1)[0]


@pytest.mark.parametrize(("waits", "zh", "en"), [
    ([], "0 秒", "0 s"),  # nobody waits
    ([0.2], "&lt;5 秒", "&lt;5 s"),
    ([4.9, 1.0], "&lt;5 秒", "&lt;5 s"),
    ([5.0], "≥ 5 秒", "≥ 5 s"),
    ([17.5, 3.0], "≥ 15 秒", "≥ 15 s"),  # the head of the line waited longest
])
def test_the_longest_wait_is_floored_to_its_step_and_under_one_step_is_less_than_the_step(
        waits: list[float], zh: str, en: str) -> None:
    assert LONGEST_STEP == 5
    assert corner(waits) == zh
    assert corner(waits, "en") == en
