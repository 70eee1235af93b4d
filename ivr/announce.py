"""What a waiting caller hears when a position announcement (位置播报) is due: prompt names.

Pure: no I/O, no clock; stdlib only. The engine decides when an announcement is due and
what it may say (the caller's place in line; the expected wait only when its figures
support one); `prompt_names` turns that into prompt names, `value` into what the engine
writes into the caller's channel variable HOTLINE_ANNOUNCE (cti/dialplan.py ANNOUNCE) with an
AMI Setvar. The wait loop of the dialplan (extensions.conf.in, [hotline-wait] `announce`)
plays each name as ``hotline/<zh|en>/<name>`` without answering the channel, then resumes
the music; a Redirect that rings an agent cuts the prompt off at once.

The names carry no language and are the same for zh and en: each part means the same in
both, so one list serves a caller in either (ivr/prompt_texts.yaml holds the texts):

==================  ==================================  =========================================
name                zh                                  en
==================  ==================================  =========================================
``queue-next``      您是下一位。请稍候。                    You are next in line. Please hold.
``queue-ahead-1``   您前面还有一位来电者。                  There is one caller ahead of you.
``queue-ahead``     您前面还有 (then a number)             There are
``queue-callers``   位来电者。                             callers ahead of you.
``queue-ahead-many`` 您前面排队的来电者较多。               Many callers are ahead of you.
``queue-wait-1``    预计等待约一分钟。                      The expected wait is about one minute.
``queue-wait``      预计等待约 (then a number)             The expected wait is about
``queue-minutes``   分钟。                                 minutes.
``queue-wait-long`` 预计等待时间较长。                      The wait may be long.
``queue-thanks``    感谢您的耐心等待。请不要挂机。            Thank you for your patience. ...
==================  ==================================  =========================================

A count of 2..CAP uses the number fragments of ivr/speech.py whose meaning is the same in
both languages: 2 is ``n-2l`` (两, "two": 两位, 两分钟, never 二位), 3..9 ``d-N``, 10..19
``n-N``, 20 ``n-20``. Larger counts are not read out: ``queue-ahead-many`` and
``queue-wait-long`` say so without a figure, an honest answer where an exact one would not be.
"""

from __future__ import annotations

CAP = 20  # the largest count read out, callers ahead and minutes alike
SEPARATOR = "&"  # between names in HOTLINE_ANNOUNCE, as Playback takes its files

# The parts that stand inside a sentence (a number follows or precedes them): rendered with
# the short silences of a fragment (ivr/prompts.py), so that the sentence does not stall.
JOINING = frozenset({"queue-ahead", "queue-callers", "queue-wait", "queue-minutes"})
SENTENCES = frozenset({"queue-next", "queue-ahead-1", "queue-ahead-many", "queue-wait-1", "queue-wait-long",
                       "queue-thanks"})


def count(n: int) -> tuple[str, ...]:
    """2..CAP as number fragments that read the same way in zh and en (two is 两)."""
    if not 2 <= n <= CAP:
        raise ValueError(f"{n} is outside 2..{CAP}")
    if n == 2:
        return ("n-2l",)
    if n < 10:
        return (f"d-{n}",)
    return (f"n-{n}",)


def _check(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes an int or None, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} {value} is negative")


def prompt_names(ahead: int | None, wait_minutes: int | None) -> tuple[str, ...]:
    """The prompts of one announcement, in order.

    `ahead`: callers ahead of this one (0: next in line), or None not to say the place (the
    queue's `announce.position: false`). `wait_minutes`: the expected wait rounded up to whole
    minutes, or None when the engine will not promise one; under one minute reads as about
    one. Always ends with the thanks, so an announcement with nothing else to say still tells
    the caller they are in line.
    """
    _check("ahead", ahead)
    _check("wait_minutes", wait_minutes)
    out: list[str] = []
    if ahead is not None:
        if ahead == 0:
            out.append("queue-next")
        elif ahead == 1:
            out.append("queue-ahead-1")
        elif ahead <= CAP:
            out += ["queue-ahead", *count(ahead), "queue-callers"]
        else:
            out.append("queue-ahead-many")
    if wait_minutes is not None:
        minutes = max(1, wait_minutes)
        if minutes == 1:
            out.append("queue-wait-1")
        elif minutes <= CAP:
            out += ["queue-wait", *count(minutes), "queue-minutes"]
        else:
            out.append("queue-wait-long")
    out.append("queue-thanks")
    return tuple(out)


def value(ahead: int | None, wait_minutes: int | None) -> str:
    """HOTLINE_ANNOUNCE's value: the names joined by '&' (``queue-ahead&d-3&queue-callers&...``)."""
    return SEPARATOR.join(prompt_names(ahead, wait_minutes))


def names() -> frozenset[str]:
    """Every name prompt_names can emit (the catalogue must have them all)."""
    numbers = {name for n in range(2, CAP + 1) for name in count(n)}
    return JOINING | SENTENCES | numbers
