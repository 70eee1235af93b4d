"""ivr.speech: how numbers, digit strings, dates and times are said, fragment by fragment.

Expected readings are written by hand in Chinese characters (ZH below maps each fragment to
its character, independent of the catalogue) or as English words.
"""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest

from ivr import speech

ZH = {f"d-{i}": ch for i, ch in enumerate("零一二三四五六七八九")}
ZH |= {"d-1y": "幺", "n-2l": "两", "n-10": "十", "n-100": "百", "n-1000": "千", "n-10000": "万",
       "w-nian": "年", "w-yue": "月", "w-ri": "日", "w-dian": "点", "w-fen": "分", "w-zheng": "整",
       "agent-prefix": "您好，", "agent-suffix": "号话务员为您服务"}
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
EN = {f"d-{i}": w for i, w in enumerate(ONES)}
EN |= {f"n-{10 + i}": w for i, w in enumerate(TEENS)}
EN |= {f"n-{10 * i}": w for i, w in enumerate(TENS, 2)}
EN |= {"n-100": "hundred", "n-1000": "thousand", "n-1000000": "million", "w-oh": "oh", "w-zheng": "o'clock",
       "w-am": "a.m.", "w-pm": "p.m.", "m-11": "November", "m-1": "January", "m-2": "February",
       "o-1": "first", "o-2": "second", "o-6": "sixth", "o-20": "twentieth", "o-30": "thirtieth"}


def zh(names: tuple[str, ...]) -> str:
    return "".join(ZH[name] for name in names)


def en(names: tuple[str, ...]) -> str:
    return " ".join(EN[name] for name in names)


@pytest.mark.parametrize(("n", "said"), [
    (0, "零"), (1, "一"), (2, "二"), (10, "十"), (11, "十一"), (12, "十二"), (20, "二十"), (22, "二十二"),
    (100, "一百"), (101, "一百零一"), (110, "一百一十"), (119, "一百一十九"), (200, "两百"), (222, "两百二十二"),
    (1000, "一千"), (1005, "一千零五"), (1010, "一千零一十"), (1100, "一千一百"), (1200, "一千二百"),
    (2000, "两千"), (2200, "两千二百"), (2002, "两千零二"),
    (10000, "一万"), (10005, "一万零五"), (10010, "一万零一十"), (10100, "一万零一百"), (11000, "一万一千"),
    (12000, "一万两千"), (12345, "一万两千三百四十五"), (20000, "两万"), (22000, "两万两千"),
    (100000, "十万"), (100010, "十万零一十"), (110000, "十一万"), (200000, "二十万"), (1000000, "一百万"),
    (1000100, "一百万零一百"), (1001000, "一百万一千"), (1100000, "一百一十万"), (2000000, "两百万"),
    (10000000, "一千万"), (20000000, "两千万"), (99999999, "九千九百九十九万九千九百九十九"),
])
def test_mandarin_cardinals(n: int, said: str) -> None:
    assert zh(speech.number(n, "zh")) == said


def test_mandarin_cardinal_fragments_exactly() -> None:
    assert speech.number(10, "zh") == ("n-10",)
    assert speech.number(1005, "zh") == ("d-1", "n-1000", "d-0", "d-5")
    assert speech.number(20000, "zh") == ("n-2l", "n-10000")


@pytest.mark.parametrize(("n", "said"), [
    (0, "zero"), (7, "seven"), (10, "ten"), (11, "eleven"), (20, "twenty"), (21, "twenty one"),
    (100, "one hundred"), (101, "one hundred one"), (110, "one hundred ten"), (1000, "one thousand"),
    (1005, "one thousand five"), (10000, "ten thousand"), (20000, "twenty thousand"),
    (100000, "one hundred thousand"), (1000000, "one million"),
    (12345, "twelve thousand three hundred forty five"),
    (99999999, "ninety nine million nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_english_cardinals(n: int, said: str) -> None:
    assert en(speech.number(n, "en")) == said


@pytest.mark.parametrize("bad", [-1, -100, speech.MAX_NUMBER + 1, 10**12])
def test_numbers_out_of_range_are_refused(bad: int) -> None:
    for lang in speech.LANGS:
        with pytest.raises(ValueError, match="outside"):
            speech.number(bad, lang)


def test_number_takes_ints_and_known_languages_only() -> None:
    with pytest.raises(TypeError):
        speech.number(True, "zh")
    with pytest.raises(TypeError):
        speech.number(1.5, "zh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown language"):
        speech.number(1, "fr")
    with pytest.raises(ValueError, match="unknown language"):
        speech.digits("1", "yue")


def test_digit_strings() -> None:
    assert zh(speech.digits("12345", "zh")) == "幺二三四五"
    assert zh(speech.digits("2026112600042", "zh")) == "二零二六幺幺二六零零零四二"
    assert zh(speech.digits("138-0013 8000#", "zh")) == "幺三八零零幺三八零零零"
    assert en(speech.digits("1001", "en")) == "one zero zero one"
    assert speech.digits("", "zh") == () == speech.digits("abc", "en")
    assert speech.digits("１２", "zh") == ()  # full-width digits are not keypad digits


@pytest.mark.parametrize(("day", "said"), [
    (datetime.date(2026, 11, 26), "二零二六年十一月二十六日"),
    (datetime.date(2026, 1, 1), "二零二六年一月一日"),
    (datetime.date(2026, 2, 2), "二零二六年二月二日"),  # never 两月
    (datetime.date(2030, 12, 31), "二零三零年十二月三十一日"),
    (datetime.date(2011, 10, 10), "二零一一年十月十日"),  # 一 in years, never 幺
])
def test_mandarin_dates(day: datetime.date, said: str) -> None:
    assert zh(speech.date(day, "zh")) == said


@pytest.mark.parametrize(("day", "said"), [
    (datetime.date(2026, 11, 26), "November twenty sixth twenty twenty six"),
    (datetime.date(2026, 1, 1), "January first twenty twenty six"),
    (datetime.date(2005, 2, 20), "February twentieth two thousand five"),
    (datetime.date(1999, 1, 30), "January thirtieth nineteen ninety nine"),
    (datetime.date(1905, 1, 2), "January second nineteen oh five"),
    (datetime.date(1900, 1, 1), "January first nineteen hundred"),
    (datetime.date(2000, 1, 1), "January first two thousand"),
])
def test_english_dates(day: datetime.date, said: str) -> None:
    assert en(speech.date(day, "en")) == said


def test_clock() -> None:
    assert zh(speech.clock(2, 0, "zh")) == "两点整"
    assert zh(speech.clock(14, 30, "zh")) == "十四点三十分"
    assert zh(speech.clock(9, 5, "zh")) == "九点零五分"
    assert zh(speech.clock(0, 0, "zh")) == "零点整"
    assert zh(speech.clock(22, 2, "zh")) == "二十二点零二分"
    assert en(speech.clock(14, 30, "en")) == "two thirty p.m."
    assert en(speech.clock(9, 5, "en")) == "nine oh five a.m."
    assert en(speech.clock(0, 0, "en")) == "twelve o'clock a.m."
    assert en(speech.clock(12, 0, "en")) == "twelve o'clock p.m."
    for hour, minute in ((24, 0), (-1, 0), (0, 60)):
        with pytest.raises(ValueError, match="not a time of day"):
            speech.clock(hour, minute, "zh")


def test_agent_announcement() -> None:
    assert zh(speech.agent_announcement("1001", "zh")) == "您好，幺零零幺号话务员为您服务"
    assert speech.agent_announcement("1001", "en") == ("agent-prefix", "d-1", "d-0", "d-0", "d-1", "agent-suffix")
    assert speech.agent_prompt_name("1001") == "agent-1001"
    for bad in ("", "10a1", "１００１", "1" * 13, "-1"):
        with pytest.raises(ValueError):
            speech.agent_announcement(bad, "zh")


def test_state_prompt_names() -> None:
    assert speech.state_prompt("in_progress") == "state-in-progress"
    assert speech.state_prompt("new") == "state-new"
    with pytest.raises(ValueError):
        speech.state_prompt("In Progress")


def test_everything_said_is_a_known_fragment() -> None:
    known = speech.fragments()
    said: set[str] = set()
    for n in [*range(0, 20001), *range(20001, speech.MAX_NUMBER + 1, 9973), speech.MAX_NUMBER]:
        for lang in speech.LANGS:
            said.update(speech.number(n, lang))
    for lang in speech.LANGS:
        day = datetime.date(2028, 1, 1)
        while day.year == 2028:
            said.update(speech.date(day, lang))
            day += datetime.timedelta(days=1)
        for hour in range(24):
            for minute in range(60):
                said.update(speech.clock(hour, minute, lang))
        said.update(speech.agent_announcement("0123456789", lang))
    assert said <= known, sorted(said - known)


def test_speech_is_pure() -> None:
    """No I/O: speech.py imports nothing but these stdlib modules."""
    source = Path(speech.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"open", "print", "input", "exec", "eval"}
    assert imported <= {"__future__", "datetime"}
