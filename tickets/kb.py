"""The 知识库: articles agents answer from, and the search that finds them in Chinese text.

Search is the database's own trigram index (migration 0004): FTS5 `trigram` on SQLite,
pg_trgm's GIN index on PostgreSQL. A trigram knows substrings of 3 characters, and Chinese
words are often 2 (医保, 社保, 供暖), so each word is searched the way that finds it:
- 3+ characters: SQLite MATCHes it as a quoted FTS5 phrase; PostgreSQL LIKEs the indexed
  expression PG_DOC and the trigram GIN index answers.
- 2 characters: on SQLite the OR of the indexed trigrams that start with it (from the
  index's own vocabulary, kb_fts_vocab; migration 0004 indexes every column with a space
  after it, so a word at a column's end starts a trigram too); on PostgreSQL one key of the
  GIN index of each article's 2-character substrings (kb_bigrams()), or, beside a longer
  word, a filter on what the trigram index found. No scan either way.
- 1 character (or a pair of letters that Python might lower-case otherwise than the
  database, e.g. accented capitals): LIKE, which no index narrows; alone such a word scans
  the articles, beside a longer word it filters what the index found.
  (Not `kb_fts.body LIKE '%医保%'` on SQLite: 3.40's FTS5 answers a multibyte pattern under
  3 characters with no rows at all. The LIKE here is on kb_articles, with an ESCAPE.)
Every word must match (AND). User text is data, never syntax: each FTS5 phrase is quoted and
LIKE's % and _ are escaped.

The functions take a Session and leave the commit to the caller, so that citing an article
commits with the ticket that cites it. No clock is read: `now` and `today` are arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, case, cast, func, literal_column, or_, select, update
from sqlalchemy import text as sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql import column, table

from tickets.models import ArticleRow

CATEGORIES = ("咨询", "求助", "投诉", "举报", "建议", "表扬", "其他")  # or "" for none
TITLE_MAX = 200
TAGS_MAX = 512  # the column's size, joined with spaces
AUTHOR_MAX = 64
SNIPPET_MAX = 120
SNIPPET_LEAD = 30  # characters shown before the first match
MAX_TERMS = 10  # a search box, not a document: more words than this are not searched
MAX_TERM = 100  # characters; a longer "word" is pasted text: its first 100 characters are searched
LIMIT_MAX = 100
MAX_EXPANSION = 300  # trigrams a 2-character word may stand for; above that it is LIKE'd
PG_DOC = "(title || ' ' || body || ' ' || tags)"  # what migration 0004 indexes, verbatim
BM25_WEIGHTS = (10.0, 1.0, 5.0)  # title, body, tags: a word in the title says most about the article

_fts = table("kb_fts", column("rowid"))
_EDITABLE = frozenset({"title", "body", "category", "tags", "valid_from", "valid_to", "author"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # never in a term: PostgreSQL refuses NUL outright


class KbError(ValueError):
    """Bad input to the 知识库, naming the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Hit:
    id: int
    title: str
    snippet: str  # at most SNIPPET_MAX characters around the first match in the body
    category: str
    tags: tuple[str, ...]
    uses: int


# ---- articles ---------------------------------------------------------------------------------


def add_article(s: Session, *, title: str, body: str, category: str, tags: list[str], valid_from: date | None,
                valid_to: date | None, author: str, now: datetime) -> ArticleRow:
    """A new article (flushed, so it has its id; the caller commits)."""
    fields = _validated({"title": title, "body": body, "category": category, "tags": tags,
                         "valid_from": valid_from, "valid_to": valid_to, "author": author})
    row = ArticleRow(**fields, uses=0, created=now, updated=now)
    s.add(row)
    s.flush()
    return row


def get_article(s: Session, article_id: int) -> ArticleRow | None:
    return s.get(ArticleRow, article_id)


def update_article(s: Session, article_id: int, now: datetime, **fields: Any) -> ArticleRow:
    """Change some of title, body, category, tags (a list), valid_from, valid_to, author.
    The article as a whole must stay valid: valid_to may not move before valid_from."""
    unknown = sorted(set(fields) - _EDITABLE)
    if unknown:
        raise KbError(unknown[0], f"cannot be changed (editable: {', '.join(sorted(_EDITABLE))})")
    row = _existing(s, article_id)
    current = {"title": row.title, "body": row.body, "category": row.category, "tags": row.tags.split(),
               "valid_from": row.valid_from, "valid_to": row.valid_to, "author": row.author}
    for name, value in _validated({**current, **fields}).items():
        setattr(row, name, value)
    row.updated = now
    s.flush()
    return row


def retire(s: Session, article_id: int, *, last_day: date, now: datetime) -> ArticleRow:
    """Withdraw an article: `last_day` is the last day it is valid (yesterday, to withdraw it
    today). The row stays, so tickets that cited it still show what they were answered with."""
    return update_article(s, article_id, now, valid_to=last_day)


def cite(s: Session, article_id: int, *, today: date) -> int:
    """Count one more ticket answered from this article (直接答复); returns the new count.
    One UPDATE ... SET uses = uses + 1, so concurrent closings each count."""
    stmt = (update(ArticleRow).where(ArticleRow.id == article_id, _valid_on(today))
            .values(uses=ArticleRow.uses + 1).returning(ArticleRow.uses))
    uses = s.execute(stmt, execution_options={"synchronize_session": "fetch"}).scalar()
    if uses is None:
        row = _existing(s, article_id)
        raise KbError("article_id", f"article {article_id} is not valid on {today.isoformat()} "
                                    f"(valid {_span(row.valid_from, row.valid_to)})")
    return int(uses)


def _existing(s: Session, article_id: int) -> ArticleRow:
    row = s.get(ArticleRow, article_id)
    if row is None:
        raise KbError("article_id", f"no article {article_id}")
    return row


def _span(start: date | None, end: date | None) -> str:
    return f"{start.isoformat() if start else '…'} to {end.isoformat() if end else '…'}"


def _validated(f: dict[str, Any]) -> dict[str, Any]:
    """The columns of an article from its fields, or a KbError naming the first bad one."""
    title, body, category, author = f["title"], f["body"], f["category"], f["author"]
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= TITLE_MAX:
        raise KbError("title", f"must be 1 to {TITLE_MAX} characters")
    if _CONTROL.search(title):
        raise KbError("title", "must not hold control characters")
    if not isinstance(body, str) or not body.strip():
        raise KbError("body", "must not be empty")
    if "\x00" in body or re.search(r"[\ud800-\udfff]", body):
        raise KbError("body", "must not hold NUL or unpaired surrogates")
    if category not in (*CATEGORIES, ""):
        raise KbError("category", f"must be one of {' '.join(CATEGORIES)} or empty")
    tags = f["tags"]
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise KbError("tags", "must be a list of words")
    tags = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
    if any(len(t.split()) > 1 or _CONTROL.search(t) for t in tags):
        raise KbError("tags", "a tag is one word: no spaces or control characters inside it")
    joined = " ".join(tags)
    if len(joined) > TAGS_MAX:
        raise KbError("tags", f"must be at most {TAGS_MAX} characters in all")
    valid_from, valid_to = f["valid_from"], f["valid_to"]
    for name, value in (("valid_from", valid_from), ("valid_to", valid_to)):
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise KbError(name, "must be a date or None")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise KbError("valid_to", f"{valid_to.isoformat()} is before valid_from {valid_from.isoformat()}")
    if not isinstance(author, str) or len(author) > AUTHOR_MAX:
        raise KbError("author", f"must be at most {AUTHOR_MAX} characters")
    return {"title": title.strip(), "body": body, "category": category, "tags": joined,
            "valid_from": valid_from, "valid_to": valid_to, "author": author}


# ---- search -----------------------------------------------------------------------------------


def terms_of(text: str) -> list[str]:
    """The words of a query: split at any whitespace (the ideographic space too), control
    characters dropped, duplicates once, at most MAX_TERMS words of at most MAX_TERM characters."""
    words = _CONTROL.sub(" ", text).split()
    return list(dict.fromkeys(w[:MAX_TERM] for w in words))[:MAX_TERMS]


def search(s: Session, text: str, *, today: date, category: str | None = None, include_expired: bool = False,
           limit: int = 20, offset: int = 0) -> tuple[list[Hit], int]:
    """Articles holding every word of `text` in title, body or tags, the best first, and how
    many there are in all. Relevance is bm25 on SQLite and pg_trgm's word similarity to title
    and tags on PostgreSQL; ties go to the most cited, then the oldest. A query with no words
    finds nothing. Only articles valid on `today` unless `include_expired` (then also those
    not yet valid)."""
    if category is not None and category not in (*CATEGORIES, ""):
        raise KbError("category", f"must be one of {' '.join(CATEGORIES)} or empty")
    if not 1 <= limit <= LIMIT_MAX:
        raise KbError("limit", f"must be 1 to {LIMIT_MAX}")
    if offset < 0:
        raise KbError("offset", "must not be negative")
    terms = terms_of(text)
    if not terms:
        return [], 0
    found = _pg_match(terms) if s.get_bind().dialect.name == "postgresql" else _sqlite_match(s, terms)
    if found is None:  # a word that no article holds
        return [], 0
    if not include_expired:
        found = found.where(_valid_on(today))
    if category is not None:
        found = found.where(ArticleRow.category == category)
    # Ranked innermost, then counted and cut to the page (FTS5 refuses bm25() beside a window
    # function), then joined to the articles: only the page's text is read, none is sorted.
    ranked = found.subquery()
    order = (ranked.c.rank, ranked.c.uses.desc(), ranked.c.id)
    page = (select(ranked.c.id, ranked.c.rank, ranked.c.uses, func.count().over().label("total"))
            .order_by(*order).limit(limit).offset(offset).subquery())
    a = ArticleRow
    rows = s.execute(select(a.id, a.title, a.body, a.category, a.tags, a.uses, page.c.total)
                     .join(page, page.c.id == a.id)
                     .order_by(page.c.rank, page.c.uses.desc(), page.c.id)).all()
    if not rows:  # past the last page: the window count has no row to ride on
        return [], int(s.scalar(select(func.count()).select_from(ranked)) or 0) if offset else 0
    marks = _marks(terms)
    return [Hit(r.id, r.title, snippet(r.body, marks), r.category, tuple(r.tags.split()), r.uses)
            for r in rows], int(rows[0].total)


def _ranked(rank: ColumnElement[Any]) -> Select[Any]:
    """The articles' ids, what orders them, and their rank: lower is better."""
    return select(ArticleRow.id, ArticleRow.uses, rank.label("rank"))


def _sqlite_match(s: Session, terms: list[str]) -> Select[Any] | None:
    """The FTS5 query for the terms the index can answer, LIKE for the others; None if some
    word is in no article at all."""
    phrases, scans = [], []
    for t in terms:
        if len(t) >= 3:
            phrases.append(fts_phrase(t))
            continue
        starting = trigrams_starting(s, t) if len(t) == 2 else None
        if starting is None:
            scans.append(t)
        elif not starting:
            return None
        else:
            phrases.append("(" + " OR ".join(map(fts_phrase, starting)) + ")")
    if phrases:
        found = (_ranked(func.bm25(literal_column("kb_fts"), *BM25_WEIGHTS))
                 .join(_fts, _fts.c.rowid == ArticleRow.id)
                 .where(literal_column("kb_fts").op("MATCH")(" AND ".join(phrases))))
    else:
        found = _ranked(-_title_hits(scans))
    return found.where(*(_contains(t) for t in scans))


def trigrams_starting(s: Session, term: str, vocab: str = "kb_fts_vocab") -> list[str] | None:
    """The indexed trigrams that start with a 2-character term: their OR finds it wherever it
    is, since migration 0004 indexes every column with a space after it. None where the index
    cannot say (a letter whose case folding might differ from FTS5's, too common a pair)."""
    if not _folds_alike(term):
        return None
    low = term.lower()  # the trigram tokenizer folds case
    after = ord(low[1]) + 1
    after = 0xE000 if 0xD800 <= after <= 0xDFFF else after  # UTF-8 order skips the surrogates
    if after > 0x10FFFF:
        return None
    # `vocab` is one of the migrations' fts5vocab tables (kb_fts_vocab, tickets_fts_vocab), never input.
    found = s.execute(sql(f"SELECT term FROM {vocab} WHERE term >= :low AND term < :high LIMIT :most"),
                      {"low": low, "high": low[0] + chr(after), "most": MAX_EXPANSION + 1}).scalars().all()
    return None if len(found) > MAX_EXPANSION else list(found)


def fts_phrase(term: str) -> str:
    """An FTS5 string: the term's characters, none of them syntax."""
    return '"' + term.replace('"', '""') + '"'


def _pg_match(terms: list[str]) -> Select[Any]:
    """One kind of index condition per query. A trigram LIKE is lossy: PostgreSQL rechecks
    every condition of the bitmap scan on each row it returns, and rechecking kb_bigrams()
    means computing it. So with a word of 3+ characters the trigram index narrows and shorter
    words are plain LIKE filters on those rows (microseconds each); with 2-character words
    only, they go to the bigram index as one exact array."""
    doc: ColumnElement[Any] = literal_column(PG_DOC)
    pairs = [t.lower() for t in terms if len(t) == 2 and _folds_alike(t)]
    by_bigrams = bool(pairs) and all(len(t) < 3 for t in terms)
    found: list[ColumnElement[bool]] = []
    if by_bigrams:
        found.append(literal_column(f"kb_bigrams{PG_DOC}").op("@>")(
            postgresql.array([cast(p, Text) for p in pairs])))
    for t in terms:
        if by_bigrams and t.lower() in pairs:
            continue
        # LIKE is much cheaper than ILIKE on long Chinese text; ILIKE only where case exists.
        # No ESCAPE clause: PostgreSQL's default escape is the backslash like_pattern() uses.
        found.append(doc.like(like_pattern(t)) if t.lower() == t.upper() else doc.ilike(like_pattern(t)))
    rank = -func.word_similarity(" ".join(terms), ArticleRow.title + literal_column("' '") + ArticleRow.tags)
    return _ranked(rank).where(*found)


def _folds_alike(term: str) -> bool:
    """Whether Python's lower() is the database's for this term: no case, or ASCII only."""
    return term.isascii() or term.lower() == term.upper()


def _contains(term: str) -> ColumnElement[bool]:
    """SQLite: the term in title, body or tags, as a LIKE (ASCII letters in any case)."""
    pattern = like_pattern(term)
    return or_(*(c.like(pattern, escape="\\") for c in (ArticleRow.title, ArticleRow.body, ArticleRow.tags)))


def _title_hits(terms: list[str]) -> ColumnElement[Any]:
    """How many of the words the title holds: the rank when no word went through the index."""
    hits = [case((ArticleRow.title.like(like_pattern(t), escape="\\"), 1), else_=0) for t in terms]
    total: ColumnElement[Any] = hits[0]
    for h in hits[1:]:
        total = total + h
    return total


def _valid_on(today: date) -> ColumnElement[bool]:
    a = ArticleRow
    return and_(or_(a.valid_from.is_(None), a.valid_from <= today), or_(a.valid_to.is_(None), a.valid_to >= today))


def like_pattern(term: str) -> str:
    """A LIKE pattern for the term as a substring, its own \\, % and _ taken literally."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _marks(terms: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)


def snippet(body: str, marks: re.Pattern[str]) -> str:
    """At most SNIPPET_MAX characters of the body on one line, from a little before the first
    match (or from the start, when the words are only in the title or tags)."""
    flat = " ".join(body.split())
    if len(flat) <= SNIPPET_MAX:
        return flat
    first = marks.search(flat)
    start = max(0, (first.start() if first else 0) - SNIPPET_LEAD)
    start = min(start, len(flat) - (SNIPPET_MAX - 1))  # near the end: still a full window
    head = "…" if start > 0 else ""
    room = SNIPPET_MAX - len(head)
    if start + room < len(flat):
        return head + flat[start : start + room - 1] + "…"
    return head + flat[start:]
