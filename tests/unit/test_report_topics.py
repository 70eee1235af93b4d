"""热点诉求: what rose against the previous period, counted once per ticket, without the words every
ticket says, and read from the store without the tickets that are no request of their own."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from reports.topics import (
    Rise,
    Segmenter,
    TicketText,
    count,
    default_segmenter,
    g2,
    parse_stopwords,
    parse_userdict,
    rising,
    topics,
)
from reports.topics_store import TextFilters, hot_topics, load_texts
from tickets.db import migrate, open_engine
from tickets.models import TicketRow

HEATING = [  # this month: 秦都区's heating
    "渭阳街道东方花园小区暖气不热，室内温度只有十五度",
    "家里暖气不热，供暖公司一直不来检修",
    "小区暖气冰凉，供暖不达标",
    "暖气不热，老人孩子受冻",
    "整栋楼暖气不热，供暖温度不够",
    "暖气管道漏水，暖气不热",
]
NOISE = [  # last month: 渭城区's building sites
    "楼下工地夜间施工噪音扰民",
    "工地晚上施工，噪音很大影响休息",
    "装修噪音扰民，周末一早就开始",
    "广场舞噪音扰民，音响声音太大",
    "夜间施工噪音，无法入睡",
    "工地噪音扰民，渣土车也多",
]
STEADY = ["公积金提取需要带什么材料", "公积金贷款额度是多少", "公积金提取到账时间"]  # both months alike


def tickets(texts: list[str], category: str, district: str, street: str = "") -> list[TicketText]:
    return [TicketText(category, district, street, t) for t in texts]


def this_month() -> list[TicketText]:
    return tickets(HEATING, "求助", "秦都区", "渭阳街道") + tickets(STEADY, "咨询", "兴平市")


def last_month() -> list[TicketText]:
    return tickets(NOISE, "投诉", "渭城区", "文汇路街道") + tickets(STEADY, "咨询", "兴平市")


def terms(rises: Iterable[Rise]) -> list[str]:
    return [r.term for r in rises]


def test_a_surge_of_heating_complaints_puts_heating_its_category_and_its_place_first() -> None:
    t = topics(this_month(), last_month())
    assert (t.current_tickets, t.previous_tickets) == (9, 9)
    assert t.words[0].term == "暖气"
    assert (t.words[0].current, t.words[0].previous, t.words[0].change) == (6, 0, 6)
    assert terms(t.categories) == ["求助"]
    assert terms(t.districts) == ["秦都区"]
    assert terms(t.streets) == ["秦都区/渭阳街道"]
    # What was there both months (公积金) and what fell (噪音, 渭城区, 投诉) did not rise.
    listed = {*terms(t.words), *terms(t.categories), *terms(t.districts)}
    assert listed.isdisjoint({"公积金", "提取", "噪音", "渭城区", "投诉", "咨询", "兴平市"})


def test_the_score_is_dunnings_log_likelihood_of_the_two_by_two_table() -> None:
    # 暖气: 6 of 9 tickets now (3 without), 0 of 9 before (9 without). Expected 3 and 3 with it,
    # 6 and 6 without: G² = 2·(6·ln(6/3) + 0 + 3·ln(3/6) + 9·ln(9/6)) = 6·ln 2 + 18·ln 1.5 ≈ 11.457.
    expected = 6 * math.log(2) + 18 * math.log(1.5)
    assert g2(6, 9, 0, 9) == pytest.approx(expected)
    assert topics(this_month(), last_month()).words[0].score == pytest.approx(expected)
    assert g2(10, 100, 10, 100) == 0.0  # the same share: no evidence of anything


def test_a_month_with_twice_the_tickets_has_not_risen_in_every_word() -> None:
    assert rising(Counter(供暖=20), Counter(供暖=10), 200, 100, min_score=0) == ()  # 10% of tickets both months
    assert terms(rising(Counter(供暖=21), Counter(供暖=10), 200, 100, min_score=0)) == ["供暖"]


def test_stop_words_never_appear_though_every_ticket_this_month_says_them() -> None:
    boiler = "市民来电反映：{}，希望相关部门尽快处理，要求回复。"
    now = [TicketText("求助", "秦都区", "", boiler.format(t)) for t in HEATING]
    before = tickets(NOISE, "投诉", "渭城区")
    stop = parse_stopwords(Path("reports/stopwords_zh.txt").read_text(encoding="utf-8"))
    assert {"市民", "来电", "反映", "希望", "相关", "部门", "处理", "要求"} <= stop
    found = terms(topics(now, before, top=100, min_score=0).words)
    assert found and not set(found) & stop
    # ...and it is the list that keeps them out: without it they rise with the heating.
    bare = terms(topics(now, before, top=100, min_score=0, segmenter=Segmenter()).words)
    assert {"来电", "反映", "希望", "处理"} <= set(bare)


def test_a_word_repeated_five_times_in_one_ticket_counts_once() -> None:
    texts = [TicketText(content="噪音噪音噪音噪音噪音，还是噪音"), TicketText(content="施工噪音")]
    c = count(texts, default_segmenter())
    assert c.words["噪音"] == 2
    assert c.tickets == 2


def test_with_an_empty_previous_period_terms_are_ranked_by_count_without_a_score() -> None:
    t = topics(this_month(), [])
    assert t.previous_tickets == 0
    assert t.words[0].term == "暖气"
    assert (t.words[0].current, t.words[0].previous, t.words[0].score) == (6, 0, None)
    assert terms(t.categories) == ["求助", "咨询"]  # 6 then 3
    assert [r.current for r in t.words] == sorted((r.current for r in t.words), reverse=True)


def test_nothing_rises_in_an_empty_period() -> None:
    t = topics([], last_month())
    assert (t.words, t.categories, t.districts, t.streets) == ((), (), (), ())


def test_a_word_seen_once_is_not_ranked_even_with_no_significance_cut() -> None:
    now = [*this_month(), TicketText("投诉", "乾县", "", "出租车拒载")]
    assert "出租车" not in terms(topics(now, last_month(), top=100, min_score=0).words)
    assert "出租车" in terms(topics(now, last_month(), top=100, min_score=0, min_count=1).words)
    assert "乾县" not in terms(topics(now, last_month(), min_score=0).districts)


def test_a_small_rise_is_not_significant() -> None:
    # 3 tickets against 1 among 1,000 each: a tripling, and noise (G² ≈ 1.0).
    assert rising(Counter(路灯=3), Counter(路灯=1), 1000, 1000) == ()
    assert g2(3, 1000, 1, 1000) < 3.84


def test_person_names_are_never_words_and_the_userdict_retags_a_pension() -> None:
    now = [TicketText(content=f"王建国来电，{t}") for t in ("养老金未到账", "养老金没有发放", "养老金少发了")]
    words = terms(topics(now, [TicketText(content="公积金提取")], top=100, min_score=0).words)
    assert "王建国" not in words
    assert "养老金" in words  # jieba's dictionary tags it nr (a name); userdict_zh.txt says n


def test_the_userdict_keeps_a_local_place_whole() -> None:
    text = "陈杨寨街道东方花园小区停水"
    assert "东方花园小区" not in Segmenter().words(text)
    seg = Segmenter(userdict=parse_userdict("东方花园小区 ns  # a 小区\n"))
    assert "东方花园小区" in seg.words(text)


def test_latin_words_are_one_word_whatever_their_case() -> None:
    assert {"APP"} <= default_segmenter().words("App闪退，ａｐｐ也登录不了，APP")


def test_id_numbers_plates_phone_numbers_and_mail_addresses_never_become_hot_words() -> None:
    texts = ["身份证号61040219900101123X补办，车牌陕A12345被贴条，邮箱abc123@qq.com，电话13800000001",
             "身份证61040219900101123X补办进度，陕A12345违章，abc123@qq.com未收到回复，13800000001",
             "61040219900101123X的社保卡，陕A12345，abc123@qq.com，13800000001"]
    words = terms(topics([TicketText(content=t) for t in texts], [], top=100, min_count=1).words)
    assert words and not [w for w in words if any(ch.isdigit() for ch in w) or "@" in w or "." in w], words
    assert "补办" in words  # the rest of the text still counts


def test_a_userdict_line_with_too_many_fields_is_refused_with_its_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_userdict("秦务员 nz\n秦务员 5 nz extra\n")


# ---- the store ---------------------------------------------------------------------------------

SHANGHAI = timezone(timedelta(hours=8))
NOV = datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI)
OCT = datetime(2026, 10, 1, tzinfo=SHANGHAI), datetime(2026, 11, 1, tzinfo=SHANGHAI)


@pytest.fixture
def db(tmp_path: Path) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(engine)
    return engine


def add(db: Engine, rows: Sequence[tuple[str, datetime | None, str, str, str]], channel: str = "phone") -> None:
    """(state, registered_at, category, district, content) each."""
    now = datetime(2026, 11, 26, tzinfo=UTC)
    with db.begin() as conn:
        start = len(conn.execute(select(TicketRow.id)).all())
        for i, (state, registered, category, district, content) in enumerate(rows, start):
            conn.execute(insert(TicketRow).values(
                number=f"20261126{i:05d}", state=state, channel=channel, category=category, district=district,
                content=content, created=registered or now, registered_at=registered, updated=now, version=1))


def test_the_store_reads_the_period_by_registration_without_invalid_duplicate_merged_or_draft(db: Engine) -> None:
    first = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai: November's first instant
    last = datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC)
    add(db, [
        ("closed", first, "求助", "秦都区", "暖气不热"),
        ("in_progress", last, "求助", "秦都区", "暖气漏水"),
        ("closed", first - timedelta(seconds=1), "投诉", "渭城区", "十月的噪音"),  # October in Shanghai
        ("closed", last + timedelta(seconds=1), "投诉", "渭城区", "十二月的噪音"),
        ("invalid", first, "无效", "秦都区", "打错了"),
        ("duplicate", first, "重复", "秦都区", "暖气不热"),
        ("merged", first, "求助", "秦都区", "暖气不热"),
        ("draft", None, "", "", "还没登记"),
        ("archived", first, "无效", "秦都区", "骚扰电话"),  # invalid, then 归档: still not a request
        ("archived", first, "重复", "秦都区", "暖气不热"),
    ])
    assert [t.content for t in load_texts(db, *NOV)] == ["暖气不热", "暖气漏水"]
    assert [t.content for t in load_texts(db, *OCT)] == ["十月的噪音"]


def test_the_store_applies_the_filters(db: Engine) -> None:
    at = datetime(2026, 11, 10, tzinfo=UTC)
    add(db, [("closed", at, "求助", "秦都区", "暖气"), ("closed", at, "投诉", "渭城区", "噪音")])
    add(db, [("closed", at, "投诉", "秦都区", "网站来的")], channel="web")
    assert [t.content for t in load_texts(db, *NOV, TextFilters(districts=("秦都区",)))] == ["暖气", "网站来的"]
    assert [t.content for t in load_texts(db, *NOV, TextFilters(categories=("投诉",), channels=("phone",)))] == ["噪音"]


def test_a_naive_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        list(load_texts(open_engine("sqlite://"), datetime(2026, 11, 1), datetime(2026, 12, 1)))


def test_hot_topics_from_the_store_names_its_periods(db: Engine) -> None:
    nov, octo = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 10, 10, tzinfo=UTC)
    add(db, [("closed", nov, "求助", "秦都区", t) for t in HEATING])
    add(db, [("closed", octo, "投诉", "渭城区", t) for t in NOISE])
    t = hot_topics(db, *NOV, *OCT, top=3)
    assert (t.current_tickets, t.previous_tickets) == (6, 6)
    assert t.words[0].term == "暖气" and len(t.words) <= 3
    js = t.as_json()
    assert js["period"] == ["2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00"]
    assert js["words"][0] == {"term": "暖气", "current": 6, "previous": 0, "change": 6,
                              "score": round(g2(6, 6, 0, 6), 2)}
