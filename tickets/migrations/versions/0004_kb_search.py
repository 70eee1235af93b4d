"""知识库 search: the database's own trigram full-text index over kb_articles

SQLite: an FTS5 table with the trigram tokenizer, external content over kb_articles (it
stores the index only, not a second copy of the text), kept in step by triggers, and an
fts5vocab table over it (its trigrams, for 2-character words). Citing an article
(uses = uses + 1) does not touch the index: the update trigger fires only when an indexed
column changes.

PostgreSQL: pg_trgm and a GIN gin_trgm_ops index over title || ' ' || body || ' ' || tags,
the very expression tickets.kb searches (change one, change both: a test EXPLAINs the
query), for words of 3+ characters. pg_trgm cannot narrow a shorter word (its trigrams of
Chinese text are hashes, so there is not even a prefix to look up), and Chinese words are
often 2 characters (医保, 供暖): a second GIN index holds each article's distinct
2-character substrings, lower-cased, as an array (kb_bigrams()); a 2-character word is then
one exact key. pg_trgm only sees letters its database's LC_CTYPE calls alphanumeric: in a
database created with LC_CTYPE 'C' Chinese text yields no trigrams and 3+ character words
are found by scanning; the migration says so in the log. Downgrade drops the indexes and the
function but keeps the extension: it is database-wide, may have been installed by a DBA,
and other objects may use it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import structlog
from alembic import op
from sqlalchemy import exc

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The index reads each column with one space after it, so that every 2-character substring
# starts some trigram, even at a column's end ("社保卡补办" -> "补办 "): tickets.kb finds a
# 2-character word through the index by the trigrams that start with it (kb_fts_vocab). The
# view is the content table, so a rebuild and FTS5's own checks see what the triggers write.
PADDED = "title || ' ' AS title, body || ' ' AS body, tags || ' ' AS tags"
COLUMNS = "title, body, tags"
NEW = "new.id, new.title || ' ', new.body || ' ', new.tags || ' '"
OLD = "'delete', old.id, old.title || ' ', old.body || ' ', old.tags || ' '"  # forgotten by its old values
SQLITE_UP = [
    f"CREATE VIEW kb_fts_source AS SELECT id, {PADDED} FROM kb_articles",
    f"CREATE VIRTUAL TABLE kb_fts USING fts5({COLUMNS}, content='kb_fts_source', content_rowid='id', "
    "tokenize='trigram')",
    "CREATE VIRTUAL TABLE kb_fts_vocab USING fts5vocab(kb_fts, row)",
    f"CREATE TRIGGER kb_fts_insert AFTER INSERT ON kb_articles BEGIN "
    f"INSERT INTO kb_fts(rowid, {COLUMNS}) VALUES ({NEW}); END",
    f"CREATE TRIGGER kb_fts_delete AFTER DELETE ON kb_articles BEGIN "
    f"INSERT INTO kb_fts(kb_fts, rowid, {COLUMNS}) VALUES ({OLD}); END",
    f"CREATE TRIGGER kb_fts_update AFTER UPDATE OF id, {COLUMNS} ON kb_articles BEGIN "
    f"INSERT INTO kb_fts(kb_fts, rowid, {COLUMNS}) VALUES ({OLD}); "
    f"INSERT INTO kb_fts(rowid, {COLUMNS}) VALUES ({NEW}); END",
    "INSERT INTO kb_fts(kb_fts) VALUES ('rebuild')",  # the articles written before this revision
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS kb_fts_update",
    "DROP TRIGGER IF EXISTS kb_fts_delete",
    "DROP TRIGGER IF EXISTS kb_fts_insert",
    "DROP TABLE IF EXISTS kb_fts_vocab",
    "DROP TABLE IF EXISTS kb_fts",
    "DROP VIEW IF EXISTS kb_fts_source",
]
PG_DOC = "(title || ' ' || body || ' ' || tags)"  # tickets.kb.PG_DOC, verbatim
# Pairs at odd positions, then at even ones: two linear regex passes. (substr(low, i, 2) over
# generate_series is quadratic in UTF-8, which must walk to position i: 6x slower at 300
# characters, and ANALYZE, which evaluates index expressions, ran past the statement timeout.)
# COST 1000 (cpu_operator_cost units) is below the truth (~170 us a call at 300 characters),
# which would push large result sets past jit_above_cost into tens of milliseconds of JIT
# compiling, and high enough that the planner reads the index rather than compute it per row.
PG_BIGRAMS = """CREATE FUNCTION kb_bigrams(doc text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 1000 AS $$
  SELECT coalesce(array_agg(DISTINCT pair[1]), '{}')
  FROM (SELECT lower(doc) AS low) AS d,
       LATERAL (SELECT regexp_matches(low, '(..)', 'g')
                UNION ALL SELECT regexp_matches(substr(low, 2), '(..)', 'g')) AS p(pair)
$$"""
PG_UP = [
    f"CREATE INDEX ix_kb_articles_trgm ON kb_articles USING gin ({PG_DOC} gin_trgm_ops)",
    PG_BIGRAMS,
    f"CREATE INDEX ix_kb_articles_bigrams ON kb_articles USING gin (kb_bigrams{PG_DOC})",
]
PG_DOWN = [
    "DROP INDEX IF EXISTS ix_kb_articles_bigrams",
    "DROP FUNCTION IF EXISTS kb_bigrams(text)",
    "DROP INDEX IF EXISTS ix_kb_articles_trgm",
]
NOT_INSTALLED = "it is not installed on the server (the contrib modules of PostgreSQL)"
WHY_NO_PG_TRGM = {"42501": "the migration's user may not create it",  # insufficient_privilege
                  "58P01": NOT_INSTALLED, "0A000": NOT_INSTALLED}  # undefined_file, feature_not_supported


def _create_pg_trgm() -> None:
    """CREATE EXTENSION, or a failure that tells the DBA what to run. pg_trgm is a trusted
    extension: a superuser, or any user with CREATE on the database, may install it."""
    bind = op.get_bind()
    if bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first():
        return
    # Asked first: after a failed statement the transaction answers nothing more.
    database, user = bind.exec_driver_sql("SELECT current_database(), current_user").one()
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except exc.DBAPIError as e:
        code = getattr(e.orig, "sqlstate", None)
        if code not in WHY_NO_PG_TRGM:
            raise
        first = "install PostgreSQL's contrib modules on the server, then " if code != "42501" else ""
        raise RuntimeError(
            f"migration 0004 needs the PostgreSQL extension pg_trgm and could not create it: {WHY_NO_PG_TRGM[code]}. "
            f'A DBA must {first}run, as a superuser in database "{database}": CREATE EXTENSION IF NOT EXISTS pg_trgm; '
            f'(or GRANT CREATE ON DATABASE "{database}" TO "{user}"), and then the migration again.'
        ) from e


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    elif dialect == "postgresql":
        _create_pg_trgm()
        for statement in PG_UP:
            op.execute(statement)
        if not op.get_bind().exec_driver_sql("SELECT show_trgm('社保卡')").scalar():
            structlog.get_logger("hotline.store").warning(
                "kb_index_blind_to_chinese", table="kb_articles",
                why="the database's LC_CTYPE is C: pg_trgm takes Chinese characters for separators",
                effect="知识库 search still answers; words of 3+ characters by scanning every article",
                fix="recreate the database with a UTF-8 LC_CTYPE (C.UTF-8, zh_CN.UTF-8) and reload it")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in PG_DOWN:
            op.execute(statement)
