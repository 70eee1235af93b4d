"""The 知识库 on both stores: articles, their validity, citing them, and search that finds
Chinese words of any length through the database's own index, whatever the user types."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from tests.pg import PG_ADMIN
from tickets import kb
from tickets.db import MIGRATIONS, migrate, open_engine
from tickets.models import ArticleRow

TODAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)

ARTICLES: list[dict[str, Any]] = [
    {"title": "社保卡补办", "category": "咨询", "tags": ["社保", "社保卡", "补办"],
     "body": "社保卡遗失或损坏的，市民可携带本人身份证到任一社保卡服务网点办理补办，现场制卡约20分钟；"
             "也可通过“津心办”在线申请邮寄到家。补办期间医保结算可使用电子社保卡。"},
    {"title": "住房公积金提取", "category": "咨询", "tags": ["公积金", "提取"],
     "body": "职工购买自住住房、偿还购房贷款本息或租房自住的，可申请提取住房公积金。"
             "租房提取每年一次，需提供身份证和不动产权属查询结果。"},
    {"title": "居住证办理", "category": "咨询", "tags": ["居住证", "户籍"],
     "body": "来津人员在本市居住半年以上，符合合法稳定就业、合法稳定住所、连续就读条件之一的，"
             "可到居住地派出所申领居住证。"},
    {"title": "供暖不热投诉", "category": "投诉", "tags": ["供暖", "供热"],
     "body": "供暖期室温低于18℃的，居民可拨打12345投诉，热线转供热单位24小时内上门测温；"
             "测温不达标的按日退还供暖费。"},
    {"title": "医保异地就医备案", "category": "咨询", "tags": ["医保", "异地就医"],
     "body": "参保人员异地长期居住或临时外出就医，可通过国家医保服务平台App办理异地就医备案，"
             "备案后在就医地直接结算。"},
    {"title": "夜间施工噪音举报", "category": "举报", "tags": ["噪音", "城管"],
     "body": "夜间22时至次日6时施工产生噪音的，可拨打12345举报，由城管部门核查处理并回复。"},
]


def add(s: Session, title: str, body: str, *, category: str = "咨询", tags: list[str] | None = None,
        valid_from: date | None = None, valid_to: date | None = None) -> int:
    row = kb.add_article(s, title=title, body=body, category=category, tags=tags or [], valid_from=valid_from,
                         valid_to=valid_to, author="张敏", now=NOW)
    return row.id


@pytest.fixture
def s(db: Engine) -> Iterator[Session]:
    with Session(db) as session:
        yield session


@pytest.fixture
def ids(s: Session) -> dict[str, int]:
    """The six articles above, committed; their ids by title."""
    out = {a["title"]: add(s, a["title"], a["body"], category=a["category"], tags=a["tags"]) for a in ARTICLES}
    s.commit()
    return out


def found(s: Session, query: str, *, today: date = TODAY, **kw: Any) -> set[int]:
    hits, total = kb.search(s, query, today=today, **kw)
    assert total == len(hits), "one page holds every hit here"
    return {h.id for h in hits}


def fts_is_consistent(s: Session) -> None:
    """SQLite only: FTS5 compares its index with the content it was built from."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(text("INSERT INTO kb_fts(kb_fts, rank) VALUES ('integrity-check', 1)"))


# ---- finding Chinese words ---------------------------------------------------------------------


def test_a_two_character_word_finds_every_article_holding_it(s: Session, ids: dict[str, int]) -> None:
    assert found(s, "医保") == {ids["医保异地就医备案"], ids["社保卡补办"]}  # title, and a body in passing
    assert found(s, "供暖") == {ids["供暖不热投诉"]}
    assert found(s, "社保") == {ids["社保卡补办"]}


def test_a_two_character_word_at_the_very_end_of_a_title_or_tags_is_found(s: Session) -> None:
    # No trigram starts with the last two characters of a text: the index's padding makes one.
    title_end = add(s, "失业金申领", "失业人员可按月领取失业保险金。")
    tags_end = add(s, "高龄津贴发放", "八十周岁以上老人按月发放津贴。", tags=["老年人", "补贴"])
    s.commit()
    assert found(s, "申领") == {title_end}
    assert found(s, "补贴") == {tags_end}


def test_a_longer_phrase_finds_only_the_articles_holding_it_whole(s: Session, ids: dict[str, int]) -> None:
    assert found(s, "社保卡") == {ids["社保卡补办"]}
    assert found(s, "异地就医备案") == {ids["医保异地就医备案"]}
    assert found(s, "医保卡") == set()  # 医保 and 卡 are there, the phrase is not


def test_a_word_is_found_in_any_case_of_its_latin_letters(s: Session, ids: dict[str, int]) -> None:
    assert found(s, "app") == found(s, "APP") == {ids["医保异地就医备案"]}


def test_every_word_of_the_query_must_be_in_the_article(s: Session, ids: dict[str, int]) -> None:
    assert found(s, "社保卡 医保") == {ids["社保卡补办"]}
    assert found(s, "医保　结算") == {ids["医保异地就医备案"], ids["社保卡补办"]}  # an ideographic space too
    assert found(s, "公积金 医保") == set()
    assert found(s, "12345 举报") == {ids["夜间施工噪音举报"]}


def test_a_single_character_is_searched_too_by_scanning(s: Session, ids: dict[str, int]) -> None:
    assert found(s, "暖") == {ids["供暖不热投诉"]}
    assert found(s, "噪 举报") == {ids["夜间施工噪音举报"]}


def test_the_category_narrows_the_search(s: Session, ids: dict[str, int]) -> None:
    assert found(s, "12345", category="投诉") == {ids["供暖不热投诉"]}
    assert found(s, "12345", category="举报") == {ids["夜间施工噪音举报"]}
    assert found(s, "12345", category="建议") == set()
    with pytest.raises(kb.KbError) as bad:
        kb.search(s, "12345", today=TODAY, category="投诉举报")
    assert bad.value.field == "category"


def test_an_empty_query_finds_nothing(s: Session, ids: dict[str, int]) -> None:
    for query in ("", "   ", "\u3000", "\x00\t"):
        assert kb.search(s, query, today=TODAY) == ([], 0)


# ---- what the user types is never syntax --------------------------------------------------------

HOSTILE = ['"', "*", "OR", "NEAR(", "%", "_", "'", "\\", '社保" OR "医保', "社保*", "^社保", "title:社保",
           "NOT 医保", "(社保)", "医保 AND", "' OR 1=1 --", "%_%", "\x00", "\ud800社保"]


@pytest.mark.parametrize("query", HOSTILE)
def test_query_syntax_in_the_text_neither_fails_nor_widens_the_search(s: Session, ids: dict[str, int],
                                                                       query: str) -> None:
    hits, total = kb.search(s, query, today=TODAY)
    assert total == len(hits) < len(ids)
    for h in hits:  # whatever is found holds the words as typed
        article = s.get(ArticleRow, h.id)
        assert article is not None
        text_of = f"{article.title} {article.body} {article.tags}".lower()
        assert all(w.lower() in text_of for w in kb.terms_of(query)), (query, h.title)


def test_percent_and_underscore_are_matched_literally(s: Session, ids: dict[str, int]) -> None:
    rate = add(s, "个税专项附加扣除", "子女教育按每月2000元100%扣除，申报表字段名为 child_edu。")
    s.commit()
    assert found(s, "100%") == found(s, "0%") == {rate}
    assert found(s, "d_e") == {rate}
    assert found(s, "%") == {rate}
    assert found(s, "dxe") == set()


def test_a_ten_thousand_character_query_is_answered_and_matches_nothing_it_should_not(
        s: Session, ids: dict[str, int]) -> None:
    pasted = ("市民来电反映小区供暖不热，" * 1000)[:10_000]
    assert kb.search(s, pasted, today=TODAY) == ([], 0)
    syntax = ('"*^:()%_ OR NEAR( ' * 600)[:10_000]
    assert kb.search(s, syntax, today=TODAY) == ([], 0)
    repeated = " ".join(["医保"] * 5000)
    assert found(s, repeated) == found(s, "医保")


# ---- results: order, page, excerpt ----------------------------------------------------------------


def test_results_come_in_pages_with_the_total_of_all_pages(s: Session) -> None:
    for n in range(25):
        add(s, f"供暖费缴纳第{n}问", f"居民供暖费按建筑面积计收，第{n}种情形见下。")
    s.commit()
    seen: list[int] = []
    for offset in (0, 10, 20):
        hits, total = kb.search(s, "供暖", today=TODAY, limit=10, offset=offset)
        assert total == 25
        seen += [h.id for h in hits]
    assert len(seen) == len(set(seen)) == 25
    assert kb.search(s, "供暖", today=TODAY, limit=10, offset=30) == ([], 25)
    bad_pages: list[dict[str, Any]] = [{"limit": 0}, {"limit": 101}, {"offset": -1}]
    for bad in bad_pages:
        with pytest.raises(kb.KbError):
            kb.search(s, "供暖", today=TODAY, **bad)


def test_a_word_in_the_title_ranks_above_a_word_in_passing(s: Session, ids: dict[str, int]) -> None:
    hits, _ = kb.search(s, "医保", today=TODAY)
    assert [h.title for h in hits] == ["医保异地就医备案", "社保卡补办"]


def test_between_equally_relevant_articles_the_most_cited_comes_first(s: Session) -> None:
    first = add(s, "燃气报修", "燃气泄漏请立即拨打燃气公司抢修电话。")
    second = add(s, "燃气报修", "燃气泄漏请立即拨打燃气公司抢修电话。")
    s.commit()
    assert [h.id for h in kb.search(s, "燃气", today=TODAY)[0]] == [first, second]
    kb.cite(s, second, today=TODAY)
    s.commit()
    assert [h.id for h in kb.search(s, "燃气", today=TODAY)[0]] == [second, first]


def test_a_hit_shows_its_fields_and_an_excerpt_around_the_first_match(s: Session) -> None:
    body = "根据本市有关规定，" + "办理流程说明。" * 30 + "异地就医需先办理备案手续。" + "其余事项见附件。" * 20
    article = add(s, "异地就医备案须知", body, category="咨询", tags=["医保", "异地就医"])
    s.commit()
    [hit], total = kb.search(s, "备案手续", today=TODAY)
    assert (hit.id, hit.title, hit.category, hit.tags, hit.uses, total) == (
        article, "异地就医备案须知", "咨询", ("医保", "异地就医"), 0, 1)
    assert len(hit.snippet) <= kb.SNIPPET_MAX
    assert "备案手续" in hit.snippet and hit.snippet.startswith("…") and hit.snippet.endswith("…")


@pytest.mark.parametrize("where", [0, 150, 395])
def test_an_excerpt_is_at_most_120_characters_wherever_the_match_is(where: int) -> None:
    body = "甲" * where + "医保" + "乙" * (400 - where)
    excerpt = kb.snippet(body, re.compile("医保"))
    assert len(excerpt) <= 120 and "医保" in excerpt


def test_an_excerpt_is_one_line_and_a_short_body_is_shown_whole() -> None:
    assert kb.snippet("第一行\n第二行\t医保", re.compile("医保")) == "第一行 第二行 医保"


# ---- validity -------------------------------------------------------------------------------------


def test_only_articles_valid_on_the_day_are_found_unless_expired_ones_are_asked_for(s: Session) -> None:
    policy = add(s, "2026年上半年供暖补贴", "低保家庭供暖补贴按户发放。",
                 valid_from=date(2026, 1, 1), valid_to=date(2026, 6, 30))
    s.commit()
    for day, valid in ((date(2025, 12, 31), False), (date(2026, 1, 1), True), (date(2026, 6, 30), True),
                       (date(2026, 7, 1), False)):
        assert found(s, "供暖补贴", today=day) == ({policy} if valid else set()), day
        assert found(s, "供暖补贴", today=day, include_expired=True) == {policy}


def test_a_retired_article_is_no_longer_found_but_is_kept(s: Session, ids: dict[str, int]) -> None:
    article = ids["居住证办理"]
    kb.retire(s, article, last_day=TODAY - timedelta(days=1), now=NOW)
    s.commit()
    assert found(s, "居住证") == set()
    assert found(s, "居住证", include_expired=True) == {article}
    row = kb.get_article(s, article)
    assert row is not None and row.valid_to == date(2026, 12, 2)


# ---- the index follows every change --------------------------------------------------------------


def test_an_update_reindexes_the_article(s: Session, ids: dict[str, int]) -> None:
    article = ids["居住证办理"]
    kb.update_article(s, article, NOW + timedelta(hours=1), title="户口迁移办理",
                      body="户口迁入本市需提供迁移证明，到落户地派出所办理。", tags=["户籍", "落户"])
    s.commit()
    assert found(s, "居住证") == found(s, "申领") == set()  # the old words, 3+ and 2 characters
    assert found(s, "户口迁移") == found(s, "落户") == {article}
    row = kb.get_article(s, article)
    assert row is not None and row.updated.replace(tzinfo=UTC) == NOW + timedelta(hours=1)
    fts_is_consistent(s)


def test_a_deleted_article_leaves_the_index(s: Session, ids: dict[str, int]) -> None:
    article = s.get(ArticleRow, ids["夜间施工噪音举报"])
    s.delete(article)
    s.commit()
    assert found(s, "噪音") == found(s, "城管部门") == set()
    fts_is_consistent(s)


def test_citing_an_article_does_not_rewrite_its_index_entry(s: Session, ids: dict[str, int]) -> None:
    kb.cite(s, ids["社保卡补办"], today=TODAY)
    s.commit()
    assert found(s, "社保卡") == {ids["社保卡补办"]}
    fts_is_consistent(s)


# ---- articles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field"), [
    ({"title": ""}, "title"),
    ({"title": "  "}, "title"),
    ({"title": "长" * 201}, "title"),
    ({"title": "换行\n标题"}, "title"),
    ({"body": " \n "}, "body"),
    ({"body": "含\x00空字符"}, "body"),
    ({"category": "其它"}, "category"),
    ({"tags": ["异地 就医"]}, "tags"),
    ({"tags": "医保"}, "tags"),
    ({"tags": None}, "tags"),
    ({"title": None}, "title"),
    ({"tags": ["医" * 300, "保" * 300]}, "tags"),
    ({"valid_from": date(2026, 7, 1), "valid_to": date(2026, 6, 30)}, "valid_to"),
    ({"valid_from": "2026-07-01"}, "valid_from"),
    ({"author": "张" * 65}, "author"),
])
def test_an_invalid_article_is_refused_naming_the_field(s: Session, fields: dict[str, Any], field: str) -> None:
    article = {"title": "公积金提取", "body": "见正文。", "category": "咨询", "tags": ["公积金"],
               "valid_from": None, "valid_to": None, "author": "张敏"}
    with pytest.raises(kb.KbError) as bad:
        kb.add_article(s, **{**article, **fields}, now=NOW)
    assert bad.value.field == field


def test_an_article_is_stored_as_given_with_its_tags_cleaned(s: Session) -> None:
    row = kb.add_article(s, title=" 残疾证办理 ", body="持户口本到社区申请评残。", category="",
                         tags=["残疾证", " 民政 ", "残疾证", ""], valid_from=date(2026, 1, 1), valid_to=None,
                         author="李静", now=NOW)
    s.commit()
    got = kb.get_article(s, row.id)
    assert got is not None
    assert (got.title, got.category, got.tags, got.valid_from, got.uses, got.author) == (
        "残疾证办理", "", "残疾证 民政", date(2026, 1, 1), 0, "李静")
    assert kb.get_article(s, row.id + 1000) is None


def test_an_update_that_would_break_the_article_changes_nothing(s: Session, ids: dict[str, int]) -> None:
    article = ids["供暖不热投诉"]
    with pytest.raises(kb.KbError) as bad:
        kb.update_article(s, article, NOW, valid_from=date(2027, 1, 1), valid_to=date(2026, 1, 1))
    assert bad.value.field == "valid_to"
    with pytest.raises(kb.KbError) as unknown:
        kb.update_article(s, article, NOW, uses=100)
    assert unknown.value.field == "uses"
    with pytest.raises(kb.KbError) as missing:
        kb.update_article(s, 999_999, NOW, title="不存在")
    assert missing.value.field == "article_id"
    s.rollback()
    row = kb.get_article(s, article)
    assert row is not None and (row.valid_from, row.valid_to, row.uses) == (None, None, 0)


# ---- citing ---------------------------------------------------------------------------------------


def test_citing_counts_each_ticket_answered_from_the_article(s: Session, ids: dict[str, int]) -> None:
    article = ids["住房公积金提取"]
    assert [kb.cite(s, article, today=TODAY) for _ in range(3)] == [1, 2, 3]
    s.commit()
    [hit] = kb.search(s, "公积金", today=TODAY)[0]
    assert hit.uses == 3


def test_concurrent_closings_each_count(db: Engine, ids: dict[str, int]) -> None:
    article = ids["住房公积金提取"]
    errors: list[BaseException] = []

    def close_tickets() -> None:
        try:
            for _ in range(10):
                with Session(db) as s, s.begin():
                    kb.cite(s, article, today=TODAY)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    workers = [threading.Thread(target=close_tickets) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with Session(db) as s:
        row = kb.get_article(s, article)
        assert row is not None and row.uses == 80


def test_citing_a_missing_or_expired_article_is_refused(s: Session) -> None:
    expired = add(s, "2025年供暖补贴", "已停止发放。", valid_to=date(2025, 12, 31))
    future = add(s, "2027年新政", "尚未施行。", valid_from=date(2027, 1, 1))
    s.commit()
    for article in (expired, future, 999_999):
        with pytest.raises(kb.KbError) as bad:
            kb.cite(s, article, today=TODAY)
        assert bad.value.field == "article_id"
    assert kb.cite(s, expired, today=date(2025, 12, 31)) == 1


# ---- the database does the searching --------------------------------------------------------------


def sent_by_search(db: Engine, query: str) -> tuple[str, Any]:
    """The ranking statement kb.search sends for `query`, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "count(*) OVER" in statement:
            sent.append((statement, parameters))

    event.listen(db, "before_cursor_execute", keep)
    try:
        with Session(db) as s:
            kb.search(s, query, today=TODAY)
    finally:
        event.remove(db, "before_cursor_execute", keep)
    return sent[-1]


@pytest.mark.parametrize(("query", "index"), [("公积金", "ix_kb_articles_trgm"), ("医保", "ix_kb_articles_bigrams"),
                                               ("公积金 提取", "ix_kb_articles_trgm")])
def test_search_is_answered_by_the_index(db: Engine, ids: dict[str, int], query: str, index: str) -> None:
    statement, parameters = sent_by_search(db, query)
    with db.connect() as conn:
        if db.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "kb_fts VIRTUAL TABLE INDEX 0:M" in plan  # the MATCH, for 2 characters too
            assert "SCAN kb_articles" not in plan
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # six rows: a scan would win on cost
            plan = " ".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert f"Bitmap Index Scan on {index}" in plan
            assert "Seq Scan" not in plan


# ---- the migration ---------------------------------------------------------------------------------


def _alembic(conn: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def search_objects(db: Engine) -> set[str]:
    with db.connect() as conn:
        if db.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE name LIKE 'kb_fts%'"
        else:
            query = ("SELECT indexname FROM pg_indexes WHERE tablename = 'kb_articles' AND indexname LIKE 'ix_kb%' "
                     "UNION ALL SELECT proname FROM pg_proc WHERE proname = 'kb_bigrams'")
        return {str(name) for (name,) in conn.execute(text(query))}


def test_the_migration_goes_down_and_up_again_and_indexes_what_is_already_there(db: Engine) -> None:
    before = search_objects(db)
    assert before
    with db.begin() as conn:
        command.downgrade(_alembic(conn), "0003")
    assert search_objects(db) == set()
    with Session(db) as s:  # written with no index in place
        written = add(s, "公租房申请", "符合条件的家庭可向街道提交公租房申请。", tags=["住房"])
        s.commit()
    migrate(db)
    assert search_objects(db) == before
    with Session(db) as s:
        assert found(s, "公租房") == found(s, "住房") == {written}
        fts_is_consistent(s)


@pytest.fixture
def pg_user(pg_url: str) -> Iterator[str]:
    """A role that may create tables in the scratch database but not extensions."""
    role = f"kb_plain_{uuid.uuid4().hex[:8]}"
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True) as conn:
        conn.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    try:
        yield pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')


def test_without_the_right_to_create_pg_trgm_the_migration_says_what_the_dba_must_run(pg_user: str) -> None:
    engine = open_engine(pg_user)
    try:
        with pytest.raises(RuntimeError) as failed:
            migrate(engine)
        assert re.search(r'in database "hotline_test_\w+": CREATE EXTENSION IF NOT EXISTS pg_trgm;', str(failed.value))
        with engine.connect() as conn:  # nothing half-done: the whole upgrade was one transaction
            assert conn.exec_driver_sql("SELECT to_regclass('kb_articles')").scalar() is None
    finally:
        engine.dispose()


@pytest.fixture
def c_locale_url() -> Iterator[str]:
    name = f"hotline_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_CTYPE 'C' LC_COLLATE 'C'")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_database_blind_to_chinese_letters_is_warned_about_and_still_searched(c_locale_url: str) -> None:
    engine = open_engine(c_locale_url)
    try:
        with capture_logs() as logs:
            migrate(engine)
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["kb_index_blind_to_chinese"]
        with Session(engine) as s:
            article = add(s, "公积金提取", "租房提取住房公积金每年一次。")
            s.commit()
            assert found(s, "公积金") == found(s, "租房") == {article}
    finally:
        engine.dispose()
