"""the ticket platform: departments, users, tokens, tickets, their calls and history, 知识库, push outbox

The history (ticket_events) is append-only in the database itself: triggers refuse UPDATE
and DELETE on both SQLite and PostgreSQL, so no code path, API or not, can rewrite it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events "
        "BEGIN SELECT RAISE(ABORT, 'ticket history is append-only'); END",
        "CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events "
        "BEGIN SELECT RAISE(ABORT, 'ticket history is append-only'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION ticket_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'ticket history is append-only'; END $$",
        "CREATE TRIGGER ticket_events_append_only BEFORE UPDATE OR DELETE ON ticket_events "
        "FOR EACH ROW EXECUTE FUNCTION ticket_events_append_only()",
    ],
}


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created", TS, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id"), nullable=True),
        sa.Column("agent_id", sa.String(16), nullable=True, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("password_changed", TS, nullable=False),
    )
    op.create_table(
        "auth_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("expires", TS, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
    )
    op.create_index("ix_login_failures_username_at", "login_failures", ["username", "at"])
    op.create_table(
        "ticket_counters",
        sa.Column("day", sa.String(8), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("category", sa.String(8), nullable=False),
        sa.Column("tags", sa.String(512), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=True),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(16), nullable=False, unique=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("caller_name", sa.String(128), nullable=False),
        sa.Column("caller_num", sa.String(64), nullable=False),
        sa.Column("caller_restricted", sa.Boolean, nullable=False),
        sa.Column("category", sa.String(8), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("district", sa.String(32), nullable=False),
        sa.Column("street", sa.String(64), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("agent_id", sa.String(16), nullable=True),
        sa.Column("origin_call_id", sa.String(64), nullable=True, unique=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id"), nullable=True),
        sa.Column("original_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=True),
        sa.Column("article_id", sa.Integer, sa.ForeignKey("kb_articles.id"), nullable=True),
        sa.Column("returns", sa.Integer, nullable=False),
        sa.Column("extensions", sa.Integer, nullable=False),
        sa.Column("redos", sa.Integer, nullable=False),
        sa.Column("urged", sa.Integer, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("accept_due", TS, nullable=True),
        sa.Column("handle_due", TS, nullable=True),
        sa.Column("reply", sa.Text, nullable=False),
        sa.Column("followup", sa.Text, nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("registered_at", TS, nullable=True),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("accepted_at", TS, nullable=True),
        sa.Column("replied_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("updated", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    for name, cols in (("ix_tickets_caller_num", ["caller_num"]),
                       ("ix_tickets_department_due", ["department_id", "due_at"]),
                       ("ix_tickets_due_at", ["due_at"]),
                       ("ix_tickets_state_created", ["state", "created"]),
                       ("ix_tickets_created", ["created"]),
                       ("ix_tickets_agent_state", ["agent_id", "state"])):
        op.create_index(name, "tickets", cols)
    op.create_table(
        "ticket_calls",
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("recording", sa.String(512), nullable=True),
        sa.Column("linked", TS, nullable=False),
    )
    op.create_index("ix_ticket_calls_call_id", "ticket_calls", ["call_id"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_state", sa.String(24), nullable=False),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.UniqueConstraint("ticket_id", "seq", name="uq_ticket_events_ticket_seq"),
    )
    op.create_table(
        "push_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", TS, nullable=False),
        sa.Column("delivered", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_index("ix_push_outbox_pending", "push_outbox", ["delivered", "next_attempt"])
    op.create_index("ix_push_outbox_ticket", "push_outbox", ["ticket_id", "id"])
    for statement in APPEND_ONLY.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_append_only ON ticket_events")
        op.execute("DROP FUNCTION IF EXISTS ticket_events_append_only()")
    for table in ("push_outbox", "ticket_events", "ticket_calls", "tickets", "kb_articles", "ticket_counters",
                  "login_failures", "auth_tokens", "users", "departments"):
        op.drop_table(table)
