"""Full-text search over tickets (migration 0005) on both stores: 2-character and longer
Chinese words, every word must match, the user's text is never syntax, an edit re-indexes
the ticket, a department finds only its own tickets, a common word's total is capped, and
on PostgreSQL the service's own queries can use the indexes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from tests.tickets.helpers import FORM, T0, seed, service
from tickets import service as service_module
from tickets.auth import Principal
from tickets.lifecycle import Action
from tickets.service import Filters, TicketService

TEXTS = {  # content, address
    "heat": ("小区供暖不热，室温只有12度", "秦都区人民路12号锦绣花园3号楼"),
    "noise": ("楼下商户噪音扰民，夜间11点后仍未停止", "渭城区文林路8号"),
    "water": ("突然停水，家中有老人", "渭城区文林路18号A座"),
    "odd": ('价格标注100%_优惠"买一送一" AND OR NEAR(a b) 供暖*', "兴平市东城街道"),
}
World = tuple[TicketService, dict[str, Principal], dict[str, int]]  # the service, users by name, tickets by TEXTS


@pytest.fixture
def world(db: Engine) -> World:
    svc, who = service(db), seed(db)
    ids = {name: svc.create(who["agent1"], {**FORM, "content": c, "address": a}, T0)["id"]
           for name, (c, a) in TEXTS.items()}
    return svc, who, ids


def found(svc: TicketService, who: Principal, words: str, **more: Any) -> set[int]:
    page = svc.search(who, Filters(text=words, **more), T0)
    return {item["id"] for item in page["items"]}


def test_two_character_words_are_found(world: World) -> None:
    svc, who, ids = world
    boss = who["boss"]
    assert found(svc, boss, "供暖") == {ids["heat"], ids["odd"]}
    assert found(svc, boss, "噪音") == {ids["noise"]}
    assert found(svc, boss, "停水") == {ids["water"]}
    assert found(svc, boss, "渭城") == {ids["noise"], ids["water"]}  # in the address
    assert found(svc, boss, "号楼") == {ids["heat"]}  # at the address's end
    assert found(svc, boss, "老人") == {ids["water"]}  # at the content's end
    assert found(svc, boss, "a座") == found(svc, boss, "A座") == {ids["water"]}  # case folds
    assert found(svc, boss, "暖噪") == set()  # not a word of any ticket
    assert found(svc, boss, "人民") == {ids["heat"]}


def test_longer_and_one_character_words_are_found(world: World) -> None:
    svc, who, ids = world
    boss = who["boss"]
    assert found(svc, boss, "室温只有") == {ids["heat"]}
    assert found(svc, boss, "锦绣花园") == {ids["heat"]}
    assert found(svc, boss, "文林路") == {ids["noise"], ids["water"]}
    assert found(svc, boss, "扰民的") == set()
    assert found(svc, boss, "热") == {ids["heat"]}
    assert found(svc, boss, "12度") == {ids["heat"]}


def test_every_word_must_match(world: World) -> None:
    svc, who, ids = world
    boss = who["boss"]
    assert found(svc, boss, "渭城 噪音") == {ids["noise"]}
    assert found(svc, boss, "文林路　停水") == {ids["water"]}  # an ideographic space separates too
    assert found(svc, boss, "供暖 锦绣花园 热") == {ids["heat"]}
    assert found(svc, boss, "供暖 噪音") == set()
    assert found(svc, boss, "噪音 不存在的词") == set()


@pytest.mark.parametrize("words", ["%", "_", "\\", '"', "*", "%%", "__", "AND", "OR", "NOT", "NEAR(a", "a b)",
                                  '" OR "', "供暖*", "^供暖", "content:供暖", "-", "'", "';--", "(", ")"])
def test_wildcards_and_fts_syntax_are_plain_characters(world: World,
                                                       words: str) -> None:
    svc, who, ids = world
    hits = found(svc, who["boss"], words)
    assert hits <= {ids["odd"]}  # only the ticket that holds these characters, never all of them
    literal = {"%", "_", '"', "AND", "OR", "供暖*", "(", ")", "NEAR(a", "a b)", "*", '" OR "'}
    if words in literal:
        assert hits == {ids["odd"]}


def test_the_percent_sign_is_not_a_wildcard(world: World) -> None:
    svc, who, ids = world
    assert found(svc, who["boss"], "100%_优惠") == {ids["odd"]}
    assert found(svc, who["boss"], "1%0") == set()
    assert found(svc, who["boss"], "价_标") == set()


def test_an_edited_ticket_is_found_by_its_new_words_only(world: World,
                                                         db: Engine) -> None:
    svc, who, ids = world
    boss = who["boss"]
    svc.act(who["agent1"], ids["heat"], Action.EDIT, {"content": "燃气表故障，无法做饭", "address": "杨陵区李台街道"},
            T0)
    assert found(svc, boss, "供暖") == {ids["odd"]}
    assert found(svc, boss, "室温只有") == set()
    assert found(svc, boss, "燃气表") == found(svc, boss, "燃气") == {ids["heat"]}
    assert found(svc, boss, "杨陵") == found(svc, boss, "李台街道") == {ids["heat"]}
    # Lifecycle steps rewrite the row but not its text; the index stays consistent throughout.
    svc.act(who["agent1"], ids["heat"], Action.DISPATCH, {"department": "housing"}, T0)
    svc.act(who["zhujian"], ids["heat"], Action.ACCEPT, {}, T0)
    assert found(svc, boss, "燃气") == {ids["heat"]}
    if db.dialect.name == "sqlite":
        with db.begin() as conn:
            conn.execute(text("INSERT INTO tickets_fts(tickets_fts) VALUES ('integrity-check')"))


def test_a_department_never_finds_another_departments_ticket_by_text(
        world: World) -> None:
    svc, who, ids = world
    svc.act(who["agent1"], ids["heat"], Action.DISPATCH, {"department": "housing"}, T0)
    svc.act(who["agent1"], ids["odd"], Action.DISPATCH, {"department": "water"}, T0)
    for words in ("供暖", "供暖 价格", "锦绣花园", "热", "%", "兴平市"):
        assert found(svc, who["zhujian"], words) <= {ids["heat"]}
        assert found(svc, who["shuiwu"], words) <= {ids["odd"]}
    assert found(svc, who["zhujian"], "供暖") == {ids["heat"]}
    assert found(svc, who["shuiwu"], "供暖") == {ids["odd"]}
    assert svc.search(who["shuiwu"], Filters(text="锦绣花园"), T0)["total"] == 0
    assert found(svc, who["zhujian"], "噪音") == set()  # not dispatched: no department's


def test_past_the_cap_a_department_still_walks_only_its_own_tickets(world: World,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    svc, who, ids = world
    mine = [svc.create(who["agent1"], {**FORM, "content": "供暖不热"}, T0)["id"] for _ in range(2)]
    for ticket in [*mine, ids["heat"]]:
        svc.act(who["agent1"], ticket, Action.DISPATCH, {"department": "housing"}, T0)
    svc.act(who["agent1"], ids["odd"], Action.DISPATCH, {"department": "water"}, T0)
    monkeypatch.setattr(service_module, "TEXT_COUNT_CAP", 1)
    page = svc.search(who["zhujian"], Filters(text="供暖"), T0)
    newest_first = [*sorted(mine, reverse=True), ids["heat"]]
    assert ([i["id"] for i in page["items"]], page["total_capped"]) == (newest_first, True)
    assert found(svc, who["shuiwu"], "供暖") == {ids["odd"]}


def test_text_combines_with_the_other_filters(world: World) -> None:
    svc, who, ids = world
    assert found(svc, who["boss"], "供暖", category="投诉", state="registered") == {ids["heat"], ids["odd"]}
    assert found(svc, who["boss"], "供暖", category="咨询") == set()
    assert found(svc, who["boss"], "供暖", department="housing") == set()


def test_a_common_words_total_is_capped_and_pages_still_work(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, who, ids = world
    more = [svc.create(who["agent1"], {**FORM, "content": "渭城区供暖不热"}, T0)["id"] for _ in range(3)]
    everyone = [*sorted(more, reverse=True), ids["odd"], ids["heat"]]  # 供暖, newest first (same time: by id)

    def pages(words: str) -> tuple[list[int], set[tuple[int, bool]]]:
        got = [svc.search(who["boss"], Filters(text=words, per_page=2, page=n), T0) for n in (1, 2, 3, 4)]
        return [i["id"] for page in got for i in page["items"]], {(p["total"], p["total_capped"]) for p in got}

    assert pages("供暖") == (everyone, {(5, False)})
    assert pages("供暖 暖不") == ([*everyone[:3], ids["heat"]], {(4, False)})
    monkeypatch.setattr(service_module, "TEXT_COUNT_CAP", 3)  # past it: walked newest first
    assert pages("供暖") == (everyone, {(3, True)})
    assert pages("供暖 暖不") == ([*everyone[:3], ids["heat"]], {(3, True)})
    assert pages("锦绣花园") == ([ids["heat"]], {(1, False)})


def test_blank_text_filters_nothing(world: World) -> None:
    svc, who, ids = world
    assert found(svc, who["boss"], " \u3000 ") == set(ids.values())


@pytest.fixture
def statements(db: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(db, "before_cursor_execute", grab)
    yield seen
    event.remove(db, "before_cursor_execute", grab)


@pytest.mark.parametrize("user", ["boss", "zhujian"])
@pytest.mark.parametrize(("words", "index"), [("锦绣花园", "ix_tickets_text_trgm"), ("噪音", "ix_tickets_text_bigrams"),
                                              ("A座", "ix_tickets_text_bigrams"), ("Abc", "ix_tickets_text_trgm")])
def test_the_search_can_use_the_indexes_on_postgresql(world: World, db: Engine, statements: list[tuple[str, Any]],
                                                      words: str, index: str, user: str) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite's index is the FTS5 table the query names")
    svc, who, _ = world
    statements.clear()
    svc.search(who[user], Filters(text=words), T0)
    collect = next((st, p) for st, p in statements if "FROM tickets" in st)  # the one that collects the matches
    with db.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # A handful of rows: scanning them, walking the newest first, or taking the department's
        # own b-tree would be cheaper. (The DROP is rolled back with the transaction.)
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; "
                       "DROP INDEX ix_tickets_department_due")
        cursor.execute("EXPLAIN " + collect[0], collect[1])
        plan = [str(row[0]) for row in cursor.fetchall()]
        conn.rollback()
    text = "\n".join(plan)
    if user == "boss":
        assert f"Bitmap Index Scan on {index}" in text, text
    else:  # the department is a key of the text indexes (with a handful of rows, of either one)
        assert re.search(r"Bitmap Index Scan on ix_tickets_text_\w+ .*\n *Index Cond: .*department_id =", text), text
