"""frozen period reports (报表冻结): every version of a period's report, never rewritten

A report is frozen as its JSON with the SHA-256 of those bytes. Freezing the same period
again (a restatement) adds version n+1 beside the old ones: triggers refuse UPDATE and
DELETE on both SQLite and PostgreSQL, as for the ticket history; on PostgreSQL TRUNCATE too,
of this table and of the ticket history (0003 left TRUNCATE of ticket_events open).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER report_versions_no_update BEFORE UPDATE ON report_versions "
        "BEGIN SELECT RAISE(ABORT, 'a frozen report is never rewritten: freeze a new version'); END",
        "CREATE TRIGGER report_versions_no_delete BEFORE DELETE ON report_versions "
        "BEGIN SELECT RAISE(ABORT, 'a frozen report is never rewritten: freeze a new version'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION report_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'a frozen report is never rewritten: freeze a new version'; END $$",
        "CREATE TRIGGER report_versions_append_only BEFORE UPDATE OR DELETE ON report_versions "
        "FOR EACH ROW EXECUTE FUNCTION report_versions_append_only()",
        # TRUNCATE fires no row trigger: without these, one statement would empty both histories.
        "CREATE TRIGGER report_versions_no_truncate BEFORE TRUNCATE ON report_versions "
        "FOR EACH STATEMENT EXECUTE FUNCTION report_versions_append_only()",
        "CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_append_only()",
    ],
}


def upgrade() -> None:
    op.create_table(
        "report_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(64), nullable=False),  # reports.periods.Period.key: "month:2026-11"
        sa.Column("version", sa.Integer, nullable=False),  # 1, 2, ... per period
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frozen_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),  # the report's JSON, exactly as hashed
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("period", "version", name="uq_report_versions_period_version"),
    )
    for statement in APPEND_ONLY.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_truncate ON ticket_events")
        op.execute("DROP TRIGGER IF EXISTS report_versions_no_truncate ON report_versions")
        op.execute("DROP TRIGGER IF EXISTS report_versions_append_only ON report_versions")
        op.execute("DROP FUNCTION IF EXISTS report_versions_append_only()")
    op.drop_table("report_versions")
