"""Values spoken as sequences of prompt fragments: digits, cardinals, dates, clock times.

Pure: no I/O, no clock; stdlib only. Every function returns prompt names relative to a
language folder (Asterisk plays ``hotline/<lang>/<name>``); ivr/prompt_texts.yaml holds the
zh and en text of every name, and ivr/prompts.py renders them.

Fragment names (ASCII, ``[a-z0-9-]``; the same name exists in both languages):

=================  ==========================  ===========================================
name               zh                          en
=================  ==========================  ===========================================
``d-0`` .. ``d-9``  零 一 二 ... 九               zero one two ... nine
``d-1y``           幺 (1 inside digit strings)  one
``n-2l``           两 (2 before 千, 百, 万)      two
``n-10``           十                          ten
``n-11`` .. 19     十一 .. 十九                  eleven .. nineteen (English cardinals)
``n-20`` .. 90     二十 .. 九十 (tens)           twenty .. ninety (English cardinals)
``n-100``          百                          hundred
``n-1000``         千                          thousand
``n-10000``        万                          ten thousand (unused by English)
``n-1000000``      百万                         million (English cardinals)
``m-1`` .. 12      一月 .. 十二月                 January .. December
``o-1`` .. 20, 30  第一 .. 第二十, 第三十          first .. twentieth, thirtieth
``w-nian``         年                          year
``w-yue``          月                          month
``w-ri``           日                          day
``w-dian``         点                          o'clock (unused: English says the hour alone)
``w-fen``          分                          minutes
``w-zheng``        整                          o'clock
``w-oh``           零                          oh (as in "nine oh five")
``w-am``/``w-pm``  上午 / 下午                   a m / p m
=================  ==========================  ===========================================

Mandarin (``zh``) reading rules, as a 12345 announcer reads them:

* digit strings (ticket and phone numbers, job numbers): digit by digit, 1 as 幺 (yāo),
  0 as 零: 12345 → 幺二三四五.
* cardinals: 4-digit sections joined by 万; one 零 for any run of zeros inside a number and
  before a section that lacks its 千 (1005 → 一千零五, 10005 → 一万零五, 10100 → 一万零一百);
  trailing zeros unsaid; a leading 1 in the 十 place is unsaid (10 → 十, 12 → 十二,
  100000 → 十万) but said inside a number (110 → 一百一十, 1010 → 一千零一十).
  两 or 二: 两 in the 千 place (2000 → 两千, 12000 → 一万两千), in the 百 place when it leads
  its section (200 → 两百, 1200 → 一千二百) and for a lone 2 before 万 (20000 → 两万);
  二 elsewhere (2 → 二, 20 → 二十, 22 → 二十二, 200000 → 二十万).
* dates: the year digit by digit with 一 (not 幺): 二零二六年; month and day as cardinals:
  十一月二十六日.
* clock: 24-hour, ``H点M分``; a 2 alone in the hour is 两 (两点); minutes under ten take 零
  (九点零五分); a full hour is ``H点整``.

English (``en``): cardinals are simple American English cardinals without "and" (12345 →
twelve thousand three hundred forty five), digit strings are digit words (one two three),
dates read "November twenty-sixth, twenty twenty-six" (month, ordinal day, year in pairs),
clock times are 12-hour "three thirty p m" / "nine o'clock a m".
"""

from __future__ import annotations

import datetime

LANGS = ("zh", "en")
MAX_NUMBER = 99_999_999

_EN_ORDINAL_TENS = {20: "o-20", 30: "o-30"}


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: one of {', '.join(LANGS)}")


def digits(text: str, lang: str) -> tuple[str, ...]:
    """The ASCII digits of `text` one by one; anything else (spaces, dashes, ``#``) is unsaid.

    Mandarin reads 1 as 幺 (``d-1y``), the way Chinese read phone, ticket and job numbers.
    """
    _check_lang(lang)
    out: list[str] = []
    for ch in text:
        if "0" <= ch <= "9":
            out.append("d-1y" if ch == "1" and lang == "zh" else f"d-{ch}")
    return tuple(out)


def _check_number(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number() takes an int, not {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"{n} is outside 0..{MAX_NUMBER:,}")


def number(n: int, lang: str) -> tuple[str, ...]:
    """The cardinal `n` (0 .. 99,999,999); see the module's docstring for the rules."""
    _check_lang(lang)
    _check_number(n)
    return _zh_number(n) if lang == "zh" else _en_number(n)


def _zh_section(n: int, *, leading: bool) -> list[str]:
    """A section 1..9999 (below or above 万). `leading`: nothing is said before it."""
    out: list[str] = []
    places = ((1000, "n-1000"), (100, "n-100"), (10, "n-10"), (1, ""))
    pending_zero = False
    started = False
    for value, unit in places:
        digit = n // value % 10
        if digit == 0:
            if started:
                pending_zero = True
            continue
        if pending_zero:
            out.append("d-0")
            pending_zero = False
        first = not started
        started = True
        if digit == 2 and (value == 1000 or (value == 100 and first)):
            out.append("n-2l")
        elif value == 10 and digit == 1 and first and leading:
            pass  # 十, 十二, 十万: the leading 一 is unsaid
        else:
            out.append(f"d-{digit}")
        if unit:
            out.append(unit)
    return out


def _zh_number(n: int) -> tuple[str, ...]:
    if n == 0:
        return ("d-0",)
    high, low = divmod(n, 10_000)
    out: list[str] = []
    if high:
        out += ["n-2l"] if high == 2 else _zh_section(high, leading=True)
        out.append("n-10000")
        if low and low < 1000:
            out.append("d-0")  # 一万零五, 一万零一百
    if low:
        out += _zh_section(low, leading=not high)
    return tuple(out)


def _en_below_1000(n: int) -> list[str]:
    out: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        out += [f"d-{hundreds}", "n-100"]
    if rest >= 20:
        tens, unit = divmod(rest, 10)
        out.append(f"n-{tens * 10}")
        if unit:
            out.append(f"d-{unit}")
    elif rest >= 10:
        out.append(f"n-{rest}")
    elif rest:
        out.append(f"d-{rest}")
    return out


def _en_number(n: int) -> tuple[str, ...]:
    if n == 0:
        return ("d-0",)
    millions, rest = divmod(n, 1_000_000)
    thousands, units = divmod(rest, 1000)
    out: list[str] = []
    if millions:
        out += [*_en_below_1000(millions), "n-1000000"]
    if thousands:
        out += [*_en_below_1000(thousands), "n-1000"]
    out += _en_below_1000(units)
    return tuple(out)


def _en_ordinal(n: int) -> tuple[str, ...]:
    """1..31 as an ordinal: first .. twentieth, twenty + first, thirtieth, thirty + first."""
    if n <= 20 or n in _EN_ORDINAL_TENS:
        return (_EN_ORDINAL_TENS.get(n, f"o-{n}"),)
    tens, unit = divmod(n, 10)
    return (f"n-{tens * 10}", f"o-{unit}")


def _en_year(year: int) -> tuple[str, ...]:
    century, rest = divmod(year, 100)
    if year < 1000 or 2000 <= year <= 2009 or year % 1000 == 0:
        return _en_number(year)  # 2005: two thousand five; 987; 3000
    if rest == 0:
        return (*_en_number(century), "n-100")  # nineteen hundred
    if rest < 10:
        return (*_en_number(century), "w-oh", f"d-{rest}")  # nineteen oh five
    return (*_en_number(century), *_en_number(rest))  # twenty twenty-six


def date(d: datetime.date, lang: str) -> tuple[str, ...]:
    """zh: 二零二六年十一月二十六日; en: November twenty-sixth, twenty twenty-six."""
    _check_lang(lang)
    if lang == "zh":
        year = tuple(f"d-{ch}" for ch in str(d.year))  # 一 in years, never 幺
        return (*year, "w-nian", *_zh_number(d.month), "w-yue", *_zh_number(d.day), "w-ri")
    return (f"m-{d.month}", *_en_ordinal(d.day), *_en_year(d.year))


def clock(hour: int, minute: int, lang: str) -> tuple[str, ...]:
    """A time of day. zh: 24-hour 十七点三十分, 两点整, 九点零五分; en: five thirty p m."""
    _check_lang(lang)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"{hour}:{minute:02d} is not a time of day")
    if lang == "zh":
        said_hour = ("n-2l",) if hour == 2 else _zh_number(hour)
        if minute == 0:
            return (*said_hour, "w-dian", "w-zheng")
        said_minute = ("d-0", f"d-{minute}") if minute < 10 else _zh_number(minute)
        return (*said_hour, "w-dian", *said_minute, "w-fen")
    half = "w-am" if hour < 12 else "w-pm"
    h12 = hour % 12 or 12
    if minute == 0:
        return (*_en_number(h12), "w-zheng", half)
    said = ("w-oh", f"d-{minute}") if minute < 10 else _en_number(minute)
    return (*_en_number(h12), *said, half)


def agent_announcement(job_number: str, lang: str) -> tuple[str, ...]:
    """工号播报: ``agent-prefix``, the job number digit by digit, ``agent-suffix``.

    zh: 您好 + 幺零零幺 + 号话务员为您服务 (job numbers are identifiers: digit by digit with 幺,
    like phone numbers, never 一千零一); en: "Hello, operator number one zero zero one is at
    your service." A job number must be 1..12 ASCII digits.
    """
    _check_lang(lang)
    if not (job_number.isascii() and job_number.isdigit() and 1 <= len(job_number) <= 12):
        raise ValueError(f"job number {job_number!r}: 1 to 12 digits")
    return ("agent-prefix", *digits(job_number, lang), "agent-suffix")


def agent_prompt_name(job_number: str) -> str:
    """The name of the pre-built announcement of one agent (``agent-1001``), see prompts.concat."""
    agent_announcement(job_number, "zh")  # validates
    return f"agent-{job_number}"


def state_prompt(state: str) -> str:
    """The prompt of a ticket state (tickets.lifecycle.State's value): ``in_progress`` → ``state-in-progress``."""
    name = "state-" + state.replace("_", "-")
    if not all(ch.isascii() and (ch.islower() or ch.isdigit() or ch == "-") for ch in name):
        raise ValueError(f"ticket state {state!r} makes no prompt name")
    return name


def fragments() -> frozenset[str]:
    """Every name this module can emit (the catalogue must have them all)."""
    names = {f"d-{i}" for i in range(10)} | {"d-1y", "n-2l", "n-10", "n-100", "n-1000", "n-10000", "n-1000000"}
    names |= {f"n-{i}" for i in range(11, 20)} | {f"n-{i}" for i in range(20, 100, 10)}
    names |= {f"m-{i}" for i in range(1, 13)} | {f"o-{i}" for i in range(1, 21)} | {"o-30"}
    names |= {"w-nian", "w-yue", "w-ri", "w-dian", "w-fen", "w-zheng", "w-oh", "w-am", "w-pm"}
    names |= {"agent-prefix", "agent-suffix"}
    return frozenset(names)
