"""工单 full-text search: a trigram index over tickets' content and address

The same approach as the 知识库 (migration 0004), for the table that reaches a million rows.

SQLite: an FTS5 trigram table with external content over tickets (index only, no second
copy of the text), fed by triggers, and an fts5vocab table over it for 2-character words.
As in 0004 each column is read with one space after it, so that every 2-character
substring starts some trigram, even at a column's end. Tickets are UPDATEd on every
lifecycle step: the update trigger fires only when content or address change.

PostgreSQL: a GIN gin_trgm_ops index over content || ' ' || address, the very expression
tickets.service searches (change one, change both; a test EXPLAINs the query), for words
of 3+ characters. pg_trgm cannot narrow a shorter word, and Chinese words are often 2
characters (供暖, 噪音), so a second GIN index holds each ticket's 2-character substrings,
lower-cased, as an array (ticket_bigrams()): a 2-character word is then one exact key, no
recheck. Not 0004's kb_bigrams(): an aggregate over a set-returning function is never
inlined and took 72 us a ticket here against this one's 20 us; every ticket UPDATE and
every ANALYZE sample pays it. Both indexes lead with department_id (btree_gin, a trusted
contrib extension like pg_trgm): a department's search is then one index scan for its
department and its words together. Apart, the planner took a department and a word for
independent, which they are not, and read 10,000 tickets to find a department's 83 (0.4 s
against 3 ms). At a million tickets the two took 75 s to build (holding writes to tickets
meanwhile) and 250 MB. pg_trgm needs a UTF-8 LC_CTYPE to see Chinese characters as letters
(migration 0004 warns); the bigrams do not. Downgrade keeps the extensions, as 0004 does.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op
from sqlalchemy import exc

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = "content, address"
NEW = "new.id, new.content || ' ', new.address || ' '"
OLD = "'delete', old.id, old.content || ' ', old.address || ' '"  # forgotten by its old values
SQLITE_UP = [
    "CREATE VIEW tickets_fts_source AS SELECT id, content || ' ' AS content, address || ' ' AS address FROM tickets",
    f"CREATE VIRTUAL TABLE tickets_fts USING fts5({COLUMNS}, content='tickets_fts_source', content_rowid='id', "
    "tokenize='trigram')",
    "CREATE VIRTUAL TABLE tickets_fts_vocab USING fts5vocab(tickets_fts, row)",
    f"CREATE TRIGGER tickets_fts_insert AFTER INSERT ON tickets BEGIN "
    f"INSERT INTO tickets_fts(rowid, {COLUMNS}) VALUES ({NEW}); END",
    f"CREATE TRIGGER tickets_fts_delete AFTER DELETE ON tickets BEGIN "
    f"INSERT INTO tickets_fts(tickets_fts, rowid, {COLUMNS}) VALUES ({OLD}); END",
    f"CREATE TRIGGER tickets_fts_update AFTER UPDATE OF {COLUMNS} ON tickets BEGIN "
    f"INSERT INTO tickets_fts(tickets_fts, rowid, {COLUMNS}) VALUES ({OLD}); "
    f"INSERT INTO tickets_fts(rowid, {COLUMNS}) VALUES ({NEW}); END",
    "INSERT INTO tickets_fts(tickets_fts) VALUES ('rebuild')",  # the tickets written before this revision
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS tickets_fts_update",
    "DROP TRIGGER IF EXISTS tickets_fts_delete",
    "DROP TRIGGER IF EXISTS tickets_fts_insert",
    "DROP TABLE IF EXISTS tickets_fts_vocab",
    "DROP TABLE IF EXISTS tickets_fts",
    "DROP VIEW IF EXISTS tickets_fts_source",
]
PG_DOC = "(content || ' ' || address)"  # tickets.service.PG_TEXT, verbatim
# Pairs at even positions, then at odd ones: two linear regex passes split at U+001F, which
# no search word holds (substr over generate_series is quadratic in UTF-8, see 0004). One
# expression, so the planner inlines it; the caller lower-cases (tickets.service.PG_BIGRAMS).
PG_BIGRAMS = r"""CREATE FUNCTION ticket_bigrams(low text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_remove(string_to_array(regexp_replace(low, '(..)', E'\\1\x1f', 'g') || E'\x1f'
                                      || regexp_replace(substr(low, 2), '(..)', E'\\1\x1f', 'g'), E'\x1f'), '')
$$"""
# fastupdate off: with GIN's pending list every search also reads the list, and whichever
# ticket write fills it (4 MB) merges it into the index: 0.5 s for one registration here.
# Off, each write updates the indexes itself, about 2 ms more per registration.
PG_UP = [
    f"CREATE INDEX ix_tickets_text_trgm ON tickets USING gin (department_id, {PG_DOC} gin_trgm_ops) "
    "WITH (fastupdate = off)",
    PG_BIGRAMS,
    f"CREATE INDEX ix_tickets_text_bigrams ON tickets USING gin (department_id, ticket_bigrams(lower{PG_DOC})) "
    "WITH (fastupdate = off)",
    # The planner estimates a LIKE from a sample of the texts and chooses scan or index by
    # it: at the default (100) words in 0.5-1% of the tickets came out at 0.01% to 4%; at 300
    # most were within 2.5x. ANALYZE of a million tickets: 4 s instead of 1.2 s.
    "ALTER INDEX ix_tickets_text_trgm ALTER COLUMN 2 SET STATISTICS 300",
]
PG_DOWN = [
    "DROP INDEX IF EXISTS ix_tickets_text_bigrams",
    "DROP FUNCTION IF EXISTS ticket_bigrams(text)",
    "DROP INDEX IF EXISTS ix_tickets_text_trgm",
]


def _create_btree_gin() -> None:
    """CREATE EXTENSION, or a failure that tells the DBA what to run (as 0004 does for pg_trgm)."""
    bind = op.get_bind()
    if bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'btree_gin'").first():
        return
    database = bind.exec_driver_sql("SELECT current_database()").scalar()  # asked first: a failure aborts
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS btree_gin")
    except exc.DBAPIError as e:
        if getattr(e.orig, "sqlstate", None) not in ("42501", "58P01", "0A000"):  # privilege; not installed
            raise
        raise RuntimeError(
            "migration 0005 needs the PostgreSQL extension btree_gin (postgresql-contrib, like pg_trgm) and could "
            f'not create it: {e.orig}. A DBA must run, as a superuser: CREATE EXTENSION IF NOT EXISTS btree_gin; in '
            f'database "{database}", then run the migration again.'
        ) from e


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _create_btree_gin()
    for statement in SQLITE_UP if dialect == "sqlite" else PG_UP if dialect == "postgresql" else []:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_DOWN if dialect == "sqlite" else PG_DOWN if dialect == "postgresql" else []:
        op.execute(statement)
